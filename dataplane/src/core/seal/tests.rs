use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::replay::WINDOW;
use super::*;
use crate::wire::{SEALED_HEADER_LEN, SEAL_TAG_LEN};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

fn vni() -> Vni {
    Vni::new(4100).expect("24-bit")
}

fn key(epoch: u8, byte: u8) -> NetworkKey {
    NetworkKey {
        epoch,
        secret: [byte; 32],
    }
}

/// Host `local` of a network with `keys`.
fn host(local: Ipv4Addr, keys: &[NetworkKey], now: Instant) -> Seal {
    let seal = Seal::new(vni(), 1_000);
    seal.install(local, keys, &Salts::default(), now);
    seal
}

/// `frame` in a datagram with room for the sealed header and the tag.
fn room(frame: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; SEALED_HEADER_LEN];
    d.extend_from_slice(frame);
    d.extend_from_slice(&[0u8; SEAL_TAG_LEN]);
    d
}

fn sealed(from: &Seal, to: Ipv4Addr, frame: &[u8], now: Instant) -> Vec<u8> {
    let mut d = room(frame);
    from.sealer(to, now)
        .expect("has a key")
        .seal(&mut d)
        .expect("seals");
    d
}

const FRAME: &[u8] = b"an inner ethernet frame, 64 bytes or so, with a pattern abcabcabc";

#[test]
fn seals_and_opens_between_two_hosts() {
    let now = Instant::now();
    let (a, b) = (host(A, &[key(0, 7)], now), host(B, &[key(0, 7)], now));
    let mut d = sealed(&a, B, FRAME, now);
    assert_eq!(d.len(), FRAME.len() + 32);
    assert!(
        !d.windows(8).any(|w| w == &FRAME[..8]),
        "ciphertext shows the frame"
    );
    let p = SealedPacket::new_checked(&d[..]).expect("sealed header");
    assert_eq!((p.vni(), p.epoch(), p.counter()), (vni(), 0, 1_000));
    assert_eq!(b.open(A, &mut d), Ok(FRAME));
    // And back.
    let mut d = sealed(&b, A, FRAME, now);
    assert_eq!(a.open(B, &mut d), Ok(FRAME));
}

#[test]
fn each_direction_and_pair_has_its_own_key() {
    let now = Instant::now();
    let keys = [key(0, 7)];
    let (a, b, c) = (
        host(A, &keys, now),
        host(B, &keys, now),
        host(C, &keys, now),
    );
    // Sealed for B: C cannot open it, whoever it claims it is from.
    let d = sealed(&a, B, FRAME, now);
    assert_eq!(c.open(A, &mut d.clone()), Err(SealError::BadTag));
    // B cannot take it as coming from C.
    assert_eq!(b.open(C, &mut d.clone()), Err(SealError::BadTag));
    // A's own datagram sent back to A is not A's to open.
    assert_eq!(a.open(B, &mut d.clone()), Err(SealError::BadTag));
}

#[test]
fn another_network_key_or_vni_cannot_open() {
    let now = Instant::now();
    let a = host(A, &[key(0, 7)], now);
    let stranger = host(B, &[key(0, 8)], now);
    let mut d = sealed(&a, B, FRAME, now);
    assert_eq!(stranger.open(A, &mut d), Err(SealError::BadTag));
    let other_vni = Seal::new(Vni::new(4101).expect("24-bit"), 0);
    other_vni.install(B, &[key(0, 7)], &Salts::default(), now);
    let mut d = sealed(&a, B, FRAME, now);
    assert_eq!(other_vni.open(A, &mut d), Err(SealError::Malformed));
}

#[test]
fn any_changed_byte_fails_the_tag() {
    let now = Instant::now();
    let (a, b) = (host(A, &[key(0, 7)], now), host(B, &[key(0, 7)], now));
    let d = sealed(&a, B, FRAME, now);
    // Every byte but the fixed ones (flags, version, reserved: refused as malformed; the VNI:
    // another network; the epoch: another key).
    for i in 8..d.len() {
        let mut t = d.clone();
        t[i] ^= 0x40;
        assert_eq!(b.open(A, &mut t), Err(SealError::BadTag), "byte {i}");
    }
    // None of them moved the window: the original still opens.
    assert_eq!(b.open(A, &mut d.clone()), Ok(FRAME));
}

