//! [`PluginIo`] on a real host: the daemon's API socket (one request per connection, as the
//! CLI sends them, each bounded by its timeout) and a look into a network namespace from a
//! thread that enters it.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use vxnet_proto::types::MacAddr;
use vxnet_proto::{request, Request, Response};

use super::error::DaemonError;
use super::plugin::{Interface, Netns, PluginIo};
use crate::api;

/// The host's [`PluginIo`].
#[derive(Debug, Default)]
pub struct SystemIo;

impl PluginIo for SystemIo {
    fn call(
        &mut self,
        socket: &Path,
        kind: request::Kind,
        timeout: Duration,
    ) -> Result<Response, DaemonError> {
        let request = Request {
            kind: Some(kind),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let response = api::call_blocking(socket, &request, timeout).map_err(|e| match e {
            api::CallError::Runtime(e) => {
                DaemonError::Unreachable(format!("cannot start a runtime: {e}"))
            }
            api::CallError::Unreachable(e) => DaemonError::Unreachable(format!(
                "cannot reach the vxnet daemon at {} ({e}); is it running? (`vxnet daemon`, or \
                 \"socket\" in the CNI configuration)",
                socket.display()
            )),
            api::CallError::Malformed(e) => {
                DaemonError::Malformed(format!("the daemon did not answer properly: {e}"))
            }
            api::CallError::TimedOut => DaemonError::Unreachable(format!(
                "the vxnet daemon at {} did not answer within {:?}",
                socket.display(),
                timeout
            )),
        })?;
        if response.error.is_empty() {
            Ok(response)
        } else {
            Err(DaemonError::Answered {
                code: response.code(),
                message: response.error,
            })
        }
    }

    fn netns(&mut self, path: &Path) -> Netns {
        let Ok(target) = std::fs::metadata(path) else {
            return Netns::Missing;
        };
        match std::fs::metadata("/proc/self/ns/net") {
            Ok(own) if own.dev() == target.dev() && own.ino() == target.ino() => Netns::Own,
            _ => Netns::Other,
        }
    }

    fn interface(&mut self, netns: &Path, ifname: &str) -> io::Result<Option<Interface>> {
        let file = File::open(netns)?;
        let ifname = ifname.to_string();
        // setns(2) moves only the calling thread, and this one ends right after: the plugin's
        // other threads, and whatever it does next, stay in its own namespace.
        std::thread::spawn(move || {
            // SAFETY: setns(2) on an fd that `file` keeps open for the call.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            interface_here(&ifname)
        })
        .join()
        .map_err(|_| io::Error::other("the thread that looks into the namespace panicked"))?
    }
}

/// The interface `ifname` of the calling thread's network namespace, from getifaddrs(3): its
/// MAC (the `AF_PACKET` entry) and IPv4 addresses.
fn interface_here(ifname: &str) -> io::Result<Option<Interface>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found: Option<Interface> = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != ifname.as_bytes() {
            continue;
        }
        let entry = found.get_or_insert_with(Interface::default);
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr of the family it names.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_PACKET {
            // SAFETY: AF_PACKET entries of getifaddrs are sockaddr_ll.
            let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
            if ll.sll_halen == 6 {
                entry.mac = MacAddr::from_slice(&ll.sll_addr[..6]);
            }
        } else if family == libc::AF_INET {
            // SAFETY: AF_INET addresses (and their netmasks) are sockaddr_in.
            let addr = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let prefix = if ifa.ifa_netmask.is_null() {
                32
            } else {
                // SAFETY: as above, for the netmask of the same entry.
                let mask = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                u32::from_be(mask.sin_addr.s_addr).count_ones()
            };
            entry
                .addresses
                .push((Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)), prefix));
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}
