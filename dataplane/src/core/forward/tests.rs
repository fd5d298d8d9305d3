//! Every decision and drop reason of the forwarding core, without devices.

use super::*;
use crate::wire::testing::{arp, ethernet};
use crate::wire::{MacAddr, VxlanHeader};

const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
const VNI: u32 = 4100;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 0, last)
}
fn mac(last: u8) -> MacAddr {
    MacAddr::for_ipv4(ip(last))
}

/// ip(2) lives here; ip(3) was placed on PEER by the control plane.
fn control_entries() -> [ControlEntry; 2] {
    [
        ControlEntry {
            mac: mac(2),
            ipv4: ip(2),
            target: FdbTarget::Local,
        },
        ControlEntry {
            mac: mac(3),
            ipv4: ip(3),
            target: FdbTarget::Remote(PEER),
        },
    ]
}

/// The network with [`control_entries`], flooding to and trusting PEER; no device.
fn plane() -> Arc<Port<()>> {
    plane_of(false)
}

fn plane_of(encrypted: bool) -> Arc<Port<()>> {
    let config = NetworkConfig {
        vni: Vni::new(VNI).expect("24-bit"),
        mtu: 1450,
        gateway: GATEWAY,
        aging: Duration::from_secs(300),
        encrypted,
    };
    let port = Port {
        plane: NetworkPlane::new(config, 0),
        device: (),
    };
    set_vteps(&port, &VtepSet::symmetric(vec![PEER]));
    Arc::new(port)
}

/// Programs other VTEP lists, with the same entries.
fn set_vteps(port: &Port<()>, vteps: &VtepSet) {
    port.plane
        .install(&control_entries(), vteps, Instant::now());
}

/// The core's decision for one TAP read of `frame`, going out as `frames` segments.
fn decide(p: &Port<()>, frame: &[u8], frames: usize, now: Instant, reply: &mut [u8]) -> TapAction {
    p.plane
        .handle_tap_frame(&FrameHeaders::parse(frame), frame.len(), frames, now, reply)
}

fn ipv4_frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    ethernet(dst, src, 0x0800, &vec![0x45; len])
}

fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
    let mut d = VxlanHeader {
        vni: Vni::new(vni).expect("24-bit"),
    }
    .to_bytes()
    .to_vec();
    d.extend_from_slice(frame);
    d
}

fn dataplane() -> (Dataplane<()>, Arc<Port<()>>) {
    let dp = Dataplane::new();
    let p = plane();
    dp.insert(Arc::clone(&p));
    (dp, p)
}

fn deliver(
    dp: &Dataplane<()>,
    src: Ipv4Addr,
    datagram: &[u8],
    now: Instant,
) -> Result<Vec<u8>, DropReason> {
    match dp.handle_datagram(src, &mut datagram.to_vec(), now) {
        WireAction::Deliver { port, frame } => {
            assert_eq!(port.plane.config().vni.get(), VNI);
            Ok(frame.to_vec())
        }
        WireAction::Drop(r) => Err(r),
    }
}

// ---- TAP -> wire

#[test]
fn known_remote_unicast_goes_to_its_vtep() {
    let p = plane();
    let f = ipv4_frame(mac(3), mac(2), 100);
    assert_eq!(
        decide(&p, &f, 1, Instant::now(), &mut [0; 64]),
        TapAction::Unicast(PEER)
    );
}

#[test]
fn local_unicast_stays_local() {
    let p = plane();
    let f = ipv4_frame(mac(2), mac(9), 100);
    assert_eq!(
        decide(&p, &f, 1, Instant::now(), &mut [0; 64]),
        TapAction::Local
    );
}

#[test]
fn broadcast_multicast_and_unknown_unicast_flood() {
    let p = plane();
    let now = Instant::now();
    let flood = TapAction::Flood(vec![PEER].into());
    for dst in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        mac(77),
    ] {
        let f = ipv4_frame(dst, mac(2), 60);
        assert_eq!(decide(&p, &f, 1, now, &mut [0; 64]), flood, "dst {dst}");
    }
}

#[test]
fn flood_without_vteps_is_a_counted_drop() {
    let p = plane();
    set_vteps(&p, &VtepSet::default());
    let f = ipv4_frame(MacAddr::BROADCAST, mac(2), 60);
    assert_eq!(
        decide(&p, &f, 1, Instant::now(), &mut [0; 64]),
        TapAction::Drop(DropReason::NoVtep)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::NoVtep), 1);
    // A superframe's segments share the decision, and each counts.
    decide(&p, &f, 40, Instant::now(), &mut [0; 64]);
    assert_eq!(p.plane.counters.drops.get(DropReason::NoVtep), 41);
}

