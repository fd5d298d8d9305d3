//! Network namespaces: pinning, checking, resolving, and running netlink code inside one.
//!
//! Rules a caller relies on:
//!
//! - **Everything here blocks.** The daemon calls it from its control thread (on a tokio
//!   worker it would stall that worker); tests call it directly. It needs no runtime of the
//!   caller's: netlink work brings its own, on its own thread.
//! - **The calling thread never changes namespace.** On Linux the network namespace is a
//!   property of a thread. Work inside a namespace runs on a [`NetnsWorker`]: a thread that
//!   `setns`es into it once, opens one rtnetlink connection there, and runs jobs on its own
//!   current-thread runtime until it is dropped. A sandbox keeps one for its lifetime; a
//!   one-off ([`in_netns`], [`run_in_netns`]) starts one and drops it after the job.
//! - **Netlink sockets are opened after `setns`.** A netlink socket belongs to the namespace it
//!   was created in, whatever thread later uses it; the worker opens its connection once it
//!   is inside. The same holds for anything else that binds to "the current namespace" when
//!   it is created: a TAP opened in a job is created inside; its fd may then be used anywhere.
//! - **A worker keeps its namespace alive** (its thread is inside it): drop it before
//!   unpinning, or the namespace outlives its pin.
//! - **Pinned namespaces live under the daemon's data dir.** [`create_pinned_netns`] is
//!   `ip netns add` without the shared `/var/run/netns`, so several daemons on one machine
//!   cannot collide. A pin outlives the daemon process, but not a reboot (nor the mount
//!   namespace it was made in): afterwards the file is still there, empty, [`is_live_netns`]
//!   says `false`, and [`create_pinned_netns`] makes a fresh namespace on the same file.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc;
use std::thread;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::Handle;

use super::error::{netlink_errno, HostError};
use crate::wire::MacAddr;

/// Where `ip netns add NAME` pins a namespace; a bare TARGET name is looked up here.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

pub use vxnet_proto::types::IFNAME_MAX;

/// Resolves a `network connect` TARGET (README, "The command line") to the path of a network namespace file.
///
/// - `pid:PID` → `/proc/PID/ns/net`
/// - an absolute path → itself (`/proc/PID/ns/net`, a bind mount such as `/var/run/netns/c1`)
/// - anything else is a name made by `ip netns add` → `/var/run/netns/NAME`
///
/// The file must exist and be a network namespace; the errors say which form was understood
/// and what to do.
pub fn resolve_target(target: &str) -> Result<PathBuf, HostError> {
    let invalid = |reason| HostError::InvalidTarget {
        target: target.to_string(),
        reason,
    };
    let path = if let Some(pid) = target.strip_prefix("pid:") {
        let pid: u32 = pid
            .parse()
            .map_err(|_| invalid("the part after \"pid:\" must be a process id"))?;
        if pid == 0 {
            return Err(invalid("pid 0 is not a process"));
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        if !path.exists() {
            return Err(HostError::ProcessNotFound { pid, path });
        }
        path
    } else if target.starts_with('/') {
        let path = PathBuf::from(target);
        if !path.exists() {
            return Err(HostError::NetnsFileNotFound { path });
        }
        path
    } else {
        if target.is_empty() {
            return Err(invalid("it is empty"));
        }
        if target.contains('/') || target == "." || target == ".." {
            return Err(invalid(
                "a path must be absolute; a name made by `ip netns add` has no '/'",
            ));
        }
        let path = Path::new(NETNS_RUN_DIR).join(target);
        if !path.exists() {
            return Err(HostError::NamedNetnsNotFound {
                name: target.to_string(),
                path,
            });
        }
        path
    };
    open_netns(&path)?;
    Ok(path)
}

/// Opens `path` and checks that it is a network namespace (not an empty pin file left by a
/// reboot, not another kind of namespace).
pub fn open_netns(path: &Path) -> Result<File, HostError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            HostError::NetnsFileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            HostError::os(format!("open {}", path.display()), source)
        }
    })?;
    if is_netns_file(&file)? {
        Ok(file)
    } else {
        Err(HostError::NotANetns {
            path: path.to_path_buf(),
        })
    }
}

/// True if `path` is a live network namespace: a pin that survived, or `/proc/PID/ns/net` of
/// a running process. False for a missing file, an empty pin file after a reboot, another
/// kind of file, or one this process may not enter.
pub fn is_live_netns(path: &Path) -> bool {
    open_netns(path).is_ok()
}

