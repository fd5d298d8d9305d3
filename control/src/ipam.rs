//! IPv4 prefixes and address/subnet allocation for overlay networks.
//!
//! Rules a caller relies on:
//! - An [`Ipv4Cidr`] is always canonical: prefix length ≤ 32 and no host bits set. Parsing
//!   `10.0.0.1/24` fails (with a "did you mean 10.0.0.0/24?" hint) rather than silently
//!   masking, because a user who typed host bits probably meant something else.
//! - Addresses are `u32` in host byte order (10.0.0.1 = `0x0a00_0001`), as in `vxnet.proto`.
//! - Allocation is pure and deterministic: the same inputs give the same answer on every host,
//!   so the replicated state machine can call it inside `apply`. It always picks the *lowest*
//!   free candidate, which also makes a freed address or subnet the first to be reused.
//! - A network's subnet needs a prefix of /30 or shorter ([`MAX_NETWORK_PREFIX`]); endpoints
//!   never get the network address, the broadcast address or the gateway.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use vxnet_proto::Cidr;

/// The longest prefix a network's subnet may have: a /30 still holds the gateway and one
/// endpoint besides the network and broadcast addresses; a /31 or /32 holds no endpoint.
pub const MAX_NETWORK_PREFIX: u8 = 30;

/// Where subnets come from when `network create` is given no `--subnet`: 10.128.0.0/9.
pub const DEFAULT_POOL: Ipv4Cidr = Ipv4Cidr {
    addr: 0x0a80_0000,
    prefix_len: 9,
};

/// The size of a subnet taken from [`DEFAULT_POOL`].
pub const DEFAULT_SUBNET_PREFIX: u8 = 24;

/// An IPv4 prefix such as `10.0.0.0/24`, always with its host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: u32,
    prefix_len: u8,
}

/// Why a text or a protobuf [`Cidr`] is not a valid [`Ipv4Cidr`].
///
/// `what` names the argument in the message ("subnet", "ip range", "CIDR"), so the sentence
/// printed by the CLI points at the flag the user got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid {what} {input:?}: expected an IPv4 prefix like 10.0.0.0/24")]
    Syntax { what: &'static str, input: String },
    #[error("invalid {what} {input}: the prefix length {prefix_len} is larger than 32")]
    PrefixTooLong {
        what: &'static str,
        input: String,
        prefix_len: u32,
    },
    #[error("invalid {what} {input}: host bits are set; did you mean {suggestion}?")]
    HostBitsSet {
        what: &'static str,
        input: String,
        suggestion: Ipv4Cidr,
    },
}

impl Ipv4Cidr {
    /// A prefix from its network address and length; refuses a length above 32 or host bits.
    pub fn new(addr: u32, prefix_len: u8) -> Result<Self, CidrError> {
        Self::checked(addr, u32::from(prefix_len), "CIDR")
    }