#[test]
fn nothing_the_local_gateway_sends_leaves_the_host() {
    let p = plane();
    let now = Instant::now();
    let gateway = MacAddr::for_ipv4(GATEWAY);
    // br0's IGMP report to 224.0.0.22, and an ARP request of its own.
    let igmp = ipv4_frame(MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x16]), gateway, 40);
    let arp_req = arp(1, (gateway, GATEWAY), ip(3));
    for frame in [igmp, arp_req] {
        assert_eq!(decide(&p, &frame, 1, now, &mut [0; 64]), TapAction::Local);
    }
    assert_eq!(p.plane.counters.drops.total(), 0);
}

#[test]
fn arp_for_a_remote_endpoint_is_answered_locally() {
    let p = plane();
    let req = arp(1, (mac(2), ip(2)), ip(3));
    let mut reply = [0u8; 64];
    let TapAction::Reply(len) = decide(&p, &req, 1, Instant::now(), &mut reply) else {
        panic!("expected an ARP reply");
    };
    let eth = EthernetFrame::new_checked(&reply[..len]).expect("frame");
    assert_eq!((eth.dst(), eth.src()), (mac(2), mac(3)));
    let a = ArpPacket::new_checked(eth.payload()).expect("arp");
    assert_eq!(a.operation(), ArpOperation::Reply);
    assert_eq!((a.sender_mac(), a.sender_ip()), (mac(3), ip(3)));
    assert_eq!((a.target_mac(), a.target_ip()), (mac(2), ip(2)));
}

#[test]
fn arp_for_local_endpoints_and_the_gateway_never_leaves() {
    let p = plane();
    let now = Instant::now();
    for target in [ip(2), GATEWAY] {
        let req = arp(1, (mac(9), ip(9)), target);
        assert_eq!(decide(&p, &req, 1, now, &mut [0; 64]), TapAction::Local);
    }
}

#[test]
fn arp_for_an_unknown_address_floods_once_then_is_answered_from_what_was_learned() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    let req = arp(1, (mac(2), ip(2)), ip(40));
    assert!(matches!(
        decide(&p, &req, 1, now, &mut [0; 64]),
        TapAction::Flood(_)
    ));
    // The owner of 10.10.0.40, behind PEER, answers across the wire.
    let answer = arp(2, (mac(40), ip(40)), ip(2));
    let answer = ethernet(mac(2), mac(40), 0x0806, &answer[14..]);
    assert!(deliver(&dp, PEER, &vxlan(VNI, &answer), now).is_ok());
    let mut reply = [0u8; 64];
    assert!(matches!(
        decide(&p, &req, 1, now, &mut reply),
        TapAction::Reply(42)
    ));
    // Learned knowledge ages out; then the request floods again.
    let later = now + Duration::from_secs(301);
    assert!(matches!(
        decide(&p, &req, 1, later, &mut reply),
        TapAction::Flood(_)
    ));
}

#[test]
fn arp_replies_and_malformed_arp_are_forwarded_not_answered() {
    let p = plane();
    let now = Instant::now();
    let reply_frame = ethernet(
        mac(3),
        mac(2),
        0x0806,
        &arp(2, (mac(2), ip(2)), ip(3))[14..],
    );
    assert_eq!(
        decide(&p, &reply_frame, 1, now, &mut [0; 64]),
        TapAction::Unicast(PEER)
    );
    let short = ethernet(MacAddr::BROADCAST, mac(2), 0x0806, &[0, 1, 8]);
    assert!(matches!(
        decide(&p, &short, 1, now, &mut [0; 64]),
        TapAction::Flood(_)
    ));
}

#[test]
fn runts_and_giants_from_the_tap_are_dropped_and_counted() {
    let p = plane();
    let now = Instant::now();
    assert_eq!(
        decide(&p, &[0; 13], 1, now, &mut [0; 64]),
        TapAction::Drop(DropReason::Truncated)
    );
    let giant = ipv4_frame(mac(3), mac(2), 1450 + 5);
    assert_eq!(
        decide(&p, &giant, 1, now, &mut [0; 64]),
        TapAction::Drop(DropReason::Oversize)
    );
    let max = ipv4_frame(mac(3), mac(2), 1450 + 4);
    assert_eq!(
        decide(&p, &max, 1, now, &mut [0; 64]),
        TapAction::Unicast(PEER)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::Truncated), 1);
    assert_eq!(p.plane.counters.drops.get(DropReason::Oversize), 1);
}

