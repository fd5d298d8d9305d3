//! Who this host is: its id (64 hex digits, made once and kept in the data dir) and its
//! default name.

use std::path::Path;

use super::DaemonError;
use crate::sys;

/// The host id in `data_dir/host-id`, made on first start.
pub(super) fn load_or_create_host_id(data_dir: &Path) -> Result<String, DaemonError> {
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if id.trim().len() == 64 => return Ok(id.trim().to_string()),
        Ok(_) => return Err(DaemonError::CorruptHostId(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DaemonError::File {
                op: "read",
                path,
                source,
            })
        }
    }
    let id = sys::random_id().map_err(|source| DaemonError::Os {
        op: "read random bytes",
        source,
    })?;
    sys::write_atomically(&path, format!("{id}\n")).map_err(|source| DaemonError::File {
        op: "write",
        path: path.clone(),
        source,
    })?;
    Ok(id)
}

/// The kernel's hostname, the default `--name`.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
