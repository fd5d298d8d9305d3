//! The sealed datagram of an encrypted network (README, "Encrypted networks"): a VXLAN-like
//! header that keeps the VNI readable for demultiplexing, a 64-bit counter, the inner Ethernet
//! frame encrypted, and the AEAD tag:
//!
//! ```text
//!  0               1               2               3
//! |0 0 0 0 1 0 0 1|   version 1   |   key epoch   |       0       |  flags: I (0x08) + S (0x01)
//! |          VXLAN Network Identifier (VNI)       |       0       |
//! |                     counter (nonce), high 32 bits             |
//! |                     counter (nonce), low 32 bits              |
//! |        ciphertext of the inner Ethernet frame (same length)  ...
//! |        tag (16 bytes)                                         |
//! ```
//! The first 16 bytes are the AEAD's additional data: a changed VNI, epoch or counter fails
//! the tag like a changed ciphertext. The S bit is reserved in RFC 7348, so a plain VXLAN
//! receiver (a kernel vxlan device) drops a sealed datagram, and vxnet tells the two kinds
//! apart by the first byte alone.

use super::{Vni, WireError};

/// Header of a sealed datagram: the VXLAN-like 8 bytes and the counter.
pub const SEALED_HEADER_LEN: usize = 16;
/// The AEAD tag at the end.
pub const SEAL_TAG_LEN: usize = 16;
/// What sealing adds to a plain VXLAN datagram: the counter and the tag.
pub const SEAL_OVERHEAD: usize = SEALED_HEADER_LEN - super::VXLAN_HEADER_LEN + SEAL_TAG_LEN;
const _: () = assert!(SEAL_OVERHEAD == vxnet_proto::types::SEAL_OVERHEAD as usize);
/// First byte of a sealed datagram: the VXLAN I flag and the S (sealed) flag.
pub const FLAGS_SEALED: u8 = 0x09;
/// Format version, byte 1.
pub const SEAL_VERSION: u8 = 1;

/// Whether `datagram` claims to be sealed (its first byte; [`SealedPacket::new_checked`]
/// checks the rest).
pub fn is_sealed(datagram: &[u8]) -> bool {
    datagram.first() == Some(&FLAGS_SEALED)
}

/// A read-only view of a sealed datagram's header.
#[derive(Debug, Clone, Copy)]
pub struct SealedPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SealedPacket<T> {
    /// Views `buffer` after checking its length (header, and a tag after at least an
    /// Ethernet header's worth of ciphertext is not required here: the AEAD checks the rest)
    /// and its fixed bytes.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < SEALED_HEADER_LEN + SEAL_TAG_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] != FLAGS_SEALED || b[1] != SEAL_VERSION || b[3] != 0 {
            return Err(WireError::BadFlags);
        }
        if b[7] != 0 {
            return Err(WireError::ReservedBits);
        }
        Ok(SealedPacket { buffer })
    }

    pub fn epoch(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    pub fn vni(&self) -> Vni {
        let b = self.buffer.as_ref();
        Vni::from_be_bytes([b[4], b[5], b[6]])
    }

    pub fn counter(&self) -> u64 {
        let b = self.buffer.as_ref();
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[8..SEALED_HEADER_LEN]);
        u64::from_be_bytes(c)
    }
}

/// Writes a sealed header into the first [`SEALED_HEADER_LEN`] bytes of `buf`.
///
/// # Panics
/// If `buf` is shorter; callers reserve the room themselves.
pub fn emit_sealed_header(vni: Vni, epoch: u8, counter: u64, buf: &mut [u8]) {
    let [a, b, c] = vni.to_be_bytes();
    buf[..8].copy_from_slice(&[FLAGS_SEALED, SEAL_VERSION, epoch, 0, a, b, c, 0]);
    buf[8..SEALED_HEADER_LEN].copy_from_slice(&counter.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let vni = Vni::new(4100).expect("24-bit");
        let mut buf = [0u8; SEALED_HEADER_LEN + SEAL_TAG_LEN];
        emit_sealed_header(vni, 7, 0x0102_0304_0506_0708, &mut buf);
        assert_eq!(
            &buf[..16],
            &[9, 1, 7, 0, 0, 0x10, 0x04, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert!(is_sealed(&buf));
        let p = SealedPacket::new_checked(&buf[..]).expect("valid");
        assert_eq!(
            (p.vni(), p.epoch(), p.counter()),
            (vni, 7, 0x0102_0304_0506_0708)
        );
        assert_eq!(SEAL_OVERHEAD, 24);
    }

    #[test]
    fn refuses_short_and_foreign_headers() {
        let vni = Vni::new(1).expect("24-bit");
        let mut buf = [0u8; SEALED_HEADER_LEN + SEAL_TAG_LEN];
        emit_sealed_header(vni, 0, 1, &mut buf);
        assert!(matches!(
            SealedPacket::new_checked(&buf[..31]),
            Err(WireError::Truncated)
        ));
        let mut other = buf;
        other[1] = 2;
        assert!(matches!(
            SealedPacket::new_checked(&other[..]),
            Err(WireError::BadFlags)
        ));
        let mut other = buf;
        other[7] = 1;
        assert!(matches!(
            SealedPacket::new_checked(&other[..]),
            Err(WireError::ReservedBits)
        ));
        // A plain VXLAN header is not sealed.
        assert!(!is_sealed(&[0x08, 0, 0, 0, 0, 0, 1, 0]));
    }
}
