use super::footprint::{names_engine_dir, parse_stat};

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