#[test]
fn a_superframe_is_judged_by_the_size_of_its_segments() {
    let p = plane();
    let superframe = ipv4_frame(mac(3), mac(2), 60_000);
    let headers = FrameHeaders::parse(&superframe);
    let now = Instant::now();
    // Split into 42 segments of at most 1464 bytes: each fits the MTU.
    assert_eq!(
        p.plane
            .handle_tap_frame(&headers, 1464, 42, now, &mut [0; 64]),
        TapAction::Unicast(PEER)
    );
    // A segment one byte too large: every one of them is dropped and counted.
    assert_eq!(
        p.plane
            .handle_tap_frame(&headers, 1450 + 14 + 4 + 1, 42, now, &mut [0; 64]),
        TapAction::Drop(DropReason::Oversize)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::Oversize), 42);
}

// ---- wire -> TAP

#[test]
fn valid_datagram_is_delivered_and_its_source_learned() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    let f = ipv4_frame(mac(2), mac(50), 100);
    assert_eq!(deliver(&dp, PEER, &vxlan(VNI, &f), now), Ok(f));
    assert_eq!(
        p.plane.fdb.lookup(mac(50), now),
        Some(FdbTarget::Remote(PEER))
    );
    // And the reverse direction now goes unicast.
    let back = ipv4_frame(mac(50), mac(2), 100);
    assert_eq!(
        decide(&p, &back, 1, now, &mut [0; 64]),
        TapAction::Unicast(PEER)
    );
    assert_eq!(dp.drops.total(), 0);
}

#[test]
fn malformed_datagrams_are_counted_at_the_top_level() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    let f = ipv4_frame(mac(2), mac(50), 100);
    let mut bad_flags = vxlan(VNI, &f);
    bad_flags[0] = 0x0c;
    let mut reserved = vxlan(VNI, &f);
    reserved[7] = 0xff;
    let cases: [(&[u8], Ipv4Addr, DropReason); 5] = [
        (&[0x08, 0, 0], PEER, DropReason::Truncated),
        (&bad_flags, PEER, DropReason::BadFlags),
        (&reserved, PEER, DropReason::ReservedBits),
        (&vxlan(VNI + 1, &f), PEER, DropReason::UnknownVni),
        (&vxlan(VNI, &f), STRANGER, DropReason::UnknownVtep),
    ];
    for (datagram, src, reason) in cases {
        assert_eq!(deliver(&dp, src, datagram, now), Err(reason));
        assert_eq!(dp.drops.get(reason), 1, "{reason:?}");
    }
    assert_eq!(p.plane.counters.drops.total(), 0);
    // Nothing was learned from any of them.
    assert_eq!(p.plane.fdb.lookup(mac(50), now), None);
}

#[test]
fn bad_inner_frames_are_counted_on_their_network() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    assert_eq!(
        deliver(&dp, PEER, &vxlan(VNI, &[0; 10]), now),
        Err(DropReason::Truncated)
    );
    let giant = ipv4_frame(mac(2), mac(50), 1450 + 5);
    assert_eq!(
        deliver(&dp, PEER, &vxlan(VNI, &giant), now),
        Err(DropReason::Oversize)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::Truncated), 1);
    assert_eq!(p.plane.counters.drops.get(DropReason::Oversize), 1);
    assert_eq!(dp.drops.total(), 0);
}

#[test]
fn a_remote_sender_claiming_a_local_mac_is_refused() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    let spoof = ipv4_frame(MacAddr::BROADCAST, mac(2), 60);
    assert_eq!(
        deliver(&dp, PEER, &vxlan(VNI, &spoof), now),
        Err(DropReason::MacConflict)
    );
    assert_eq!(p.plane.fdb.lookup(mac(2), now), Some(FdbTarget::Local));
    // A remote control entry sending from its own MAC is fine and stays a control entry.
    let ok = ipv4_frame(MacAddr::BROADCAST, mac(3), 60);
    assert!(deliver(&dp, PEER, &vxlan(VNI, &ok), now).is_ok());
    assert_eq!(
        p.plane.fdb.lookup(mac(3), now),
        Some(FdbTarget::Remote(PEER))
    );
}

