//! Durable Raft storage: the log, `HardState`, `ConfState` and the latest snapshot of one
//! daemon's Raft group, kept in a [raft-engine](raft_engine) instance under
//! `<data_dir>/raft/` ([`RAFT_DIR`]).
//!
//! [`RaftStorage`] implements [`raft::Storage`] for `RawNode` and is the handle the node uses
//! to persist each `Ready`. It is cheap to clone; all clones share one engine.
//!
//! Rules a caller relies on:
//! - **Atomic and durable.** Every mutating method ([`RaftStorage::persist_ready`],
//!   [`RaftStorage::apply_snapshot`], [`RaftStorage::compact`], [`RaftStorage::bootstrap`])
//!   writes exactly one raft-engine `LogBatch` with `sync = true`: after `Ok`, everything in it
//!   survives a crash; after a crash mid-write, none of it is visible on reopen. Readers never
//!   see half of a write either. [`RaftStorage::persist_commit`] is the one unsynced write: a
//!   lost commit index is re-learnt from the leader (or recomputed by a single voter), it is
//!   never needed for safety.
//! - **Order.** Follow raft-rs `examples/five_mem_node`: send `messages`, persist the snapshot
//!   (if any), apply committed entries, persist entries + `HardState` with
//!   [`RaftStorage::persist_ready`], and only then send `persisted_messages` and call
//!   `advance`. Votes and appends acknowledged to peers must already be on disk. The snapshot
//!   and the entries of one `Ready` may also go in a single `persist_ready` call (snapshot
//!   first, then entries, in one batch).
//! - **An error from a mutating method is fatal to the node.** Nothing of that write happened,
//!   but raft-rs has already handed the `Ready` over and cannot take it back: stop the node,
//!   don't `advance`, restart the daemon. (raft-engine itself panics if `fsync` fails.)
//! - **Appends follow Raft:** entries starting at index `i` replace every stored entry from `i`
//!   on. An append must start inside `[first_index, last_index + 1]`; anything else (a hole,
//!   overwriting compacted entries, non-consecutive indexes) is refused with an error rather
//!   than allowed to corrupt the log.
//! - **Snapshots.** There is at most one stored snapshot, the latest: either received from a
//!   leader ([`RaftStorage::apply_snapshot`]) or taken locally by [`RaftStorage::compact`]. Its
//!   data is opaque here (for vxnet a prost-encoded `vxnet_proto::Snapshot`). Entries at or
//!   below its index are gone: [`raft::Storage::first_index`] is `snapshot.index + 1`,
//!   [`raft::Storage::term`] still answers for `snapshot.index`, lower indexes are
//!   [`StorageError::Compacted`]. [`raft::Storage::snapshot`] always returns that stored
//!   snapshot; if there is none, or it is older than `request_index`, it returns
//!   `SnapshotTemporarilyUnavailable` — raft-rs then retries later, and the node is expected to
//!   call [`RaftStorage::compact`] from time to time so a snapshot exists once the log is
//!   compacted. Snapshots are kept in raft-engine's in-memory index too, which is fine for
//!   vxnet's metadata-sized state but not for large state machines.
//! - **Reads come from memory.** The uncompacted entries are mirrored in memory (the
//!   `entries` module says why raft-engine is not read after open); writes reach the files
//!   first and the copy after.
//! - **`ConfState` is the one of the latest snapshot** (or of [`RaftStorage::bootstrap`], or
//!   empty for a joining host). It is *not* updated as conf changes are applied, because the
//!   state machine is not persisted either: both are rebuilt from the snapshot on restart.
//!   That is why there is deliberately no `set_conf_state`: storing the configuration after
//!   each applied conf change would make the replay below apply those changes a second time
//!   (raft-rs refuses to enter a joint configuration twice).
//!
//! On disk (`<data_dir>/raft/`, mode 0700): raft-engine's files — `NNNNNNNNNNNNNNNN.raftlog`
//! (append queue), `NNNNNNNNNNNNNNNN.rewrite` (live data rewritten out of purged files) and
//! `LOCK`. Everything lives in raft-engine group [`GROUP_ID`]: the log entries (raft-rs
//! `Entry`, protobuf), and three keys holding protobuf messages — `hard_state` (`HardState`),
//! `conf_state` (`ConfState`), `snapshot` (`Snapshot`: metadata and data). Files are deleted
//! by [`RaftStorage::compact`] once they hold only compacted entries and the log exceeds
//! 32 MiB; below that, compacted files simply wait.
//!
//! Restart recovery (what the node does after [`RaftStorage::open`]):
//! 1. Load the state machine from [`RaftStorage::latest_snapshot`] (none: empty state).
//! 2. Create the `RawNode` with `Config::applied = 0` (raft-rs then takes the snapshot index).
//!    Its first `Ready`s hand the committed entries `(snapshot.index, hard_state.commit]` back
//!    as `committed_entries`; apply them — including their conf changes with
//!    `apply_conf_change` — exactly as in normal operation. Applied state therefore never
//!    needs persisting: state machine and `ConfState` are replayed together, and a conf change
//!    is never applied twice to the same configuration.
//!
//! New groups: the node founds a cluster by storing the bootstrap snapshot with
//! [`RaftStorage::apply_snapshot`] (see the snapshot module; [`RaftStorage::bootstrap`] founds
//! one from a bare `ConfState` instead); a joining host starts from an empty store and learns
//! the log (or a snapshot) from the leader.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ::raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState};
use bytes::Bytes;
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use self::entries::EntryLog;

