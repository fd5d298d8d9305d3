use std::net::Ipv4Addr;

use super::{InvalidState, Refusal};

#[test]
fn exit_codes_split_usage_errors_from_conflicts() {
    let usage = [
        Refusal::EmptyHostId,
        Refusal::EmptyNetworkName,
        Refusal::SubnetTooSmall {
            subnet: "10.0.0.0/31".parse().expect("cidr"),
        },
        Refusal::InvalidPeer {
            peer: Ipv4Addr::UNSPECIFIED,
        },
    ];
    assert!(usage
        .iter()
        .all(|r| r.exit_code() == 2 && r.is_usage_error()));
    let conflicts = [
        Refusal::EmptyCommand,
        Refusal::NoFreeVni,
        Refusal::NoFreeSubnet,
        Refusal::NetworkHasEndpoints {
            network: "n".into(),
            endpoints: vec!["c".into()],
        },
        Refusal::Inconsistent(InvalidState("network n has no subnet".into())),
    ];
    assert!(conflicts
        .iter()
        .all(|r| r.exit_code() == 1 && !r.is_usage_error()));
}

#[test]
fn no_free_vni_message() {
    let r = Refusal::NoFreeVni;
    assert_eq!(
        r.to_string(),
        "no free VNI is left between 256 and 16777215; remove a network or pass --vni"
    );
    assert_eq!(r.exit_code(), 1);
}
