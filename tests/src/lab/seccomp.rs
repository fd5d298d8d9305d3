//! Old-kernel runs: a seccomp filter that makes this machine's kernel answer a vxnet daemon the
//! way Linux 3.10 would, so that the daemon's feature detection and fallbacks run for real.
//!
//! Rules a test relies on:
//! - The lab asks for it through [`KERNEL_ENV`] (`VXNET_LAB_KERNEL`), read when a daemon is
//!   spawned, from that start's own environment first, then the test process's
//!   ([`LabKernel::for_start`]): `3.10` starts the daemon with `--kernel 3.10` *and* under the
//!   filter; `3.10-filter-only` under the filter alone, so that detection alone must find
//!   out; empty or unset, neither. Any other value is an error: only 3.10 has a filter.
//! - What the filter does (x86_64 only; elsewhere [`Linux310::new`] is an error):
//!   - every syscall numbered above 313 (`finit_module`, the last one 3.10 has) fails with
//!     ENOSYS, as on a kernel without that entry: `getrandom`, `memfd_create`, `statx`,
//!     `clone3`, `close_range`, `io_uring_*`, `pidfd_*`, `rseq`, `openat2`, ...;
//!   - `setsockopt`/`getsockopt` of an option 3.10 does not know fails with ENOPROTOOPT, the
//!     answer of 3.10's protocol handlers to an unknown option: `SOL_SOCKET` 46 and up
//!     (`SO_BUSY_POLL`, 3.11, onward), `SOL_IP` 23–31 and 51–63 (`IP_CHECKSUM`,
//!     `IP_BIND_ADDRESS_NO_PORT`, ..., `IP_LOCAL_PORT_RANGE`; 64 and up is netfilter's, which
//!     3.10 has), `SOL_TCP` 25 and up (`TCP_NOTSENT_LOWAT`, 3.12, onward), `SOL_UDP` 101 and
//!     up (`UDP_NO_CHECK6_*`, `UDP_SEGMENT`, `UDP_GRO`), `SOL_NETLINK` 8 and up
//!     (`NETLINK_LISTEN_ALL_NSID`, `NETLINK_EXT_ACK`, `NETLINK_GET_STRICT_CHK`, ...);
//!   - `ioctl(TUNSETOFFLOAD)` with a flag above `TUN_F_UFO` (`TUN_F_USO4`/`USO6`, 6.2) fails
//!     with EINVAL, as 3.10's tun driver answers unknown offload flags;
//!   - everything else is allowed.
//! - The filter binds the process that installs it, its threads, its children and what they
//!   exec (it sets `no_new_privs`, which a root daemon does not miss). Installing it in a
//!   command's `pre_exec` after the lab's `setns` ([`Linux310::install_in_child`]) leaves the
//!   test process untouched.
//! - The programs are compiled when a [`Linux310`] is made, before any fork: the `pre_exec`
//!   hook only makes syscalls (prctl, seccomp), nothing that allocates.
//! - The number filter is installed last: installing a filter is `seccomp(2)`, number 317,
//!   which it refuses.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{bail, Context, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Environment variable that asks the lab for old-kernel daemons (see the module docs).
pub const KERNEL_ENV: &str = "VXNET_LAB_KERNEL";
/// The one kernel the lab can imitate.
pub const KERNEL_3_10: &str = "3.10";

/// The last syscall of Linux 3.10 on x86_64 (`finit_module`); everything above came later.
pub const LAST_SYSCALL_3_10: i64 = 313;
/// Syscall numbers the filter refuses run from 314 to this. x86_64 has ~470 today; 512 and up
/// are the x32 ABI's numbers, which an x86_64 process cannot call anyway.
const SYSCALL_CEILING: i64 = 511;

const TUNSETOFFLOAD: u64 = 0x4004_54d0;
/// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO`: the flags 3.10 knows.
const TUN_FLAGS_3_10: u64 = 0x1f;

/// Per socket level, the option numbers 3.10 does not know, as inclusive ranges.
const UNKNOWN_OPTIONS: &[(i32, u32, u32)] = &[
    (libc::SOL_SOCKET, 46, u32::MAX),
    (libc::SOL_IP, 23, 31),
    (libc::SOL_IP, 51, 63),
    (libc::SOL_TCP, 25, u32::MAX),
    (libc::SOL_UDP, 101, u32::MAX),
    (libc::SOL_NETLINK, 8, u32::MAX),
];