    /// Parses `A.B.C.D/LEN`; `what` names the argument in the error ("subnet", "ip range").
    pub fn parse_as(text: &str, what: &'static str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax {
            what,
            input: text.to_owned(),
        };
        let (addr, len) = text.split_once('/').ok_or_else(syntax)?;
        let addr = Ipv4Addr::from_str(addr).map_err(|_| syntax())?;
        // `u32::from_str` accepts a leading '+'; a prefix length is digits only.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let len: u32 = len.parse().map_err(|_| syntax())?;
        Self::checked(u32::from(addr), len, what)
    }

    /// Converts a protobuf [`Cidr`], which may carry anything the proposer sent.
    pub fn from_proto(cidr: &Cidr, what: &'static str) -> Result<Self, CidrError> {
        Self::checked(cidr.addr, cidr.prefix_len, what)
    }

    fn checked(addr: u32, prefix_len: u32, what: &'static str) -> Result<Self, CidrError> {
        let input = || format!("{}/{}", Ipv4Addr::from(addr), prefix_len);
        if prefix_len > 32 {
            return Err(CidrError::PrefixTooLong {
                what,
                input: input(),
                prefix_len,
            });
        }
        let prefix_len = prefix_len as u8; // ≤ 32, checked above
        let canonical = Ipv4Cidr {
            addr: addr & mask(prefix_len),
            prefix_len,
        };
        if canonical.addr != addr {
            return Err(CidrError::HostBitsSet {
                what,
                input: input(),
                suggestion: canonical,
            });
        }
        Ok(canonical)
    }

    /// The protobuf form.
    pub fn to_proto(self) -> Cidr {
        Cidr {
            addr: self.addr,
            prefix_len: u32::from(self.prefix_len),
        }
    }

    pub fn prefix_len(self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. `0xffff_ff00` for a /24.
    pub fn mask(self) -> u32 {
        mask(self.prefix_len)
    }

    /// The first address of the prefix (all host bits clear).
    pub fn network(self) -> u32 {
        self.addr
    }

    /// The last address of the prefix (all host bits set).
    pub fn broadcast(self) -> u32 {
        self.addr | !self.mask()
    }

    /// The address after the network address: the default gateway. `None` for a /32, whose
    /// only address is its network address. (For a /31 this is its broadcast address; such a
    /// subnet is refused for networks anyway.)
    pub fn first_host(self) -> Option<u32> {
        (self.prefix_len < 32).then(|| self.addr + 1)
    }

    /// How many addresses the prefix spans (2^(32 − len)); a u64 because a /0 spans 2^32.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }

    pub fn contains(self, addr: u32) -> bool {
        addr & self.mask() == self.addr
    }

    /// Whether every address of `other` is inside `self`.
    pub fn contains_cidr(self, other: Ipv4Cidr) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.addr)
    }

    /// Whether the two prefixes share an address; for prefixes that means one contains the
    /// other.
    pub fn overlaps(self, other: Ipv4Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        Self::parse_as(text, "CIDR")
    }
}

impl From<Ipv4Cidr> for Cidr {
    fn from(cidr: Ipv4Cidr) -> Cidr {
        cidr.to_proto()
    }
}

impl TryFrom<&Cidr> for Ipv4Cidr {
    type Error = CidrError;

    fn try_from(cidr: &Cidr) -> Result<Self, CidrError> {
        Self::from_proto(cidr, "CIDR")
    }
}