mod entries;

/// The directory under the daemon's data directory that holds the Raft log.
pub const RAFT_DIR: &str = "raft";

/// The raft-engine group that holds vxnet's one Raft group. raft-engine can hold many (TiKV
/// keeps one per region); vxnet has exactly one, and the id is part of the on-disk format.
pub const GROUP_ID: u64 = 1;

// Keys of the raft-engine key-value pairs in [`GROUP_ID`]. Part of the on-disk format.
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The requested entries are at or below the latest snapshot's index.
    #[error("log entries compacted")]
    Compacted,
    /// The requested entries are beyond the last stored entry.
    #[error("log entries unavailable")]
    Unavailable,
    /// No stored snapshot is recent enough (or there is none yet).
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// A snapshot at or below the stored snapshot's index was offered or requested.
    #[error("snapshot at index {index} is not newer than the stored one at {stored}")]
    SnapshotOutOfDate { index: u64, stored: u64 },
    /// An append that would leave a hole, overwrite compacted entries or skip indexes.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// [`RaftStorage::bootstrap`] on a store that already holds Raft state.
    #[error("raft storage is already initialized")]
    AlreadyInitialized,
    /// What is on disk contradicts itself (e.g. log entries not right after the snapshot).
    #[error("raft storage is inconsistent: {0}")]
    Inconsistent(String),
    /// A writer panicked while holding the lock; the in-memory view may be stale.
    #[error("raft storage lock poisoned")]
    Poisoned,
    /// raft-engine takes its directory as a string.
    #[error("raft directory {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    #[error("create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raft-engine: {0}")]
    Engine(#[from] raft_engine::Error),
    #[error("protobuf: {0}")]
    Codec(#[from] protobuf::ProtobufError),
}

impl From<StorageError> for ::raft::Error {
    /// raft-rs recovers from `Compacted`, `Unavailable` and `SnapshotTemporarilyUnavailable`
    /// only if they arrive as its own variants; everything else is fatal to it anyway.
    fn from(e: StorageError) -> Self {
        use ::raft::StorageError as Raft;
        let store = match e {
            StorageError::Compacted => Raft::Compacted,
            StorageError::Unavailable => Raft::Unavailable,
            StorageError::SnapshotTemporarilyUnavailable => Raft::SnapshotTemporarilyUnavailable,
            StorageError::SnapshotOutOfDate { .. } => Raft::SnapshotOutOfDate,
            other => Raft::Other(Box::new(other)),
        };
        ::raft::Error::Store(store)
    }
}

/// Tells raft-engine where a raft-rs [`Entry`] sits in the log.
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// What every read needs and raft-engine would otherwise have to decode again: a copy of the
/// key-value pairs, kept in step with the engine under [`Shared::meta`].
#[derive(Debug, Clone, Default)]
struct Meta {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_index: u64,
    snapshot_term: u64,
}

/// What the lock guards: the key-value pairs and the entries, as on disk.
#[derive(Debug)]
struct Stored {
    meta: Meta,
    log: EntryLog,
}

struct Shared {
    engine: Engine,
    dir: PathBuf,
    /// Writers hold the write lock across the engine write and the update of `stored`, so a
    /// reader holding the read lock sees the engine and `stored` at the same point.
    stored: RwLock<Stored>,
}

/// The durable Raft storage of one daemon. See the [module docs](self) for the rules.
#[derive(Clone)]
pub struct RaftStorage {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl RaftStorage {
    /// Opens (creating if needed) the store in `dir` — the daemon passes
    /// `<data_dir>/`[`RAFT_DIR`]. raft-engine replays its files; a torn write at the tail of
    /// the newest file (a crash mid-write) is dropped whole, so exactly the synced writes
    /// before it remain. Corruption anywhere else is an error. raft-engine locks the directory:
    /// a second open, in this process or another, fails.
    pub fn open(dir: &Path) -> Result<RaftStorage, StorageError> {
        let dir_str = dir
            .to_str()
            .ok_or_else(|| StorageError::NonUtf8Path(dir.to_path_buf()))?;
        // raft-engine would create it world-readable; the log holds the cluster's metadata.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StorageError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let cfg = Config {
            dir: dir_str.to_owned(),
            // TiKV's choice: a crash can tear the last write, and that write was never
            // acknowledged, so dropping it is correct; anything earlier is real corruption.
            recovery_mode: RecoveryMode::TolerateTailCorruption,
            // vxnet's log is metadata: once the files add up to more than `purge_threshold`,
            // a compaction deletes those holding only compacted entries (TiKV's threshold is
            // 10 GiB). Recycling purged files would keep them on disk for reuse — a TiKV
            // latency optimisation not worth the disk here.
            target_file_size: ReadableSize::mb(4),
            purge_threshold: ReadableSize::mb(32),
            enable_log_recycle: false,
            recovery_threads: 1,
            ..Config::default()
        };
        let engine = Engine::open(cfg)?;

        let hard_state = engine
            .get_message::<HardState>(GROUP_ID, KEY_HARD_STATE)?
            .unwrap_or_default();
        let conf_state = engine
            .get_message::<ConfState>(GROUP_ID, KEY_CONF_STATE)?
            .unwrap_or_default();
        let (snapshot_index, snapshot_term) = engine
            .get_message::<Snapshot>(GROUP_ID, KEY_SNAPSHOT)?
            .map(|s| (s.get_metadata().index, s.get_metadata().term))
            .unwrap_or((0, 0));
        let meta = Meta {
            hard_state,
            conf_state,
            snapshot_index,
            snapshot_term,
        };
        let log = EntryLog::new(snapshot_index, read_log(&engine)?);

        // Every write keeps the log starting right after the snapshot and the commit index at
        // or above it; anything else means the files are not what this module wrote.
        if let (Some(first), Some(last)) =
            (engine.first_index(GROUP_ID), engine.last_index(GROUP_ID))
        {
            if first != snapshot_index + 1 || last != log.last_index() {
                return Err(StorageError::Inconsistent(format!(
                    "log {first}..={last} does not follow the snapshot at {snapshot_index}"
                )));
            }
            if meta.hard_state.commit > last {
                return Err(StorageError::Inconsistent(format!(
                    "commit index {} beyond last entry {last}",
                    meta.hard_state.commit
                )));
            }
        }
        if meta.hard_state.commit < snapshot_index {
            return Err(StorageError::Inconsistent(format!(
                "commit index {} below snapshot index {snapshot_index}",
                meta.hard_state.commit
            )));
        }

        tracing::debug!(
            dir = %dir.display(),
            snapshot_index,
            last_index = engine.last_index(GROUP_ID).unwrap_or(snapshot_index),
            commit = meta.hard_state.commit,
            term = meta.hard_state.term,
            "raft storage opened"
        );
        Ok(RaftStorage {
            shared: Arc::new(Shared {
                engine,
                dir: dir.to_path_buf(),
                stored: RwLock::new(Stored { meta, log }),
            }),
        })
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether any Raft state is stored: a `HardState`, a `ConfState`, a snapshot or entries.
    /// A fresh host either [`bootstrap`](Self::bootstrap)s or joins with an empty store.
    pub fn is_initialized(&self) -> Result<bool, StorageError> {
        Ok(self.read_meta()?.is_initialized())
    }

    /// Founds a new group: stores `conf_state` (normally `voters = [own id]`) as the initial
    /// configuration, with an empty log and no snapshot. Refused on an initialized store.
    pub fn bootstrap(&self, conf_state: &ConfState) -> Result<(), StorageError> {
        let mut stored = self.write_meta()?;
        if stored.is_initialized() {
            return Err(StorageError::AlreadyInitialized);
        }
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), conf_state)?;
        self.shared.engine.write(&mut batch, true)?;
        stored.meta.conf_state = conf_state.clone();
        Ok(())
    }

    /// Persists one `Ready`: its snapshot (if any, handled as [`apply_snapshot`]), then its
    /// entries (replacing any stored entries from the first new index on), then its
    /// `HardState` — in one synced batch. Call before sending `persisted_messages` and before
    /// `advance`.
    ///
    /// [`apply_snapshot`]: Self::apply_snapshot
    pub fn persist_ready(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        snapshot: Option<&Snapshot>,
    ) -> Result<(), StorageError> {
        if entries.is_empty() && hard_state.is_none() && snapshot.is_none() {
            return Ok(());
        }
        let mut stored = self.write_meta()?;
        let mut next = stored.meta.clone();
        let mut batch = LogBatch::default();
        let mut last = stored.log.last_index();

        if let Some(snapshot) = snapshot {
            stage_snapshot(&mut batch, &mut next, last, snapshot)?;
            last = next.snapshot_index;
        }
        if !entries.is_empty() {
            stage_entries(&mut batch, &next, last, entries)?;
        }
        if let Some(hs) = hard_state {
            next.hard_state = hs.clone();
        }
        if snapshot.is_some() || hard_state.is_some() {
            // A snapshot is committed by definition; keep the invariant `open` checks even if
            // the `Ready` carried an older `HardState` alongside it.
            next.hard_state.commit = next.hard_state.commit.max(next.snapshot_index);
            batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), &next.hard_state)?;
        }

        self.shared.engine.write(&mut batch, true)?;
        if snapshot.is_some() {
            stored.log.reset(next.snapshot_index);
        }
        stored.log.append(entries);
        stored.meta = next;
        Ok(())
    }

    /// Installs a snapshot received from the leader (`Ready::snapshot`): stores it, drops every
    /// stored entry (raft-rs has discarded its whole log in favour of the snapshot), makes
    /// `first_index` = `index + 1`, raises the commit index to at least `index`, and takes the
    /// snapshot's `ConfState` — in one synced batch.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.persist_ready(&[], None, Some(snapshot))
    }

    /// Records `LightReady::commit_index`. Not synced: see the module docs.
    pub fn persist_commit(&self, commit: u64) -> Result<(), StorageError> {
        let mut stored = self.write_meta()?;
        if commit <= stored.meta.hard_state.commit {
            return Ok(());
        }
        if commit > stored.log.last_index() {
            return Err(StorageError::Unavailable);
        }
        let mut hard_state = stored.meta.hard_state.clone();
        hard_state.commit = commit;
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), &hard_state)?;
        self.shared.engine.write(&mut batch, false)?;
        stored.meta.hard_state = hard_state;
        Ok(())
    }

    /// Log compaction: records a snapshot at `applied_index` holding `snapshot_data` (the state
    /// machine at exactly that index) and `conf_state` (the configuration at that index), then
    /// drops the entries up to and including it — in one synced batch — and lets raft-engine
    /// delete files that no longer hold live data.
    ///
    /// `applied_index` must be newer than the stored snapshot
    /// ([`StorageError::SnapshotOutOfDate`] otherwise) and must be a stored entry
    /// ([`StorageError::Unavailable`] otherwise).
    pub fn compact(
        &self,
        applied_index: u64,
        snapshot_data: Vec<u8>,
        conf_state: ConfState,
    ) -> Result<(), StorageError> {
        {
            let mut stored = self.write_meta()?;
            if applied_index <= stored.meta.snapshot_index {
                return Err(StorageError::SnapshotOutOfDate {
                    index: applied_index,
                    stored: stored.meta.snapshot_index,
                });
            }
            if applied_index > stored.log.last_index() {
                return Err(StorageError::Unavailable);
            }
            let term = stored.term(applied_index)?;

            let mut snapshot = Snapshot {
                data: Bytes::from(snapshot_data),
                ..Default::default()
            };
            let md = snapshot.mut_metadata();
            md.index = applied_index;
            md.term = term;
            md.set_conf_state(conf_state.clone());

            let mut next = stored.meta.clone();
            next.snapshot_index = applied_index;
            next.snapshot_term = term;
            next.conf_state = conf_state;
            // Applied implies committed, even if the commit index on disk lags (it is written
            // unsynced by `persist_commit`).
            next.hard_state.commit = next.hard_state.commit.max(applied_index);

            let mut batch = LogBatch::default();
            batch.put_message(GROUP_ID, KEY_SNAPSHOT.to_vec(), &snapshot)?;
            batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), &next.conf_state)?;
            batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), &next.hard_state)?;
            batch.add_command(
                GROUP_ID,
                Command::Compact {
                    index: applied_index + 1,
                },
            );
            self.shared.engine.write(&mut batch, true)?;
            stored.log.compact(applied_index);
            stored.meta = next;
        }
        // Outside the lock: purging may rewrite live data and take a while. A failure only
        // delays reclaiming space, the compaction itself is durable. Purging reads entries
        // through raft-engine's per-thread block cache, so it runs on a fresh thread (see
        // `entries`).
        let purged = std::thread::scope(|s| {
            s.spawn(|| self.shared.engine.purge_expired_files())
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        if let Err(e) = purged {
            tracing::warn!(error = %e, "raft-engine purge failed");
        }
        tracing::debug!(applied_index, "raft log compacted");
        Ok(())
    }

    /// The stored `HardState`.
    pub fn hard_state(&self) -> Result<HardState, StorageError> {
        Ok(self.read_meta()?.meta.hard_state.clone())
    }

    /// The stored `ConfState`: the latest snapshot's, or the bootstrap one.
    pub fn conf_state(&self) -> Result<ConfState, StorageError> {
        Ok(self.read_meta()?.meta.conf_state.clone())
    }

    /// Index and term of the latest snapshot; `(0, 0)` if there is none.
    pub fn snapshot_index_term(&self) -> Result<(u64, u64), StorageError> {
        let stored = self.read_meta()?;
        Ok((stored.meta.snapshot_index, stored.meta.snapshot_term))
    }

    /// The latest snapshot (data and metadata), if any. On restart the node loads its state
    /// machine from this; see the module docs.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self
            .shared
            .engine
            .get_message::<Snapshot>(GROUP_ID, KEY_SNAPSHOT)?)
    }

    /// The data of the latest snapshot, if any.
    pub fn snapshot_data(&self) -> Result<Option<Bytes>, StorageError> {
        Ok(self.latest_snapshot()?.map(|s| s.data))
    }

    /// Metadata of the latest snapshot (index, term, `ConfState`); default if there is none.
    pub fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
        Ok(self
            .latest_snapshot()?
            .map(|mut s| s.take_metadata())
            .unwrap_or_default())
    }

    fn read_meta(&self) -> Result<RwLockReadGuard<'_, Stored>, StorageError> {
        self.shared
            .stored
            .read()
            .map_err(|_: PoisonError<_>| StorageError::Poisoned)
    }

    fn write_meta(&self) -> Result<RwLockWriteGuard<'_, Stored>, StorageError> {
        self.shared
            .stored
            .write()
            .map_err(|_: PoisonError<_>| StorageError::Poisoned)
    }
}

