use super::super::testing::{connect, connected, create, created, id, machine, machine_with_net1};
use super::super::Refusal;

#[test]
fn network_lookup_by_id_name_and_prefix() {
    let mut m = machine();
    let a = created(
        &mut m,
        create("alpha", 0).id(format!("ab{}", "0".repeat(62))),
    );
    let b = created(
        &mut m,
        create("beta", 0).id(format!("ac{}", "0".repeat(62))),
    );
    // A network whose name looks like the other's id prefix: exact name wins over prefix.
    let c = created(&mut m, create("ab", 0).id(format!("ff{}", "0".repeat(62))));

    assert_eq!(m.network(&a.id), Ok(&a));
    assert_eq!(m.network("beta"), Ok(&b));
    assert_eq!(m.network("ac"), Ok(&b));
    assert_eq!(m.network("f"), Ok(&c));
    assert_eq!(m.network("ab"), Ok(&c));
    assert_eq!(m.network("ab0"), Ok(&a));

    let r = m.network("a").expect_err("ambiguous");
    assert_eq!(
        r,
        Refusal::AmbiguousNetwork {
            prefix: "a".into(),
            count: 2
        }
    );
    assert_eq!(
        r.to_string(),
        "network id prefix a matches 2 networks; give more digits or the name"
    );
    assert_eq!(r.exit_code(), 1);

    for missing in ["", "gamma", "b", "abc"] {
        let r = m.network(missing).expect_err("missing");
        assert_eq!(
            r,
            Refusal::NoSuchNetwork {
                network: missing.into()
            }
        );
    }
    assert_eq!(
        m.network("gamma").expect_err("missing").to_string(),
        "network gamma not found; `vxnet network ls` lists the networks"
    );
    assert_eq!(m.network_by_id(&a.id), Some(&a));
    assert_eq!(m.network_by_id("ab"), None);
}

#[test]
fn networks_are_listed_by_name() {
    let mut m = machine();
    created(&mut m, create("zeta", 1));
    created(&mut m, create("Alpha", 3));
    created(&mut m, create("mid", 2));
    let names: Vec<&str> = m.networks().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "mid", "zeta"]);
    let state = m.to_state();
    let ids: Vec<&str> = state.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, [id(1), id(2), id(3)]);
}

#[test]
fn endpoint_lookups() {
    let mut m = machine_with_net1();
    created(&mut m, create("net2", 2));
    let c1 = connected(&mut m, connect(10, 1, "c1"));
    let c2 = connected(&mut m, connect(11, 1, "c2").host("h2"));
    let c1b = connected(&mut m, connect(12, 2, "c1").ifname("eth1"));

    assert_eq!(m.endpoints(&id(1)), vec![&c1, &c2]);
    assert_eq!(m.endpoints(&id(2)), vec![&c1b]);
    assert!(m.endpoints(&id(9)).is_empty());
    assert_eq!(m.endpoint(&id(11)), Some(&c2));
    assert_eq!(
        m.endpoint_by_target(&id(1), "h1", "/run/netns/c1"),
        Some(&c1)
    );
    assert_eq!(
        m.endpoint_by_target(&id(2), "h1", "/run/netns/c1"),
        Some(&c1b)
    );
    assert_eq!(m.endpoint_by_target(&id(1), "h2", "/run/netns/c1"), None);
    assert_eq!(m.endpoint_by_name(&id(1), "c2"), Some(&c2));
    assert_eq!(m.endpoint_by_name(&id(2), "c2"), None);
    assert_eq!(m.endpoints_on_host("h1"), vec![&c1, &c1b]);
    assert_eq!(m.endpoints_on_host("h2"), vec![&c2]);
}
