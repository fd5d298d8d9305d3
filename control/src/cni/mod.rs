//! The CNI plugin `vxnet` (CNI spec 1.1.0: ADD, DEL, CHECK, STATUS, GC, VERSION): the `vxnet`
//! binary runs as the plugin when `CNI_COMMAND` is set, installed as `vxnet` in the runtime's
//! CNI bin dir. Like the Docker driver, a thin client of the daemon's API — the requests the
//! CLI sends — never of Raft or the dataplane.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "NAME", "type": "vxnet", "network": "VXNET NETWORK",
//!  "socket": "/run/vxnet/vxnet.sock",
//!  "capabilities": {"portMappings": true, "ips": true, "aliases": true}}
//! ```
//!
//! Rules a runtime and an operator rely on:
//! - `network` (a vxnet network's name or id) must exist: `vxnet network create` makes it, on
//!   any host. `socket` defaults to `/run/vxnet/vxnet.sock`. An `ipam` section is refused
//!   (code 2): addresses come from the vxnet network. The configuration versions read and
//!   written are 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0; CHECK needs 0.4.0, STATUS and GC 1.1.0.
//! - An attachment `(CNI_CONTAINERID, CNI_IFNAME)` is the vxnet endpoint with the id
//!   [`plugin::endpoint_id`] (SHA-256 of the two): DEL, CHECK and GC find it without any state
//!   of the plugin's own. The endpoint is named [`plugin::endpoint_name`] (`cni-` and 12 hex
//!   digits of the container id, as `podman ps` shows it, or of its SHA-256 for an id that is
//!   not hex); `K8S_POD_NAME` from `CNI_ARGS`
//!   (Podman puts the container's name there) and the `aliases` capability become DNS
//!   aliases, so containers find each other by name. Endpoint names of that shape are the
//!   plugin's: GC removes such endpoints, so do not give other endpoints such names.
//! - ADD connects the container as `vxnet network connect` does (a veth named `CNI_IFNAME`,
//!   the MAC `02:42:`+address, the network's MTU, a default route via the gateway unless the
//!   network is `--internal`), with the address of the `ips` capability or `CNI_ARGS` `IP=`
//!   if given, and publishes the `portMappings` capability's ports on this host; it prints the
//!   result ([`result`]), appended to `prevResult` when chained after another plugin. A second
//!   ADD of the same attachment is refused (code 100); DEL it first.
//! - DEL disconnects by id and succeeds when the endpoint, the namespace or the network is
//!   already gone; it fails (code 11) only while the daemon cannot commit (down, no quorum) —
//!   and should the runtime give up, the daemon removes an endpoint whose namespace is gone
//!   by itself within 2 s once it can.
//! - CHECK compares `prevResult` with the endpoint and with the interface inside `CNI_NETNS`
//!   (present, its MAC, its address and prefix).
//! - STATUS fails with 51 when the daemon does not answer (this host then forwards nothing)
//!   and 50 when the cluster has no leader, its leader hears from no majority of the voters,
//!   or the network does not exist.
//! - Every request to the daemon gives up after [`plugin::REQUEST_TIMEOUT`] (10 s, the CLI's
//!   default), STATUS's after [`plugin::STATUS_TIMEOUT`] (3 s).
//! - With Podman 4 (libcni 1.1) use `"cniVersion": "1.0.0"`: it cannot read 1.1.0 results.
//!   Podman holds every `-p` host port itself, so the `portMappings` capability and `-p`
//!   cannot be used together there (the daemon holds the port too); with runtimes that leave
//!   host ports to the plugins (containerd's CRI) vxnet publishes them.
//! - GC removes this host's plugin-made endpoints of the network that are not in
//!   `cni.dev/valid-attachments`, all it can, then reports what it could not.
//! - Errors are the spec's JSON on stdout (`cniVersion`, `code`, `msg`, `details`) with exit
//!   status 1. Codes: 1 incompatible version, 2 unsupported field, 4 invalid `CNI_*`
//!   variable, 5 stdin unreadable, 6 undecodable JSON, 7 invalid configuration (also a vxnet
//!   network that does not exist), 11 try again later (the daemon is down, has no quorum, or
//!   timed out), 50/51 (STATUS), and vxnet's own: 100 conflict (already attached; an address,
//!   name, interface or host port in use), 101 no free address, 102 refused by the cluster's
//!   state, 103 this host failed (namespaces, interfaces), 104 CHECK found the attachment
//!   missing or different, 999 internal.
//!
//! Where things are: [`invocation`] turns environment and stdin into a typed request (no IO),
//! [`plugin`] runs it against [`plugin::PluginIo`], [`result`] writes and reads results,
//! [`error`] holds the codes, [`io`] is the real `PluginIo`; [`install`] (`vxnet cni
//! install`) puts the binary and a conflist in place.

pub mod error;
pub mod install;
pub mod invocation;
pub mod io;
pub mod plugin;
pub mod result;

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

pub use error::{CniError, Code};
pub use invocation::{parse, Invocation};
pub use plugin::{execute, Output, PluginIo};

/// The environment variable whose presence makes `vxnet` the CNI plugin.
pub const COMMAND_ENV: &str = "CNI_COMMAND";

/// Runs the plugin on this process's environment, stdin and stdout; the exit status.
pub fn main() -> ExitCode {
    let mut stdin = Vec::new();
    // A terminal on stdin is a person trying `CNI_COMMAND=VERSION vxnet`: nothing to wait for.
    let read = if std::io::stdin().is_terminal() {
        Ok(0)
    } else {
        std::io::stdin().read_to_end(&mut stdin)
    };
    let env = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let outcome = match read {
        Ok(_) => run(&env, &stdin, &mut io::SystemIo),
        Err(e) => Err(CniError::new(
            Code::Io,
            "cannot read the network configuration from stdin",
            e.to_string(),
        )),
    };
    let (text, status) = match outcome {
        Ok(Output::Nothing) => (String::new(), ExitCode::SUCCESS),
        Ok(Output::Json(v)) => (format!("{v}\n"), ExitCode::SUCCESS),
        Err(e) => {
            let version = invocation::peek_version(&stdin)
                .unwrap_or_else(|| invocation::LATEST_VERSION.to_string());
            (format!("{}\n", e.to_json(&version)), ExitCode::from(1))
        }
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    status
}

/// Parses and executes one invocation.
pub fn run(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    io: &mut impl PluginIo,
) -> Result<Output, CniError> {
    execute(parse(env, stdin)?, io)
}
