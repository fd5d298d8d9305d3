//! Connects in flight, kept on disk (`<data-dir>/intents/<endpoint id>`), so that no crash
//! and no timeout leaves a half-made endpoint behind.
//!
//! A connect commits its endpoint first and makes the veth after; between the two the daemon
//! may crash, or the commit may come after the caller stopped waiting. Rules:
//! - A connect records its intent before it proposes the endpoint, and clears it once the veth
//!   exists, or once the connect is known to have changed nothing (a refusal), or once it has
//!   been undone.
//! - An intent left behind is settled by the control thread ([`super::dispatch`]): if its
//!   endpoint is in the replicated state without a veth, the connect is finished when the
//!   target namespace is still the one the connect began with (same device and inode), and
//!   undone through Raft otherwise; if the endpoint never shows up within [`INTENT_TTL`], the
//!   intent is dropped (nothing proposes it any more by then).
//! - Each intent is one small file written atomically; a file that does not decode is
//!   removed with a warning (its connect can then only be undone by the vanished-endpoint
//!   check, which is what happened before intents existed).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use vxnet_proto::ConnectIntent;

use crate::sys;

/// How long an intent whose endpoint was never committed is kept: longer than any caller's
/// timeout (a proposal is not retried past it), so a late commit is still caught.
pub const INTENT_TTL: Duration = Duration::from_secs(300);

const INTENTS_DIR: &str = "intents";

/// The identity of a namespace file's namespace: (device, inode) of the nsfs inode it names.
pub fn netns_identity(target: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(target)?;
    Ok((meta.dev(), meta.ino()))
}

/// Whether `intent`'s target still names the namespace the connect began with.
pub fn same_netns(intent: &ConnectIntent) -> bool {
    netns_identity(Path::new(&intent.target))
        .is_ok_and(|id| id == (intent.netns_dev, intent.netns_ino))
}

/// The intents of one data dir.
pub struct Intents {
    dir: PathBuf,
}

impl Intents {
    pub fn open(data_dir: &Path) -> io::Result<Intents> {
        let dir = data_dir.join(INTENTS_DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(Intents { dir })
    }

    /// Records a connect about to be proposed; durable when this returns.
    pub fn record(
        &self,
        endpoint_id: &str,
        network_id: &str,
        target: &Path,
    ) -> io::Result<ConnectIntent> {
        // A namespace that is not there yet (Docker names a container's namespace at Join,
        // before it exists) is never "the same one" after a crash: such a connect is undone.
        let (netns_dev, netns_ino) = netns_identity(target).unwrap_or((0, 0));
        let since_unix_ms = sys::unix_millis();
        let intent = ConnectIntent {
            endpoint_id: endpoint_id.to_owned(),
            network_id: network_id.to_owned(),
            target: target.to_string_lossy().into_owned(),
            netns_dev,
            netns_ino,
            since_unix_ms,
        };
        sys::write_atomically(&self.path(endpoint_id), intent.encode_to_vec())?;
        Ok(intent)
    }

    /// Forgets the connect of `endpoint_id`. A failure is logged: the intent is then settled
    /// again later, which finds its work done.
    pub fn clear(&self, endpoint_id: &str) {
        match std::fs::remove_file(self.path(endpoint_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(endpoint = %endpoint_id, error = %e, "cannot remove a connect intent")
            }
        }
    }

    /// Every intent on disk.
    pub fn load(&self) -> Vec<ConnectIntent> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list connect intents");
                return Vec::new();
            }
        };
        let mut intents = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            // Temporary files of a write a crash interrupted.
            if path.extension().is_some() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match std::fs::read(&path).map(|b| ConnectIntent::decode(b.as_slice())) {
                Ok(Ok(intent)) => intents.push(intent),
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "removing a corrupt connect intent");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read a connect intent")
                }
            }
        }
        intents
    }

    /// Whether `intent` is too old to still be committed, if it has not been by now.
    pub fn expired(intent: &ConnectIntent, now: SystemTime) -> bool {
        let since = UNIX_EPOCH + Duration::from_millis(intent.since_unix_ms);
        now.duration_since(since).is_ok_and(|age| age > INTENT_TTL)
    }

    fn path(&self, endpoint_id: &str) -> PathBuf {
        self.dir.join(endpoint_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vxnet-intents-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn recorded_intents_load_until_cleared_and_corrupt_ones_go() {
        let dir = temp_dir("roundtrip");
        let intents = Intents::open(&dir).expect("open");
        // Any file has an identity; this process's own namespace is a real one.
        let target = Path::new("/proc/self/ns/net");
        let a = intents.record("a", "net1", target).expect("record a");
        intents.record("b", "net1", target).expect("record b");
        std::fs::write(dir.join(INTENTS_DIR).join("junk"), b"\xff\xff\xff").expect("junk");
        std::fs::write(dir.join(INTENTS_DIR).join("c.tmp"), b"").expect("tmp");
        let mut loaded = intents.load();
        loaded.sort_by(|x, y| x.endpoint_id.cmp(&y.endpoint_id));
        assert_eq!(loaded.len(), 2, "{loaded:?}");
        assert_eq!(loaded[0], a);
        assert!(same_netns(&a), "the namespace it began with");
        assert!(!dir.join(INTENTS_DIR).join("junk").exists());
        assert!(!dir.join(INTENTS_DIR).join("c.tmp").exists());
        intents.clear("a");
        intents.clear("a");
        let left: Vec<String> = intents.load().into_iter().map(|i| i.endpoint_id).collect();
        assert_eq!(left, vec!["b".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_namespace_and_old_intents_are_told_apart() {
        let dir = temp_dir("identity");
        let intents = Intents::open(&dir).expect("open");
        let mut intent = intents
            .record("a", "net1", Path::new("/proc/self/ns/net"))
            .expect("record");
        assert!(!Intents::expired(&intent, SystemTime::now()));
        assert!(Intents::expired(
            &intent,
            SystemTime::now() + INTENT_TTL + Duration::from_secs(1)
        ));
        intent.netns_ino += 1;
        assert!(!same_netns(&intent), "another inode is another namespace");
        intent.target = "/nonexistent/ns".into();
        assert!(!same_netns(&intent), "a target that is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
