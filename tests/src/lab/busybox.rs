//! The lab's container image: busybox-static's applets and nothing else, as a rootfs tar
//! built once per test process, which the Docker Engines and Podman import (nothing is ever
//! pulled: no registry is reachable).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

use super::docker::is_executable;
use crate::cmd::{self, DEFAULT_TIMEOUT};

/// Whether `elf` is an ELF executable without a program interpreter (statically linked).
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    // 64-bit little-endian only: the lab runs on x86_64 and aarch64.
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != PT_INTERP))
}

/// The rootfs of [`BUSYBOX_IMAGE`](super::docker::BUSYBOX_IMAGE) as a tar archive, built once per process from the static
/// `/bin/busybox` (Debian's `busybox-static`): `bin/busybox`, a symbolic link to it for every
/// applet at the path `busybox --list-full` gives (`bin/sh`, `sbin/ip`, `usr/bin/wget`, ...),
/// `/etc/passwd` and `/etc/group` with root and nobody, empty `/etc/hosts`, `/etc/resolv.conf`
/// and `/etc/hostname`, and `/tmp` (1777), `/root`, `/proc`, `/sys`, `/dev`, `/run`, `/var`.
pub fn busybox_rootfs_tar() -> Result<&'static [u8]> {
    static TAR: OnceLock<std::result::Result<Vec<u8>, String>> = OnceLock::new();
    TAR.get_or_init(|| build_busybox_tar().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

/// Imports the busybox rootfs into an engine as `image`: writes the tar into `dir` and runs
/// `import --change 'CMD ["sh"]' TAR IMAGE` through `engine` (Docker's or Podman's CLI, which
/// take the same words), then removes the tar.
pub(super) fn import_into(
    dir: &std::path::Path,
    image: &str,
    engine: impl FnOnce(&[&str]) -> Result<String>,
) -> Result<()> {
    let tar = busybox_rootfs_tar()?;
    let file = dir.join("busybox-rootfs.tar");
    fs::write(&file, tar).with_context(|| format!("writing {}", file.display()))?;
    let imported = engine(&[
        "import",
        "--change",
        r#"CMD ["sh"]"#,
        &file.to_string_lossy(),
        image,
    ]);
    let _ = fs::remove_file(&file);
    imported.map(drop)
}

fn build_busybox_tar() -> Result<Vec<u8>> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
        .ok_or_else(|| anyhow!("no /bin/busybox: apt-get install -y busybox-static"))?;
    let bytes = fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
    if !is_static_elf(&bytes) {
        bail!(
            "{} is dynamically linked and cannot run in an image without a libc: \
             apt-get install -y busybox-static",
            busybox.display()
        );
    }
    let list = cmd::run_ok(Command::new(&busybox).arg("--list-full"), DEFAULT_TIMEOUT)?;
    let tree = std::env::temp_dir().join(format!("vxnet-busybox-rootfs-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tree);
    let built = (|| -> Result<Vec<u8>> {
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "run",
            "var", "tmp",
        ] {
            fs::create_dir_all(tree.join(d))?;
        }
        fs::set_permissions(tree.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        let bin = tree.join("bin/busybox");
        fs::write(&bin, &bytes)?;
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
        for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let link = tree.join(applet);
            if applet == "bin/busybox" || link.symlink_metadata().is_ok() {
                continue;
            }
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent)?;
            }
            symlink("/bin/busybox", &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        for (name, text) in [
            ("passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
            ("group", "root:x:0:\nnogroup:x:65534:\n"),
            ("hosts", ""),
            ("resolv.conf", ""),
            ("hostname", ""),
        ] {
            fs::write(tree.join("etc").join(name), text)?;
        }
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&tree).args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-cf",
            "-",
            ".",
        ]);
        let out = cmd::run(&mut tar, DEFAULT_TIMEOUT)?;
        if !out.status.success() {
            bail!(
                "tar of the busybox rootfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    })();
    let _ = fs::remove_dir_all(&tree);
    built.context("building the busybox rootfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `ptype`.
    fn elf_with_phdr(ptype: u32) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        e[64..68].copy_from_slice(&ptype.to_le_bytes());
        e
    }

    #[test]
    fn static_elf_detection() {
        assert!(is_static_elf(&elf_with_phdr(1)), "PT_LOAD only");
        assert!(!is_static_elf(&elf_with_phdr(3)), "PT_INTERP");
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(&elf_with_phdr(1)[..0x30]), "truncated");
    }
}
