use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use ::raft::{Config as RaftConfig, RawNode, Storage};
use protobuf::Message as _;

use super::*;

/// A directory removed on drop; `tempfile` is not a dependency of this crate.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "vxnet-raftstore-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(format!("entry {index} term {term}")),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn read(store: &RaftStorage, low: u64, high: u64) -> ::raft::Result<Vec<Entry>> {
    store.entries(low, high, None, GetEntriesContext::empty(false))
}

fn terms(store: &RaftStorage) -> Vec<(u64, u64)> {
    let first = store.first_index().expect("first_index");
    let last = store.last_index().expect("last_index");
    read(store, first, last + 1)
        .expect("entries")
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    }
}

fn snapshot(index: u64, term: u64, conf_state: ConfState, data: &[u8]) -> Snapshot {
    let mut s = Snapshot {
        data: Bytes::copy_from_slice(data),
        ..Default::default()
    };
    let md = s.mut_metadata();
    md.index = index;
    md.term = term;
    md.set_conf_state(conf_state);
    s
}

fn store_err(e: ::raft::Error) -> ::raft::StorageError {
    match e {
        ::raft::Error::Store(e) => e,
        other => panic!("not a storage error: {other:?}"),
    }
}

#[test]
fn append_read_term_first_last() {
    let dir = TempDir::new("append");
    let store = RaftStorage::open(&dir.0).expect("open");
    assert!(!store.is_initialized().expect("is_initialized"));
    assert_eq!(store.first_index().expect("first"), 1);
    assert_eq!(store.last_index().expect("last"), 0);
    assert_eq!(store.term(0).expect("term 0"), 0);
    assert_eq!(
        store_err(store.snapshot(0, 2).expect_err("no snapshot yet")),
        ::raft::StorageError::SnapshotTemporarilyUnavailable
    );

    let mut ents = entries(1..=3, 1);
    ents.extend(entries(4..=5, 2));
    store.persist_ready(&ents, None, None).expect("append");
    assert!(store.is_initialized().expect("is_initialized"));
    assert_eq!(store.first_index().expect("first"), 1);
    assert_eq!(store.last_index().expect("last"), 5);
    assert_eq!(read(&store, 1, 6).expect("entries"), ents);
    assert_eq!(read(&store, 2, 4).expect("entries"), ents[1..3].to_vec());
    assert_eq!(
        read(&store, 3, 3).expect("empty range"),
        Vec::<Entry>::new()
    );
    assert_eq!(store.term(3).expect("term 3"), 1);
    assert_eq!(store.term(5).expect("term 5"), 2);
    assert_eq!(
        store_err(store.term(6).expect_err("beyond last")),
        ::raft::StorageError::Unavailable
    );
    assert_eq!(
        store_err(read(&store, 4, 7).expect_err("beyond last")),
        ::raft::StorageError::Unavailable
    );
    assert_eq!(
        store_err(read(&store, 0, 2).expect_err("index 0")),
        ::raft::StorageError::Compacted
    );

    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(read(&store, 1, 6).expect("entries"), ents);
}

/// Two stores written alike (same sizes, so the same file positions) but with different terms,
/// read from one thread: raft-engine's per-thread block cache, keyed by file position only,
/// used to answer the second store's reads with the first one's entries.
#[test]
fn two_stores_on_one_thread_read_their_own_entries() {
    let (dir_a, dir_b) = (TempDir::new("alike-a"), TempDir::new("alike-b"));
    let a = RaftStorage::open(&dir_a.0).expect("open a");
    let b = RaftStorage::open(&dir_b.0).expect("open b");
    a.persist_ready(&entries(1..=5, 1), None, None)
        .expect("append a");
    b.persist_ready(&entries(1..=5, 2), None, None)
        .expect("append b");
    for _ in 0..2 {
        assert_eq!(a.term(3).expect("term a"), 1);
        assert_eq!(b.term(3).expect("term b"), 2);
        assert_eq!(read(&a, 1, 6).expect("entries a"), entries(1..=5, 1));
        assert_eq!(read(&b, 1, 6).expect("entries b"), entries(1..=5, 2));
    }
    // Reopened on this thread, after it read the other store.
    drop(b);
    let b = RaftStorage::open(&dir_b.0).expect("reopen b");
    assert_eq!(
        terms(&b),
        entries(1..=5, 2)
            .iter()
            .map(|e| (e.index, 2))
            .collect::<Vec<_>>()
    );
    assert_eq!(a.term(5).expect("term a"), 1);
}