/// The compiled 3.10 filter, ready to install (see the module docs).
#[derive(Debug, Clone)]
pub struct Linux310 {
    /// In the order they must be installed: socket options, ioctls, syscall numbers.
    programs: Vec<BpfProgram>,
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition> {
    SeccompCondition::new(arg, len, op, value).context("seccomp condition")
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        TargetArch::x86_64,
    )
    .context("seccomp filter")?;
    BpfProgram::try_from(filter).context("compiling the seccomp filter")
}

impl Linux310 {
    pub fn new() -> Result<Linux310> {
        if !cfg!(target_arch = "x86_64") {
            bail!("the 3.10 seccomp filter knows x86_64's syscall numbers only");
        }
        use SeccompCmpArgLen::{Dword, Qword};
        let mut option_rules = Vec::new();
        for &(level, first, last) in UNKNOWN_OPTIONS {
            let mut conditions = vec![
                condition(1, Dword, SeccompCmpOp::Eq, level as u64)?,
                condition(2, Dword, SeccompCmpOp::Ge, u64::from(first))?,
            ];
            if last != u32::MAX {
                conditions.push(condition(2, Dword, SeccompCmpOp::Le, u64::from(last))?);
            }
            option_rules.push(SeccompRule::new(conditions).context("seccomp rule")?);
        }
        let options = compile(
            [
                (libc::SYS_setsockopt, option_rules.clone()),
                (libc::SYS_getsockopt, option_rules),
            ]
            .into_iter()
            .collect(),
            libc::ENOPROTOOPT,
        )?;
        let tun = compile(
            [(
                libc::SYS_ioctl,
                vec![SeccompRule::new(vec![
                    condition(1, Dword, SeccompCmpOp::Eq, TUNSETOFFLOAD)?,
                    condition(2, Qword, SeccompCmpOp::Gt, TUN_FLAGS_3_10)?,
                ])
                .context("seccomp rule")?],
            )]
            .into_iter()
            .collect(),
            libc::EINVAL,
        )?;
        // An empty rule list matches the syscall whatever its arguments.
        let syscalls = compile(
            (LAST_SYSCALL_3_10 + 1..=SYSCALL_CEILING)
                .map(|nr| (nr, Vec::new()))
                .collect(),
            libc::ENOSYS,
        )?;
        Ok(Linux310 {
            programs: vec![options, tun, syscalls],
        })
    }