impl Stored {
    fn is_initialized(&self) -> bool {
        self.meta.hard_state != HardState::default()
            || self.meta.conf_state != ConfState::default()
            || self.meta.snapshot_index > 0
            || !self.log.is_empty()
    }

    fn term(&self, idx: u64) -> Result<u64, StorageError> {
        if idx == self.meta.snapshot_index {
            return Ok(self.meta.snapshot_term);
        }
        if idx < self.meta.snapshot_index {
            return Err(StorageError::Compacted);
        }
        self.log.term(idx).ok_or(StorageError::Unavailable)
    }
}

/// Reads the stored entries, once, at open. On a thread of its own, because raft-engine's
/// entry reads go through a per-thread cache that another engine may have filled (see
/// `entries`).
fn read_log(engine: &Engine) -> Result<Vec<Entry>, StorageError> {
    let (Some(first), Some(last)) = (engine.first_index(GROUP_ID), engine.last_index(GROUP_ID))
    else {
        return Ok(Vec::new());
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut out = Vec::with_capacity((last + 1 - first) as usize);
            engine.fetch_entries_to::<EntryExt>(GROUP_ID, first, last + 1, None, &mut out)?;
            Ok(out)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Stages `snapshot` into `batch` and `next`; `last` is the current last index.
fn stage_snapshot(
    batch: &mut LogBatch,
    next: &mut Meta,
    last: u64,
    snapshot: &Snapshot,
) -> Result<(), StorageError> {
    let md = snapshot.get_metadata();
    if md.index <= next.snapshot_index {
        return Err(StorageError::SnapshotOutOfDate {
            index: md.index,
            stored: next.snapshot_index,
        });
    }
    batch.put_message(GROUP_ID, KEY_SNAPSHOT.to_vec(), snapshot)?;
    batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), md.get_conf_state())?;
    // Drop the whole log, not just the prefix up to the snapshot: raft-rs only sends a
    // snapshot in a `Ready` after discarding its log, and entries past the snapshot may
    // conflict with the leader's. Compacting past the end leaves the engine's log empty, so
    // the next append may start at `index + 1`.
    batch.add_command(
        GROUP_ID,
        Command::Compact {
            index: last.max(md.index) + 1,
        },
    );
    next.snapshot_index = md.index;
    next.snapshot_term = md.term;
    next.conf_state = md.get_conf_state().clone();
    next.hard_state.term = next.hard_state.term.max(md.term);
    next.hard_state.commit = next.hard_state.commit.max(md.index);
    Ok(())
}

