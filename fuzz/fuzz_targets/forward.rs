//! The sans-IO forwarding core on a sequence of arbitrary TAP frames and datagrams.
//!
//! The setup is fixed: three networks (VNI 4100, 4200 and 4300, the last one encrypted;
//! gateway 10.10.0.1), each with one local endpoint (10.10.0.2) and one placed by the control
//! plane on the peer VTEP (10.10.0.3 on 198.18.0.12), trusting and flooding to that peer. The
//! input is a sequence of events: a frame read from a network's TAP (as one frame or a
//! superframe of several segments), a datagram from the peer or from a stranger, a frame the
//! peer seals for the encrypted network (sent as is, with a byte changed, or twice), and the
//! clock moving on (so that learned entries age out).
//!
//! Checks:
//! - `handle_tap_frame` and `handle_datagram` never panic;
//! - every drop is counted, once per frame it stands for: a TAP drop of `frames` segments adds
//!   `frames` to its network's drop counters, a datagram drop adds one, to its network's
//!   counters if its VNI is known and to the dataplane's otherwise; nothing else moves a
//!   drop counter;
//! - a delivered datagram is the inner frame of that datagram, for the network of its VNI,
//!   from a trusted VTEP; on the encrypted network only a frame the peer sealed is ever
//!   delivered, unchanged and once;
//! - an ARP answer fits the reply buffer and parses as a reply;
//! - a unicast goes to a VTEP of the network, a flood to its flood list.

#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vxnet_dataplane::core::fdb::{ControlEntry, FdbTarget, VtepSet};
use vxnet_dataplane::core::forward::{
    Dataplane, NetworkConfig, NetworkPlane, Port, TapAction, WireAction,
};
use vxnet_dataplane::core::seal::{NetworkKey, Salts, Seal};
use vxnet_dataplane::wire::{
    is_sealed, ArpOperation, ArpPacket, EthernetFrame, FrameHeaders, MacAddr, SealedPacket, Vni,
    VxlanPacket, SEALED_HEADER_LEN, SEAL_TAG_LEN,
};
use vxnet_fuzz::Choices;

const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
const VNIS: [u32; 3] = [4100, 4200, 4300];
/// The index in [`VNIS`] of the encrypted network.
const ENCRYPTED: usize = 2;
/// This host's VTEP address (the encrypted network's keys are derived with it).
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

fn network_keys() -> [NetworkKey; 1] {
    [NetworkKey {
        epoch: 0,
        secret: [0x5e; 32],
    }]
}

/// The two hosts' seal salts, as both have them from the replicated state.
fn salts() -> Salts {
    Salts(vec![(LOCAL, 0x1111), (PEER, 0x2222)])
}

/// One clock for the whole run, so that every input starts at the same `now` (the core
/// only compares instants; their origin does not matter).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn dataplane(now: Instant) -> Dataplane<()> {
    let dp = Dataplane::new();
    for vni in VNIS {
        let config = NetworkConfig {
            vni: Vni::new(vni).expect("24-bit"),
            mtu: 1450,
            gateway: GATEWAY,
            aging: Duration::from_secs(300),
            encrypted: vni == VNIS[ENCRYPTED],
        };
        let plane = NetworkPlane::new(config, 0);
        plane.install_keys(LOCAL, &network_keys(), &salts(), now);
        let entry = |last: u8, target| {
            let ipv4 = Ipv4Addr::new(10, 10, 0, last);
            ControlEntry {
                mac: MacAddr::for_ipv4(ipv4),
                ipv4,
                target,
            }
        };
        plane.install(
            &[
                entry(2, FdbTarget::Local),
                entry(3, FdbTarget::Remote(PEER)),
            ],
            &VtepSet::symmetric(vec![PEER]),
            now,
        );
        dp.insert(Arc::new(Port { plane, device: () }));
    }
    dp
}

