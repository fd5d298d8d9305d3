//! Shared by the root tests of this crate: root check, scratch dirs that unpin what they
//! hold, unique names, running a command inside a namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// False (after saying so) if root tests are to be skipped; panics if not root otherwise,
/// so that a CI run without privileges cannot pass silently.
pub(crate) fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("VXNET_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("{test}: skipped (needs root; VXNET_SKIP_ROOT_TESTS=1)");
        return false;
    }
    panic!("{test} needs root (network namespaces, TAP); set VXNET_SKIP_ROOT_TESTS=1 to skip");
}

/// A short name unique to this process and call, e.g. for interfaces (≤ 15 bytes).
pub(crate) fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n}", std::process::id() % 0xffff)
}

/// A temporary directory; on drop, every pinned namespace in it is unpinned first (a mount
/// point cannot be unlinked), then the directory goes. Runs on panic too.
pub(crate) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(&format!("vxnet-{tag}-")));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let _ = crate::host::netns::remove_pinned_netns(&entry.path());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Adds a veth pair `name`/`peer` inside `ns`: a stand-in for "some interface is there"
/// (the `dummy` driver is not in every kernel).
pub(crate) fn add_veth(ns: &Path, name: &str, peer: &str) {
    let (name, peer) = (name.to_string(), peer.to_string());
    crate::host::netns::in_netns(ns, move |h| async move {
        h.link()
            .add(rtnetlink::LinkVeth::new(&name, &peer).build())
            .execute()
            .await
            .map_err(|e| crate::host::HostError::netlink(format!("add veth {name}"), e))
    })
    .expect("add veth");
}

/// Runs a command inside the network namespace at `ns` (tests may shell out).
pub(crate) fn nsexec(ns: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("run nsenter")
}
