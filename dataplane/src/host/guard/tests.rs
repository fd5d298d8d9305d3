use super::*;

fn port(n: u8) -> GuardedPort {
    let ipv4 = Ipv4Addr::new(10, 0, 0, n);
    GuardedPort {
        veth: format!("vx{n:012x}"),
        mac: MacAddr::for_ipv4(ipv4),
        ipv4,
    }
}

#[test]
fn the_ruleset_replaces_only_the_bridge_table_and_lists_every_port() {
    let script = ruleset(&[port(2), port(3)], &[]);
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "table bridge vxnet",
            "delete table bridge vxnet",
            "table bridge vxnet {"
        ]
    );
    assert_eq!(script.matches("table ").count(), 3, "{script}");
    for p in [port(2), port(3)] {
        assert!(
            script.contains(&format!("\"{}\" . {}", p.veth, p.mac)),
            "{script}"
        );
        assert!(
            script.contains(&format!("\"{}\" . {}", p.veth, p.ipv4)),
            "{script}"
        );
    }
    // The TAP is the core's; everything else is checked, and what is left is dropped.
    assert!(script.contains("iifname \"vxtap0\" accept"), "{script}");
    assert!(script
        .trim_end()
        .ends_with("counter name \"foreign_ethertype\" drop\n\t}\n}"));
}

#[test]
fn counters_carry_over_and_empty_sets_have_no_elements() {
    let script = ruleset(&[], &[(DropReason::SpoofedArp, 7)]);
    assert!(
        script.contains("counter spoofed_arp { packets 7 bytes 0 }"),
        "{script}"
    );
    assert!(script.contains("counter spoofed_source_mac { packets 0 bytes 0 }"));
    assert!(!script.contains("elements"), "{script}");
}

#[test]
fn counters_are_parsed_from_nfts_json() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
        {"counter": {"family": "bridge", "name": "spoofed_source_mac", "table": "vxnet", "handle": 2, "packets": 5, "bytes": 300}},
        {"counter": {"family": "bridge", "name": "spoofed_arp", "table": "vxnet", "handle": 3, "packets": 0, "bytes": 0}},
        {"counter": {"family": "bridge", "name": "no_vtep", "table": "vxnet", "handle": 4, "packets": 9, "bytes": 0}},
        {"counter": {"family": "bridge", "name": "someone_elses", "table": "vxnet", "handle": 5, "packets": 9, "bytes": 0}}]}"#;
    assert_eq!(
        parse_counters(json),
        vec![(DropReason::SpoofedSourceMac, 5)]
    );
    assert_eq!(parse_counters("not json"), vec![]);
    assert_eq!(parse_counters("{}"), vec![]);
}

#[test]
fn counts_add_up_per_reason_in_order() {
    assert_eq!(
        add_counts(
            &[(DropReason::SpoofedArp, 2), (DropReason::NoVtep, 1)],
            &[
                (DropReason::SpoofedArp, 3),
                (DropReason::SpoofedSourceIp, 4)
            ]
        ),
        vec![
            (DropReason::NoVtep, 1),
            (DropReason::SpoofedArp, 5),
            (DropReason::SpoofedSourceIp, 4)
        ]
    );
}

/// nftables' own parser accepts the script (`nft -c` checks without applying); skipped where
/// nft is not installed.
#[test]
fn nft_accepts_the_ruleset() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    for script in [
        ruleset(&[port(2), port(3)], &[(DropReason::SpoofedArp, 1)]),
        ruleset(&[], &[]),
    ] {
        match super::super::egress::nft(&["-c", "-f", "-"], Some(&script)) {
            Ok(_) => {}
            Err(crate::host::HostError::NftMissing) => return,
            Err(e) => panic!("{e}\n{script}"),
        }
    }
}
