//! VXLAN header (RFC 7348 §5), as a Linux kernel vxlan peer sends and expects it:
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |  = 0x08000000 exactly
//! |                VXLAN Network Identifier (VNI) |   Reserved    |  low byte 0
//! ```
//! Any other flags word is refused: the kernel drops such packets too (unparsed flags), and a
//! peer that sets them speaks an extension (GBP, GPE) we do not.

use super::{Vni, WireError};

pub const VXLAN_HEADER_LEN: usize = 8;
const FLAGS_VNI_VALID: u32 = 0x0800_0000;

/// A read-only view of a VXLAN datagram (header + inner Ethernet frame).
#[derive(Debug, Clone, Copy)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Views `buffer` after checking its length and its fixed bits.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < VXLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) != FLAGS_VNI_VALID {
            return Err(WireError::BadFlags);
        }
        if b[7] != 0 {
            return Err(WireError::ReservedBits);
        }
        Ok(())
    }

    pub fn vni(&self) -> Vni {
        let b = self.buffer.as_ref();
        Vni::from_be_bytes([b[4], b[5], b[6]])
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VXLAN_HEADER_LEN..]
    }
}

impl<'a> VxlanPacket<&'a [u8]> {
    /// The inner Ethernet frame, borrowed for as long as the buffer is.
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[VXLAN_HEADER_LEN..]
    }
}

/// The header vxnet emits in front of every frame it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader {
    pub vni: Vni,
}

impl VxlanHeader {
    pub fn to_bytes(self) -> [u8; VXLAN_HEADER_LEN] {
        let [a, b, c] = self.vni.to_be_bytes();
        [0x08, 0, 0, 0, a, b, c, 0]
    }

    /// Writes the header into the first 8 bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`VXLAN_HEADER_LEN`]; callers reserve the room themselves.
    pub fn emit(self, buf: &mut [u8]) {
        buf[..VXLAN_HEADER_LEN].copy_from_slice(&self.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `ip link add vx0 type vxlan id 4100 dstport 4789`: header only.
    const KERNEL_HEADER_VNI_4100: [u8; 8] = [0x08, 0x00, 0x00, 0x00, 0x00, 0x10, 0x04, 0x00];

    #[test]
    fn parses_kernel_header() {
        let p = VxlanPacket::new_checked(&KERNEL_HEADER_VNI_4100[..]).expect("valid");
        assert_eq!(p.vni().get(), 4100);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn emits_what_the_kernel_sends() {
        let vni = Vni::new(4100).expect("24-bit");
        assert_eq!(VxlanHeader { vni }.to_bytes(), KERNEL_HEADER_VNI_4100);
        let mut buf = [0xaa; 10];
        VxlanHeader { vni }.emit(&mut buf);
        assert_eq!(&buf[..8], &KERNEL_HEADER_VNI_4100);
        assert_eq!(&buf[8..], &[0xaa, 0xaa]);
    }

    #[test]
    fn max_vni_round_trips() {
        let vni = Vni::new(vxnet_proto::types::VNI_MAX).expect("24-bit");
        let bytes = VxlanHeader { vni }.to_bytes();
        assert_eq!(bytes, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        let p = VxlanPacket::new_checked(&bytes[..]).expect("valid");
        assert_eq!(p.vni(), vni);
        assert_eq!(Vni::new(vxnet_proto::types::VNI_MAX + 1), None);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            VxlanPacket::new_checked(&KERNEL_HEADER_VNI_4100[..7]).err(),
            Some(WireError::Truncated)
        );
        assert_eq!(
            VxlanPacket::new_checked(&[][..]).err(),
            Some(WireError::Truncated)
        );
        // I flag missing.
        let mut b = KERNEL_HEADER_VNI_4100;
        b[0] = 0;
        assert_eq!(
            VxlanPacket::new_checked(&b[..]).err(),
            Some(WireError::BadFlags)
        );
        // GBP extension bit.
        let mut b = KERNEL_HEADER_VNI_4100;
        b[0] = 0x88;
        assert_eq!(
            VxlanPacket::new_checked(&b[..]).err(),
            Some(WireError::BadFlags)
        );
        // Reserved bits in the flags word.
        let mut b = KERNEL_HEADER_VNI_4100;
        b[3] = 1;
        assert_eq!(
            VxlanPacket::new_checked(&b[..]).err(),
            Some(WireError::BadFlags)
        );
        let mut b = KERNEL_HEADER_VNI_4100;
        b[7] = 1;
        assert_eq!(
            VxlanPacket::new_checked(&b[..]).err(),
            Some(WireError::ReservedBits)
        );
    }
}
