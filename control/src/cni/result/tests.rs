//! Results in each format, chained onto a `prevResult`, and read back for CHECK.

use serde_json::json;

use super::*;

fn attachment(internal: bool) -> AddResult {
    AddResult {
        ifname: "eth0".into(),
        mac: MacAddr::for_ipv4(Ipv4Addr::new(10, 7, 0, 2)),
        mtu: 1450,
        sandbox: PathBuf::from("/run/netns/c1"),
        address: Ipv4Addr::new(10, 7, 0, 2),
        prefix_len: 24,
        gateway: Ipv4Addr::new(10, 7, 0, 1),
        default_route: !internal,
    }
}

#[test]
fn formats_per_version() {
    let r = attachment(false).to_json("1.1.0", None);
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "02:42:0a:07:00:02", "sandbox": "/run/netns/c1", "mtu": 1450}],
            "ips": [{"address": "10.7.0.2/24", "gateway": "10.7.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.7.0.1"}],
            "dns": {"nameservers": ["10.7.0.1"]},
        })
    );
    let r = attachment(false).to_json("1.0.0", None);
    assert!(r["interfaces"][0].get("mtu").is_none());
    assert!(r["ips"][0].get("version").is_none());
    for old in ["0.3.0", "0.3.1", "0.4.0"] {
        let r = attachment(false).to_json(old, None);
        assert_eq!(r["cniVersion"], old);
        assert_eq!(r["ips"][0]["version"], "4", "{old}");
    }
    let r = attachment(true).to_json("1.1.0", None);
    assert_eq!(r["routes"], json!([]));
}

#[test]
fn chained_onto_a_prev_result() {
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "lo", "sandbox": "/run/netns/c1"}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "routes": [{"dst": "192.168.0.0/16"}],
        "dns": {"nameservers": ["1.1.1.1"], "domain": "lab"},
        "extra": {"kept": true},
    });
    let r = attachment(false).to_json("1.1.0", Some(&prev));
    assert_eq!(r["interfaces"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["ips"][1]["interface"], 1);
    assert_eq!(
        r["routes"],
        json!([{"dst": "192.168.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.7.0.1"}])
    );
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["1.1.1.1", "10.7.0.1"], "domain": "lab"})
    );
    assert_eq!(r["extra"], json!({"kept": true}));

    // Malformed parts of a prevResult are replaced, not trusted.
    let odd = json!({"interfaces": "x", "dns": 5});
    let r = attachment(false).to_json("1.1.0", Some(&odd));
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["dns"], json!({"nameservers": ["10.7.0.1"]}));
}

#[test]
fn expected_reads_an_attachment_back() {
    let prev = attachment(false).to_json(
        "1.1.0",
        Some(&json!({
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/other"}],
            "ips": [{"address": "192.168.1.1/24", "interface": 0}],
        })),
    );
    let netns = Path::new("/run/netns/c1");
    assert_eq!(
        expected(&prev, "eth0", netns),
        Some(Expected {
            mac: "02:42:0a:07:00:02".parse().ok(),
            addresses: vec![(Ipv4Addr::new(10, 7, 0, 2), 24)],
        })
    );
    assert_eq!(expected(&prev, "eth1", netns), None);
    assert_eq!(expected(&json!({}), "eth0", netns), None);
    // No sandbox: taken as the container's; IPv6 addresses are skipped.
    let bare = json!({
        "interfaces": [{"name": "eth0"}],
        "ips": [{"address": "fd00::2/64", "interface": 0}, {"address": "10.0.0.2/8", "interface": 0}],
    });
    assert_eq!(
        expected(&bare, "eth0", netns),
        Some(Expected {
            mac: None,
            addresses: vec![(Ipv4Addr::new(10, 0, 0, 2), 8)],
        })
    );
}

#[test]
fn version_answer() {
    assert_eq!(
        version_json("0.4.0"),
        json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}