/// Makes a new, empty network namespace and pins it on `path` (created, with its parent
/// directories, if missing; reused if it is a stale pin file from before a reboot).
///
/// Refuses to stack a second namespace on a live pin: the caller adopts that one instead.
pub fn create_pinned_netns(path: &Path) -> Result<(), HostError> {
    let op = || format!("pin a new network namespace at {}", path.display());
    if is_live_netns(path) {
        return Err(HostError::os(
            op(),
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a live network namespace is already pinned there",
            ),
        ));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HostError::os(op(), e))?;
    }
    let created = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(HostError::os(op(), e)),
    };
    let target = c_path(path)?;
    let result = on_worker_thread(&op(), || {
        // Only this thread enters the new namespace, and it ends right after pinning it, so
        // no other code runs there by accident.
        // SAFETY: plain syscall, no pointers.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(HostError::os(op(), io::Error::last_os_error()));
        }
        // /proc/thread-self exists only since Linux 3.17; task/TID works on every kernel.
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let source = c_path(Path::new(&format!("/proc/self/task/{tid}/ns/net")))?;
        // SAFETY: both paths are NUL-terminated C strings that outlive the call; fstype and
        // data may be null for a bind mount.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(HostError::os(op(), io::Error::last_os_error()));
        }
        Ok(())
    })
    .and_then(|r| r);
    if result.is_err() && created {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Unpins the namespace at `path` and removes the file. The namespace itself, with every
/// device in it (and the container ends of its veths), goes once nothing else holds it: a
/// process inside, or an open fd such as a TAP created in it. Missing pins are not an error.
pub fn remove_pinned_netns(path: &Path) -> Result<(), HostError> {
    let op = || format!("remove the pinned network namespace {}", path.display());
    let target = c_path(path)?;
    // Pins may be stacked if something else mounted on top; peel all of them so the file
    // can be removed (bounded, in case the kernel keeps reporting success).
    for _ in 0..16 {
        // SAFETY: target is a NUL-terminated C string that outlives the call.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Not (or no longer) a mount point / no such file: nothing left to unpin.
                Some(libc::EINVAL) | Some(libc::ENOENT) => break,
                _ => return Err(HostError::os(op(), e)),
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HostError::os(op(), e)),
    }
}

/// A job for a [`NetnsWorker`]: it gets the worker's netlink handle and returns the future the
/// worker drives (which need not be `Send`: it is made and run on the worker's thread).
type Job = Box<dyn FnOnce(Handle) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A thread inside one network namespace with a netlink connection opened there; see the
/// module docs. Jobs run one at a time, in the order given.
#[derive(Debug)]
pub struct NetnsWorker {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NetnsWorker {
    /// Starts a worker inside the network namespace at `ns` (which must be one).
    pub fn start(ns: &Path) -> Result<NetnsWorker, HostError> {
        let file = open_netns(ns)?;
        let path = ns.to_path_buf();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), HostError>>(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let entered = path.clone();
        let thread = thread::Builder::new()
            .name("vxnet-netns".to_string())
            .spawn(move || {
                let (runtime, handle) = match worker_setup(&file, &entered) {
                    Ok(ready) => {
                        let _ = ready_tx.send(Ok(()));
                        ready
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                drop(file);
                while let Ok(job) = jobs_rx.recv() {
                    runtime.block_on(job(handle.clone()));
                }
            })
            .map_err(|e| HostError::os("start a namespace worker thread", e))?;
        let worker = NetnsWorker {
            path,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(HostError::WorkerPanicked {
                op: format!("enter network namespace {}", ns.display()),
            }),
        }
    }

    /// Runs the netlink work `f` inside the namespace and returns its result. `f` may also do
    /// blocking work that binds to the current namespace, such as opening a TAP.
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, HostError>
    where
        F: FnOnce(Handle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, HostError>> + 'static,
        T: Send + 'static,
    {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |handle| {
            Box::pin(async move {
                let _ = done_tx.send(f(handle).await);
            })
        });
        let gone = || HostError::WorkerPanicked {
            op: format!("work inside network namespace {}", self.path.display()),
        };
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        jobs.send(job).map_err(|_| gone())?;
        done_rx.recv().map_err(|_| gone())?
    }
}

impl NetnsWorker {
    /// Every link in the worker's namespace, with its IPv4 addresses.
    pub fn links(&self) -> Result<Vec<LinkSummary>, HostError> {
        self.run(|handle| async move { dump_links(&handle).await })
    }
}

impl Drop for NetnsWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop; joining it leaves the namespace for good.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// On the worker's thread: enter the namespace, then make the runtime and the netlink
/// connection (in that order: the socket must be born inside).
fn worker_setup(file: &File, ns: &Path) -> Result<(tokio::runtime::Runtime, Handle), HostError> {
    enter_netns(file)
        .map_err(|e| HostError::os(format!("enter network namespace {}", ns.display()), e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::os("start a tokio runtime for netlink", e))?;
    let handle = runtime.block_on(async {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| HostError::os("open a netlink socket", e))?;
        tokio::spawn(connection);
        Ok::<_, HostError>(handle)
    })?;
    Ok((runtime, handle))
}

/// Runs the netlink work `f` once inside the network namespace at `ns`, on a worker started
/// for it (see [`NetnsWorker::run`]).
pub fn in_netns<F, Fut, T>(ns: &Path, f: F) -> Result<T, HostError>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, HostError>> + 'static,
    T: Send + 'static,
{
    NetnsWorker::start(ns)?.run(f)
}

/// Runs the blocking work `f` once inside the network namespace at `ns`: whatever it creates
/// that binds to the current namespace (sockets, TAP devices) is created inside.
pub fn run_in_netns<T, F>(ns: &Path, f: F) -> Result<T, HostError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, HostError> + Send + 'static,
{
    in_netns(ns, move |_| async move { f() })
}

/// One network interface as seen from inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    pub mac: Option<MacAddr>,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// Every link in the namespace at `ns`, with its IPv4 addresses.
pub fn links(ns: &Path) -> Result<Vec<LinkSummary>, HostError> {
    NetnsWorker::start(ns)?.links()
}

/// The interface name `network connect` gives a container without `--ifname`: `eth0`, else
/// the lowest free `ethN`.
pub fn next_free_ifname(target: &Path) -> Result<String, HostError> {
    let taken: Vec<String> = links(target)?.into_iter().map(|l| l.name).collect();
    (0..1000)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(name))
        .ok_or_else(|| HostError::NoFreeIfname {
            target: target.to_path_buf(),
        })
}

/// Checks a name the kernel will take as an interface name, so that a bad `--ifname` gets a
/// clear message instead of a bare EINVAL.
pub fn validate_ifname(name: &str) -> Result<(), HostError> {
    let invalid = |reason| HostError::InvalidIfname {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > IFNAME_MAX {
        return Err(invalid("it is longer than 15 bytes (IFNAME_MAX)"));
    }
    if name == "." || name == ".." {
        return Err(invalid("\".\" and \"..\" are reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "it contains '/', ':', whitespace or a control character",
        ));
    }
    Ok(())
}

async fn dump_links(handle: &Handle) -> Result<Vec<LinkSummary>, HostError> {
    let mut links: Vec<LinkSummary> = handle
        .link()
        .get()
        .execute()
        .map_ok(|msg| {
            let mut link = LinkSummary {
                index: msg.header.index,
                name: String::new(),
                mtu: 0,
                up: msg.header.flags.contains(LinkFlags::Up),
                mac: None,
                controller: None,
                ipv4: Vec::new(),
            };
            for attr in msg.attributes {
                match attr {
                    LinkAttribute::IfName(name) => link.name = name,
                    LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                    LinkAttribute::Address(addr) => link.mac = MacAddr::from_slice(&addr),
                    LinkAttribute::Controller(index) => link.controller = Some(index),
                    _ => {}
                }
            }
            link
        })
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list network interfaces", e))?;
    let addresses: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list addresses", e))?;
    for msg in addresses {
        let Some(link) = links.iter_mut().find(|l| l.index == msg.header.index) else {
            continue;
        };
        for attr in &msg.attributes {
            if let AddressAttribute::Local(std::net::IpAddr::V4(ip)) = attr {
                link.ipv4.push((*ip, msg.header.prefix_len));
            }
        }
    }
    Ok(links)
}

/// Index of the link called `name`, or `None` if there is none.
pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, HostError> {
    match handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(msg) => Ok(msg.map(|m| m.header.index)),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(HostError::netlink(format!("look up interface {name}"), e)),
    }
}

/// Runs `f` on a fresh thread and waits for it. Namespace switches made on that thread die
/// with it. Scoped, so `f` may borrow from the caller.
fn on_worker_thread<T, F>(op: &str, f: F) -> Result<T, HostError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("vxnet-netns".to_string())
            .spawn_scoped(scope, f)
            .map_err(|e| HostError::os("start a namespace worker thread", e))?;
        worker
            .join()
            .map_err(|_| HostError::WorkerPanicked { op: op.to_string() })
    })
}

