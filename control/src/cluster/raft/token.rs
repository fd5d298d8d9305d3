//! The join token: what `vxnet cluster token` prints and `vxnet cluster join` takes.
//!
//! Rules a caller relies on:
//!
//! - A [`JoinToken`] is written `vxnet-<CA fingerprint>-<secret>`: `vxnet-`, 64 lowercase hex
//!   digits of the SHA-256 of the cluster CA certificate (DER), `-`, 64 lowercase hex digits
//!   of the 32-byte join secret. Parsing accepts either case and surrounding whitespace;
//!   anything else is a [`TokenError`] that says what is wrong. `Debug` never shows the secret.
//! - The fingerprint is public (it only names the CA); the secret is what admits a host. A
//!   joiner pins the CA by the fingerprint before it sends anything, and sends the secret only
//!   inside that TLS session.
//! - A token of the form vxnet used before mutual TLS (`vxnet-` and 64 hex digits, no
//!   fingerprint) is refused with [`TokenError::OldFormat`], which says to print a new one.

use std::fmt;
use std::str::FromStr;

/// What every printed token starts with, so a token is recognisable in a shell history.
pub const TOKEN_PREFIX: &str = "vxnet-";
/// Bytes of the CA fingerprint and of the secret.
pub const PART_LEN: usize = 32;

/// The cluster CA's fingerprint and the join secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_fingerprint: [u8; PART_LEN],
    pub secret: [u8; PART_LEN],
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}{}-{}",
            hex(&self.ca_fingerprint),
            hex(&self.secret)
        )
    }
}

impl fmt::Debug for JoinToken {
    // Debug output ends up in logs; the secret must not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken(ca {}, ..)", hex(&self.ca_fingerprint))
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a string is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a cluster token starts with \"vxnet-\"; print it with `vxnet cluster token` on a member"
    )]
    MissingPrefix,
    #[error(
        "this cluster token is from a vxnet before mutual TLS (it has no CA fingerprint); print \
         a current one with `vxnet cluster token` on a member"
    )]
    OldFormat,
    #[error(
        "a cluster token is \"vxnet-\", 64 hex digits, \"-\" and 64 hex digits, but this one \
         has {0} characters after \"vxnet-\""
    )]
    Length(usize),
    #[error("a cluster token has only hex digits after \"vxnet-\", but this one contains {0:?}")]
    NotHex(char),
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<JoinToken, TokenError> {
        let rest = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::MissingPrefix)?;
        if rest.len() == 2 * PART_LEN && rest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TokenError::OldFormat);
        }
        let (fingerprint, secret) = rest
            .split_once('-')
            .ok_or(TokenError::Length(rest.chars().count()))?;
        Ok(JoinToken {
            ca_fingerprint: parse_part(fingerprint, rest)?,
            secret: parse_part(secret, rest)?,
        })
    }
}

fn parse_part(part: &str, whole: &str) -> Result<[u8; PART_LEN], TokenError> {
    if let Some(c) = part.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(TokenError::NotHex(c));
    }
    // Only ASCII hex digits are left, so bytes and chars agree.
    if part.len() != 2 * PART_LEN {
        return Err(TokenError::Length(whole.chars().count()));
    }
    let mut bytes = [0u8; PART_LEN];
    for (byte, pair) in bytes.iter_mut().zip(part.as_bytes().chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(bytes)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0, // unreachable: the caller checked every digit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            ca_fingerprint: [0xab; PART_LEN],
            secret: [0x01; PART_LEN],
        }
    }

    #[test]
    fn round_trip() {
        let t = token();
        let s = t.to_string();
        assert_eq!(s.len(), 6 + 64 + 1 + 64);
        assert!(s.starts_with(&format!("vxnet-{}-", "ab".repeat(32))));
        assert_eq!(s.parse::<JoinToken>(), Ok(t.clone()));
        let shouted = format!("  {}\n", s.to_uppercase().replace("VXNET-", "vxnet-"));
        assert_eq!(shouted.parse::<JoinToken>(), Ok(t));
    }

    #[test]
    fn debug_hides_secret() {
        let d = format!("{:?}", token());
        assert!(!d.contains("0101"), "{d}");
    }

    #[test]
    fn malformed() {
        let h = "0".repeat(64);
        assert_eq!(h.parse::<JoinToken>(), Err(TokenError::MissingPrefix));
        assert_eq!(
            format!("vxnet-{h}").parse::<JoinToken>(),
            Err(TokenError::OldFormat)
        );
        assert_eq!(
            format!("vxnet-{h}-abc").parse::<JoinToken>(),
            Err(TokenError::Length(68))
        );
        assert_eq!(
            format!("vxnet-{h}{h}").parse::<JoinToken>(),
            Err(TokenError::Length(128))
        );
        assert_eq!(
            format!("vxnet-{h}-{}g", &h[1..]).parse::<JoinToken>(),
            Err(TokenError::NotHex('g'))
        );
    }
}
