//! The legacy `virtio_net_hdr` a TAP opened with `IFF_VNET_HDR` puts in front of every frame
//! (and expects in front of every frame written to it): which checksum is left to do and
//! which segmentation a superframe asks for.
//!
//! ```text
//! | flags | gso_type | hdr_len (LE) | gso_size (LE) | csum_start (LE) | csum_offset (LE) |
//! ```
//! Multi-byte fields are little-endian: the legacy header is in the host's byte order, and
//! vxnet runs on little-endian hosts (x86, arm). [`VirtioNetHdr::parse`] refuses unknown
//! flags and GSO types, so what it returns is a request the offload code knows.

use super::WireError;

/// Length of the legacy `virtio_net_hdr` (without `num_buffers`), the TAP default.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum has been verified.
pub const FLAG_DATA_VALID: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_NEEDS_CSUM | FLAG_DATA_VALID;

const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP: u8 = 3;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// What kind of segmentation a superframe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GsoType {
    #[default]
    None,
    TcpV4,
    TcpV6,
    /// UFO (IP fragmentation of a large datagram): never split here.
    Udp,
    /// UDP segmentation (USO): never split here.
    UdpL4,
}

/// The legacy `virtio_net_hdr`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    /// `FLAG_*` bits.
    pub flags: u8,
    pub gso_type: GsoType,
    /// The TCP stream uses ECN (`VIRTIO_NET_HDR_GSO_ECN`): CWR goes on the first segment only.
    pub ecn: bool,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the header at the start of `buf`, refusing unknown flags and GSO types, a GSO
    /// request without a segment size, and ECN without GSO ([`WireError::BadVnetHeader`]).
    pub fn parse(buf: &[u8]) -> Result<VirtioNetHdr, WireError> {
        let b: &[u8; VNET_HDR_LEN] = buf
            .get(..VNET_HDR_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let flags = b[0];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(WireError::BadVnetHeader);
        }
        let gso_type = match b[1] & !GSO_ECN {
            GSO_NONE => GsoType::None,
            GSO_TCPV4 => GsoType::TcpV4,
            GSO_TCPV6 => GsoType::TcpV6,
            GSO_UDP => GsoType::Udp,
            GSO_UDP_L4 => GsoType::UdpL4,
            _ => return Err(WireError::BadVnetHeader),
        };
        let ecn = b[1] & GSO_ECN != 0;
        let field = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let hdr = VirtioNetHdr {
            flags,
            gso_type,
            ecn,
            hdr_len: field(2),
            gso_size: field(4),
            csum_start: field(6),
            csum_offset: field(8),
        };
        if (gso_type != GsoType::None && hdr.gso_size == 0) || (ecn && gso_type == GsoType::None) {
            return Err(WireError::BadVnetHeader);
        }
        Ok(hdr)
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let gso = match self.gso_type {
            GsoType::None => GSO_NONE,
            GsoType::TcpV4 => GSO_TCPV4,
            GsoType::TcpV6 => GSO_TCPV6,
            GsoType::Udp => GSO_UDP,
            GsoType::UdpL4 => GSO_UDP_L4,
        } | if self.ecn { GSO_ECN } else { 0 };
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = gso;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter; callers reserve the room themselves.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..VNET_HDR_LEN].copy_from_slice(&self.to_bytes());
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & FLAG_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A TSO4 header as a TAP hands it over: NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1398,
    // csum_start 34, csum_offset 16.
    const TSO4_HDR: [u8; 10] = [0x01, 0x01, 0x42, 0x00, 0x76, 0x05, 0x22, 0x00, 0x10, 0x00];

    #[test]
    fn vnet_header_parses_and_round_trips() {
        let h = VirtioNetHdr::parse(&TSO4_HDR).expect("valid");
        assert_eq!(
            h,
            VirtioNetHdr {
                flags: FLAG_NEEDS_CSUM,
                gso_type: GsoType::TcpV4,
                ecn: false,
                hdr_len: 66,
                gso_size: 1398,
                csum_start: 34,
                csum_offset: 16,
            }
        );
        assert!(h.needs_csum());
        assert_eq!(h.to_bytes(), TSO4_HDR);
        let mut buf = [0xee; 12];
        h.emit(&mut buf);
        assert_eq!(&buf[..10], &TSO4_HDR);
        assert_eq!(&buf[10..], &[0xee, 0xee]);

        let mut ecn6 = TSO4_HDR;
        ecn6[1] = 0x84;
        let h = VirtioNetHdr::parse(&ecn6).expect("valid");
        assert_eq!((h.gso_type, h.ecn), (GsoType::TcpV6, true));
        assert_eq!(h.to_bytes(), ecn6);
        for (t, want) in [(3, GsoType::Udp), (5, GsoType::UdpL4), (0, GsoType::None)] {
            let mut b = [0u8; 10];
            b[1] = t;
            b[4] = 1;
            assert_eq!(VirtioNetHdr::parse(&b).map(|h| h.gso_type), Ok(want));
        }
        assert_eq!(VirtioNetHdr::parse(&[0u8; 10]), Ok(VirtioNetHdr::default()));
    }

    #[test]
    fn vnet_header_refuses_bad_input() {
        assert_eq!(
            VirtioNetHdr::parse(&TSO4_HDR[..9]),
            Err(WireError::Truncated)
        );
        let mut b = TSO4_HDR;
        b[0] = 0x04;
        assert_eq!(VirtioNetHdr::parse(&b), Err(WireError::BadVnetHeader));
        let mut b = TSO4_HDR;
        b[1] = 2;
        assert_eq!(VirtioNetHdr::parse(&b), Err(WireError::BadVnetHeader));
        // GSO without a segment size.
        let mut b = TSO4_HDR;
        b[4] = 0;
        b[5] = 0;
        assert_eq!(VirtioNetHdr::parse(&b), Err(WireError::BadVnetHeader));
        // ECN on a non-GSO frame.
        let b = [0u8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(VirtioNetHdr::parse(&b), Err(WireError::BadVnetHeader));
    }
}