#[test]
fn a_datagram_is_accepted_once() {
    let now = Instant::now();
    let (a, b) = (host(A, &[key(0, 7)], now), host(B, &[key(0, 7)], now));
    let first = sealed(&a, B, FRAME, now);
    let second = sealed(&a, B, FRAME, now);
    // Out of order is fine, twice is not.
    assert_eq!(b.open(A, &mut second.clone()), Ok(FRAME));
    assert_eq!(b.open(A, &mut first.clone()), Ok(FRAME));
    assert_eq!(b.open(A, &mut first.clone()), Err(SealError::Replay));
    assert_eq!(b.open(A, &mut second.clone()), Err(SealError::Replay));
}

#[test]
fn no_key_sends_and_accepts_nothing() {
    let now = Instant::now();
    let a = host(A, &[key(0, 7)], now);
    let keyless = Seal::new(vni(), 0);
    assert!(matches!(keyless.sealer(B, now), Err(SealError::NoKey)));
    let mut d = sealed(&a, B, FRAME, now);
    assert_eq!(keyless.open(A, &mut d), Err(SealError::NoKey));
    // A key of another epoch does not open it either.
    let other_epoch = host(B, &[key(1, 7)], now);
    let mut d = sealed(&a, B, FRAME, now);
    assert_eq!(other_epoch.open(A, &mut d), Err(SealError::NoKey));
}

#[test]
fn counters_are_shared_by_peers_and_never_repeat() {
    let now = Instant::now();
    let a = host(A, &[key(0, 7)], now);
    let counters: Vec<u64> = [B, C, B, C]
        .iter()
        .map(|&to| {
            let d = sealed(&a, to, FRAME, now);
            SealedPacket::new_checked(&d[..]).expect("sealed").counter()
        })
        .collect();
    assert_eq!(counters, [1_000, 1_001, 1_002, 1_003]);
}

#[test]
fn a_restarted_sender_is_accepted_from_its_new_counter() {
    let now = Instant::now();
    let b = host(B, &[key(0, 7)], now);
    let before = host(A, &[key(0, 7)], now);
    assert_eq!(b.open(A, &mut sealed(&before, B, FRAME, now)), Ok(FRAME));
    // The restarted daemon starts from a later clock.
    let after = Seal::new(vni(), 5_000_000);
    after.install(A, &[key(0, 7)], &Salts::default(), now);
    assert_eq!(b.open(A, &mut sealed(&after, B, FRAME, now)), Ok(FRAME));
}

#[test]
fn rotation_keeps_traffic_flowing() {
    let t0 = Instant::now();
    let old = key(0, 7);
    let new = key(1, 9);
    let (a, b) = (
        host(A, std::slice::from_ref(&old), t0),
        host(B, std::slice::from_ref(&old), t0),
    );
    // A applies the rotation first; B a moment later.
    a.install(A, &[old.clone(), new.clone()], &Salts::default(), t0);
    let epoch = |d: &[u8]| SealedPacket::new_checked(d).expect("sealed").epoch();
    // During the grace, A still sends with the old epoch, which B (not rotated yet) opens.
    let d = sealed(&a, B, FRAME, t0 + Duration::from_secs(1));
    assert_eq!(epoch(&d), 0);
    assert_eq!(b.open(A, &mut d.clone()), Ok(FRAME));
    b.install(
        B,
        &[old.clone(), new.clone()],
        &Salts::default(),
        t0 + Duration::from_secs(2),
    );
    // After it, the new one, and B opens both while it holds both.
    let later = t0 + ROTATION_GRACE + Duration::from_secs(1);
    let d = sealed(&a, B, FRAME, later);
    assert_eq!(epoch(&d), 1);
    assert_eq!(b.open(A, &mut d.clone()), Ok(FRAME));
    let late_old = sealed(&host(A, std::slice::from_ref(&old), t0), B, FRAME, later);
    // (A fresh sealer of epoch 0 starts at the same counter, so it is a replay for B.)
    assert_eq!(b.open(A, &mut late_old.clone()), Err(SealError::Replay));
    // Once the old key is gone, its datagrams are refused.
    b.install(B, std::slice::from_ref(&new), &Salts::default(), later);
    let d = sealed(&host(A, &[old], t0), B, FRAME, later);
    assert_eq!(b.open(A, &mut d.clone()), Err(SealError::NoKey));
}

#[test]
fn reinstalling_the_same_keys_keeps_the_replay_window() {
    let now = Instant::now();
    let (a, b) = (host(A, &[key(0, 7)], now), host(B, &[key(0, 7)], now));
    let d = sealed(&a, B, FRAME, now);
    assert_eq!(b.open(A, &mut d.clone()), Ok(FRAME));
    b.install(B, &[key(0, 7)], &Salts::default(), now);
    assert_eq!(b.open(A, &mut d.clone()), Err(SealError::Replay));
}

