use super::*;

#[test]
fn stat_line_with_odd_comm() {
    assert_eq!(
        parse_stat("42 (docker-init) S 7 42 42 0 -1"),
        Some((7, "docker-init".to_string()))
    );
    assert_eq!(
        parse_stat("43 (a) b (c)) R 9 1 1"),
        Some((9, "a) b (c)".to_string()))
    );
    assert_eq!(parse_stat("nonsense"), None);
}

/// A minimal ELF64 header with one program header of type `ptype`.
fn elf_with_phdr(ptype: u32) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
    e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    e[64..68].copy_from_slice(&ptype.to_le_bytes());
    e
}

#[test]
fn static_elf_detection() {
    assert!(is_static_elf(&elf_with_phdr(1)), "PT_LOAD only");
    assert!(!is_static_elf(&elf_with_phdr(3)), "PT_INTERP");
    assert!(!is_static_elf(b"#!/bin/sh\n"));
    assert!(!is_static_elf(&elf_with_phdr(1)[..0x30]), "truncated");
}

#[test]
fn engine_processes_by_their_command_line() {
    let dir = b"/tmp/lab/h0-docker";
    let args = |a: &[&str]| a.join("\0").into_bytes();
    assert!(names_engine_dir(
        &args(&["dockerd", "--data-root=/tmp/lab/h0-docker/data"]),
        dir
    ));
    assert!(names_engine_dir(
        &args(&["sleep", "/tmp/lab/h0-docker/pid-ns-init"]),
        dir
    ));
    // A client of the engine is not the engine.
    assert!(!names_engine_dir(
        &args(&[
            "vxnet",
            "daemon",
            "--docker-host",
            "/tmp/lab/h0-docker/docker.sock"
        ]),
        dir
    ));
    assert!(!names_engine_dir(
        &args(&[
            "vxnet",
            "--docker-plugin",
            "/tmp/lab/h0/docker-plugins/vxnet.sock"
        ]),
        dir
    ));
}
