//! The cluster's files in the daemon's data dir (the layout is in the [`cluster`](super) docs).
//!
//! Rules: every file is replaced atomically (a crash leaves the old contents or the new, never
//! half); the token file is readable by its owner only; a file that exists but does not parse
//! is an error that names it, never replaced by a fresh one, since this host's identity and
//! membership depend on it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::raft::storage::RAFT_DIR;
use super::raft::transport::ClusterToken;
use super::{ClusterError, FileOp};
use crate::sys;

const RAFT_ID_FILE: &str = "raft-id";
const TOKEN_FILE: &str = "cluster-token";

/// The directory of the Raft log.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(RAFT_DIR)
}

/// This host's raft id: the stored one, or (none stored, or `fresh`) a new random one, stored.
pub fn load_or_create_raft_id(data_dir: &Path, fresh: bool) -> Result<u64, ClusterError> {
    let path = data_dir.join(RAFT_ID_FILE);
    if !fresh {
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                return s
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&id| id != 0)
                    .ok_or(ClusterError::CorruptRaftId(path))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ClusterError::file(FileOp::Read, path, e)),
        }
    }
    let id = loop {
        let bytes = sys::random_bytes().map_err(ClusterError::Random)?;
        // 63 bits: positive in every language a tool might read it with.
        let id = u64::from_le_bytes(bytes) >> 1;
        if id != 0 {
            break id;
        }
    };
    write_atomically(&path, &format!("{id}\n"))?;
    Ok(id)
}

/// The token of the cluster this host is in; a new one (stored) if there is none.
pub fn load_or_create_token(data_dir: &Path) -> Result<ClusterToken, ClusterError> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|source| ClusterError::CorruptToken { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let token = ClusterToken::generate().map_err(ClusterError::TokenGeneration)?;
            save_token(data_dir, &token)?;
            Ok(token)
        }
        Err(e) => Err(ClusterError::file(FileOp::Read, path, e)),
    }
}

pub fn save_token(data_dir: &Path, token: &ClusterToken) -> Result<(), ClusterError> {
    let path = data_dir.join(TOKEN_FILE);
    write_atomically(&path, &format!("{token}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ClusterError::file(FileOp::Restrict, path, e))
}

/// Forgets the token, so that the next [`load_or_create_token`] makes a new one.
pub fn remove_token(data_dir: &Path) {
    // Absent already is the goal; any other failure shows when the token is read next.
    let _ = std::fs::remove_file(data_dir.join(TOKEN_FILE));
}

/// Where a replacement Raft store is built before it takes the place of the current one
/// ([`swap_in_raft`]).
pub fn new_raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("{RAFT_DIR}.new"))
}

fn old_raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("{RAFT_DIR}.old"))
}

/// Makes the complete store in [`new_raft_dir`] the Raft store, by two renames. A crash in
/// between leaves no store but the new one, which [`finish_raft_swap`] puts in place at the
/// next start.
pub fn swap_in_raft(data_dir: &Path) -> Result<(), ClusterError> {
    let (current, new, old) = (
        raft_dir(data_dir),
        new_raft_dir(data_dir),
        old_raft_dir(data_dir),
    );
    remove_dir_if_present(&old)?;
    match std::fs::rename(&current, &old) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ClusterError::file(FileOp::Rename, current, e)),
    }
    std::fs::rename(&new, &current).map_err(|e| ClusterError::file(FileOp::Rename, new, e))?;
    sys::sync_dir(data_dir).map_err(|e| ClusterError::file(FileOp::Write, data_dir, e))?;
    remove_dir_if_present(&old)
}

/// Finishes or forgets a [`swap_in_raft`] a crash interrupted: a new store with no current
/// one beside it is complete and goes in place; one beside a current store was never
/// swapped in and goes, as does a left-over old store.
pub fn finish_raft_swap(data_dir: &Path) -> Result<(), ClusterError> {
    let (current, new) = (raft_dir(data_dir), new_raft_dir(data_dir));
    if new.exists() {
        if current.exists() {
            remove_dir_if_present(&new)?;
        } else {
            std::fs::rename(&new, &current)
                .map_err(|e| ClusterError::file(FileOp::Rename, new, e))?;
        }
    }
    remove_dir_if_present(&old_raft_dir(data_dir))
}

pub fn remove_dir_if_present(dir: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClusterError::file(FileOp::Remove, dir, e)),
    }
}

/// Removes the Raft log, HardState and snapshots.
pub fn wipe_raft(data_dir: &Path) -> Result<(), ClusterError> {
    remove_dir_if_present(&raft_dir(data_dir))
}

fn write_atomically(path: &Path, contents: &str) -> Result<(), ClusterError> {
    sys::write_atomically(path, contents).map_err(|e| ClusterError::file(FileOp::Write, path, e))
}
