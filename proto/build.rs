fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored protoc keeps the build free of a system protobuf compiler.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto/vxnet.proto");
    let mut config = prost_build::Config::new();
    // Every map is a BTreeMap: prost encodes a HashMap in its random iteration order, so two
    // hosts holding the same state would encode different bytes (Raft snapshots).
    config.btree_map(["."]);
    // A network key is a secret: its Debug (lib.rs) shows the epoch only.
    config.skip_debug([".vxnet.NetworkKey"]);
    config.compile_protos(&["proto/vxnet.proto"], &["proto"])?;
    Ok(())
}
