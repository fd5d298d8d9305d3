//! A mount namespace of its own for a program the lab starts (dockerd's pid namespace, each
//! `podman` call), prepared before the fork and made between fork and exec.
//!
//! Rules:
//! - The namespace starts as a copy of the test's. Every mount in a peer group (`shared:N`) is
//!   made a slave first, except those at or under the one directory that must stay shared both
//!   ways (so the program's mounts there, container network namespaces, are the test's too).
//!   From then on it still receives what the test's namespace mounts and unmounts, and sends
//!   nothing back: the tmpfs and bind mounts that follow stay the program's own.
//! - Everything is read and every string built by [`PrivateMounts::new`] and the builder
//!   methods, in the parent; [`PrivateMounts::apply`] runs in the forked child and makes only
//!   async-signal-safe system calls (unshare(2), mount(2), umount2(2)), no allocation.
//! - A mount that went away between reading mountinfo and the fork is no error.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::netns::{parse_mountinfo, MountEntry};

/// What the child does between fork and exec. See the module docs.
pub(super) struct PrivateMounts {
    /// Every shared mount but those under the directory kept shared: made slaves.
    slaves: Vec<CString>,
    /// Lazily unmounted, after the slaves.
    detach: Vec<CString>,
    /// Where a private tmpfs goes (before the bind mounts).
    tmpfs: Vec<CString>,
    /// `(source, target)` bind mounts, in order.
    binds: Vec<(CString, CString)>,
    /// The mounts of the test's namespace, as read by `new`.
    mounts: Vec<MountEntry>,
}

impl PrivateMounts {
    /// A plan from this process's mountinfo in which the mounts at or under `keep_shared` stay
    /// shared and every other shared mount becomes a slave.
    pub(super) fn new(keep_shared: &Path) -> Result<PrivateMounts> {
        let text = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
        let mounts = parse_mountinfo(&text);
        let slaves = mounts
            .iter()
            .filter(|m| m.shared && !m.mount_point.starts_with(keep_shared))
            .map(|m| cstring(&m.mount_point))
            .collect::<Result<_>>()?;
        Ok(PrivateMounts {
            slaves,
            detach: Vec::new(),
            tmpfs: Vec::new(),
            binds: Vec::new(),
            mounts,
        })
    }

    /// The test's mounts as `new` read them.
    pub(super) fn mounts(&self) -> &[MountEntry] {
        &self.mounts
    }

    /// Also unmounts every namespace file (`nsfs`) mounted outside `keep`: a long-lived program
    /// then pins no namespace of another lab.
    pub(super) fn detach_namespace_files(mut self, keep: &Path) -> Result<PrivateMounts> {
        for m in &self.mounts {
            if m.fs_type == "nsfs" && !m.mount_point.starts_with(keep) {
                self.detach.push(cstring(&m.mount_point)?);
            }
        }
        Ok(self)
    }

    /// Also mounts a private tmpfs (mode 0711) over `target`.
    pub(super) fn tmpfs(mut self, target: &Path) -> Result<PrivateMounts> {
        self.tmpfs.push(cstring(target)?);
        Ok(self)
    }

    /// Also bind-mounts `source` over `target`.
    pub(super) fn bind(mut self, source: &Path, target: &Path) -> Result<PrivateMounts> {
        self.binds.push((cstring(source)?, cstring(target)?));
        Ok(self)
    }

    /// Runs in the forked child: async-signal-safe system calls only, no allocation.
    pub(super) fn apply(&self) -> io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY (all calls below): plain system calls on NUL-terminated strings that live in
        // `self`, or null where the call allows it.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Slaves first: after this, nothing done in this namespace reaches the test's
            // except under the directory kept shared.
            for p in &self.slaves {
                if libc::mount(null, p.as_ptr(), null, libc::MS_SLAVE, null.cast()) != 0 {
                    let e = io::Error::last_os_error();
                    // Gone since mountinfo was read (or never a mount point): nothing to do.
                    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
                        return Err(e);
                    }
                }
            }
            for p in &self.detach {
                libc::umount2(p.as_ptr(), libc::MNT_DETACH);
            }
            for p in &self.tmpfs {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    p.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0711".as_ptr().cast(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            for (src, dst) in &self.binds {
                if libc::mount(src.as_ptr(), dst.as_ptr(), null, libc::MS_BIND, null.cast()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("{} has a NUL byte", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_shared_tags_types_and_escapes() {
        let text = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw\n\
76 45 0:4 net:[4026534219] /run/netns/vl1x0-h0 rw shared:18 master:1 - nsfs nsfs rw\n\
80 27 0:40 / /tmp/a\\040b rw,relatime master:3 - tmpfs tmpfs rw\n\
garbage line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert!(!m[0].shared);
        assert!(m[1].shared);
        assert_eq!(m[2].mount_point, Path::new("/run/netns/vl1x0-h0"));
        assert_eq!(m[2].fs_type, "nsfs");
        assert!(m[2].shared);
        assert_eq!(m[3].mount_point, Path::new("/tmp/a b"));
        assert!(!m[3].shared, "a slave is not shared");
    }
}
