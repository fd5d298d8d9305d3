//! Where applied commands are kept: the [`Store`] interface and its part-1 implementation,
//! [`FileStore`], a single prost-encoded file in the data directory.
//!
//! Rules a caller relies on:
//! - [`Store::apply`] returns `Ok` only once the change is durable. For [`FileStore`] that
//!   means the whole new state was written to `state.pb.tmp`, fsynced, renamed over
//!   `state.pb`, and the directory fsynced. Part 2 replaces `FileStore` with a Raft-backed
//!   store behind the same trait, where `Ok` means "committed and applied".
//! - A failed apply changes nothing anyone can observe: a refusal leaves state and disk as they
//!   were, and a failed write rolls the in-memory state back, so nothing acknowledged is lost
//!   and nothing unacknowledged appears.
//! - If the disk can no longer be brought back to the last acknowledged state (a failed write
//!   *and* a failed repair after the rename), the store refuses every later change with
//!   [`StoreError::Poisoned`] until the daemon restarts and re-reads the disk.
//! - On open, a leftover `state.pb.tmp` is a write that crashed before its rename — never
//!   acknowledged — and is ignored. A missing `state.pb` is an empty state; an unreadable or
//!   inconsistent one is an error: starting empty would silently forget every network.

use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use prost::Message;
use vxnet_proto::{Command, State};

use crate::state::{Applied, Refusal, StateMachine};

/// The state file inside the data directory.
pub const STATE_FILE: &str = "state.pb";
/// Where the next state is written before it is renamed over [`STATE_FILE`].
pub const TMP_FILE: &str = "state.pb.tmp";

/// Why a command did not take effect, or why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state machine refused the command; nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(
        "cannot {action} {}: {source}; check the disk and the permissions of the data directory",
        path.display()
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{} is corrupt ({reason}); restore it from a backup, or move it away to start with \
         an empty state",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the state on disk may differ from the daemon's since a write failed; \
         restart the daemon to re-read it"
    )]
    Poisoned,
}

impl StoreError {
    /// The CLI's exit code: a refusal's own (2 for a usage error), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::Refused(refusal) => refusal.exit_code(),
            _ => 1,
        }
    }
}

/// The one interface the daemon uses to read and change the state.
pub trait Store: Send {
    /// The state as of the last acknowledged command.
    fn state(&self) -> &StateMachine;

    /// Applies a command; `Ok` only once the change is durable (see the module docs).
    fn apply(&mut self, cmd: Command) -> Result<Applied, StoreError>;
}

/// A store that keeps nothing on disk: for tests and tools that need a [`Store`].
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    machine: StateMachine,
}

impl MemStore {
    pub fn new(machine: StateMachine) -> Self {
        MemStore { machine }
    }
}

impl Store for MemStore {
    fn state(&self) -> &StateMachine {
        &self.machine
    }

    fn apply(&mut self, cmd: Command) -> Result<Applied, StoreError> {
        Ok(self.machine.apply(&cmd)?)
    }
}

/// The steps of an atomic write, named so tests can make any one of them fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteStep {
    CreateTmp,
    WriteTmp,
    SyncTmp,
    Rename,
    SyncDir,
}

/// Called before each write step; an `Err` makes that step fail. Production never fails.
type FaultHook = Box<dyn FnMut(WriteStep) -> io::Result<()> + Send>;