fn enter_netns(file: &File) -> io::Result<()> {
    // SAFETY: the fd is valid for as long as `file` is borrowed.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an open file is a network namespace. Cheap and unprivileged on current kernels
/// (nsfs + `NS_GET_NSTYPE`, 4.11+); older kernels, whose namespace files lived on procfs or
/// lack the ioctl, get the definitive test: `setns` on a throwaway thread.
fn is_netns_file(file: &File) -> Result<bool, HostError> {
    let fd = file.as_raw_fd();
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is valid while `file` is borrowed; st is a valid out pointer.
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return Err(HostError::os(
            "inspect a namespace file",
            io::Error::last_os_error(),
        ));
    }
    // f_type is c_long, c_int or c_uint depending on the target; widen both sides alike.
    #[allow(clippy::useless_conversion)]
    let (fs_type, nsfs, procfs) = (
        i64::from(st.f_type),
        i64::from(libc::NSFS_MAGIC),
        i64::from(libc::PROC_SUPER_MAGIC),
    );
    if fs_type == nsfs {
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
        let kind = unsafe { libc::ioctl(fd, libc::NS_GET_NSTYPE) };
        if kind >= 0 {
            return Ok(kind == libc::CLONE_NEWNET);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ENOTTY) {
            return Ok(false);
        }
    } else if fs_type != procfs {
        return Ok(false);
    }
    on_worker_thread("probe a namespace file", || match enter_netns(file) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(HostError::os("probe a namespace file", e)),
    })?
}

fn c_path(path: &Path) -> Result<CString, HostError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| {
        HostError::os(
            format!("use path {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })
}

#[cfg(test)]
mod tests;
