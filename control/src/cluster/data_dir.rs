//! The cluster's files in the daemon's data dir (the layout is in the [`cluster`](super) docs).
//!
//! Rules: every file is replaced atomically (a crash leaves the old contents or the new, never
//! half); the key files (every file, in fact) are readable by their owner only; a file that exists but does not parse
//! is an error that names it, never replaced by a fresh one, since this host's identity and
//! membership depend on it.

use std::io;
use std::path::{Path, PathBuf};

use super::raft::storage::RAFT_DIR;
use super::raft::tls::{ClusterCa, ClusterTls};
use super::{ClusterError, FileOp};
use crate::sys;

const RAFT_ID_FILE: &str = "raft-id";
/// The token file of vxnet before mutual TLS; removed at start.
const OLD_TOKEN_FILE: &str = "cluster-token";
const CA_CERT_FILE: &str = "cluster-ca.pem";
const CA_KEY_FILE: &str = "cluster-ca-key.pem";
const HOST_KEY_FILE: &str = "host-key.pem";
const HOST_CERT_FILE: &str = "host-cert.der";

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
    write_atomically(&path, format!("{id}\n"))?;
    Ok(id)
}

/// This host's TLS identity in its cluster: the stored CA and certificate, or (no host
/// certificate stored) a new CA and a certificate from it, stored: a cluster is born. The host
/// certificate is written last ([`save_tls`]), so it marks a complete identity. A data dir from
/// before mutual TLS has a `cluster-token` file and no certificate; the token file goes. Also
/// returns whether the identity was made now.
pub fn load_or_create_tls(
    data_dir: &Path,
    raft_id: u64,
) -> Result<(ClusterTls, bool), ClusterError> {
    let identity = |source| ClusterError::Identity {
        data_dir: data_dir.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(data_dir.join(OLD_TOKEN_FILE));
    let cert_path = data_dir.join(HOST_CERT_FILE);
    let host_cert = match std::fs::read(&cert_path) {
        Ok(der) => der,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (tls, key_pem) = ClusterTls::generate(raft_id).map_err(identity)?;
            save_tls(data_dir, &tls, &key_pem)?;
            return Ok((tls, true));
        }
        Err(e) => return Err(ClusterError::file(FileOp::Read, cert_path, e)),
    };
    let ca = ClusterCa::from_pem(
        &read(data_dir, CA_CERT_FILE)?,
        &read(data_dir, CA_KEY_FILE)?,
    )
    .map_err(identity)?;
    let host_key = read(data_dir, HOST_KEY_FILE)?;
    let tls = ClusterTls::new(raft_id, ca, host_cert.into(), &host_key).map_err(identity)?;
    Ok((tls, false))
}

fn read(data_dir: &Path, name: &str) -> Result<String, ClusterError> {
    let path = data_dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| ClusterError::file(FileOp::Read, path, e))
}

/// Stores a TLS identity: the CA's certificate and key, this host's key and certificate.
/// The host certificate goes first and comes back last, so a crash in between leaves no host
/// certificate: an incomplete identity, which the next start replaces with a new cluster's.
pub fn save_tls(data_dir: &Path, tls: &ClusterTls, host_key_pem: &str) -> Result<(), ClusterError> {
    let _ = std::fs::remove_file(data_dir.join(HOST_CERT_FILE));
    write_atomically(&data_dir.join(CA_CERT_FILE), tls.ca().cert_pem())?;
    write_atomically(&data_dir.join(CA_KEY_FILE), tls.ca().key_pem())?;
    write_atomically(&data_dir.join(HOST_KEY_FILE), host_key_pem)?;
    write_atomically(&data_dir.join(HOST_CERT_FILE), tls.own_cert().as_ref())
}

/// Forgets the TLS identity, so that the next [`load_or_create_tls`] makes a new cluster's.
pub fn remove_tls(data_dir: &Path) {
    // Absent already is the goal; any other failure shows when the files are read next.
    for name in [HOST_CERT_FILE, HOST_KEY_FILE, CA_KEY_FILE, CA_CERT_FILE] {
        let _ = std::fs::remove_file(data_dir.join(name));
    }
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

fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), ClusterError> {
    sys::write_atomically(path, contents).map_err(|e| ClusterError::file(FileOp::Write, path, e))
}
