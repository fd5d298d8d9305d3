use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::cni::{parse, Invocation};

/// A fresh directory under the system temp dir, removed by the caller.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vxnet-cni-install-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// The plugin's part of a conflist as a runtime hands it to the plugin: with the list's
/// `name` and `cniVersion` added (CNI spec, section 3), parsed as a DEL.
fn as_runtime_passes(list: &Value) -> Invocation {
    let mut conf = list["plugins"][0].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    let env = |name: &str| {
        match name {
            "CNI_COMMAND" => Some("DEL"),
            "CNI_CONTAINERID" => Some("0123456789ab"),
            "CNI_IFNAME" => Some("eth0"),
            _ => None,
        }
        .map(str::to_string)
    };
    parse(&env, conf.to_string().as_bytes()).expect("the plugin reads its configuration")
}

#[test]
fn the_conflist_is_what_the_plugin_reads() {
    let list = conflist("shop", Path::new("/run/vxnet/h1.sock"));
    assert_eq!(list["cniVersion"], "1.0.0");
    assert_eq!(list["name"], "vxnet-shop");
    assert_eq!(
        list["plugins"][0]["capabilities"],
        json!({"portMappings": true, "ips": true, "aliases": true})
    );
    let Invocation::Del { conf, .. } = as_runtime_passes(&list) else {
        panic!("not a DEL");
    };
    assert_eq!(conf.network, "shop");
    assert_eq!(conf.name, "vxnet-shop");
    assert_eq!(conf.socket, Path::new("/run/vxnet/h1.sock"));
}

#[test]
fn installs_the_binary_and_the_conflist_whole_and_with_their_modes() {
    let dir = temp_dir("ok");
    let what = Install {
        bin_dir: dir.join("opt/cni/bin"),
        conf_dir: dir.join("etc/cni/net.d"),
        network: Some("shop".into()),
        socket: PathBuf::from("/run/vxnet/vxnet.sock"),
    };
    // An old plugin is replaced.
    fs::create_dir_all(&what.bin_dir).expect("bin dir");
    fs::write(what.bin_dir.join("vxnet"), "old").expect("old plugin");
    let written = install(&what).expect("install");
    let bin = what.bin_dir.join("vxnet");
    let conf = what.conf_dir.join("vxnet-shop.conflist");
    assert_eq!(written, [bin.clone(), conf.clone()]);
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&conf), 0o644);
    assert_eq!(
        fs::read(&bin).expect("plugin"),
        fs::read("/proc/self/exe").expect("this binary")
    );
    let list: Value =
        serde_json::from_str(&fs::read_to_string(&conf).expect("conflist")).expect("JSON");
    assert_eq!(list, conflist("shop", &what.socket));
    // No temporary file stays.
    for d in [&what.bin_dir, &what.conf_dir] {
        let names: Vec<_> = fs::read_dir(d)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?} in {}", d.display());
    }
    // Without --network only the binary is written.
    let written = install(&Install {
        network: None,
        ..what.clone()
    })
    .expect("install again");
    assert_eq!(written, [bin]);
    fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_bad_dir_or_name_writes_nothing() {
    let dir = temp_dir("bad");
    fs::create_dir_all(&dir).expect("dir");
    let not_a_dir = dir.join("file");
    fs::write(&not_a_dir, "").expect("a file");
    let bin_dir = dir.join("bin");
    let what = Install {
        bin_dir: bin_dir.clone(),
        conf_dir: not_a_dir.join("net.d"),
        network: Some("shop".into()),
        socket: PathBuf::from("/run/vxnet/vxnet.sock"),
    };
    let err = install(&what).expect_err("a conf dir under a file");
    assert!(
        err.starts_with("cannot write ") && err.contains("net.d"),
        "{err}"
    );
    // The binary was staged, not installed: the bin dir holds nothing.
    assert_eq!(fs::read_dir(&bin_dir).expect("bin dir").count(), 0);

    let err = install(&Install {
        conf_dir: dir.join("net.d"),
        network: Some("../etc/x".into()),
        ..what
    })
    .expect_err("a name that is a path");
    assert!(err.contains("invalid network name"), "{err}");
    assert!(!dir.join("net.d").exists());
    fs::remove_dir_all(&dir).expect("clean up");
}
