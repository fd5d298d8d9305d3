//! Small pieces of the host the daemon needs: random bytes and identifiers, atomic small-file
//! writes, the underlay MTU, an exclusive lock on the data dir, whether the mounts the daemon
//! makes outlive it, and who is on the other end of the API socket.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `N` bytes from `/dev/urandom`. The read is tiny and never blocks once the kernel's pool is
/// initialised, so async callers may call it directly.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Milliseconds since 1970 by this host's clock (0 if the clock is before it): for times
/// that are written down or replicated, where an `Instant` would mean nothing after a restart.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 64 lowercase hex digits from the kernel's CSPRNG, like a Docker id.
pub fn random_id() -> io::Result<String> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Replaces `path` with `contents` so that a crash leaves either the old file or the new one:
/// write a temporary file, fsync it, rename it over `path`, fsync the directory. The file is
/// born mode 0600 (the data dir holds the cluster token and state): never readable by others,
/// not even for a moment.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    Staged::write(path, 0o600, &mut contents.as_ref())?.commit()
}

/// A file written in full under a temporary name beside `path` (`path` with the extension
/// `tmp`), not yet renamed over it: [`Staged::commit`] does, dropping it removes the temporary
/// file. Whoever reads `path` sees the old file or the whole new one, never a part (a runtime
/// never executes a half-written plugin).
#[derive(Debug)]
pub struct Staged {
    /// `None` once renamed.
    tmp: Option<std::path::PathBuf>,
    path: std::path::PathBuf,
}