#[test]
fn debug_never_shows_the_key() {
    let k = key(3, 0xab);
    let shown = format!(
        "{k:?} {:?}",
        host(A, std::slice::from_ref(&k), Instant::now())
    );
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, "),
        "{shown}"
    );
    assert!(shown.contains("redacted"));
}

#[test]
fn replay_window_slides() {
    let mut w = ReplayWindow::default();
    assert!(w.mark(10));
    assert!(!w.mark(10));
    assert!(w.mark(5), "out of order within the window");
    assert!(w.mark(10 + WINDOW - 1));
    assert!(!w.check(10), "still remembered");
    assert!(!w.check(9), "fell out of the window: too old");
    assert!(w.mark(10 + 5 * WINDOW), "a jump forgets everything");
    assert!(!w.check(10 + WINDOW - 1));
    assert!(w.check(10 + 5 * WINDOW - 1));
    // Slots reused after a slide are free again.
    let mut w = ReplayWindow::default();
    assert!(w.mark(0));
    assert!(w.mark(WINDOW));
    assert!(!w.check(0));
    assert!(w.mark(1));
}

#[test]
fn the_newest_epoch_is_the_last_one_even_past_a_wrap() {
    let t0 = Instant::now();
    let (old, new) = (key(255, 7), key(0, 9));
    let a = host(A, std::slice::from_ref(&old), t0);
    a.install(A, &[old.clone(), new.clone()], &Salts::default(), t0);
    let later = t0 + ROTATION_GRACE;
    let d = sealed(&a, B, FRAME, later);
    assert_eq!(
        SealedPacket::new_checked(&d[..]).expect("sealed").epoch(),
        0
    );
    let b = host(B, &[old, new], t0);
    assert_eq!(b.open(A, &mut d.clone()), Ok(FRAME));
}

/// Salts: A's and B's, as the replicated state lists them.
fn salts(a: u64, b: u64) -> Salts {
    Salts(vec![(A, a), (B, b)])
}

/// Host `local` of a network with one key, where A's salt is `a` and B's `b`; its counters
/// start where a restart's would, past every earlier host's.
fn salted(local: Ipv4Addr, a: u64, b: u64) -> Seal {
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000);
    let seal = Seal::new(vni(), STARTS.fetch_add(1_000, Ordering::Relaxed));
    seal.install(local, &[key(0, 7)], &salts(a, b), Instant::now());
    seal
}

#[test]
fn what_was_sealed_for_a_host_before_its_restart_does_not_open_after() {
    let now = Instant::now();
    let keys = [key(0, 7)];
    let (a, b) = (salted(A, 11, 21), salted(B, 11, 21));
    let recorded = sealed(&a, B, FRAME, now);
    assert_eq!(b.open(A, &mut recorded.clone()), Ok(FRAME));
    // B restarts: new replay windows, and a new salt it published before forwarding.
    let restarted = salted(B, 11, 22);
    assert_eq!(
        restarted.open(A, &mut recorded.clone()),
        Err(SealError::BadTag),
        "a recording from before the restart is not accepted again"
    );
    // A learns the new salt: only its key for sealing to B changes.
    a.install(A, &keys, &salts(11, 22), now);
    let mut fresh = sealed(&a, B, FRAME, now);
    assert_eq!(restarted.open(A, &mut fresh), Ok(FRAME));
    // The same salt installed again changes nothing.
    b.install(B, &keys, &salts(11, 21), now);
    assert_eq!(b.open(A, &mut recorded.clone()), Err(SealError::Replay));
}

#[test]
fn a_peers_new_salt_keeps_what_this_host_has_seen() {
    let now = Instant::now();
    let keys = [key(0, 7)];
    let (a, b) = (salted(A, 11, 21), salted(B, 11, 21));
    let recorded = sealed(&a, B, FRAME, now);
    assert_eq!(b.open(A, &mut recorded.clone()), Ok(FRAME));
    // A restarts with salt 12; B learns it. B's windows for what A sent stay.
    b.install(B, &keys, &salts(12, 21), now);
    assert_eq!(b.open(A, &mut recorded.clone()), Err(SealError::Replay));
    // B seals to A under A's new salt: the restarted A opens it, the old salt would not.
    let restarted = salted(A, 12, 21);
    let to_a = sealed(&b, A, FRAME, now);
    assert_eq!(restarted.open(B, &mut to_a.clone()), Ok(FRAME));
    let stale = salted(A, 11, 21);
    assert_eq!(stale.open(B, &mut to_a.clone()), Err(SealError::BadTag));
}
