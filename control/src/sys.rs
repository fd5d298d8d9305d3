//! Small pieces of the host the daemon needs: random bytes and identifiers, atomic small-file
//! writes, the underlay MTU, an exclusive lock on the data dir, and whether the mounts the
//! daemon makes outlive it.

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

/// Whether `dir` is shared with the parent process but this process's mounts are not: the
/// process runs in a mount namespace of its own (as `ip netns exec` makes one) that sees the
/// same directory as its parent. The namespaces vxnet pins by bind mounts under `dir` would
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
    let seen_by_parent = Path::new(&format!("/proc/{parent}/root"))
        .join(absolute.strip_prefix("/").unwrap_or(absolute.as_path()));
    ino(&absolute).is_some() && ino(&absolute) == ino(&seen_by_parent)
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
