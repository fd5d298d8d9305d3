//! The uncompacted Raft log, held in memory beside raft-engine's files.
//!
//! raft-engine is written to on every persist but read only at open: its entry reads go
//! through a block cache that is per *thread* and keyed by file position only, not by engine.
//! Two engines read from the same thread (the three hosts of an in-process cluster test on a
//! shared tokio runtime, or the old and the new store of `--force-new-cluster`) then answer
//! each other's reads with the wrong block — a wrong entry, or a panic inside raft-engine. A
//! copy of the entries in memory avoids that, and saves raft-rs a decode per `term()` call.
//! The copy is small: the node compacts every [`COMPACT_EVERY`] applied entries, so it holds
//! those plus what is not yet applied.
//!
//! Rules: [`EntryLog`] never fails and never checks an append — the storage validates first,
//! writes to disk, and only then mirrors the change here, so the copy never runs ahead of the
//! files.
//!
//! [`COMPACT_EVERY`]: crate::cluster::raft::COMPACT_EVERY

use std::collections::VecDeque;

use ::raft::eraftpb::Entry;

/// Entries `first ..= last` of the log, with `first` = snapshot index + 1.
#[derive(Debug, Default)]
pub(super) struct EntryLog {
    first: u64,
    entries: VecDeque<Entry>,
}

impl EntryLog {
    /// A log right after a snapshot at `snapshot_index`, holding `entries` (consecutive, the
    /// first at `snapshot_index + 1`, as raft-engine returns them).
    pub(super) fn new(snapshot_index: u64, entries: Vec<Entry>) -> EntryLog {
        EntryLog {
            first: snapshot_index + 1,
            entries: entries.into(),
        }
    }

    /// The index of the last entry, or the snapshot index when there is none.
    pub(super) fn last_index(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The term of entry `idx`, if it is held.
    pub(super) fn term(&self, idx: u64) -> Option<u64> {
        self.get(idx).map(|e| e.term)
    }

    /// Entries `low .. high` (all held), cut to `max_size` encoded bytes as raft-rs does: at
    /// least one entry.
    pub(super) fn slice(&self, low: u64, high: u64, max_size: Option<u64>) -> Vec<Entry> {
        if low >= high {
            return Vec::new();
        }
        let start = (low - self.first) as usize;
        let end = (high - self.first) as usize;
        let mut out: Vec<Entry> = self.entries.range(start..end).cloned().collect();
        ::raft::util::limit_size(&mut out, max_size);
        out
    }

    /// Raft's append: `entries` (consecutive, the first within `first ..= last + 1`) replace
    /// everything from their first index on.
    pub(super) fn append(&mut self, entries: &[Entry]) {
        let Some(head) = entries.first() else { return };
        self.entries.truncate((head.index - self.first) as usize);
        self.entries.extend(entries.iter().cloned());
    }

    /// Drops every entry up to and including `index` (a compaction at `index`).
    pub(super) fn compact(&mut self, index: u64) {
        let drop = (index + 1).saturating_sub(self.first) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.first = self.first.max(index + 1);
    }

    /// Drops every entry: a snapshot at `snapshot_index` replaced the whole log.
    pub(super) fn reset(&mut self, snapshot_index: u64) {
        self.entries.clear();
        self.first = snapshot_index + 1;
    }

    fn get(&self, idx: u64) -> Option<&Entry> {
        let offset = idx.checked_sub(self.first)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![0; 10].into(),
            ..Default::default()
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| entry(i, term)).collect()
    }

    #[test]
    fn append_replaces_the_suffix_from_its_first_index() {
        let mut log = EntryLog::new(4, entries(5..=9, 1));
        assert_eq!(log.last_index(), 9);
        log.append(&entries(7..=8, 2));
        assert_eq!(log.last_index(), 8);
        assert_eq!(log.term(6), Some(1));
        assert_eq!(log.term(7), Some(2));
        assert_eq!(log.term(9), None);
        assert_eq!(log.term(4), None);
        log.append(&entries(9..=10, 2));
        assert_eq!(log.last_index(), 10);
    }

    #[test]
    fn compact_and_reset_move_the_first_index() {
        let mut log = EntryLog::new(0, entries(1..=5, 1));
        log.compact(3);
        assert_eq!(
            (log.term(3), log.term(4), log.last_index()),
            (None, Some(1), 5)
        );
        // A compaction past the end (a snapshot ahead of the log) leaves it empty there.
        log.compact(8);
        assert!(log.is_empty());
        assert_eq!(log.last_index(), 8);
        log.append(&entries(9..=9, 3));
        assert_eq!(log.term(9), Some(3));
        log.reset(20);
        assert!(log.is_empty());
        assert_eq!(log.last_index(), 20);
    }

    #[test]
    fn slice_keeps_at_least_one_entry_under_a_size_limit() {
        let log = EntryLog::new(0, entries(1..=10, 1));
        assert_eq!(log.slice(2, 6, None).len(), 4);
        let one = log.slice(2, 6, Some(0));
        assert_eq!((one.len(), one[0].index), (1, 2));
        let size = u64::from(::protobuf::Message::compute_size(&entry(1, 1)));
        assert_eq!(log.slice(1, 11, Some(3 * size)).len(), 3);
    }
}
