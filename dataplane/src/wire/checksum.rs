//! The Internet checksum (RFC 1071), the one implementation every header uses.
//!
//! Rules a caller relies on:
//! - Sums are kept unfolded in a `u64`, so that pieces (a pseudo-header, a header, a payload)
//!   can be summed apart and added; [`fold`] reduces the total to 16 bits once, at the end.
//!   A piece must start at an even offset of the checksummed whole for the pieces to add up.
//! - A checksum field holds `!fold(sum)` of the data with the field zeroed; data carrying a
//!   correct checksum sums (folded) to `0xffff`.
//! - The pseudo-header sums cover addresses, protocol and the L4 length, as TCP and UDP
//!   checksums include them (RFC 793, RFC 768, RFC 8200 §8.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Adds `data` as big-endian 16-bit words to `acc`, unfolded; an odd last byte counts as the
/// high byte of a word. The hot loop of every checksum.
///
/// The one's-complement sum does not depend on byte order (RFC 1071 §2(B)): the body is summed
/// as native 64-bit words into a 128-bit accumulator (an add and an add-with-carry per word,
/// four words a step, no byte swaps), folded, and swapped into network order once; only the
/// last few bytes are taken word by word.
#[inline]
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let (body, tail) = data.split_at(data.len() & !7);
    acc + u64::from(sum_native_words(body)) + sum_be_tail(tail)
}

/// The folded one's-complement sum of `body` (a multiple of 8 bytes long) in network order.
#[inline]
fn sum_native_words(body: &[u8]) -> u16 {
    let word = |b: &[u8]| {
        u128::from(u64::from_ne_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    };
    let mut wide: u128 = 0;
    let mut blocks = body.chunks_exact(32);
    for b in &mut blocks {
        // No overflow: 2^64 words would be needed to carry out of 128 bits.
        wide += word(&b[0..8]) + word(&b[8..16]) + word(&b[16..24]) + word(&b[24..32]);
    }
    for w in blocks.remainder().chunks_exact(8) {
        wide += word(w);
    }
    // 128 → 64 → 32 → 16 bits, each with its end-around carry: the sum of the native 16-bit
    // words, modulo 0xffff.
    let (lo, carry) = (wide as u64).overflowing_add((wide >> 64) as u64);
    let x = lo + u64::from(carry);
    let (lo, carry) = (x as u32).overflowing_add((x >> 32) as u32);
    let x = lo + u32::from(carry);
    let (lo, carry) = (x as u16).overflowing_add((x >> 16) as u16);
    let native = lo + u16::from(carry);
    u16::from_be(native)
}

/// `tail` (under 8 bytes, at an even offset of the whole) as big-endian words.
#[inline]
fn sum_be_tail(tail: &[u8]) -> u64 {
    let mut acc = 0;
    let mut words = tail.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The unfolded sum of the IPv4 pseudo-header for an L4 segment of `length` bytes.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: usize) -> u64 {
    let addrs = (u64::from(src.to_bits()) << 32) | u64::from(dst.to_bits());
    sum(&addrs.to_be_bytes(), u64::from(protocol.0) + length as u64)
}

/// The unfolded sum of the IPv6 pseudo-header for an L4 segment of `length` bytes.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: IpProtocol, length: usize) -> u64 {
    let acc = sum(&src.octets(), u64::from(protocol.0) + length as u64);
    sum(&dst.octets(), acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word by word, as RFC 1071 writes it: shares nothing with [`sum`].
    fn naive(bytes: &[u8]) -> u16 {
        let mut s = 0u32;
        for (i, &b) in bytes.iter().enumerate() {
            s += if i % 2 == 0 {
                u32::from(b) << 8
            } else {
                u32::from(b)
            };
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // 0001 f203 f4f5 f6f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
    }

    #[test]
    fn every_length_and_split_agrees_with_the_naive_sum() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 + 17) as u8).collect();
        for len in 0..data.len() {
            let d = &data[..len];
            assert_eq!(fold(sum(d, 0)), naive(d), "len {len}");
            // Pieces at even offsets add up.
            let cut = (len / 3) & !1;
            assert_eq!(fold(sum(&d[cut..], sum(&d[..cut], 0))), naive(d));
        }
        assert_eq!(fold(sum(&[0xff; 65536], 0)), 0xffff);
    }

    #[test]
    fn large_buffers_at_every_alignment_agree_with_the_naive_sum() {
        // A superframe's worth, with patterns that carry in every 16-bit lane.
        let mut x = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for start in 0..16 {
            for len in [1448, 1449, 9000, 65_535, 65_536 - start] {
                let d = &data[start..start + len];
                assert_eq!(fold(sum(d, 0)), naive(d), "start {start}, len {len}");
            }
        }
        for fill in [0x00, 0x01, 0x80, 0xfe, 0xff] {
            let d = vec![fill; 65_536];
            assert_eq!(fold(sum(&d, 0)), naive(&d), "fill {fill:#x}");
        }
    }

    #[test]
    fn pseudo_headers_sum_their_fields() {
        let v4 = pseudo_header_v4(
            Ipv4Addr::new(10, 10, 0, 2),
            Ipv4Addr::new(10, 10, 0, 3),
            IpProtocol::TCP,
            1432,
        );
        let bytes = [10, 10, 0, 2, 10, 10, 0, 3, 0, 6, 0x05, 0x98];
        assert_eq!(fold(v4), naive(&bytes));

        let src: Ipv6Addr = "fd00::2".parse().expect("address");
        let dst: Ipv6Addr = "fd00::3".parse().expect("address");
        let v6 = pseudo_header_v6(src, dst, IpProtocol::UDP, 70000);
        let mut bytes = [src.octets(), dst.octets()].concat();
        bytes.extend_from_slice(&70000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(v6), naive(&bytes));
    }
}
