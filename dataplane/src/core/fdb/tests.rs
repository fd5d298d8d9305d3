use super::*;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 10, 0, 0, last])
}
fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}
const VTEP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const VTEP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

#[test]
fn learns_refreshes_and_ages_out() {
    let t0 = Instant::now();
    let fdb = Fdb::new(Duration::from_secs(300));
    assert_eq!(fdb.lookup(mac(2), t0), None);
    assert!(fdb.learn(mac(2), VTEP_A, t0));
    assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Remote(VTEP_A)));
    // Refreshed at 200 s, so still alive at 400 s.
    fdb.learn(mac(2), VTEP_A, t0 + Duration::from_secs(200));
    assert_eq!(
        fdb.lookup(mac(2), t0 + Duration::from_secs(400)),
        Some(FdbTarget::Remote(VTEP_A))
    );
    // Expired entries are invisible before the sweep, and gone after it.
    let late = t0 + Duration::from_secs(501);
    assert_eq!(fdb.lookup(mac(2), late), None);
    assert!(fdb.rows(late).is_empty());
    assert_eq!(fdb.expire(late), 1);
    assert_eq!(fdb.expire(late), 0);
}

#[test]
fn a_moved_mac_follows_its_new_vtep() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.learn(mac(2), VTEP_A, t0);
    fdb.learn(mac(2), VTEP_B, t0);
    assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Remote(VTEP_B)));
}

#[test]
fn learning_never_overrides_control_entries() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    let entries = [
        ControlEntry {
            mac: mac(2),
            ipv4: ip(2),
            target: FdbTarget::Local,
        },
        ControlEntry {
            mac: mac(3),
            ipv4: ip(3),
            target: FdbTarget::Remote(VTEP_A),
        },
    ];
    fdb.install(&entries, &VtepSet::default(), t0);
    assert!(!fdb.learn(mac(2), VTEP_B, t0));
    assert!(!fdb.learn(mac(3), VTEP_B, t0));
    assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Local));
    assert_eq!(fdb.lookup(mac(3), t0), Some(FdbTarget::Remote(VTEP_A)));
    // Control entries never age.
    let much_later = t0 + Duration::from_secs(100_000);
    assert_eq!(
        fdb.lookup(mac(3), much_later),
        Some(FdbTarget::Remote(VTEP_A))
    );
    fdb.learn_arp(ip(3), mac(9), t0);
    assert_eq!(fdb.arp_lookup(ip(3), t0), Some(mac(3)));
}

#[test]
fn control_entries_replace_learned_and_removal_is_complete() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.learn(mac(3), VTEP_B, t0);
    fdb.learn(mac(7), VTEP_B, t0);
    fdb.learn_arp(ip(3), mac(3), t0);
    let entries = [ControlEntry {
        mac: mac(3),
        ipv4: ip(3),
        target: FdbTarget::Remote(VTEP_A),
    }];
    fdb.install(&entries, &VtepSet::default(), t0);
    assert_eq!(fdb.lookup(mac(3), t0), Some(FdbTarget::Remote(VTEP_A)));
    // The endpoint leaves: its MAC and IP are gone at once; learned mac(7) stays.
    fdb.install(&[], &VtepSet::default(), t0);
    assert_eq!(fdb.lookup(mac(3), t0), None);
    assert_eq!(fdb.arp_lookup(ip(3), t0), None);
    assert_eq!(fdb.lookup(mac(7), t0), Some(FdbTarget::Remote(VTEP_B)));
}

#[test]
fn arp_learning_ages_and_ignores_junk() {
    let t0 = Instant::now();
    let fdb = Fdb::new(Duration::from_secs(10));
    fdb.learn_arp(ip(5), mac(5), t0);
    fdb.learn_arp(Ipv4Addr::UNSPECIFIED, mac(6), t0);
    fdb.learn_arp(ip(6), MacAddr::BROADCAST, t0);
    assert_eq!(fdb.arp_lookup(ip(5), t0), Some(mac(5)));
    assert_eq!(fdb.arp_lookup(Ipv4Addr::UNSPECIFIED, t0), None);
    assert_eq!(fdb.arp_lookup(ip(6), t0), None);
    assert_eq!(fdb.arp_lookup(ip(5), t0 + Duration::from_secs(11)), None);
    assert_eq!(fdb.expire(t0 + Duration::from_secs(11)), 1);
}