#[test]
fn overlapping_append_truncates_and_bad_appends_are_refused() {
    let dir = TempDir::new("overlap");
    let store = RaftStorage::open(&dir.0).expect("open");
    store
        .persist_ready(&entries(1..=5, 1), None, None)
        .expect("append");

    // A new leader's entries at 3 replace 3..=5, even though they end before 5.
    store
        .persist_ready(&entries(3..=4, 2), None, None)
        .expect("overlapping append");
    let want = vec![(1, 1), (2, 1), (3, 2), (4, 2)];
    assert_eq!(terms(&store), want);
    assert_eq!(
        store_err(store.term(5).expect_err("truncated")),
        ::raft::StorageError::Unavailable
    );

    // Replacing from the very first index.
    store
        .persist_ready(&entries(1..=2, 3), None, None)
        .expect("replace all");
    assert_eq!(terms(&store), vec![(1, 3), (2, 3)]);

    assert!(matches!(
        store.persist_ready(&entries(4..=4, 3), None, None),
        Err(StorageError::InvalidAppend(_))
    ));
    let gap = vec![entry(3, 3), entry(5, 3)];
    assert!(matches!(
        store.persist_ready(&gap, None, None),
        Err(StorageError::InvalidAppend(_))
    ));
    assert_eq!(terms(&store), vec![(1, 3), (2, 3)]);

    // The truncation is what the engine replays, too.
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(terms(&store), vec![(1, 3), (2, 3)]);
    store
        .persist_ready(&entries(3..=3, 3), None, None)
        .expect("append after reopen");
    assert_eq!(terms(&store), vec![(1, 3), (2, 3), (3, 3)]);
}

#[test]
fn hard_state_and_conf_state_survive_reopen() {
    let dir = TempDir::new("hardstate");
    let store = RaftStorage::open(&dir.0).expect("open");
    store.bootstrap(&voters(&[7])).expect("bootstrap");
    assert!(store.is_initialized().expect("is_initialized"));
    assert!(matches!(
        store.bootstrap(&voters(&[7])),
        Err(StorageError::AlreadyInitialized)
    ));

    let hs = hard_state(2, 7, 3);
    store
        .persist_ready(&entries(1..=4, 2), Some(&hs), None)
        .expect("persist");
    store.persist_commit(4).expect("commit");
    assert!(matches!(
        store.persist_commit(5),
        Err(StorageError::Unavailable)
    ));
    drop(store);

    let store = RaftStorage::open(&dir.0).expect("reopen");
    let state = store.initial_state().expect("initial_state");
    assert_eq!(state.hard_state, hard_state(2, 7, 4));
    assert_eq!(state.conf_state, voters(&[7]));
    assert!(state.initialized());
    assert!(matches!(
        store.bootstrap(&voters(&[7])),
        Err(StorageError::AlreadyInitialized)
    ));
}