fn mask(prefix_len: u8) -> u32 {
    // `checked_shl` because shifting a u32 by 32 overflows: a /0 has no network bits.
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

/// Formats a host-order address as dotted quad (`0x0a000001` → `10.0.0.1`).
pub fn fmt_addr(addr: u32) -> Ipv4Addr {
    Ipv4Addr::from(addr)
}

/// The lowest address of `range` that an endpoint of a network on `subnet` may get: not the
/// subnet's network or broadcast address, not `gateway`, not in `used`, and inside `subnet`
/// (a range reaching outside the subnet is clipped to it). `None` when every address is taken.
///
/// Runs in O(|used| log |used|), never walking the addresses of a big range one by one.
pub fn lowest_free_address(
    subnet: Ipv4Cidr,
    range: Ipv4Cidr,
    gateway: u32,
    used: &BTreeSet<u32>,
) -> Option<u32> {
    // Work in u64 so "one past the last address" cannot overflow at 255.255.255.255.
    let start = u64::from(range.network().max(subnet.network()));
    let end = u64::from(range.broadcast().min(subnet.broadcast()));
    if start > end {
        return None;
    }
    let reserved = [subnet.network(), subnet.broadcast(), gateway];
    let mut taken: Vec<u64> = used
        .range(start as u32..=end as u32)
        .copied()
        .chain(reserved)
        .map(u64::from)
        .filter(|addr| (start..=end).contains(addr))
        .collect();
    taken.sort_unstable();
    let mut candidate = start;
    for addr in taken {
        if addr == candidate {
            candidate += 1;
        } else if addr > candidate {
            break;
        }
        // addr < candidate: a duplicate of one already skipped.
    }
    (candidate <= end).then_some(candidate as u32)
}

/// The lowest prefix of length `prefix_len` inside `pool` that overlaps none of `taken`.
/// `None` when `prefix_len` is shorter than the pool's or every candidate overlaps.
///
/// Runs in O(|taken| log |taken|) whatever the size of the pool.
pub fn lowest_free_subnet(
    pool: Ipv4Cidr,
    prefix_len: u8,
    taken: impl IntoIterator<Item = Ipv4Cidr>,
) -> Option<Ipv4Cidr> {
    if prefix_len < pool.prefix_len() || prefix_len > 32 {
        return None;
    }
    let block = 1u64 << (32 - u32::from(prefix_len));
    let pool_end = u64::from(pool.broadcast());
    let mut taken: Vec<(u64, u64)> = taken
        .into_iter()
        .map(|c| (u64::from(c.network()), u64::from(c.broadcast())))
        .collect();
    taken.sort_unstable();
    let mut candidate = u64::from(pool.network());
    // Sorted by start: once a taken prefix starts after the candidate's end, no later one can
    // overlap it either.
    for (start, end) in taken {
        if end < candidate {
            continue;
        }
        if start > candidate + block - 1 {
            break;
        }
        // Overlap: the next candidate is the first block boundary after this prefix.
        candidate = (end + 1).div_ceil(block) * block;
    }
    if candidate + block - 1 > pool_end {
        return None;
    }
    Some(Ipv4Cidr {
        addr: candidate as u32,
        prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().expect("valid CIDR in test")
    }

    fn ip(text: &str) -> u32 {
        u32::from(Ipv4Addr::from_str(text).expect("valid address in test"))
    }

    fn used(addrs: &[&str]) -> BTreeSet<u32> {
        addrs.iter().map(|a| ip(a)).collect()
    }

    #[test]
    fn parses_and_displays() {
        let c = cidr("10.0.0.0/24");
        assert_eq!(c.network(), 0x0a00_0000);
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(DEFAULT_POOL.to_string(), "10.128.0.0/9");
    }

    #[test]
    fn parse_rejects_bad_syntax() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "/24",
            "10.0.0/24",
            "10.0.0.256/24",
            "10.0.0.0/+24",
            "10.0.0.0/-1",
            "10.0.0.0/24/1",
            "10.0.0.0/ 24",
            " 10.0.0.0/24",
            "10.0.0.0/0024",
            "fe80::/64",
            "ten/8",
        ] {
            let err = Ipv4Cidr::parse_as(bad, "subnet").expect_err(bad);
            assert!(matches!(err, CidrError::Syntax { .. }), "{bad}: {err:?}");
            assert!(err.to_string().starts_with("invalid subnet "), "{err}");
        }
    }

    #[test]
    fn parse_rejects_prefix_above_32() {
        let err = Ipv4Cidr::parse_as("10.0.0.0/33", "subnet").expect_err("/33");
        assert_eq!(
            err.to_string(),
            "invalid subnet 10.0.0.0/33: the prefix length 33 is larger than 32"
        );
        assert!(matches!(
            Ipv4Cidr::parse_as("10.0.0.0/999", "subnet"),
            Err(CidrError::PrefixTooLong {
                prefix_len: 999,
                ..
            })
        ));
    }

    #[test]
    fn parse_rejects_host_bits_with_a_hint() {
        let err = Ipv4Cidr::parse_as("10.0.0.1/24", "subnet").expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "invalid subnet 10.0.0.1/24: host bits are set; did you mean 10.0.0.0/24?"
        );
        let err = Ipv4Cidr::parse_as("10.255.1.0/9", "ip range").expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "invalid ip range 10.255.1.0/9: host bits are set; did you mean 10.128.0.0/9?"
        );
        assert!("1.0.0.0/0".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn new_checks_like_parse() {
        assert_eq!(Ipv4Cidr::new(0x0a00_0000, 8), Ok(cidr("10.0.0.0/8")));
        assert!(matches!(
            Ipv4Cidr::new(0x0a00_0001, 8),
            Err(CidrError::HostBitsSet { .. })
        ));
        assert!(matches!(
            Ipv4Cidr::new(0, 33),
            Err(CidrError::PrefixTooLong { .. })
        ));
    }

    #[test]
    fn proto_round_trip() {
        let c = cidr("192.168.4.0/22");
        let p: Cidr = c.into();
        assert_eq!(
            p,
            Cidr {
                addr: 0xc0a8_0400,
                prefix_len: 22
            }
        );
        assert_eq!(Ipv4Cidr::try_from(&p), Ok(c));
        let bad = Cidr {
            addr: 0xc0a8_0401,
            prefix_len: 22,
        };
        assert_eq!(
            Ipv4Cidr::from_proto(&bad, "subnet")
                .expect_err("host bits")
                .to_string(),
            "invalid subnet 192.168.4.1/22: host bits are set; did you mean 192.168.4.0/22?"
        );
        let bad = Cidr {
            addr: 0,
            prefix_len: u32::MAX,
        };
        assert!(matches!(
            Ipv4Cidr::try_from(&bad),
            Err(CidrError::PrefixTooLong { .. })
        ));
    }

    #[test]
    fn network_broadcast_first_host_size() {
        let c = cidr("10.0.0.0/24");
        assert_eq!(c.mask(), 0xffff_ff00);
        assert_eq!(c.network(), ip("10.0.0.0"));
        assert_eq!(c.broadcast(), ip("10.0.0.255"));
        assert_eq!(c.first_host(), Some(ip("10.0.0.1")));
        assert_eq!(c.size(), 256);

        let all = cidr("0.0.0.0/0");
        assert_eq!(all.mask(), 0);
        assert_eq!(all.broadcast(), u32::MAX);
        assert_eq!(all.size(), 1 << 32);

        let p31 = cidr("10.0.0.4/31");
        assert_eq!(p31.broadcast(), ip("10.0.0.5"));
        assert_eq!(p31.first_host(), Some(ip("10.0.0.5")));
        assert_eq!(p31.size(), 2);

        let p32 = cidr("10.0.0.7/32");
        assert_eq!(p32.mask(), u32::MAX);
        assert_eq!(p32.broadcast(), ip("10.0.0.7"));
        assert_eq!(p32.first_host(), None);
        assert_eq!(p32.size(), 1);
    }

    #[test]
    fn contains_and_overlaps() {
        let net = cidr("10.0.0.0/24");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.0.0.255")));
        assert!(!net.contains(ip("10.0.1.0")));
        assert!(!net.contains(ip("9.255.255.255")));

        assert!(net.contains_cidr(cidr("10.0.0.128/25")));
        assert!(net.contains_cidr(net));
        assert!(!net.contains_cidr(cidr("10.0.0.0/23")));
        assert!(!net.contains_cidr(cidr("10.0.1.0/24")));

        assert!(net.overlaps(cidr("10.0.0.0/16")));
        assert!(cidr("10.0.0.0/16").overlaps(net));
        assert!(net.overlaps(cidr("10.0.0.200/32")));
        assert!(!net.overlaps(cidr("10.0.1.0/24")));
        assert!(cidr("0.0.0.0/0").overlaps(net));
    }

    #[test]
    fn lowest_free_address_skips_network_gateway_and_used() {
        let net = cidr("10.0.0.0/24");
        let gw = ip("10.0.0.1");
        assert_eq!(
            lowest_free_address(net, net, gw, &used(&[])),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            lowest_free_address(net, net, gw, &used(&["10.0.0.2", "10.0.0.3"])),
            Some(ip("10.0.0.4"))
        );
        // A hole is reused first.
        assert_eq!(
            lowest_free_address(net, net, gw, &used(&["10.0.0.2", "10.0.0.4"])),
            Some(ip("10.0.0.3"))
        );
        // A gateway elsewhere in the subnet leaves .1 free.
        assert_eq!(
            lowest_free_address(net, net, ip("10.0.0.254"), &used(&[])),
            Some(ip("10.0.0.1"))
        );
        // Used addresses outside the range do not matter.
        assert_eq!(
            lowest_free_address(net, net, gw, &used(&["10.0.1.2", "9.0.0.0"])),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn lowest_free_address_full_subnet() {
        let net = cidr("10.0.0.0/24");
        let gw = ip("10.0.0.1");
        let all: BTreeSet<u32> = (ip("10.0.0.2")..=ip("10.0.0.254")).collect();
        assert_eq!(lowest_free_address(net, net, gw, &all), None);
        let mut one_free = all.clone();
        one_free.remove(&ip("10.0.0.254"));
        assert_eq!(
            lowest_free_address(net, net, gw, &one_free),
            Some(ip("10.0.0.254"))
        );
    }

    #[test]
    fn lowest_free_address_in_a_range() {
        let net = cidr("10.0.0.0/24");
        let gw = ip("10.0.0.1");
        let range = cidr("10.0.0.128/25");
        assert_eq!(
            lowest_free_address(net, range, gw, &used(&["10.0.0.2"])),
            Some(ip("10.0.0.128"))
        );
        // The range's last address is the subnet's broadcast address: never given.
        let top = cidr("10.0.0.254/31");
        assert_eq!(
            lowest_free_address(net, top, gw, &used(&[])),
            Some(ip("10.0.0.254"))
        );
        assert_eq!(
            lowest_free_address(net, top, gw, &used(&["10.0.0.254"])),
            None
        );
        // The range's first address is the subnet's network address, its second the gateway.
        let bottom = cidr("10.0.0.0/30");
        assert_eq!(
            lowest_free_address(net, bottom, gw, &used(&[])),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            lowest_free_address(net, bottom, gw, &used(&["10.0.0.2", "10.0.0.3"])),
            None
        );
        // A one-address range.
        let one = cidr("10.0.0.77/32");
        assert_eq!(
            lowest_free_address(net, one, gw, &used(&[])),
            Some(ip("10.0.0.77"))
        );
        assert_eq!(
            lowest_free_address(net, one, gw, &used(&["10.0.0.77"])),
            None
        );
        // A range wider than the subnet is clipped to it.
        assert_eq!(
            lowest_free_address(net, cidr("10.0.0.0/16"), gw, &used(&[])),
            Some(ip("10.0.0.2"))
        );
        // A range outside the subnet yields nothing.
        assert_eq!(
            lowest_free_address(net, cidr("10.0.1.0/24"), gw, &used(&[])),
            None
        );
    }

    #[test]
    fn lowest_free_address_small_subnets() {
        // /30: network, gateway, one endpoint, broadcast.
        let p30 = cidr("10.0.0.4/30");
        let gw = ip("10.0.0.5");
        assert_eq!(
            lowest_free_address(p30, p30, gw, &used(&[])),
            Some(ip("10.0.0.6"))
        );
        assert_eq!(
            lowest_free_address(p30, p30, gw, &used(&["10.0.0.6"])),
            None
        );
        // /31 and /32 have no address besides network and broadcast.
        let p31 = cidr("10.0.0.4/31");
        assert_eq!(
            lowest_free_address(p31, p31, ip("10.0.0.5"), &used(&[])),
            None
        );
        let p32 = cidr("10.0.0.4/32");
        assert_eq!(lowest_free_address(p32, p32, 0, &used(&[])), None);
    }

    #[test]
    fn lowest_free_address_at_the_top_of_the_address_space() {
        // No overflow past 255.255.255.255.
        let net = cidr("255.255.255.0/24");
        let gw = ip("255.255.255.1");
        let all: BTreeSet<u32> = (ip("255.255.255.2")..=ip("255.255.255.254")).collect();
        assert_eq!(lowest_free_address(net, net, gw, &all), None);
        let big = cidr("0.0.0.0/0");
        assert_eq!(lowest_free_address(big, big, 1, &used(&[])), Some(2));
    }

    #[test]
    fn lowest_free_address_in_a_huge_full_range_is_fast() {
        // A /8 with its first 100 000 addresses taken: answered without walking 16M addresses.
        let net = cidr("10.0.0.0/8");
        let taken: BTreeSet<u32> = (ip("10.0.0.2")..ip("10.0.0.2") + 100_000).collect();
        assert_eq!(
            lowest_free_address(net, net, ip("10.0.0.1"), &taken),
            Some(ip("10.0.0.2") + 100_000)
        );
    }

    #[test]
    fn lowest_free_subnet_from_the_default_pool() {
        let none: [Ipv4Cidr; 0] = [];
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, none),
            Some(cidr("10.128.0.0/24"))
        );
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.128.0.0/24")]),
            Some(cidr("10.128.1.0/24"))
        );
        // A hole is reused first; order of `taken` does not matter.
        assert_eq!(
            lowest_free_subnet(
                DEFAULT_POOL,
                24,
                [cidr("10.128.2.0/24"), cidr("10.128.0.0/24")]
            ),
            Some(cidr("10.128.1.0/24"))
        );
    }

    #[test]
    fn lowest_free_subnet_avoids_odd_sized_neighbours() {
        // A /25 in the middle of the first /24, a /16 covering the start, a /8 outside.
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.128.0.128/25")]),
            Some(cidr("10.128.1.0/24"))
        );
        assert_eq!(
            lowest_free_subnet(
                DEFAULT_POOL,
                24,
                [
                    cidr("10.128.0.0/16"),
                    cidr("10.129.0.0/24"),
                    cidr("192.168.0.0/16")
                ]
            ),
            Some(cidr("10.129.1.0/24"))
        );
        // Nested and duplicate taken prefixes.
        assert_eq!(
            lowest_free_subnet(
                DEFAULT_POOL,
                24,
                [
                    cidr("10.128.0.0/22"),
                    cidr("10.128.1.0/24"),
                    cidr("10.128.0.0/22"),
                    cidr("10.128.4.0/24")
                ]
            ),
            Some(cidr("10.128.5.0/24"))
        );
        // A supernet of the whole pool leaves nothing.
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.0.0.0/8")]),
            None
        );
    }

    #[test]
    fn lowest_free_subnet_last_and_exhausted() {
        let all_but_last: Vec<Ipv4Cidr> = (0..32767u32)
            .map(|i| Ipv4Cidr::new(0x0a80_0000 + (i << 8), 24).expect("aligned /24"))
            .collect();
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, 24, all_but_last.iter().copied()),
            Some(cidr("10.255.255.0/24"))
        );
        let mut all = all_but_last;
        all.push(cidr("10.255.255.0/24"));
        assert_eq!(lowest_free_subnet(DEFAULT_POOL, 24, all), None);
    }

    #[test]
    fn lowest_free_subnet_rejects_impossible_sizes() {
        let none: [Ipv4Cidr; 0] = [];
        assert_eq!(lowest_free_subnet(DEFAULT_POOL, 8, none), None);
        assert_eq!(lowest_free_subnet(DEFAULT_POOL, 33, none), None);
        assert_eq!(
            lowest_free_subnet(DEFAULT_POOL, 9, none),
            Some(DEFAULT_POOL)
        );
        // At the very top of the address space: no overflow.
        assert_eq!(
            lowest_free_subnet(cidr("255.255.255.0/24"), 25, [cidr("255.255.255.0/25")]),
            Some(cidr("255.255.255.128/25"))
        );
        assert_eq!(
            lowest_free_subnet(
                cidr("255.255.255.0/24"),
                25,
                [cidr("255.255.255.128/25"), cidr("255.255.255.0/25")]
            ),
            None
        );
    }
}