#[test]
fn multicast_source_is_delivered_but_not_learned() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    let f = ipv4_frame(mac(2), MacAddr::BROADCAST, 60);
    assert!(deliver(&dp, PEER, &vxlan(VNI, &f), now).is_ok());
    assert!(p
        .plane
        .fdb
        .rows(now)
        .iter()
        .all(|r| r.mac != MacAddr::BROADCAST));
}

#[test]
fn removing_a_network_makes_its_vni_unknown() {
    let (dp, _p) = dataplane();
    let f = ipv4_frame(mac(2), mac(50), 60);
    assert!(dp.remove(Vni::new(VNI).expect("24-bit")).is_some());
    assert_eq!(
        deliver(&dp, PEER, &vxlan(VNI, &f), Instant::now()),
        Err(DropReason::UnknownVni)
    );
}

#[test]
fn trusted_but_not_flooded_vteps_are_accepted() {
    let (dp, p) = dataplane();
    set_vteps(
        &p,
        &VtepSet {
            flood: vec![PEER],
            trusted: vec![STRANGER],
            peers: Vec::new(),
        },
    );
    let f = ipv4_frame(mac(2), mac(50), 60);
    assert!(deliver(&dp, STRANGER, &vxlan(VNI, &f), Instant::now()).is_ok());
    assert!(deliver(&dp, PEER, &vxlan(VNI, &f), Instant::now()).is_ok());
    assert_eq!(p.plane.fdb.vteps().trusted, vec![PEER, STRANGER]);
}

// ---- who may send what

/// PEER is a cluster host here (floods and trust, no static peer); STRANGER another host.
fn cluster_only(p: &Port<()>) {
    set_vteps(
        p,
        &VtepSet {
            flood: vec![PEER, STRANGER],
            trusted: vec![PEER, STRANGER],
            peers: Vec::new(),
        },
    );
}

#[test]
fn unknown_unicast_is_never_flooded_to_cluster_hosts() {
    let p = plane();
    cluster_only(&p);
    let now = Instant::now();
    let f = ipv4_frame(mac(77), mac(2), 60);
    assert_eq!(
        decide(&p, &f, 3, now, &mut [0; 64]),
        TapAction::Drop(DropReason::UnknownUnicast)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::UnknownUnicast), 3);
    // Broadcast still reaches every host.
    let b = ipv4_frame(MacAddr::BROADCAST, mac(2), 60);
    assert_eq!(
        decide(&p, &b, 1, now, &mut [0; 64]),
        TapAction::Flood(vec![PEER, STRANGER].into())
    );
}

#[test]
fn unknown_unicast_goes_to_static_peers_only() {
    let p = plane();
    set_vteps(
        &p,
        &VtepSet {
            flood: vec![PEER, STRANGER],
            trusted: vec![PEER, STRANGER],
            peers: vec![STRANGER],
        },
    );
    let f = ipv4_frame(mac(77), mac(2), 60);
    assert_eq!(
        decide(&p, &f, 1, Instant::now(), &mut [0; 64]),
        TapAction::Flood(vec![STRANGER].into())
    );
}

#[test]
fn a_placed_mac_from_another_vtep_is_refused() {
    let (dp, p) = dataplane();
    cluster_only(&p);
    let now = Instant::now();
    // mac(3) was placed behind PEER; STRANGER is trusted but is not its host.
    let spoof = ipv4_frame(mac(2), mac(3), 60);
    assert_eq!(
        deliver(&dp, STRANGER, &vxlan(VNI, &spoof), now),
        Err(DropReason::WrongSourceVtep)
    );
    assert_eq!(p.plane.counters.drops.get(DropReason::WrongSourceVtep), 1);
    assert_eq!(
        p.plane.fdb.lookup(mac(3), now),
        Some(FdbTarget::Remote(PEER))
    );
    assert!(deliver(&dp, PEER, &vxlan(VNI, &spoof), now).is_ok());
}

