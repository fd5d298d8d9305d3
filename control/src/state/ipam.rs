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
mod tests;
