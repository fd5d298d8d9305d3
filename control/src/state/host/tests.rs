use vxnet_proto::{command, AddHost, Host};

use super::super::testing::{
    add_host, connect, connected, id, ip, machine_with_net1, ok, refuse, remove_host, wrap,
};
use super::super::{Applied, Refusal, StateMachine};

#[test]
fn add_host_inserts_sorted_and_updates_by_id() {
    let mut m = StateMachine::new();
    let applied = ok(&mut m, add_host("h2", "192.168.1.2"));
    assert_eq!(
        applied,
        Applied::HostAdded(Host {
            id: "h2".into(),
            name: "name-h2".into(),
            addr: ip("192.168.1.2"),
            ..Default::default()
        })
    );
    ok(&mut m, add_host("h1", "192.168.1.1"));
    let ids: Vec<&str> = m.hosts().iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["h1", "h2"]);

    // Idempotent: the same command again changes nothing.
    let before = m.clone();
    ok(&mut m, add_host("h1", "192.168.1.1"));
    assert_eq!(m, before);

    // A new address for an existing id replaces the old one.
    ok(&mut m, add_host("h1", "192.168.9.9"));
    assert_eq!(m.hosts().len(), 2);
    assert_eq!(m.host("h1").map(|h| h.addr), Some(ip("192.168.9.9")));
    assert!(m.host("h3").is_none());
}

#[test]
fn add_host_refusals() {
    let mut m = StateMachine::new();
    let r = refuse(&mut m, wrap(command::Kind::AddHost(AddHost { host: None })));
    assert_eq!(r, Refusal::MissingField { field: "host" });
    assert_eq!(r.exit_code(), 1);
    let r = refuse(&mut m, add_host("", "192.168.1.1"));
    assert_eq!(r, Refusal::EmptyHostId);
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn remove_host_takes_its_endpoints_everywhere_and_nothing_else() {
    let mut m = machine_with_net1();
    ok(&mut m, add_host("h2", "192.168.1.2"));
    let on_h1 = connected(&mut m, connect(10, 1, "c1"));
    let on_h2 = connected(
        &mut m,
        connect(11, 1, "c2").host("h2").target("/run/netns/c2"),
    );
    let applied = ok(&mut m, remove_host("h2"));
    let Applied::HostRemoved { host, endpoints } = applied else {
        panic!("not HostRemoved: {applied:?}");
    };
    assert_eq!(host.id, "h2");
    assert_eq!(endpoints, vec![on_h2.clone()]);
    assert!(m.host("h2").is_none());
    assert_eq!(m.endpoints(&id(1)), vec![&on_h1]);
    // Its address is free again.
    let again = connected(&mut m, connect(12, 1, "c3"));
    assert_eq!(again.ipv4, on_h2.ipv4);
    // Removing it twice is refused, and changes nothing.
    let r = refuse(&mut m, remove_host("h2"));
    assert!(matches!(r, Refusal::NoSuchHost { .. }), "{r}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn removed_hosts_are_revoked_for_good() {
    let mut m = StateMachine::new();
    for (id, raft_id) in [("h1", 30), ("h2", 10), ("h3", 20)] {
        let mut cmd = add_host(id, "192.168.1.1");
        if let Some(command::Kind::AddHost(AddHost { host: Some(h) })) = cmd.kind.as_mut() {
            h.raft_id = raft_id;
        }
        ok(&mut m, cmd);
    }
    ok(&mut m, remove_host("h1"));
    ok(&mut m, remove_host("h2"));
    assert_eq!(m.revoked_raft_ids(), [10, 30], "sorted");
    // A refused removal revokes nothing.
    refuse(&mut m, remove_host("h1"));
    assert_eq!(m.revoked_raft_ids(), [10, 30]);
}

#[test]
fn the_join_secret_is_set_replaced_and_kept_by_a_first_setter() {
    let set = |byte: u8, only_if_unset: bool| {
        wrap(command::Kind::SetJoinSecret(vxnet_proto::SetJoinSecret {
            secret: vec![byte; 32],
            only_if_unset,
        }))
    };
    let mut m = StateMachine::new();
    ok(&mut m, set(1, true));
    assert_eq!(m.join_secret(), vec![1; 32]);
    // A second "first" secret loses to the one applied before it; a rotation replaces it.
    ok(&mut m, set(2, true));
    assert_eq!(m.join_secret(), vec![1; 32]);
    ok(&mut m, set(3, false));
    assert_eq!(m.join_secret(), vec![3; 32]);
    // Not 32 bytes: refused, nothing changes.
    let short = wrap(command::Kind::SetJoinSecret(vxnet_proto::SetJoinSecret {
        secret: vec![4; 31],
        only_if_unset: false,
    }));
    refuse(&mut m, short);
    assert_eq!(m.join_secret(), vec![3; 32]);
}