#[test]
fn compaction_keeps_snapshot_term_and_drops_entries() {
    let dir = TempDir::new("compact");
    let store = RaftStorage::open(&dir.0).expect("open");
    store.bootstrap(&voters(&[1])).expect("bootstrap");
    let mut ents = entries(1..=4, 1);
    ents.extend(entries(5..=10, 2));
    store
        .persist_ready(&ents, Some(&hard_state(2, 1, 10)), None)
        .expect("persist");

    store
        .compact(6, b"state at 6".to_vec(), voters(&[1, 2]))
        .expect("compact");
    let check = |store: &RaftStorage| {
        assert_eq!(store.first_index().expect("first"), 7);
        assert_eq!(store.last_index().expect("last"), 10);
        assert_eq!(store.term(6).expect("term at snapshot"), 2);
        assert_eq!(
            store_err(store.term(5).expect_err("compacted term")),
            ::raft::StorageError::Compacted
        );
        assert_eq!(
            store_err(read(store, 6, 8).expect_err("compacted entries")),
            ::raft::StorageError::Compacted
        );
        assert_eq!(
            read(store, 7, 11).expect("live entries"),
            ents[6..].to_vec()
        );

        let snap = store.snapshot(0, 2).expect("snapshot");
        assert_eq!(snap.get_metadata().index, 6);
        assert_eq!(snap.get_metadata().term, 2);
        assert_eq!(snap.get_metadata().get_conf_state(), &voters(&[1, 2]));
        assert_eq!(&snap.data[..], b"state at 6");
        assert_eq!(store.snapshot(6, 2).expect("snapshot at 6"), snap);
        assert_eq!(
            store_err(store.snapshot(7, 2).expect_err("beyond stored snapshot")),
            ::raft::StorageError::SnapshotTemporarilyUnavailable
        );
        assert_eq!(
            store.snapshot_data().expect("data").as_deref(),
            Some(&b"state at 6"[..])
        );
        assert_eq!(store.snapshot_index_term().expect("index/term"), (6, 2));
        let state = store.initial_state().expect("initial_state");
        assert_eq!(state.conf_state, voters(&[1, 2]));
        assert_eq!(state.hard_state, hard_state(2, 1, 10));
    };
    check(&store);

    assert!(matches!(
        store.compact(6, Vec::new(), voters(&[1])),
        Err(StorageError::SnapshotOutOfDate {
            index: 6,
            stored: 6
        })
    ));
    assert!(matches!(
        store.compact(11, Vec::new(), voters(&[1])),
        Err(StorageError::Unavailable)
    ));
    assert!(matches!(
        store.persist_ready(&entries(5..=6, 3), None, None),
        Err(StorageError::InvalidAppend(_))
    ));

    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    check(&store);

    // Compacting everything leaves an empty log that continues after the snapshot.
    store
        .compact(10, b"state at 10".to_vec(), voters(&[1, 2]))
        .expect("compact all");
    assert_eq!(store.first_index().expect("first"), 11);
    assert_eq!(store.last_index().expect("last"), 10);
    assert_eq!(store.term(10).expect("term"), 2);
    store
        .persist_ready(&entries(11..=12, 3), None, None)
        .expect("append after compaction");
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(terms(&store), vec![(11, 3), (12, 3)]);
    assert_eq!(store.term(10).expect("term"), 2);
}

#[test]
fn snapshot_from_leader_replaces_the_log() {
    let dir = TempDir::new("applysnap");
    // A joining host: empty, then conflicting entries, then the leader's snapshot.
    let store = RaftStorage::open(&dir.0).expect("open");
    assert_eq!(
        store.initial_state().expect("state").conf_state,
        voters(&[])
    );
    store
        .persist_ready(&entries(1..=12, 1), Some(&hard_state(1, 0, 3)), None)
        .expect("persist");

    let snap = snapshot(8, 3, voters(&[1, 2, 3]), b"leader state");
    store.apply_snapshot(&snap).expect("apply snapshot");
    let check = |store: &RaftStorage| {
        assert_eq!(store.first_index().expect("first"), 9);
        assert_eq!(store.term(8).expect("term at snapshot"), 3);
        let state = store.initial_state().expect("state");
        assert_eq!(state.conf_state, voters(&[1, 2, 3]));
        assert!(state.hard_state.commit >= 8);
        assert!(state.hard_state.term >= 3);
        assert_eq!(store.latest_snapshot().expect("latest"), Some(snap.clone()));
    };
    check(&store);
    // Every old entry is gone, including those past the snapshot.
    assert_eq!(store.last_index().expect("last"), 8);
    assert_eq!(
        store_err(read(&store, 9, 10).expect_err("dropped")),
        ::raft::StorageError::Unavailable
    );

    // Older or equal snapshots are refused.
    assert!(matches!(
        store.apply_snapshot(&snapshot(8, 3, voters(&[1]), b"")),
        Err(StorageError::SnapshotOutOfDate { .. })
    ));

    // Snapshot, entries and HardState of one Ready in one batch.
    let snap2 = snapshot(20, 4, voters(&[1, 2, 3]), b"newer");
    store
        .persist_ready(
            &entries(21..=22, 4),
            Some(&hard_state(4, 0, 21)),
            Some(&snap2),
        )
        .expect("ready with snapshot");
    assert_eq!(terms(&store), vec![(21, 4), (22, 4)]);
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(terms(&store), vec![(21, 4), (22, 4)]);
    assert_eq!(store.term(20).expect("term"), 4);
    assert_eq!(store.hard_state().expect("hs"), hard_state(4, 0, 21));
    assert_eq!(store.snapshot_metadata().expect("md").index, 20);
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "raftlog" || x == "rewrite")
        })
        .collect()
}

