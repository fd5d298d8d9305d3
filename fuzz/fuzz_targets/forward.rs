//! The sans-IO forwarding core on a sequence of arbitrary TAP frames and datagrams.
//!
//! The setup is fixed: two networks (VNI 4100 and 4200, gateway 10.10.0.1), each with one
//! local endpoint (10.10.0.2) and one placed by the control plane on the peer VTEP
//! (10.10.0.3 on 198.18.0.12), trusting and flooding to that peer. The input is a sequence of
//! events: a frame read from a network's TAP (as one frame or a superframe of several
//! segments), a datagram from the peer or from a stranger, and the clock moving on (so that
//! learned entries age out).
//!
//! Checks:
//! - `handle_tap_frame` and `handle_datagram` never panic;
//! - every drop is counted, once per frame it stands for: a TAP drop of `frames` segments adds
//!   `frames` to its network's drop counters, a datagram drop adds one, to its network's
//!   counters if its VNI is known and to the dataplane's otherwise; nothing else moves a
//!   drop counter;
//! - a delivered datagram is the inner frame of that datagram, for the network of its VNI,
//!   from a trusted VTEP;
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
use vxnet_dataplane::wire::{
    ArpOperation, ArpPacket, EthernetFrame, FrameHeaders, MacAddr, Vni, VxlanPacket,
};
use vxnet_fuzz::Choices;

const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
const VNIS: [u32; 2] = [4100, 4200];

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
            encrypted: false,
        };
        let plane = NetworkPlane::new(config, 0);
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
    while !input.is_empty() {
        let before = drops(&dp);
        match input.u8() % 4 {
            0 => {
                let net = usize::from(input.u8() % 2);
                let frames = usize::from(input.u8() % 4) + 1;
                let frame = input.bytes(2048);
                let wire_len = frame.len() / frames + 1;
                tap_frame(&dp, net, frame, wire_len, frames, now, before);
            }
            1 | 2 => {
                let src = if input.u8() % 4 == 0 { STRANGER } else { PEER };
                let datagram = input.bytes(2048);
                datagram_in(&dp, src, datagram, now, before);
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

fn datagram_in(
    dp: &Dataplane<()>,
    src: Ipv4Addr,
    datagram: &[u8],
    now: Instant,
    before: (u64, Vec<u64>),
) {
    let mut expected = before;
    let known_net = VxlanPacket::new_checked(datagram)
        .ok()
        .and_then(|v| VNIS.iter().position(|&vni| vni == v.vni().get()));
    match dp.handle_datagram(src, &mut datagram.to_vec(), now) {
        WireAction::Deliver { port, frame } => {
            let net = known_net.expect("delivered for a known VNI");
            assert_eq!(port.plane.config().vni.get(), VNIS[net]);
            assert_eq!(src, PEER, "delivered from an untrusted VTEP");
            assert_eq!(frame, &datagram[8..]);
        }
        WireAction::Drop(_) => match known_net {
            // Known network but an untrusted sender: that drop belongs to no network yet.
            Some(net) if src == PEER => expected.1[net] += 1,
            _ => expected.0 += 1,
        },
    }
    assert_eq!(drops(dp), expected, "datagram drop counted wrong");
}
