//! Linux versions, and which kernel features the dataplane may use.
//!
//! Rules a caller relies on:
//! - A [`KernelVersion`] is `MAJOR.MINOR`; it orders as versions do (3.10 < 4.18 < 5.0).
//! - A limit (`--kernel 3.10`) only takes features away: a feature newer than the limit is
//!   never tried. Every feature that is allowed is still detected at run time and has a
//!   fallback, so a kernel that refuses one works with or without a limit.
//! - [`udp_gro_trusted`] reads the running kernel's release once (uname); a release that does
//!   not parse is not trusted.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A Linux release, `MAJOR.MINOR` (the patch level does not decide any feature here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32) -> KernelVersion {
        KernelVersion { major, minor }
    }

    /// The version at the start of a release string as uname prints it (`6.8.0-45-generic`,
    /// `3.10.0-1160.el7.x86_64`, `5.4`); `None` if it does not start with `MAJOR.MINOR`.
    pub fn from_release(release: &str) -> Option<KernelVersion> {
        let mut parts = release.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(KernelVersion::new(major, minor.parse().ok()?))
    }

    /// The running kernel's version (uname), read once; `None` if its release does not parse.
    pub fn running() -> Option<KernelVersion> {
        static RUNNING: OnceLock<Option<KernelVersion>> = OnceLock::new();
        *RUNNING.get_or_init(|| {
            // SAFETY: uname fills the all-zero struct it is given; its fields are
            // NUL-terminated C strings within their arrays.
            let release = unsafe {
                let mut name: libc::utsname = std::mem::zeroed();
                if libc::uname(&mut name) != 0 {
                    return None;
                }
                std::ffi::CStr::from_ptr(name.release.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            };
            KernelVersion::from_release(&release)
        })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a string is not a [`KernelVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a kernel version (use MAJOR.MINOR, e.g. 3.10)")]
pub struct BadKernelVersion(pub String);

impl FromStr for KernelVersion {
    type Err = BadKernelVersion;

    /// Exactly `MAJOR.MINOR`, both decimal numbers (`3.10`, `5.4`); nothing else.
    fn from_str(s: &str) -> Result<KernelVersion, BadKernelVersion> {
        let bad = || BadKernelVersion(s.to_string());
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let number = |part: &str| -> Result<u32, BadKernelVersion> {
            if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        Ok(KernelVersion::new(number(major)?, number(minor)?))
    }
}

/// `IFF_MULTI_QUEUE`: a TAP with one file (queue) per forwarding worker.
pub const MULTI_QUEUE_TAP: KernelVersion = KernelVersion::new(3, 8);
/// `SO_REUSEPORT`: several sockets on one UDP port, the kernel spreading flows over them.
pub const REUSEPORT: KernelVersion = KernelVersion::new(3, 9);
/// `VIRTIO_NET_HDR_GSO_UDP_L4` in what is written into a TAP: the kernel cuts a UDP superframe
/// into datagrams (the TUN/TAP USO work of Linux 6.2).
pub const TAP_UDP_SEGMENTATION: KernelVersion = KernelVersion::new(6, 2);
/// `UDP_SEGMENT`: the kernel cuts one large send into datagrams (UDP GSO).
pub const UDP_SEGMENT: KernelVersion = KernelVersion::new(4, 18);
/// `UDP_GRO`: the kernel merges received datagrams of a flow into one read.
pub const UDP_GRO: KernelVersion = KernelVersion::new(5, 0);
/// The first release whose UDP GRO we trust (see [`udp_gro_trusted`]).
pub const UDP_GRO_KNOWN_GOOD: KernelVersion = KernelVersion::new(5, 12);

/// Whether a dataplane limited to `limit` (`None`: no limit) may use a feature that came with
/// `feature`.
pub fn allows(limit: Option<KernelVersion>, feature: KernelVersion) -> bool {
    limit.is_none_or(|limit| feature <= limit)
}

/// Whether the running kernel's UDP GRO may be used. Kernels from 5.0 accept the option, but
/// the releases before 5.12 still had UDP GRO bugs that lose or mangle merged datagrams
/// instead of refusing the option, so detection cannot catch them; wireguard-go turns UDP GRO
/// on only from 5.12 for that reason, and so do we. A distribution kernel that backported the
/// fixes to an older release loses a speed-up, not a packet.
pub fn udp_gro_trusted() -> bool {
    KernelVersion::running().is_some_and(|running| running >= UDP_GRO_KNOWN_GOOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_minor_only() {
        assert_eq!("3.10".parse(), Ok(KernelVersion::new(3, 10)));
        assert_eq!("5.0".parse(), Ok(KernelVersion::new(5, 0)));
        for bad in [
            "", "3", "3.", ".10", "3.10.0", "3.x", "v3.10", " 3.10", "-3.10", "3.+1", "99999.1",
        ] {
            assert!(bad.parse::<KernelVersion>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(KernelVersion::new(3, 10).to_string(), "3.10");
    }

    #[test]
    fn orders_as_versions_do() {
        assert!(KernelVersion::new(3, 10) < KernelVersion::new(3, 11));
        assert!(KernelVersion::new(3, 10) > KernelVersion::new(3, 9));
        assert!(KernelVersion::new(4, 18) < UDP_GRO);
        assert!(UDP_GRO < UDP_GRO_KNOWN_GOOD);
    }

    #[test]
    fn reads_releases_as_uname_prints_them() {
        for (release, want) in [
            ("6.8.0-45-generic", (6, 8)),
            ("3.10.0-1160.el7.x86_64", (3, 10)),
            ("5.12", (5, 12)),
            ("5.4.0", (5, 4)),
            ("4.19-rc1", (4, 19)),
        ] {
            assert_eq!(
                KernelVersion::from_release(release),
                Some(KernelVersion::new(want.0, want.1)),
                "{release}"
            );
        }
        for bad in ["", "linux", "6", "6.x"] {
            assert_eq!(KernelVersion::from_release(bad), None, "{bad:?}");
        }
        assert!(KernelVersion::running().is_some(), "uname's release parses");
    }

    #[test]
    fn a_limit_takes_newer_features_away() {
        let old = Some(KernelVersion::new(3, 10));
        assert!(!allows(old, UDP_SEGMENT));
        assert!(!allows(old, UDP_GRO));
        assert!(allows(old, KernelVersion::new(3, 0)));
        assert!(allows(old, KernelVersion::new(3, 10)));
        assert!(allows(Some(KernelVersion::new(4, 18)), UDP_SEGMENT));
        assert!(!allows(Some(KernelVersion::new(4, 17)), UDP_SEGMENT));
        assert!(allows(None, UDP_GRO));
        assert!(allows(old, MULTI_QUEUE_TAP) && allows(old, REUSEPORT));
        assert!(!allows(Some(KernelVersion::new(3, 8)), REUSEPORT));
    }
}
