use super::*;

const STATS: &str = r#"{"networks":[
    {"Name":"net1","VNI":4100,"RxFrames":10,"RxBytes":1000,"TxFrames":9,"TxBytes":900,
     "Drops":{"oversize":2,"unknown_vni":1}},
    {"Name":"net2","VNI":4200,"RxFrames":0,"RxBytes":0,"TxFrames":0,"TxBytes":0,"Drops":{}}],
  "Drops":{"truncated":3,"bad_flags":4,"unknown_vni":5,"unknown_vtep":6}}"#;

#[test]
fn drops_sum_top_level_and_networks() {
    let d = drop_counts(STATS).expect("valid stats");
    assert_eq!(d["unknown_vni"], 6);
    assert_eq!(d["oversize"], 2);
    assert_eq!(sum_all(&d), 21);
    assert_eq!(sum_matching(&d, &["TRUNC"]), 3);
    assert_eq!(sum_matching(&d, &["vtep", "source"]), 6);
    assert_eq!(sum_matching(&d, &["nothing"]), 0);
}

#[test]
fn network_fields_by_name() {
    assert_eq!(
        network_stat(STATS, "net1", "RxFrames").expect("present"),
        10
    );
    assert!(network_stat(STATS, "net3", "RxFrames").is_err());
}

#[test]
fn missing_drops_is_an_error() {
    assert!(drop_counts(r#"{"networks":[]}"#).is_err());
}

#[test]
fn names_from_ls() {
    let ls = r#"[{"Name":"b","Id":"x"},{"Name":"a","Id":"y"}]"#;
    assert_eq!(network_names(ls).expect("valid"), vec!["a", "b"]);
    assert!(network_names("{}").is_err());
}

const MEMBERS: &str = r#"[
  {"ID":"a1b2","Name":"h0","Addr":"198.18.0.10:7946","Role":"voter","Leader":true,"Reachable":true},
  {"ID":7,"Name":"h1","Addr":"198.18.0.11","Role":"learner","Leader":false,"Reachable":false}]"#;

#[test]
fn members_parse_with_both_addr_forms_and_id_types() {
    let m = parse_members(MEMBERS).expect("valid members");
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].id, "a1b2");
    assert_eq!(m[1].id, "7");
    assert_eq!(m[0].ip().expect("ip"), Ipv4Addr::new(198, 18, 0, 10));
    assert_eq!(m[1].ip().expect("ip"), Ipv4Addr::new(198, 18, 0, 11));
    assert_eq!((m[0].role, m[1].role), (Role::Voter, Role::Learner));
    assert!(!m[1].reachable);
    assert_eq!(
        leader_of(&m).expect("one leader").map(|l| l.name.as_str()),
        Some("h0")
    );
}

#[test]
fn members_contract_breaks_are_errors() {
    // Unknown role, missing key, non-boolean Leader.
    assert!(parse_members(
        r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"boss","Leader":true,"Reachable":true}]"#
    )
    .is_err());
    assert!(parse_members(r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"voter"}]"#).is_err());
    assert!(parse_members(
        r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"voter","Leader":"yes","Reachable":true}]"#
    )
    .is_err());
    assert!(parse_members("{}").is_err());
    let bad_addr = parse_members(
        r#"[{"ID":"1","Name":"h0","Addr":"nowhere","Role":"voter","Leader":false,"Reachable":true}]"#,
    )
    .expect("parses");
    assert!(bad_addr[0].ip().is_err());
}

#[test]
fn two_leaders_is_an_error() {
    let two = MEMBERS.replace("\"Leader\":false", "\"Leader\":true");
    let m = parse_members(&two).expect("parses");
    assert!(leader_of(&m).is_err());
    let none = MEMBERS.replace("\"Leader\":true", "\"Leader\":false");
    let m = parse_members(&none).expect("parses");
    assert_eq!(leader_of(&m).expect("no error"), None);
}

#[test]
fn fdb_parses_local_and_remote_entries() {
    let f = parse_fdb(
        r#"[{"MAC":"02:42:0A:0A:00:02","VTEP":null,"Kind":"local","AgeSeconds":0},
            {"MAC":"02:42:0a:0a:00:03","VTEP":"198.18.0.11","Kind":"control","AgeSeconds":12}]"#,
    )
    .expect("valid fdb");
    assert_eq!(
        f[0].mac, "02:42:0a:0a:00:02",
        "MACs are normalised to lower case"
    );
    assert_eq!(f[0].vtep, None);
    assert_eq!(f[1].vtep, Some(Ipv4Addr::new(198, 18, 0, 11)));
    assert_eq!(f[1].kind, "control");
    assert_eq!(f[1].age_seconds, 12);
    assert!(parse_fdb(r#"[{"MAC":"x","Kind":"local","AgeSeconds":0}]"#).is_err());
    assert!(parse_fdb(r#"[{"MAC":"x","VTEP":"nope","Kind":"l","AgeSeconds":0}]"#).is_err());
}

#[test]
fn inspect_parses_endpoints() {
    let text = r#"[{"Name":"net1","Id":"ab12","Driver":"overlay","VNI":256,"MTU":1450,
        "IPAM":{"Config":[{"Subnet":"10.128.0.0/24","Gateway":"10.128.0.1","IPRange":""}]},
        "Peers":[],"Labels":{},
        "Containers":{
          "e2":{"Name":"vl1x0-c2","EndpointID":"e2","MacAddress":"02:42:0A:80:00:03",
                "IPv4Address":"10.128.0.3/24","Host":"h1","Aliases":[]},
          "e1":{"Name":"vl1x0-c1","EndpointID":"e1","MacAddress":"02:42:0a:80:00:02",
                "IPv4Address":"10.128.0.2/24","Host":"h0","Aliases":[]}}}]"#;
    let nets = parse_inspect(text).expect("valid inspect");
    assert_eq!(nets.len(), 1);
    let n = &nets[0];
    assert_eq!(
        (n.name.as_str(), n.id.as_str(), n.vni),
        ("net1", "ab12", 256)
    );
    assert_eq!(n.subnet, "10.128.0.0/24");
    assert_eq!(n.gateway, Some(Ipv4Addr::new(10, 128, 0, 1)));
    assert_eq!(n.endpoints.len(), 2);
    assert_eq!(n.endpoints[0].name, "vl1x0-c1", "sorted by name");
    let c2 = n.endpoint("vl1x0-c2").expect("c2 listed");
    assert_eq!(c2.ipv4, Ipv4Addr::new(10, 128, 0, 3));
    assert_eq!(c2.prefix_len, 24);
    assert_eq!(c2.mac, "02:42:0a:80:00:03");
    assert_eq!(c2.host, "h1");
    assert!(n.endpoint("vl1x0-c3").is_none());
    let empty = text.replace("\"Containers\":{", "\"Containers\":null,\"X\":{");
    assert!(parse_inspect(&empty)
        .expect("null containers")
        .remove(0)
        .endpoints
        .is_empty());
    assert!(parse_inspect(r#"[{"Name":"n"}]"#).is_err());
}
