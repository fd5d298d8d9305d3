//! `vxnet cni install`: puts this binary into a runtime's CNI bin dir as the plugin `vxnet`
//! and, for a vxnet network, writes the configuration list that joins containers to it
//! (README, "With Podman and CNI").
//!
//! Rules:
//! - The binary is the running one (`/proc/self/exe`), copied to `BIN_DIR/vxnet` with mode
//!   0755; the conflist is `CONF_DIR/vxnet-NETWORK.conflist`, mode 0644, `cniVersion` 1.0.0
//!   (what Podman 4 reads) and the `portMappings`, `ips` and `aliases` capabilities.
//! - Each file is written in full under a temporary name in its own directory and renamed over
//!   the old one ([`crate::sys::Staged`]): a runtime never executes or reads half a file.
//!   Both are staged before either is renamed, so a failure (a directory that cannot be made
//!   or written, a bad network name) leaves the old files as they were.
//! - Missing directories are made (0755), as a fresh host has neither.
//! - It prints the path of every file it wrote, one a line.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::sys::Staged;

/// The CNI bin dir runtimes use unless told otherwise.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// The CNI configuration dir runtimes use unless told otherwise.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// The plugin's name: its file in the bin dir and the `type` of its configuration.
pub const PLUGIN_TYPE: &str = "vxnet";
/// The configuration version written: the newest Podman 4 (libcni 1.1) reads.
pub const CONF_VERSION: &str = "1.0.0";

/// What to install.
#[derive(Debug, Clone)]
pub struct Install {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    /// Write a conflist for this vxnet network (name or id).
    pub network: Option<String>,
    /// The daemon's API socket the plugin talks to.
    pub socket: PathBuf,
}

/// The CNI network's name for vxnet network `network`: `vxnet-NETWORK` (also the conflist's
/// file name without `.conflist`).
pub fn cni_network_name(network: &str) -> String {
    format!("{PLUGIN_TYPE}-{network}")
}

/// The configuration list for vxnet network `network`, the plugin talking to `socket`.
pub fn conflist(network: &str, socket: &Path) -> Value {
    json!({
        "cniVersion": CONF_VERSION,
        "name": cni_network_name(network),
        "plugins": [{
            "type": PLUGIN_TYPE,
            "network": network,
            "socket": socket,
            "capabilities": {"portMappings": true, "ips": true, "aliases": true},
        }],
    })
}

/// Installs (see the module docs); the paths written. Errors name the file or directory.
pub fn install(what: &Install) -> Result<Vec<PathBuf>, String> {
    let conf = match &what.network {
        Some(network) => {
            crate::state::check_network_name(network).map_err(|e| e.to_string())?;
            let path = what
                .conf_dir
                .join(format!("{}.conflist", cni_network_name(network)));
            let text = serde_json::to_string_pretty(&conflist(network, &what.socket))
                .map_err(|e| format!("internal: {e}"))?;
            Some((path, format!("{text}\n")))
        }
        None => None,
    };
    let mut exe = fs::File::open("/proc/self/exe")
        .map_err(|e| format!("cannot read this binary (/proc/self/exe): {e}"))?;
    let bin = what.bin_dir.join(PLUGIN_TYPE);
    let mut staged = vec![(
        bin.clone(),
        make_dir(&what.bin_dir)
            .and_then(|()| Staged::write(&bin, 0o755, &mut exe))
            .map_err(|e| cannot_write(&bin, &e))?,
    )];
    if let Some((path, text)) = conf {
        let file = make_dir(&what.conf_dir)
            .and_then(|()| Staged::write(&path, 0o644, &mut text.as_bytes()))
            .map_err(|e| cannot_write(&path, &e))?;
        staged.push((path, file));
    }
    let mut written = Vec::new();
    for (path, file) in staged {
        file.commit().map_err(|e| cannot_write(&path, &e))?;
        written.push(path);
    }
    Ok(written)
}

fn make_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

fn cannot_write(path: &Path, e: &io::Error) -> String {
    format!("cannot write {}: {e}", path.display())
}

#[cfg(test)]
mod tests;