#[test]
fn compaction_reclaims_files_and_keeps_snapshot_through_purge() {
    let dir = TempDir::new("purge");
    let store = RaftStorage::open(&dir.0).expect("open");
    store.bootstrap(&voters(&[1])).expect("bootstrap");
    // ~40 MiB in 64 KiB entries: past the 32 MiB purge threshold, over several files.
    // Incompressible, or raft-engine's LZ4 would shrink it to nothing.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_le_bytes()
    };
    let payload: Bytes = (0..(64 << 10) / 8).flat_map(|_| noise()).collect();
    let mut index = 0;
    for _ in 0..16 {
        let batch: Vec<Entry> = (0..40)
            .map(|_| {
                index += 1;
                Entry {
                    index,
                    term: 1,
                    data: payload.clone(),
                    ..Default::default()
                }
            })
            .collect();
        store
            .persist_ready(&batch, Some(&hard_state(1, 1, index)), None)
            .expect("persist");
    }
    let before = log_files(&dir.0).len();
    assert!(before > 2, "{before} files");

    store
        .compact(index - 1, b"state".to_vec(), voters(&[1]))
        .expect("compact");
    let after = log_files(&dir.0).len();
    assert!(
        after < before / 2,
        "{after} files after purge, {before} before"
    );

    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(store.first_index().expect("first"), index);
    assert_eq!(store.last_index().expect("last"), index);
    assert_eq!(
        store.snapshot_data().expect("data").as_deref(),
        Some(&b"state"[..])
    );
    assert_eq!(store.hard_state().expect("hs"), hard_state(1, 1, index));
    assert_eq!(store.conf_state().expect("cs"), voters(&[1]));
}

#[test]
fn entries_honours_max_size() {
    let dir = TempDir::new("maxsize");
    let store = RaftStorage::open(&dir.0).expect("open");
    let ents: Vec<Entry> = (1..=5)
        .map(|i| Entry {
            index: i,
            term: 1,
            data: Bytes::from(vec![b'x'; 100]),
            ..Default::default()
        })
        .collect();
    store.persist_ready(&ents, None, None).expect("append");
    let size = u64::from(ents[0].compute_size());

    let limited = |max: u64| {
        store
            .entries(1, 6, max, GetEntriesContext::empty(false))
            .expect("entries")
            .len()
    };
    assert_eq!(limited(0), 1, "at least one entry");
    assert_eq!(limited(size - 1), 1);
    assert_eq!(limited(size), 1);
    assert_eq!(limited(2 * size), 2);
    assert_eq!(limited(3 * size - 1), 2);
    assert_eq!(limited(u64::MAX), 5);
    assert_eq!(read(&store, 1, 6).expect("unlimited").len(), 5);
}