    /// Installs the filter on the calling thread (and what it starts from now on). Makes only
    /// syscalls: fit for `pre_exec`.
    pub fn install(&self) -> std::io::Result<()> {
        for program in &self.programs {
            seccompiler::apply_filter(program).map_err(|e| match e {
                seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
                _ => std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        }
        Ok(())
    }

    /// Arranges for `command` to install the filter between fork and exec, after the
    /// `pre_exec` hooks already set (the lab's `setns`: hooks run in the order they were added).
    pub fn install_in_child(&self, command: &mut Command) {
        let filter = self.clone();
        // SAFETY: the hook only calls prctl(2) and seccomp(2) on programs compiled before the
        // fork; it neither allocates nor takes locks.
        unsafe {
            command.pre_exec(move || filter.install());
        }
    }
}

/// What the lab does to one daemon start for an old-kernel run.
#[derive(Debug, Clone)]
pub struct LabKernel {
    /// `--kernel VERSION` for the daemon, unless the run tests detection alone.
    pub flag: Option<&'static str>,
    pub filter: Linux310,
}

impl LabKernel {
    /// From [`KERNEL_ENV`] in this start's `env` if it is there, else in the test process's
    /// environment; `None` when neither asks.
    pub fn for_start(env: &[(&str, &str)]) -> Result<Option<LabKernel>> {
        let value = match env.iter().rev().find(|(k, _)| *k == KERNEL_ENV) {
            Some((_, v)) => v.to_string(),
            None => std::env::var(KERNEL_ENV).unwrap_or_default(),
        };
        let flag = match value.trim() {
            "" => return Ok(None),
            KERNEL_3_10 => Some(KERNEL_3_10),
            "3.10-filter-only" => None,
            other => bail!(
                "{KERNEL_ENV}={other:?}: the lab imitates 3.10 only (3.10 or 3.10-filter-only)"
            ),
        };
        Ok(Some(LabKernel {
            flag,
            filter: Linux310::new()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc >= 0 {
            return 0;
        }
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }

    fn getrandom() -> i32 {
        let mut buf = [0u8; 8];
        // SAFETY: getrandom(2) into a live 8-byte buffer.
        errno_of(unsafe { libc::syscall(libc::SYS_getrandom, buf.as_mut_ptr(), buf.len(), 0) })
    }

    fn sockopt(socket: &UdpSocket, set: bool, level: i32, option: i32) -> i32 {
        let mut value: libc::c_int = 1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let fd = socket.as_raw_fd();
        let ptr = (&mut value as *mut libc::c_int).cast();
        // SAFETY: a live socket and a c_int-sized option buffer with its length.
        let rc = unsafe {
            if set {
                libc::setsockopt(fd, level, option, ptr, len)
            } else {
                libc::getsockopt(fd, level, option, ptr, &mut len)
            }
        };
        errno_of(rc.into())
    }

    /// What a thread sees of the probes: getrandom, UDP_GRO set, UDP_SEGMENT get, SO_REUSEADDR
    /// set, SO_BUSY_POLL get, and getpid (allowed everywhere).
    fn probe() -> Vec<i32> {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        vec![
            getrandom(),
            sockopt(&socket, true, libc::SOL_UDP, libc::UDP_GRO),
            sockopt(&socket, false, libc::SOL_UDP, libc::UDP_SEGMENT),
            sockopt(&socket, true, libc::SOL_SOCKET, libc::SO_REUSEADDR),
            sockopt(&socket, false, libc::SOL_SOCKET, libc::SO_BUSY_POLL),
            // SAFETY: getpid(2) takes nothing.
            errno_of(unsafe { libc::syscall(libc::SYS_getpid) }),
        ]
    }

    /// The filter binds only the thread that installs it, so it is tried on a thread of its
    /// own, next to an unfiltered one: the same probes must answer differently.
    #[test]
    fn the_filter_answers_like_3_10() {
        let filter = Linux310::new().expect("compiles");
        let unfiltered = std::thread::spawn(probe).join().expect("probe thread");
        assert_eq!(unfiltered, vec![0; 6], "this kernel has all of them");
        let filtered = std::thread::spawn(move || {
            filter.install().expect("installs");
            probe()
        })
        .join()
        .expect("filtered probe thread");
        assert_eq!(
            filtered,
            vec![
                libc::ENOSYS,
                libc::ENOPROTOOPT,
                libc::ENOPROTOOPT,
                0,
                libc::ENOPROTOOPT,
                0
            ],
            "getrandom, UDP_GRO, UDP_SEGMENT, SO_REUSEADDR, SO_BUSY_POLL, getpid"
        );
    }

    /// A child gets the filter in `pre_exec` and keeps it across exec: its own status says so.
    #[test]
    fn a_child_runs_under_the_filter() {
        let filter = Linux310::new().expect("compiles");
        let status_of = |filtered: bool| {
            let mut c = Command::new("cat");
            c.arg("/proc/self/status");
            if filtered {
                filter.install_in_child(&mut c);
            }
            let out = c.output().expect("cat runs");
            assert!(out.status.success(), "cat failed: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("Seccomp_filters:"))
                .map(|v| v.trim().to_string())
                .expect("the kernel reports Seccomp_filters")
        };
        assert_eq!(status_of(false), "0");
        assert_eq!(status_of(true), "3");
    }

    #[test]
    fn the_lab_reads_its_variable() {
        let kernel = |v: &str| LabKernel::for_start(&[(KERNEL_ENV, v)]);
        assert_eq!(
            kernel("3.10").expect("3.10").expect("asked").flag,
            Some("3.10")
        );
        assert_eq!(
            kernel("3.10-filter-only").expect("ok").expect("asked").flag,
            None
        );
        assert!(kernel("").expect("empty").is_none());
        assert!(kernel("4.4").is_err());
    }
}
