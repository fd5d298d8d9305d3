use hickory_proto::op::Query;

use super::*;

fn names() -> Names {
    let web = vec!["web".to_string(), "www".to_string()];
    let db = vec!["DB".to_string()];
    Names::new(
        "shop",
        [
            (web.as_slice(), Ipv4Addr::new(10, 0, 0, 2)),
            (db.as_slice(), Ipv4Addr::new(10, 0, 0, 3)),
        ],
    )
}

fn query(name: &str, ty: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), ty));
    m.to_vec().expect("encode")
}

fn answer(name: &str, ty: RecordType) -> Message {
    match decide(&query(name, ty), &names()) {
        Decision::Answer(bytes) => Message::from_vec(&bytes).expect("decode"),
        other => panic!("{name} {ty}: {other:?}"),
    }
}

#[test]
fn names_and_aliases_answer_with_their_address_in_any_case_and_under_the_network() {
    for name in ["web.", "WWW.", "web.shop.", "db.", "Db.Shop."] {
        let m = answer(name, RecordType::A);
        assert_eq!(m.id(), 4242);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        let ips: Vec<_> = m.answers().iter().filter_map(|r| r.data().as_a()).collect();
        let want = if name.to_lowercase().starts_with("db") {
            [10, 0, 0, 3]
        } else {
            [10, 0, 0, 2]
        };
        assert_eq!(ips, [&A(Ipv4Addr::from(want))], "{name}");
    }
}

#[test]
fn other_types_of_a_known_name_get_no_records_and_are_not_forwarded() {
    let m = answer("web.", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
}

#[test]
fn ptr_names_the_endpoint() {
    let m = answer("2.0.0.10.in-addr.arpa.", RecordType::PTR);
    let ptr: Vec<_> = m
        .answers()
        .iter()
        .filter_map(|r| r.data().as_ptr())
        .collect();
    assert_eq!(ptr.len(), 1);
    assert_eq!(ptr[0].0.to_ascii(), "web.");
}

#[test]
fn unknown_names_and_addresses_are_forwarded_and_junk_is_dropped() {
    let t = names();
    assert_eq!(
        decide(&query("example.org.", RecordType::A), &t),
        Decision::Forward
    );
    assert_eq!(
        decide(&query("web.other.", RecordType::A), &t),
        Decision::Forward
    );
    assert_eq!(
        decide(&query("9.0.0.10.in-addr.arpa.", RecordType::PTR), &t),
        Decision::Forward
    );
    assert_eq!(decide(b"\x00\x01junk", &t), Decision::Drop);
    assert_eq!(decide(&[], &t), Decision::Drop);
    // A response is not a query.
    let Decision::Answer(response) = decide(&query("web.", RecordType::A), &t) else {
        panic!("web. is ours");
    };
    assert_eq!(decide(&response, &t), Decision::Drop);
}

#[test]
fn upstreams_come_from_nameserver_lines() {
    let conf = "# generated\nsearch lab\nnameserver 192.0.2.53\nnameserver  2001:db8::53\nnameserver bogus\n";
    assert_eq!(
        Upstreams::from_resolv_conf(conf).0,
        [
            "192.0.2.53:53".parse().expect("addr"),
            "[2001:db8::53]:53".parse().expect("addr")
        ]
    );
}