#[test]
fn an_arp_claiming_a_placed_address_with_another_mac_is_refused() {
    let (dp, p) = dataplane();
    let now = Instant::now();
    // An unplaced MAC behind PEER (a static peer's host) says it is ip(3).
    for op in [1, 2] {
        let spoof = arp(op, (mac(50), ip(3)), ip(2));
        assert_eq!(
            deliver(&dp, PEER, &vxlan(VNI, &spoof), now),
            Err(DropReason::SpoofedArp),
            "op {op}"
        );
    }
    assert_eq!(p.plane.counters.drops.get(DropReason::SpoofedArp), 2);
    assert_eq!(p.plane.fdb.arp_lookup(ip(3), now), Some(mac(3)));
    // The owner announcing itself, and an unplaced address, pass.
    assert!(deliver(&dp, PEER, &vxlan(VNI, &arp(2, (mac(3), ip(3)), ip(2))), now).is_ok());
    assert!(deliver(
        &dp,
        PEER,
        &vxlan(VNI, &arp(1, (mac(50), ip(50)), ip(2))),
        now
    )
    .is_ok());
    assert_eq!(p.plane.fdb.arp_lookup(ip(50), now), Some(mac(50)));
}

// ---- encrypted networks

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

fn network_key() -> [NetworkKey; 1] {
    [NetworkKey {
        epoch: 0,
        secret: [5; 32],
    }]
}

/// An encrypted network on this host (LOCAL) and PEER's seal for it.
fn encrypted() -> (Dataplane<()>, Arc<Port<()>>, Seal) {
    let dp = Dataplane::new();
    let p = plane_of(true);
    p.plane
        .install_keys(LOCAL, &network_key(), &Salts::default(), Instant::now());
    dp.insert(Arc::clone(&p));
    let peer = Seal::new(Vni::new(VNI).expect("24-bit"), 0);
    peer.install(PEER, &network_key(), &Salts::default(), Instant::now());
    (dp, p, peer)
}

/// `frame` sealed by `seal` for LOCAL.
fn sealed(seal: &Seal, frame: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; crate::wire::SEALED_HEADER_LEN];
    d.extend_from_slice(frame);
    d.extend_from_slice(&[0; crate::wire::SEAL_TAG_LEN]);
    seal.sealer(LOCAL, Instant::now())
        .and_then(|s| s.seal(&mut d))
        .expect("sealed");
    d
}

#[test]
fn encrypted_network_opens_sealed_datagrams_once() {
    let (dp, p, peer) = encrypted();
    let frame = ipv4_frame(mac(2), mac(3), 60);
    let d = sealed(&peer, &frame);
    assert_eq!(deliver(&dp, PEER, &d, Instant::now()), Ok(frame));
    assert_eq!(
        deliver(&dp, PEER, &d, Instant::now()),
        Err(DropReason::SealedReplay)
    );
    let mut tampered = sealed(&peer, &ipv4_frame(mac(2), mac(3), 60));
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        deliver(&dp, PEER, &tampered, Instant::now()),
        Err(DropReason::SealedBadTag)
    );
    let c = &p.plane.counters.drops;
    assert_eq!(
        (
            c.get(DropReason::SealedReplay),
            c.get(DropReason::SealedBadTag)
        ),
        (1, 1)
    );
}

#[test]
fn plaintext_and_sealed_never_cross() {
    let (dp, p, peer) = encrypted();
    let frame = ipv4_frame(mac(2), mac(3), 60);
    assert_eq!(
        deliver(&dp, PEER, &vxlan(VNI, &frame), Instant::now()),
        Err(DropReason::PlaintextOnEncrypted)
    );
    assert_eq!(
        p.plane.counters.drops.get(DropReason::PlaintextOnEncrypted),
        1
    );
    // The same sealed datagram, to a plain network of that VNI.
    let (plain, plain_port) = dataplane();
    assert_eq!(
        deliver(&plain, PEER, &sealed(&peer, &frame), Instant::now()),
        Err(DropReason::SealedOnPlain)
    );
    assert_eq!(
        plain_port
            .plane
            .counters
            .drops
            .get(DropReason::SealedOnPlain),
        1
    );
    // A sender outside the network is refused before any key is derived for it.
    assert_eq!(
        deliver(&dp, STRANGER, &sealed(&peer, &frame), Instant::now()),
        Err(DropReason::UnknownVtep)
    );
}

#[test]
fn encrypted_network_without_keys_accepts_nothing() {
    let dp = Dataplane::new();
    let p = plane_of(true);
    dp.insert(Arc::clone(&p));
    let (_, _, peer) = encrypted();
    let d = sealed(&peer, &ipv4_frame(mac(2), mac(3), 60));
    assert_eq!(
        deliver(&dp, PEER, &d, Instant::now()),
        Err(DropReason::SealedNoKey)
    );
    assert!(p
        .plane
        .seal()
        .is_some_and(|s| s.sealer(PEER, Instant::now()).is_err()));
}