/// Every drop counted anywhere: the dataplane's, then each network's in VNI order.
fn drops(dp: &Dataplane<()>) -> (u64, Vec<u64>) {
    let nets = VNIS
        .iter()
        .map(|&vni| {
            let port = dp.get(Vni::new(vni).expect("24-bit")).expect("inserted");
            port.plane.counters.drops.total()
        })
        .collect();
    (dp.drops.total(), nets)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Choices::new(data);
    let mut now = epoch();
    let dp = dataplane(now);
    let peer = Seal::new(Vni::new(VNIS[ENCRYPTED]).expect("24-bit"), 0);
    peer.install(PEER, &network_keys(), &salts(), now);
    while !input.is_empty() {
        let before = drops(&dp);
        match input.u8() % 5 {
            0 => {
                let net = usize::from(input.u8() % 3);
                let frames = usize::from(input.u8() % 4) + 1;
                let frame = input.bytes(2048);
                let wire_len = frame.len() / frames + 1;
                tap_frame(&dp, net, frame, wire_len, frames, now, before);
            }
            1 | 2 => {
                let src = if input.u8() % 4 == 0 { STRANGER } else { PEER };
                let datagram = input.bytes(2048);
                datagram_in(&dp, src, datagram, now, before, None);
            }
            3 => {
                let frame = input.bytes(2048);
                let mut sealed = vec![0u8; SEALED_HEADER_LEN];
                sealed.extend_from_slice(frame);
                sealed.extend_from_slice(&[0; SEAL_TAG_LEN]);
                peer.sealer(LOCAL, now)
                    .and_then(|s| s.seal(&mut sealed))
                    .expect("the peer seals");
                let how = input.u8();
                if how % 4 == 0 {
                    let at = usize::from(input.u16()) % sealed.len();
                    sealed[at] ^= input.u8() | 1;
                    datagram_in(&dp, PEER, &sealed, now, before, None);
                } else {
                    datagram_in(&dp, PEER, &sealed, now, before, Some(frame));
                    if how % 4 == 1 {
                        // The same datagram again: a replay, never delivered.
                        let before = drops(&dp);
                        datagram_in(&dp, PEER, &sealed, now, before, None);
                    }
                }
            }
            _ => now += Duration::from_secs(u64::from(input.u8()) * 4),
        }
    }
});

fn tap_frame(
    dp: &Dataplane<()>,
    net: usize,
    frame: &[u8],
    wire_len: usize,
    frames: usize,
    now: Instant,
    before: (u64, Vec<u64>),
) {
    let port = dp
        .get(Vni::new(VNIS[net]).expect("24-bit"))
        .expect("inserted");
    let mut reply = [0u8; 64];
    let headers = FrameHeaders::parse(frame);
    let action = port
        .plane
        .handle_tap_frame(&headers, wire_len, frames, now, &mut reply);
    let mut expected = before;
    match &action {
        TapAction::Drop(_) => expected.1[net] += frames as u64,
        &TapAction::Reply(len) => {
            assert!(len <= reply.len());
            let eth = EthernetFrame::new_checked(&reply[..len]).expect("a whole frame");
            let arp = ArpPacket::new_checked(eth.payload()).expect("an ARP packet");
            assert_eq!(arp.operation(), ArpOperation::Reply);
        }
        TapAction::Unicast(vtep) => assert_eq!(*vtep, PEER),
        TapAction::Flood(list) => assert_eq!(&list[..], &[PEER]),
        TapAction::Local => {}
    }
    assert_eq!(drops(dp), expected, "drop counted wrong for {action:?}");
}

/// `sealed_from`: the frame the peer sealed into `datagram`, when it is that datagram
/// unchanged and new (the only kind the encrypted network may deliver).
fn datagram_in(
    dp: &Dataplane<()>,
    src: Ipv4Addr,
    datagram: &[u8],
    now: Instant,
    before: (u64, Vec<u64>),
    sealed_from: Option<&[u8]>,
) {
    let mut expected = before;
    let vni = if is_sealed(datagram) {
        SealedPacket::new_checked(datagram).ok().map(|p| p.vni())
    } else {
        VxlanPacket::new_checked(datagram).ok().map(|v| v.vni())
    };
    let known_net = vni.and_then(|v| VNIS.iter().position(|&vni| vni == v.get()));
    match dp.handle_datagram(src, &mut datagram.to_vec(), now) {
        WireAction::Deliver { port, frame } => {
            let net = known_net.expect("delivered for a known VNI");
            assert_eq!(port.plane.config().vni.get(), VNIS[net]);
            assert_eq!(src, PEER, "delivered from an untrusted VTEP");
            if net == ENCRYPTED {
                assert_eq!(
                    Some(frame),
                    sealed_from,
                    "delivered what the peer did not seal"
                );
            } else {
                assert_eq!(frame, &datagram[8..]);
            }
        }
        WireAction::Drop(_) => match known_net {
            // Known network but an untrusted sender: that drop belongs to no network yet.
            Some(net) if src == PEER => expected.1[net] += 1,
            _ => expected.0 += 1,
        },
    }
    assert_eq!(drops(dp), expected, "datagram drop counted wrong");
}