/// Stages an append into `batch`, after checking it keeps the log contiguous. raft-engine
/// itself truncates the stored suffix from the first new index on — when writing and again
/// when replaying after a restart — but it panics on holes and on overwriting compacted
/// entries, so those are refused here first.
fn stage_entries(
    batch: &mut LogBatch,
    meta: &Meta,
    last: u64,
    entries: &[Entry],
) -> Result<(), StorageError> {
    let mut expected = None;
    for e in entries {
        if let Some(want) = expected {
            if e.index != want {
                return Err(StorageError::InvalidAppend(format!(
                    "entry {} follows entry {}",
                    e.index,
                    want - 1
                )));
            }
        }
        expected = Some(e.index + 1);
    }
    let first = entries.first().map_or(0, |e| e.index);
    if first <= meta.snapshot_index {
        return Err(StorageError::InvalidAppend(format!(
            "entry {first} is at or below the snapshot at {}",
            meta.snapshot_index
        )));
    }
    if first > last + 1 {
        return Err(StorageError::InvalidAppend(format!(
            "entry {first} leaves a hole after the last entry {last}"
        )));
    }
    batch.add_entries::<EntryExt>(GROUP_ID, entries)?;
    Ok(())
}

impl ::raft::Storage for RaftStorage {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        let meta = &self.read_meta()?.meta;
        Ok(RaftState::new(
            meta.hard_state.clone(),
            meta.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        let stored = self.read_meta()?;
        if low <= stored.meta.snapshot_index {
            return Err(StorageError::Compacted.into());
        }
        if high > stored.log.last_index() + 1 {
            return Err(StorageError::Unavailable.into());
        }
        Ok(stored.log.slice(low, high, max_size.into()))
    }

    fn term(&self, idx: u64) -> ::raft::Result<u64> {
        Ok(self.read_meta()?.term(idx)?)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.read_meta()?.meta.snapshot_index + 1)
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.read_meta()?.log.last_index())
    }

    /// Always the stored snapshot; snapshots are produced by [`RaftStorage::compact`], never
    /// on demand here, so a request beyond it (raft-rs' `request_snapshot`) or a store without
    /// one gets `SnapshotTemporarilyUnavailable` and raft-rs retries later.
    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        let meta = &self.read_meta()?.meta;
        if meta.snapshot_index == 0 || meta.snapshot_index < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable.into());
        }
        match self
            .shared
            .engine
            .get_message::<Snapshot>(GROUP_ID, KEY_SNAPSHOT)
            .map_err(StorageError::from)?
        {
            Some(s) => Ok(s),
            None => {
                Err(StorageError::Inconsistent("snapshot index without snapshot".into()).into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
