//! `resolv.conf` for containers made with `ip netns add NAME`: `ip netns exec NAME` bind-mounts
//! `/etc/netns/NAME/resolv.conf` over `/etc/resolv.conf`, so writing that file points the
//! container's resolver at its network's gateway.
//!
//! Rules: the file is written only when none exists (a file the user made is never touched),
//! and carries a first line naming the network it was written for; it is removed only by
//! that network's disconnect, and only while that line is still there. Other targets (a pid,
//! a bind mount elsewhere) have their own `/etc`, which is their runtime's to manage.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where `ip netns` looks for per-namespace files.
pub const ETC_NETNS: &str = "/etc/netns";

/// The name of a namespace made by `ip netns add`, from its file.
pub fn netns_name(target: &Path) -> Option<&str> {
    let parent = target.parent()?;
    if parent != Path::new("/run/netns") && parent != Path::new("/var/run/netns") {
        return None;
    }
    target.file_name()?.to_str()
}

fn mark(network_id: &str) -> String {
    format!("# written by vxnet for network {network_id}; removed at disconnect")
}

fn path_for(etc_netns: &Path, name: &str) -> PathBuf {
    etc_netns.join(name).join("resolv.conf")
}

/// Writes `<etc_netns>/NAME/resolv.conf` pointing at `gateway` for target `target`, if the
/// target is a named namespace and has no such file. Returns whether it wrote one.
pub fn write(
    etc_netns: &Path,
    target: &Path,
    network_id: &str,
    gateway: Ipv4Addr,
) -> std::io::Result<bool> {
    let Some(name) = netns_name(target) else {
        return Ok(false);
    };
    let path = path_for(etc_netns, name);
    std::fs::create_dir_all(etc_netns.join(name))?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    writeln!(file, "{}\nnameserver {gateway}", mark(network_id))?;
    Ok(true)
}

/// Removes the file [`write`] made for `network_id`, if it is still that one.
pub fn remove(etc_netns: &Path, target: &Path, network_id: &str) -> std::io::Result<()> {
    let Some(name) = netns_name(target) else {
        return Ok(());
    };
    let path = path_for(etc_netns, name);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.lines().next() == Some(mark(network_id).as_str()) => {
            std::fs::remove_file(&path)?;
            // The directory too, if that left it empty; a user's other files keep it.
            let _ = std::fs::remove_dir(etc_netns.join(name));
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_when_missing_kept_when_the_users_and_removed_only_by_its_network() {
        let etc = std::env::temp_dir().join(format!("vxnet-etc-netns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&etc);
        let target = Path::new("/var/run/netns/c1");
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        assert!(write(&etc, target, "net-a", gw).expect("write"));
        let text = std::fs::read_to_string(etc.join("c1/resolv.conf")).expect("read");
        assert!(text.contains("nameserver 10.0.0.1"), "{text}");
        assert!(
            !write(&etc, target, "net-b", gw).expect("second"),
            "an existing file is kept"
        );
        remove(&etc, target, "net-b").expect("remove by another network");
        assert!(
            etc.join("c1/resolv.conf").exists(),
            "only its own network removes it"
        );
        remove(&etc, target, "net-a").expect("remove");
        assert!(!etc.join("c1").exists());

        std::fs::create_dir_all(etc.join("c1")).expect("mkdir");
        std::fs::write(etc.join("c1/resolv.conf"), "nameserver 192.0.2.1\n").expect("user's");
        assert!(!write(&etc, target, "net-a", gw).expect("write"));
        remove(&etc, target, "net-a").expect("remove");
        assert!(
            etc.join("c1/resolv.conf").exists(),
            "a user's file is never removed"
        );

        assert!(!write(&etc, Path::new("/proc/42/ns/net"), "net-a", gw).expect("pid target"));
        let _ = std::fs::remove_dir_all(&etc);
    }
}