impl Staged {
    /// Writes all of `contents` to the temporary file, born with `mode` (umask aside: the mode
    /// is set on the open file before anything is written), and fsyncs it.
    pub fn write(path: &Path, mode: u32, contents: &mut dyn Read) -> io::Result<Staged> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let tmp = path.with_extension("tmp");
        // A leftover of a crash may have another mode; `mode` applies only to a new file.
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        let staged = Staged {
            tmp: Some(tmp),
            path: path.to_path_buf(),
        };
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        io::copy(contents, &mut file)?;
        file.sync_all()?;
        Ok(staged)
    }

    /// Renames the file over its path and makes that durable.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, &self.path)?;
        }
        self.tmp = None;
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
            _ => Ok(()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Makes the renames and removals inside `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The name and MTU of the interface that holds `addr`, or `None` if no interface does.
pub fn interface_with_addr(addr: Ipv4Addr) -> io::Result<Option<(String, u32)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr of the family it names.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: AF_INET addresses are sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_owned());
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    let Some(name) = found else { return Ok(None) };
    let mtu = interface_mtu(&name)?;
    Ok(Some((name.to_string_lossy().into_owned(), mtu)))
}

fn interface_mtu(name: &CStr) -> io::Result<u32> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: an all-zero ifreq is a valid value; we copy a NUL-terminated name shorter than
    // IFNAMSIZ (kernel names are) into it and pass it to SIOCGIFMTU, which fills ifru_mtu.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        let bytes = name.to_bytes_with_nul();
        if bytes.len() > req.ifr_name.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(req.ifr_ifru.ifru_mtu as u32)
    }
}

/// Holds an exclusive `flock` on `path` for as long as it lives: one daemon per data dir.
pub struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    pub fn acquire(path: &Path) -> io::Result<Option<DirLock>> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(DirLock(file)))
    }
}

/// Whether `dir` (or, while it does not exist, its nearest existing ancestor) is shared with
/// the parent process but this process's mounts are not: the process runs in a mount
/// namespace of its own (as `ip netns exec` makes one) that sees the same directory as its
/// parent. The namespaces vxnet pins by bind mounts under `dir` would
/// then die with the process, while the data dir says they exist. `false` when this cannot be
/// told (the parent's namespace is not readable) and when the parent sees another directory
/// there (a container with a data dir of its own: mounts and data dir live and die together).
pub fn mounts_die_with_process(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = std::os::unix::process::parent_id();
    let ino = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let own_ns = ino(Path::new("/proc/self/ns/mnt"));
    let parent_ns = ino(Path::new(&format!("/proc/{parent}/ns/mnt")));
    let (Some(own_ns), Some(parent_ns)) = (own_ns, parent_ns) else {
        return false;
    };
    if own_ns == parent_ns {
        return false;
    }
    let Ok(absolute) = std::path::absolute(dir) else {
        return false;
    };
    // A data dir not made yet will be made inside its nearest existing ancestor: asking about
    // that one lets the caller refuse before it creates or changes anything.
    let Some(existing) = absolute.ancestors().find(|p| p.exists()) else {
        return false;
    };
    let seen_by_parent = Path::new(&format!("/proc/{parent}/root"))
        .join(existing.strip_prefix("/").unwrap_or(existing));
    ino(existing).is_some() && ino(existing) == ino(&seen_by_parent)
}

/// The supplementary groups of the peer of the connected Unix socket `fd`, as they were when
/// it connected (`SO_PEERGROUPS`, Linux 4.13). On older kernels: the `Groups:` of
/// `/proc/PID/status` of the peer's pid, read now; empty when neither can be read.
pub fn peer_groups(fd: std::os::fd::RawFd, pid: Option<i32>) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: getsockopt(2) writes at most `len` bytes into `groups`' buffer and sets `len`
        // to what it wrote (or, on ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return groups;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            break;
        }
        groups.resize(count.max(groups.len() * 2), 0);
    }
    let Some(pid) = pid.filter(|p| *p > 0) else {
        return Vec::new();
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

/// The gid of group `name` (a name in the group database, or a number).
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the group name"))?;
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: getgrnam_r fills `group` with pointers into `buf`, which outlives its use
        // here; `found` is set to `&group` or null.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some(group.gr_gid));
    }
}

/// Raises this process's soft limit of open files to its hard limit (every endpoint holds
/// descriptors: its TAP, namespace files). Returns `(old, new)` soft limits.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let old = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((old, limit.rlim_cur))
}

/// Makes `dir` a directory only its owner can enter: created 0700 (missing parents as usual),
/// or tightened to 0700 when it exists with more. Returns the old mode when it tightened one.
pub fn private_dir(dir: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))?;
    Ok(Some(mode))
}

/// The environment variable that arms a [`crash_point`].
pub const CRASH_AT_ENV: &str = "VXNET_CRASH_AT";

/// Kills this process at once (SIGKILL, as `kill -9` would) when it was started with
/// `VXNET_CRASH_AT=name`, so that a lab test can crash the daemon at exactly this point of a
/// request. Compiled in only with the `crash-points` feature (the tests crate's workspace
/// builds); a no-op otherwise.
pub fn crash_point(name: &str) {
    #[cfg(feature = "crash-points")]
    if std::env::var(CRASH_AT_ENV).is_ok_and(|v| v == name) {
        tracing::warn!(point = name, "crashing on purpose ({CRASH_AT_ENV})");
        // SAFETY: kill(2) on our own pid has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_from_birth_and_replace_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vxnet-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        // A stale temporary file of another mode is not reused.
        std::fs::write(path.with_extension("tmp"), "stale").expect("stale");
        write_atomically(&path, "one").expect("write");
        write_atomically(&path, "two").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn private_dirs_are_made_0700_and_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vxnet-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        let data = dir.join("a/data");
        assert_eq!(private_dir(&data).expect("make"), None);
        assert_eq!(mode(&data), 0o700);
        assert_ne!(mode(&dir.join("a")), 0o700, "a parent is not the data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("loosen");
        assert_eq!(private_dir(&data).expect("tighten"), Some(0o755));
        assert_eq!(mode(&data), 0o700);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(group_id("root").expect("lookup"), Some(0));
        assert_eq!(group_id("990").expect("number"), Some(990));
        assert_eq!(group_id("no-such-group-vxnet").expect("lookup"), None);
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (_, new) = raise_open_files_limit().expect("setrlimit");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((new, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }

    #[test]
    fn a_socket_peer_has_our_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut ours = vec![0 as libc::gid_t; 256];
        // SAFETY: getgroups fills at most the given count.
        let n = unsafe { libc::getgroups(ours.len() as i32, ours.as_mut_ptr()) };
        assert!(n >= 0);
        ours.truncate(n as usize);
        let mut got = peer_groups(a.as_raw_fd(), None);
        got.sort_unstable();
        ours.sort_unstable();
        assert_eq!(got, ours);
    }

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = random_id().expect("urandom");
        let b = random_id().expect("urandom");
        assert_eq!(a.len(), 64);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn loopback_has_an_mtu() {
        let (name, mtu) = interface_with_addr(Ipv4Addr::LOCALHOST)
            .expect("getifaddrs")
            .expect("lo holds 127.0.0.1");
        assert_eq!(name, "lo");
        assert!(mtu >= 1500);
        assert_eq!(
            interface_with_addr(Ipv4Addr::new(192, 0, 2, 77)).expect("getifaddrs"),
            None
        );
    }

    #[test]
    fn the_data_dir_lock_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("vxnet-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("lock");
        let first = DirLock::acquire(&path).expect("lock");
        assert!(first.is_some());
        assert!(DirLock::acquire(&path).expect("lock").is_none());
        drop(first);
        assert!(DirLock::acquire(&path).expect("lock").is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