fn newest_log_file(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .max()
        .expect("a raftlog file")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

#[test]
fn torn_tail_write_is_dropped_on_recovery() {
    let dir = TempDir::new("torn");
    let store = RaftStorage::open(&dir.0).expect("open");
    store.bootstrap(&voters(&[1])).expect("bootstrap");
    let acked = entries(1..=5, 1);
    store
        .persist_ready(&acked, Some(&hard_state(1, 1, 5)), None)
        .expect("persist");
    drop(store);
    let file = newest_log_file(&dir.0);
    let acked_len = file_len(&file);

    // The write the crash tears.
    let store = RaftStorage::open(&dir.0).expect("reopen");
    store
        .persist_ready(&entries(6..=10, 2), Some(&hard_state(2, 1, 10)), None)
        .expect("persist");
    drop(store);
    assert_eq!(newest_log_file(&dir.0), file);
    let torn_len = file_len(&file);
    assert!(torn_len > acked_len, "{torn_len} > {acked_len}");
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open log file")
        .set_len(acked_len + (torn_len - acked_len) / 2)
        .expect("truncate");

    let store = RaftStorage::open(&dir.0).expect("recover");
    assert_eq!(read(&store, 1, 6).expect("acknowledged entries"), acked);
    assert_eq!(store.last_index().expect("last"), 5);
    assert_eq!(store.hard_state().expect("hs"), hard_state(1, 1, 5));
    assert_eq!(store.conf_state().expect("cs"), voters(&[1]));

    // Usable: the next write lands and survives, then a tail overwritten with garbage
    // (instead of cut short) is dropped as well.
    let more = entries(6..=7, 2);
    store
        .persist_ready(&more, Some(&hard_state(2, 1, 7)), None)
        .expect("persist after recovery");
    drop(store);
    let file = newest_log_file(&dir.0);
    let good_len = file_len(&file);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    store
        .persist_ready(&entries(8..=9, 2), Some(&hard_state(2, 1, 9)), None)
        .expect("persist");
    drop(store);
    let file = newest_log_file(&dir.0);
    let bad_len = file_len(&file);
    assert!(bad_len > good_len + 16);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open log file");
    f.seek(SeekFrom::Start(bad_len - 16)).expect("seek");
    f.write_all(&[0xa5; 16]).expect("corrupt");
    f.sync_all().expect("sync");
    drop(f);

    let store = RaftStorage::open(&dir.0).expect("recover");
    let mut want = acked.clone();
    want.extend(more);
    assert_eq!(read(&store, 1, 8).expect("entries"), want);
    assert_eq!(store.last_index().expect("last"), 7);
    assert_eq!(store.hard_state().expect("hs"), hard_state(2, 1, 7));
    store
        .persist_ready(&entries(8..=8, 3), Some(&hard_state(3, 1, 8)), None)
        .expect("persist after recovery");
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(store.last_index().expect("last"), 8);
    assert_eq!(store.term(8).expect("term"), 3);
}

#[test]
fn open_creates_a_private_directory_and_locks_it() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("lock");
    let raft_dir = dir.0.join("data").join(RAFT_DIR);
    let store = RaftStorage::open(&raft_dir).expect("open");
    assert_eq!(store.dir(), raft_dir);
    let mode = fs::metadata(&raft_dir)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(RaftStorage::open(&raft_dir).is_err(), "second open");
    drop(store);
    RaftStorage::open(&raft_dir).expect("open after close");
}

#[test]
fn storage_can_move_into_the_node_task() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<RaftStorage>();
    fn send<T: Send>() {}
    send::<RawNode<RaftStorage>>();
}

#[test]
fn errors_map_to_raft_errors() {
    let raft: ::raft::Error = StorageError::Compacted.into();
    assert_eq!(raft, ::raft::Error::Store(::raft::StorageError::Compacted));
    let raft: ::raft::Error = StorageError::Unavailable.into();
    assert_eq!(
        raft,
        ::raft::Error::Store(::raft::StorageError::Unavailable)
    );
    let raft: ::raft::Error = StorageError::Poisoned.into();
    assert!(matches!(
        raft,
        ::raft::Error::Store(::raft::StorageError::Other(_))
    ));
}