#[test]
fn rows_are_sorted_and_show_kind_and_vtep() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.learn(mac(9), VTEP_B, t0);
    let entries = [ControlEntry {
        mac: mac(2),
        ipv4: ip(2),
        target: FdbTarget::Local,
    }];
    fdb.install(&entries, &VtepSet::default(), t0);
    let rows = fdb.rows(t0 + Duration::from_secs(5));
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].kind, rows[0].vtep), (FdbKind::Local, None));
    assert_eq!(
        (rows[1].kind, rows[1].vtep),
        (FdbKind::Learned, Some(VTEP_B))
    );
    assert_eq!(rows[1].age, Duration::from_secs(5));
}

fn control(mac: MacAddr, ipv4: Ipv4Addr, target: FdbTarget) -> ControlEntry {
    ControlEntry { mac, ipv4, target }
}

#[test]
fn what_was_learned_before_a_removal_stays_forgotten_until_seen_again() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.learn(mac(4), VTEP_B, t0);
    fdb.learn_arp(ip(4), mac(4), t0);
    // The control plane places the endpoint, then removes it.
    let placed = [control(mac(4), ip(4), FdbTarget::Remote(VTEP_A))];
    fdb.install(&placed, &VtepSet::default(), t0);
    fdb.install(&[], &VtepSet::default(), t0);
    assert_eq!(fdb.lookup(mac(4), t0), None);
    assert_eq!(fdb.arp_lookup(ip(4), t0), None);
    assert!(fdb.rows(t0).is_empty());
    // The sweep takes the outdated entries.
    assert_eq!(fdb.expire(t0), 2);
    // Traffic seen after the removal is learned afresh, even within the refresh granularity.
    assert!(fdb.learn(mac(4), VTEP_B, t0));
    assert_eq!(fdb.lookup(mac(4), t0), Some(FdbTarget::Remote(VTEP_B)));
}

#[test]
fn a_refresh_after_the_removal_revives_a_learned_entry() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.learn(mac(5), VTEP_B, t0);
    let placed = [control(mac(5), ip(5), FdbTarget::Remote(VTEP_A))];
    fdb.install(&placed, &VtepSet::default(), t0);
    fdb.install(&[], &VtepSet::default(), t0);
    assert_eq!(fdb.lookup(mac(5), t0), None);
    // Same VTEP, within a second: refreshed anyway, because the table changed since.
    assert!(fdb.learn(mac(5), VTEP_B, t0 + Duration::from_millis(10)));
    assert_eq!(fdb.lookup(mac(5), t0), Some(FdbTarget::Remote(VTEP_B)));
}

#[test]
fn retirements_are_forgotten_once_an_aging_time_has_passed() {
    let t0 = Instant::now();
    let fdb = Fdb::new(Duration::from_secs(10));
    let placed = [control(mac(6), ip(6), FdbTarget::Local)];
    fdb.install(&placed, &VtepSet::default(), t0);
    fdb.install(&[], &VtepSet::default(), t0);
    assert_eq!(fdb.control().retired_macs.len(), 1);
    fdb.install(&[], &VtepSet::default(), t0 + Duration::from_secs(5));
    assert_eq!(fdb.control().retired_macs.len(), 1, "still within aging");
    fdb.install(&[], &VtepSet::default(), t0 + Duration::from_secs(11));
    assert!(fdb.control().retired_macs.is_empty());
    assert!(fdb.control().retired_ips.is_empty());
}

#[test]
fn vtep_lists_swap_with_the_entries_and_floods_are_trusted() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    assert!(fdb.control().flood().is_empty());
    assert!(!fdb.control().trusts(VTEP_A));
    let vteps = VtepSet {
        flood: vec![VTEP_B],
        trusted: vec![VTEP_A],
        peers: Vec::new(),
    };
    fdb.install(&[], &vteps, t0);
    let table = fdb.control();
    assert_eq!(&table.flood()[..], [VTEP_B]);
    assert!(table.trusts(VTEP_A) && table.trusts(VTEP_B));
    assert!(!table.trusts(Ipv4Addr::new(198, 18, 0, 13)));
    assert_eq!(fdb.vteps().trusted, vec![VTEP_A, VTEP_B]);
}

#[test]
fn a_reader_keeps_the_table_it_loaded_while_a_new_one_is_installed() {
    let t0 = Instant::now();
    let fdb = Fdb::new(DEFAULT_AGING);
    fdb.install(
        &[control(mac(7), ip(7), FdbTarget::Local)],
        &VtepSet::symmetric(vec![VTEP_A]),
        t0,
    );
    let before = fdb.control();
    fdb.install(&[], &VtepSet::default(), t0);
    assert!(before.macs.contains_key(&mac(7)) && before.trusts(VTEP_A));
    assert_eq!(fdb.lookup(mac(7), t0), None);
    assert!(!fdb.control().trusts(VTEP_A));
}
