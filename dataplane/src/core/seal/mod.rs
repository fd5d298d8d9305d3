//! Sealing: the AEAD of an encrypted network (README, "Encrypted networks"; the datagram
//! format is in [`crate::wire::SealedPacket`]). Sans-IO: keys, addresses and `now` in, sealed
//! or opened bytes out, in place.
//!
//! Rules:
//! - The network key (32 random bytes, one per key epoch) comes from the replicated state; it
//!   is never logged ([`NetworkKey`]'s `Debug` hides it).
//! - Each direction between two hosts has its own AES-256-GCM key, derived with HKDF-SHA256
//!   from the network key and (sender VTEP address, receiver VTEP address, VNI, epoch, the
//!   receiver's salt): two senders never share a key, so their counters never make the same
//!   nonce under one key.
//! - A host's salt ([`Salts`]) is a random number it draws at every start and publishes in
//!   the replicated state before it forwards. What was sealed for a host before it restarted
//!   was sealed under its old salt and does not open after, so its replay windows, which start
//!   empty, lose nothing. When a peer's salt changes, only the key for sealing to it changes:
//!   this host's windows for what it receives stay.
//! - The nonce is a 64-bit counter (4 zero bytes, then the counter, big-endian), one per
//!   network on this host, shared by all its peers and epochs and taken with one atomic
//!   increment per datagram (several threads send). It starts at the wall-clock time in
//!   nanoseconds when the network started forwarding ([`Seal::new`]), so a restarted daemon
//!   continues above every counter it used before, as long as it sent fewer than one datagram
//!   per nanosecond and the clock did not go back.
//! - A receiver keeps a [`ReplayWindow`] per (sender, epoch, its own salt); a counter is
//!   refused when it was seen, or is more than [`replay::WINDOW`] below the highest seen.
//! - Key epochs: a receiver accepts every epoch it holds (the current key and the previous
//!   one during a rotation). A sender uses the newest epoch [`ROTATION_GRACE`] after this host
//!   installed it — by then every host has applied the same state — and the previous one until
//!   then. The keys a network starts with are used at once.
//! - A datagram that cannot be sealed (no key yet) is not sent in plaintext: it is dropped.

mod replay;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};

pub use self::replay::ReplayWindow;
use crate::wire::{emit_sealed_header, SealedPacket, Vni, SEALED_HEADER_LEN, SEAL_TAG_LEN};

/// How long after a new key epoch is installed this host keeps sending with the previous
/// one: the time every host has to apply the same state.
pub const ROTATION_GRACE: Duration = Duration::from_secs(10);
/// The HKDF salt: names the derivation, so the same network key used elsewhere gives other
/// keys.
const HKDF_SALT: &[u8] = b"vxnet seal v1";

/// One epoch of a network's key, as the replicated state holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkKey {
    pub epoch: u8,
    pub secret: [u8; 32],
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkKey")
            .field("epoch", &self.epoch)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a datagram could not be sealed or opened. Each maps onto one drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No key for this epoch (or none at all, to send).
    #[error("no key")]
    NoKey,
    /// The tag does not match: tampered, forged, or sealed with another key.
    #[error("bad tag")]
    BadTag,
    /// The counter was already seen, or is too old to tell.
    #[error("replayed")]
    Replay,
    /// Too short, or a header that is not a sealed one.
    #[error("malformed")]
    Malformed,
}

/// Each vxnet host's salt by VTEP address, this host's among them (see the module docs); a
/// host not listed has salt 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Salts(pub Vec<(Ipv4Addr, u64)>);

impl Salts {
    fn of(&self, vtep: Ipv4Addr) -> u64 {
        self.0
            .iter()
            .find_map(|&(addr, salt)| (addr == vtep).then_some(salt))
            .unwrap_or(0)
    }
}

/// The keys of one direction pair with one peer, in one epoch.
struct PeerKeys {
    /// For sealing to the peer, with the peer's salt it was derived with: the peer draws a
    /// new salt at every start, and then this key alone is derived again.
    seal: RwLock<(u64, Arc<LessSafeKey>)>,
    open: LessSafeKey,
    window: Mutex<ReplayWindow>,
}

