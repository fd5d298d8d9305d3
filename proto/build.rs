fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored protoc keeps the build free of a system protobuf compiler.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto/vxnet.proto");
    prost_build::compile_protos(&["proto/vxnet.proto"], &["proto"])?;
    Ok(())
}