/// The part-1 store: the whole state in `<data_dir>/state.pb`, rewritten atomically on every
/// change.
pub struct FileStore {
    dir: PathBuf,
    machine: StateMachine,
    poisoned: bool,
    fault: FaultHook,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens the store in `data_dir`, creating the directory (mode 0700) if it is missing.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let dir = data_dir.into();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error("create", &dir))?;
        let path = dir.join(STATE_FILE);
        let machine = match fs::read(&path) {
            Ok(bytes) => {
                let corrupt = |reason: String| StoreError::Corrupt {
                    path: path.clone(),
                    reason,
                };
                let state = State::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
                StateMachine::from_state(state).map_err(|e| corrupt(e.to_string()))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateMachine::new(),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        // Best effort: a leftover tmp file is never read, and the next write truncates it.
        let _ = fs::remove_file(dir.join(TMP_FILE));
        Ok(FileStore {
            dir,
            machine,
            poisoned: false,
            fault: Box::new(|_| Ok(())),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `state` to `state.pb` atomically and durably. On failure, also says whether
    /// the rename had already replaced `state.pb` (only the directory fsync failed).
    fn persist(&mut self, state: &State) -> Result<(), WriteFailure> {
        let bytes = state.encode_to_vec();
        let tmp = self.dir.join(TMP_FILE);
        let dst = self.dir.join(STATE_FILE);
        let fault = &mut self.fault;
        let before_rename = |error| WriteFailure {
            error,
            renamed: false,
        };

        fault(WriteStep::CreateTmp)
            .and_then(|()| File::create(&tmp))
            .and_then(|mut file| {
                fault(WriteStep::WriteTmp)?;
                file.write_all(&bytes)?;
                fault(WriteStep::SyncTmp)?;
                // The data must be on disk before the rename makes it the state.
                file.sync_all()
            })
            .map_err(io_error("write", &tmp))
            .map_err(before_rename)?;
        // rename(2) is atomic: when it fails, state.pb is untouched.
        fault(WriteStep::Rename)
            .and_then(|()| fs::rename(&tmp, &dst))
            .map_err(io_error("rename over", &dst))
            .map_err(before_rename)?;
        // The rename itself is durable only once the directory entry is.
        fault(WriteStep::SyncDir)
            .and_then(|()| File::open(&self.dir)?.sync_all())
            .map_err(io_error("fsync", &self.dir))
            .map_err(|error| WriteFailure {
                error,
                renamed: true,
            })
    }
}

/// A failed [`FileStore::persist`].
struct WriteFailure {
    error: StoreError,
    /// Whether `state.pb` may already hold the new state.
    renamed: bool,
}

impl Store for FileStore {
    fn state(&self) -> &StateMachine {
        &self.machine
    }

    fn apply(&mut self, cmd: Command) -> Result<Applied, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        // Apply to a copy: the live state changes only once the disk has the new one. The copy
        // costs no more than the encoding the write needs anyway.
        let mut next = self.machine.clone();
        let applied = next.apply(&cmd)?;
        if let Err(failure) = self.persist(next.state()) {
            if failure.renamed {
                // state.pb already holds the unacknowledged state (only the directory fsync
                // failed): put the acknowledged one back so a restart cannot resurrect it.
                let acknowledged = self.machine.state().clone();
                if self.persist(&acknowledged).is_err() {
                    self.poisoned = true;
                }
            }
            return Err(failure.error);
        }
        self.machine = next;
        Ok(applied)
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use vxnet_proto::{command, AddHost, CreateNetwork, Host};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "vxnet-store-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn add_host(id: &str) -> Command {
        Command {
            kind: Some(command::Kind::AddHost(AddHost {
                host: Some(Host {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    addr: 0xc0a8_0101,
                    ..Default::default()
                }),
            })),
        }
    }

    fn create(name: &str, n: u32) -> Command {
        Command {
            kind: Some(command::Kind::CreateNetwork(CreateNetwork {
                id: format!("{n:064x}"),
                name: name.to_owned(),
                mtu: 1450,
                ..Default::default()
            })),
        }
    }

    fn names(store: &impl Store) -> Vec<String> {
        store
            .state()
            .networks()
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    fn on_disk(dir: &TempDir) -> State {
        let bytes = fs::read(dir.file(STATE_FILE)).expect("read state.pb");
        State::decode(bytes.as_slice()).expect("decode state.pb")
    }

    #[test]
    fn open_on_an_empty_or_missing_directory_starts_empty() {
        let dir = TempDir::new();
        let store = FileStore::open(&dir.0).expect("open");
        assert_eq!(store.state(), &StateMachine::new());
        assert!(!dir.file(STATE_FILE).exists());

        let nested = dir.file("a/b/data");
        let store = FileStore::open(&nested).expect("open nested");
        assert_eq!(store.data_dir(), nested.as_path());
        assert!(nested.is_dir());
    }

    #[test]
    fn every_apply_is_on_disk_and_survives_a_reopen() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(add_host("h1")).expect("add host");
        let applied = store.apply(create("net1", 1)).expect("create");
        assert!(matches!(applied, Applied::NetworkCreated(ref n) if n.name == "net1"));
        // Acknowledged means on disk, before any reopen.
        assert_eq!(&on_disk(&dir), store.state().state());
        assert!(!dir.file(TMP_FILE).exists());

        store.apply(create("net2", 2)).expect("create");
        let expected = store.state().clone();
        drop(store);

        let mut reopened = FileStore::open(&dir.0).expect("reopen");
        assert_eq!(reopened.state(), &expected);
        assert_eq!(names(&reopened), ["net1", "net2"]);
        // The reopened store keeps allocating where the old one left off.
        match reopened.apply(create("net3", 3)).expect("create") {
            Applied::NetworkCreated(net) => assert_eq!(net.vni, 258),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn state_file_round_trips_byte_for_byte() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(add_host("h1")).expect("add host");
        store.apply(create("net1", 1)).expect("create");
        let bytes = fs::read(dir.file(STATE_FILE)).expect("read");
        assert_eq!(bytes, store.state().state().encode_to_vec());
        let reopened = FileStore::open(&dir.0).expect("reopen");
        assert_eq!(reopened.state().state().encode_to_vec(), bytes);
    }

    #[test]
    fn a_refusal_is_not_persisted() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        let before_disk = fs::read(dir.file(STATE_FILE)).expect("read");
        let before = store.state().clone();

        let err = store.apply(create("net1", 2)).expect_err("duplicate name");
        assert!(matches!(
            err,
            StoreError::Refused(Refusal::NetworkNameInUse { .. })
        ));
        assert_eq!(
            err.to_string(),
            "network name net1 is already in use; choose another name"
        );
        assert_eq!(err.exit_code(), 1);
        let err = store
            .apply(Command { kind: None })
            .expect_err("empty command");
        assert_eq!(err.exit_code(), 1);

        assert_eq!(store.state(), &before);
        assert_eq!(fs::read(dir.file(STATE_FILE)).expect("read"), before_disk);
        assert!(!dir.file(TMP_FILE).exists());
    }

    #[test]
    fn a_torn_tmp_file_is_ignored() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        let expected = store.state().clone();
        drop(store);

        // A crash in the middle of writing the next state.
        fs::write(dir.file(TMP_FILE), b"\x12\x05torn").expect("write tmp");
        let mut store = FileStore::open(&dir.0).expect("open with a torn tmp");
        assert_eq!(store.state(), &expected);
        assert!(!dir.file(TMP_FILE).exists());
        store
            .apply(create("net2", 2))
            .expect("create after recovery");
        assert_eq!(
            names(&FileStore::open(&dir.0).expect("reopen")),
            ["net1", "net2"]
        );
    }

    #[test]
    fn a_tmp_file_without_a_state_file_is_an_empty_state() {
        // A crash during the very first write.
        let dir = TempDir::new();
        fs::write(dir.file(TMP_FILE), b"garbage").expect("write tmp");
        let store = FileStore::open(&dir.0).expect("open");
        assert_eq!(store.state(), &StateMachine::new());
    }

    #[test]
    fn a_corrupt_state_file_is_reported() {
        let dir = TempDir::new();
        fs::write(dir.file(STATE_FILE), [0xff; 16]).expect("write garbage");
        let err = FileStore::open(&dir.0).expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("state.pb is corrupt ("), "{msg}");
        assert!(
            msg.ends_with("move it away to start with an empty state"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 1);
        // The corrupt file is left alone for the operator.
        assert_eq!(fs::read(dir.file(STATE_FILE)).expect("read"), [0xff; 16]);
    }

    #[test]
    fn a_truncated_state_file_is_reported() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        drop(store);
        let bytes = fs::read(dir.file(STATE_FILE)).expect("read");
        fs::write(dir.file(STATE_FILE), &bytes[..bytes.len() / 2]).expect("truncate");
        let err = FileStore::open(&dir.0).expect_err("truncated");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn an_inconsistent_state_file_is_reported() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        let mut state = store.state().state().clone();
        drop(store);
        let mut twin = state.networks[0].clone();
        twin.id = format!("{:064x}", 2);
        state.networks.push(twin); // same name, same VNI
        fs::write(dir.file(STATE_FILE), state.encode_to_vec()).expect("write");
        let err = FileStore::open(&dir.0).expect_err("inconsistent");
        assert!(
            err.to_string()
                .contains("inconsistent state: network name net1 appears twice"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_state_file_is_an_io_error() {
        let dir = TempDir::new();
        fs::create_dir(dir.file(STATE_FILE)).expect("a directory where the file should be");
        let err = FileStore::open(&dir.0).expect_err("unreadable");
        assert!(
            matches!(err, StoreError::Io { action: "read", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_failed_write_rolls_back_the_memory_state() {
        // A real failure, without injection: a directory in the tmp file's place.
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        let before = store.state().clone();
        let before_disk = fs::read(dir.file(STATE_FILE)).expect("read");
        fs::create_dir(dir.file(TMP_FILE)).expect("block the tmp file");

        let err = store.apply(create("net2", 2)).expect_err("write fails");
        assert!(
            matches!(
                err,
                StoreError::Io {
                    action: "write",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(store.state(), &before);
        assert_eq!(fs::read(dir.file(STATE_FILE)).expect("read"), before_disk);

        // Once the obstacle is gone, the same command goes through.
        fs::remove_dir(dir.file(TMP_FILE)).expect("unblock");
        store.apply(create("net2", 2)).expect("create");
        assert_eq!(
            names(&FileStore::open(&dir.0).expect("reopen")),
            ["net1", "net2"]
        );
    }

    /// Makes `step` fail the next `times` times it is reached; records every step reached.
    fn inject(store: &mut FileStore, step: WriteStep, times: usize) -> Arc<Mutex<Vec<WriteStep>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let mut left = times;
        store.fault = Box::new(move |reached| {
            log.lock().expect("log lock").push(reached);
            if reached == step && left > 0 {
                left -= 1;
                return Err(io::Error::other(format!("injected failure at {reached:?}")));
            }
            Ok(())
        });
        seen
    }

    #[test]
    fn a_failure_at_any_write_step_loses_nothing_and_adds_nothing() {
        for step in [
            WriteStep::CreateTmp,
            WriteStep::WriteTmp,
            WriteStep::SyncTmp,
            WriteStep::Rename,
            WriteStep::SyncDir,
        ] {
            let dir = TempDir::new();
            let mut store = FileStore::open(&dir.0).expect("open");
            store.apply(create("net1", 1)).expect("create");
            let acknowledged = store.state().clone();

            inject(&mut store, step, 1);
            let err = store
                .apply(create("net2", 2))
                .expect_err("injected failure");
            assert!(matches!(err, StoreError::Io { .. }), "{step:?}: {err:?}");
            assert_eq!(store.state(), &acknowledged, "{step:?}: memory rolled back");
            assert_eq!(
                &on_disk(&dir),
                acknowledged.state(),
                "{step:?}: disk holds the acknowledged state"
            );
            let reopened = FileStore::open(&dir.0).expect("reopen");
            assert_eq!(reopened.state(), &acknowledged, "{step:?}");

            // The store is still usable: the repair succeeded.
            store.apply(create("net2", 2)).expect("retry");
            assert_eq!(
                names(&FileStore::open(&dir.0).expect("reopen")),
                ["net1", "net2"]
            );
        }
    }

    #[test]
    fn the_write_steps_run_in_order() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        let seen = inject(&mut store, WriteStep::SyncDir, 0);
        store.apply(create("net1", 1)).expect("create");
        assert_eq!(
            *seen.lock().expect("log lock"),
            [
                WriteStep::CreateTmp,
                WriteStep::WriteTmp,
                WriteStep::SyncTmp,
                WriteStep::Rename,
                WriteStep::SyncDir
            ]
        );
    }

    #[test]
    fn a_failed_repair_poisons_the_store() {
        let dir = TempDir::new();
        let mut store = FileStore::open(&dir.0).expect("open");
        store.apply(create("net1", 1)).expect("create");
        let acknowledged = store.state().clone();

        // The directory fsync fails for the write and for the repair.
        inject(&mut store, WriteStep::SyncDir, 2);
        let err = store.apply(create("net2", 2)).expect_err("write fails");
        assert!(
            matches!(
                err,
                StoreError::Io {
                    action: "fsync",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(store.state(), &acknowledged);

        let err = store.apply(create("net3", 3)).expect_err("poisoned");
        assert!(matches!(err, StoreError::Poisoned), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the state on disk may differ from the daemon's since a write failed; \
             restart the daemon to re-read it"
        );
        assert_eq!(store.state(), &acknowledged);
    }

    #[test]
    fn mem_store_applies_and_refuses() {
        let mut store = MemStore::default();
        store.apply(create("net1", 1)).expect("create");
        let err = store.apply(create("net1", 2)).expect_err("duplicate");
        assert!(matches!(err, StoreError::Refused(_)));
        assert_eq!(names(&store), ["net1"]);
    }

    #[test]
    fn usage_refusals_keep_exit_code_2() {
        let mut store = MemStore::new(StateMachine::new());
        let err = store.apply(create("", 1)).expect_err("empty name");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn stores_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<FileStore>();
        assert_send::<MemStore>();
        assert_send::<Box<dyn Store>>();
    }
}