impl PeerKeys {
    /// The key for sealing to `peer`, whose salt is now `peer_salt`.
    fn seal_key(
        &self,
        key: &NetworkKey,
        local: Ipv4Addr,
        peer: Ipv4Addr,
        vni: Vni,
        peer_salt: u64,
    ) -> Arc<LessSafeKey> {
        {
            let (salt, sealing) = &*read(&self.seal);
            if *salt == peer_salt {
                return Arc::clone(sealing);
            }
        }
        let fresh = Arc::new(derive(key, local, peer, vni, peer_salt));
        *self.seal.write().unwrap_or_else(|e| e.into_inner()) = (peer_salt, Arc::clone(&fresh));
        fresh
    }
}

/// One installed key epoch and the keys derived from it so far, by peer.
struct Epoch {
    key: NetworkKey,
    installed: Instant,
    peers: RwLock<HashMap<Ipv4Addr, Arc<PeerKeys>>>,
}

impl Epoch {
    /// The keys with `peer`, derived on first use: opening with this host's salt (fixed for
    /// the epoch's life, see [`Seal::install`]), sealing with the peer's as `salts` has it.
    fn peer(&self, local: Ipv4Addr, vni: Vni, peer: Ipv4Addr, salts: &Salts) -> Arc<PeerKeys> {
        if let Some(keys) = read(&self.peers).get(&peer) {
            return Arc::clone(keys);
        }
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(peers.entry(peer).or_insert_with(|| {
            let peer_salt = salts.of(peer);
            Arc::new(PeerKeys {
                seal: RwLock::new((
                    peer_salt,
                    Arc::new(derive(&self.key, local, peer, vni, peer_salt)),
                )),
                open: derive(&self.key, peer, local, vni, salts.of(local)),
                window: Mutex::new(ReplayWindow::default()),
            })
        }))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// The AES-256-GCM key for datagrams from `sender` to `receiver` (whose salt is
/// `receiver_salt`) on `vni` in `key`'s epoch.
fn derive(
    key: &NetworkKey,
    sender: Ipv4Addr,
    receiver: Ipv4Addr,
    vni: Vni,
    receiver_salt: u64,
) -> LessSafeKey {
    let [v0, v1, v2] = vni.to_be_bytes();
    let [s0, s1, s2, s3] = sender.octets();
    let [r0, r1, r2, r3] = receiver.octets();
    let names = [s0, s1, s2, s3, r0, r1, r2, r3, v0, v1, v2, key.epoch];
    let salt = receiver_salt.to_be_bytes();
    let info: [&[u8]; 2] = [&names, &salt];
    let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(&key.secret);
    // Expanding to one AES-256 key (32 bytes) is far below HKDF's limit of 255 hashes, so
    // this cannot fail.
    #[allow(clippy::expect_used)]
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("32 bytes is within HKDF's output limit");
    LessSafeKey::new(UnboundKey::from(okm))
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// What is installed: this host's VTEP address, the hosts' salts and the epochs, oldest
/// first.
#[derive(Default)]
struct Installed {
    local: Option<Ipv4Addr>,
    salts: Salts,
    epochs: Vec<Arc<Epoch>>,
}

/// One encrypted network's sealing state on this host.
pub struct Seal {
    vni: Vni,
    installed: ArcSwap<Installed>,
    counter: AtomicU64,
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let installed = self.installed.load();
        f.debug_struct("Seal")
            .field("vni", &self.vni)
            .field(
                "epochs",
                &installed
                    .epochs
                    .iter()
                    .map(|e| e.key.epoch)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Seals datagrams to one peer with one epoch's key ([`Seal::sealer`]).
pub struct Sealer<'a> {
    seal: &'a Seal,
    epoch: u8,
    key: Arc<LessSafeKey>,
}

impl Seal {
    /// A network without keys yet (it sends and accepts nothing); counters start at
    /// `counter_base` (the wall-clock time in nanoseconds, see the module docs).
    pub fn new(vni: Vni, counter_base: u64) -> Seal {
        Seal {
            vni,
            installed: ArcSwap::from_pointee(Installed::default()),
            counter: AtomicU64::new(counter_base),
        }
    }

    /// Installs the network's keys (oldest first, as the state keeps them) and the hosts'
    /// salts as seen by this host at `local`. An epoch already installed with the same key,
    /// for the same address and salt of this host, keeps its derived keys and replay windows
    /// (a peer's new salt re-derives only the key for sealing to it); others are dropped. A
    /// network's first keys count as installed long ago (used at once); a later new epoch
    /// waits [`ROTATION_GRACE`].
    pub fn install(&self, local: Ipv4Addr, keys: &[NetworkKey], salts: &Salts, now: Instant) {
        let old = self.installed.load();
        let same_self = old.local == Some(local) && old.salts.of(local) == salts.of(local);
        let first = old.epochs.is_empty() || old.local != Some(local);
        let epochs: Vec<Arc<Epoch>> = keys
            .iter()
            .map(|key| {
                let kept = old.epochs.iter().find(|e| e.key == *key && same_self);
                match kept {
                    Some(e) => Arc::clone(e),
                    None => Arc::new(Epoch {
                        key: key.clone(),
                        installed: if first {
                            now.checked_sub(ROTATION_GRACE).unwrap_or(now)
                        } else {
                            now
                        },
                        peers: RwLock::new(HashMap::new()),
                    }),
                }
            })
            .collect();
        let unchanged = old.local == Some(local)
            && old.salts == *salts
            && old.epochs.len() == epochs.len()
            && old
                .epochs
                .iter()
                .zip(&epochs)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !unchanged {
            self.installed.store(Arc::new(Installed {
                local: Some(local),
                salts: salts.clone(),
                epochs,
            }));
        }
    }

    /// The epoch to send with at `now`: the newest past its grace, else the oldest.
    fn sending_epoch(installed: &Installed, now: Instant) -> Option<&Arc<Epoch>> {
        let past_grace =
            |e: &&Arc<Epoch>| now.saturating_duration_since(e.installed) >= ROTATION_GRACE;
        installed
            .epochs
            .iter()
            .rev()
            .find(past_grace)
            .or_else(|| installed.epochs.first())
    }

    /// A sealer for datagrams to `peer` at `now`, or [`SealError::NoKey`].
    pub fn sealer(&self, peer: Ipv4Addr, now: Instant) -> Result<Sealer<'_>, SealError> {
        let installed = self.installed.load();
        let local = installed.local.ok_or(SealError::NoKey)?;
        let epoch = Self::sending_epoch(&installed, now).ok_or(SealError::NoKey)?;
        let keys = epoch.peer(local, self.vni, peer, &installed.salts);
        let key = keys.seal_key(&epoch.key, local, peer, self.vni, installed.salts.of(peer));
        Ok(Sealer {
            seal: self,
            epoch: epoch.key.epoch,
            key,
        })
    }

    /// Opens the sealed datagram `datagram` from `peer` in place; the inner frame is
    /// returned. A datagram is accepted at most once.
    pub fn open<'a>(&self, peer: Ipv4Addr, datagram: &'a mut [u8]) -> Result<&'a [u8], SealError> {
        let packet = SealedPacket::new_checked(&*datagram).map_err(|_| SealError::Malformed)?;
        let (epoch, counter) = (packet.epoch(), packet.counter());
        if packet.vni() != self.vni {
            return Err(SealError::Malformed);
        }
        let installed = self.installed.load();
        let local = installed.local.ok_or(SealError::NoKey)?;
        let keys = installed
            .epochs
            .iter()
            .find(|e| e.key.epoch == epoch)
            .ok_or(SealError::NoKey)?
            .peer(local, self.vni, peer, &installed.salts);
        let lock = || keys.window.lock().unwrap_or_else(|e| e.into_inner());
        if !lock().check(counter) {
            return Err(SealError::Replay);
        }
        let (header, body) = datagram.split_at_mut(SEALED_HEADER_LEN);
        let aad = Aad::from(&header[..]);
        let frame = keys
            .open
            .open_in_place(nonce(counter), aad, body)
            .map_err(|_| SealError::BadTag)?;
        if !lock().mark(counter) {
            return Err(SealError::Replay);
        }
        Ok(frame)
    }
}

impl Sealer<'_> {
    /// Seals `datagram` in place: a [`SEALED_HEADER_LEN`]-byte room (where the plain VXLAN
    /// header may stand; it is overwritten), the inner frame, a [`SEAL_TAG_LEN`]-byte room.
    pub fn seal(&self, datagram: &mut [u8]) -> Result<(), SealError> {
        if datagram.len() < SEALED_HEADER_LEN + SEAL_TAG_LEN {
            return Err(SealError::Malformed);
        }
        let counter = self.seal.counter.fetch_add(1, Ordering::Relaxed);
        let (header, rest) = datagram.split_at_mut(SEALED_HEADER_LEN);
        emit_sealed_header(self.seal.vni, self.epoch, counter, header);
        let (frame, tag_room) = rest.split_at_mut(rest.len() - SEAL_TAG_LEN);
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::from(&header[..]), frame)
            .map_err(|_| SealError::Malformed)?;
        tag_room.copy_from_slice(tag.as_ref());
        Ok(())
    }
}
