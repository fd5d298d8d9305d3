//! What IPv4 and IPv6 headers share: the protocol numbers of what they carry.

/// An IP protocol number (IPv4 protocol, IPv6 next header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}