/// Handles every `Ready` in the order of raft-rs `examples/five_mem_node`, for a single
/// voter (so there are no messages to send). Returns the applied entries' data.
fn drive(node: &mut RawNode<RaftStorage>, store: &RaftStorage) -> Vec<(u64, Vec<u8>)> {
    let mut applied = Vec::new();
    let mut apply = |ents: Vec<Entry>| {
        applied.extend(ents.into_iter().map(|e| (e.index, e.data.to_vec())));
    };
    while node.has_ready() {
        let mut rd = node.ready();
        assert!(rd.messages().is_empty(), "single voter sends nothing");
        if *rd.snapshot() != Snapshot::default() {
            store.apply_snapshot(rd.snapshot()).expect("apply snapshot");
        }
        apply(rd.take_committed_entries());
        store
            .persist_ready(rd.entries(), rd.hs(), None)
            .expect("persist ready");
        assert!(rd.persisted_messages().is_empty());
        let mut light = node.advance(rd);
        if let Some(commit) = light.commit_index() {
            store.persist_commit(commit).expect("persist commit");
        }
        apply(light.take_committed_entries());
        node.advance_apply();
    }
    applied
}

fn raft_config() -> RaftConfig {
    RaftConfig {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 3,
        ..Default::default()
    }
}

#[test]
fn raw_node_state_survives_restart() {
    let dir = TempDir::new("rawnode");
    let store = RaftStorage::open(&dir.0).expect("open");
    store.bootstrap(&voters(&[1])).expect("bootstrap");
    let mut node = RawNode::with_default_logger(&raft_config(), store.clone()).expect("node");
    node.campaign().expect("campaign");
    let mut applied = drive(&mut node, &store);
    for data in [&b"a"[..], b"b", b"c"] {
        node.propose(vec![], data.to_vec()).expect("propose");
        applied.extend(drive(&mut node, &store));
    }
    // The new leader's empty entry, then the proposals.
    let want: Vec<(u64, Vec<u8>)> = vec![
        (1, vec![]),
        (2, b"a".to_vec()),
        (3, b"b".to_vec()),
        (4, b"c".to_vec()),
    ];
    assert_eq!(applied, want);
    let hs = store.hard_state().expect("hs");
    assert_eq!((hs.term, hs.vote, hs.commit), (1, 1, 4));
    drop(node);
    drop(store);

    // Restart without a snapshot: everything committed comes back to be applied again.
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(store.hard_state().expect("hs"), hs);
    assert_eq!(store.latest_snapshot().expect("snapshot"), None);
    let mut node = RawNode::with_default_logger(&raft_config(), store.clone()).expect("node");
    assert_eq!(drive(&mut node, &store), want);

    // Compact at 3 (as if the state machine there were "a,b"), restart: only what follows
    // the snapshot is replayed.
    store
        .compact(3, b"a,b".to_vec(), voters(&[1]))
        .expect("compact");
    drop(node);
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(
        store.snapshot_data().expect("data").as_deref(),
        Some(&b"a,b"[..])
    );
    let mut node = RawNode::with_default_logger(&raft_config(), store.clone()).expect("node");
    assert_eq!(drive(&mut node, &store), vec![(4, b"c".to_vec())]);

    // Still a working group: a new term, a new proposal.
    node.campaign().expect("campaign");
    let mut applied = drive(&mut node, &store);
    node.propose(vec![], b"d".to_vec()).expect("propose");
    applied.extend(drive(&mut node, &store));
    assert_eq!(applied, vec![(5, vec![]), (6, b"d".to_vec())]);
    let hs = store.hard_state().expect("hs");
    assert_eq!((hs.term, hs.commit), (2, 6));
    drop(node);
    drop(store);
    let store = RaftStorage::open(&dir.0).expect("reopen");
    assert_eq!(store.hard_state().expect("hs"), hs);
    assert_eq!(
        read(&store, 4, 7)
            .expect("entries")
            .iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect::<Vec<_>>(),
        vec![(4, 1, b"c".to_vec()), (5, 2, vec![]), (6, 2, b"d".to_vec())]
    );
}
