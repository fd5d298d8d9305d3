//! wire → TAP: a worker's receive thread. It takes datagrams from the VXLAN socket in `recvmmsg`
//! batches (with UDP GRO where the kernel has it), asks the core about each, and writes each
//! network's frames into its TAP — through a [`Coalescer`] when the TAP has offloads. It also
//! sweeps aged FDB entries. An encrypted network's datagrams are opened in place in the
//! receive buffer (each datagram of a UDP GRO message on its own) before the coalescer sees
//! them.
//!
//! Run to completion: a write into a TAP makes the kernel deliver the frame to the container
//! at once, and whatever the container answers (an echo reply, a TCP ACK, the next segments of
//! a window) is in the TAP's queue when the write returns. The receive thread forwards that
//! too, in the same pass, instead of leaving it to the TAP's thread to wake up for — unless that
//! thread is reading the TAP right now, which then forwards it ([`TapPass`]).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tx::{Senders, TapPass};
use super::{set_int_option, TapDevice, TapPort, MAX_FRAME, RX_TICK};
use crate::core::counters::{DropReason, SyscallCounters};
use crate::core::forward::{Dataplane, WireAction};
use crate::core::offload::{Coalescer, GsoType};
use crate::wire::{Vni, VXLAN_HEADER_LEN};

const AGING_SWEEP: Duration = Duration::from_secs(5);
/// Datagrams per `recvmmsg`.
const RX_BATCH: usize = 32;
/// Room per received datagram: a 9000-byte-MTU underlay's largest, with margin.
const RX_SLOT: usize = MAX_FRAME + VXLAN_HEADER_LEN + 64;
/// Room per received message with UDP GRO: the kernel hands over up to 64 KB of datagrams of
/// one flow at once, all of one size but the last.
const RX_GRO_SLOT: usize = 65536;
/// Room for one cmsg carrying an int (the UDP GRO segment size), 8-byte aligned.
const RX_CONTROL: usize = 32;

/// Asks the kernel to merge received datagrams of a flow (UDP_GRO, Linux 5.0+).
pub(super) fn enable_udp_gro(socket: &UdpSocket) -> bool {
    set_int_option(socket.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 1).is_ok()
}

/// Buffers for one `recvmmsg`: a slot, a source address, a control buffer and a message
/// header per message. With UDP GRO a message may hold several datagrams of one flow.
struct RxBatch {
    slot: usize,
    gro: bool,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    controls: Vec<[u64; RX_CONTROL / 8]>,
    msgs: Vec<libc::mmsghdr>,
}

impl RxBatch {
    fn new(gro: bool) -> RxBatch {
        let slot = if gro { RX_GRO_SLOT } else { RX_SLOT };
        // SAFETY: plain C structs, for which all-zero bytes are a valid value.
        let (addr, iov, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        RxBatch {
            slot,
            gro,
            bufs: vec![0u8; RX_BATCH * slot],
            addrs: vec![addr; RX_BATCH],
            iovs: vec![iov; RX_BATCH],
            controls: vec![[0; RX_CONTROL / 8]; RX_BATCH],
            msgs: vec![msg; RX_BATCH],
        }
    }

    /// Takes the datagrams queued on the socket; returns how many. With `wait`, waits (up to
    /// the socket's read timeout) for the first; without, "would block" if there is none.
    fn recv(&mut self, fd: RawFd, wait: bool) -> io::Result<usize> {
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        // The kernel overwrites lengths and flags, so every header is set afresh.
        for i in 0..RX_BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.slot..].as_mut_ptr().cast(),
                iov_len: self.slot,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            if self.gro {
                hdr.msg_control = self.controls[i].as_mut_ptr().cast();
                hdr.msg_controllen = RX_CONTROL as _;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        loop {
            // SAFETY: every header points into buffers owned by `self`, which outlive the
            // call; `RX_BATCH` headers exist.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    RX_BATCH as _,
                    flags as _,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The `i`th message, its IPv4 source, and the size of the datagrams it holds (all but
    /// the last; the whole message when the kernel did not merge any); `None` if it was cut
    /// short (larger than a slot) or not from IPv4.
    /// (Mutable: an encrypted network's datagrams are opened in place.)
    fn message(&mut self, i: usize) -> Option<(Ipv4Addr, &mut [u8], usize)> {
        let msg = &self.msgs[i];
        if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0
            || i32::from(self.addrs[i].sin_family) != libc::AF_INET
        {
            return None;
        }
        let len = (msg.msg_len as usize).min(self.slot);
        let src = Ipv4Addr::from(u32::from_be(self.addrs[i].sin_addr.s_addr));
        let segment = self.gro_segment_size(i).unwrap_or(len).max(1);
        let slot = self.slot;
        Some((src, &mut self.bufs[i * slot..i * slot + len], segment))
    }

    /// The UDP_GRO cmsg of the `i`th message: the size of the merged datagrams.
    fn gro_segment_size(&self, i: usize) -> Option<usize> {
        if !self.gro {
            return None;
        }
        let hdr = &self.msgs[i].msg_hdr;
        // SAFETY: `hdr` is the header recvmmsg filled, whose control buffer (ours, alive) holds
        // `msg_controllen` bytes of cmsgs; the CMSG_* macros walk only within them.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    return usize::try_from(size).ok().filter(|&s| s > 0);
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }
}

/// How one worker's receive thread runs.
pub(super) struct Receiver {
    /// Its worker number: the TAP queue it writes into and forwards from; worker 0 also
    /// sweeps aged FDB entries.
    pub worker: usize,
    /// UDP GRO is on for its socket.
    pub gro: bool,
    /// TAPs take UDP superframes: UDP datagrams are coalesced too. Shared by the workers;
    /// cleared for good by the first write the kernel refuses.
    pub tap_udp_gso: Arc<AtomicBool>,
    /// How long to poll after the last datagram before sleeping.
    pub busy_poll: Duration,
}

pub(super) fn receive_loop(
    socket: UdpSocket,
    receiver: &Receiver,
    dataplane: &Dataplane<TapDevice>,
    senders: &Senders,
    stop: &AtomicBool,
) {
    let Receiver {
        worker, busy_poll, ..
    } = *receiver;
    let mut rx = RxBatch::new(receiver.gro);
    // Kept across batches for their buffers; by VNI, so that no TAP is held open by them.
    let mut coalescers: HashMap<Vni, Coalescer> = HashMap::new();
    let mut passes: HashMap<Vni, TapPass> = HashMap::new();
    // The networks with frames in the current batch; emptied after each batch.
    let mut batch: Vec<Arc<TapPort>> = Vec::new();
    let mut last_sweep = Instant::now();
    // With busy polling, the socket is polled without sleeping until it has been quiet that
    // long after the last datagram.
    let mut last_datagram: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let polling = last_datagram.is_some_and(|at| at.elapsed() < busy_poll);
        SyscallCounters::bump(&senders.syscalls.recvmmsg);
        let received = rx.recv(socket.as_raw_fd(), !polling);
        let now = Instant::now();
        if worker == 0 && now.duration_since(last_sweep) >= AGING_SWEEP {
            for port in dataplane.ports() {
                port.plane.fdb.expire(now);
            }
            coalescers.retain(|vni, _| dataplane.get(*vni).is_some());
            passes.retain(|vni, _| dataplane.get(*vni).is_some());
            last_sweep = now;
        }
        let count = match received {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if polling {
                    std::hint::spin_loop();
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "receive on the VXLAN socket failed");
                std::thread::sleep(RX_TICK);
                continue;
            }
        };
        if count > 0 && !busy_poll.is_zero() {
            last_datagram = Some(now);
        }
        for i in 0..count {
            let Some((src, bytes, segment)) = rx.message(i) else {
                dataplane.drop_cut_short();
                continue;
            };
            for datagram in bytes.chunks_mut(segment) {
                let (port, frame) = match dataplane.handle_datagram(src, datagram, now) {
                    WireAction::Deliver { port, frame } => (port, frame),
                    WireAction::Drop(reason) => {
                        tracing::trace!(?reason, %src, "dropped datagram");
                        continue;
                    }
                };
                let tap = &port.device;
                let vni = port.plane.config().vni;
                if !batch.iter().any(|p| p.plane.config().vni == vni) {
                    batch.push(Arc::clone(&port));
                }
                if tap.vnet_hdr {
                    let coalescer = coalescers.entry(vni).or_default();
                    if coalescer.is_empty() {
                        coalescer.merge_udp(receiver.tap_udp_gso.load(Ordering::Relaxed));
                    }
                    coalescer.push(frame);
                } else {
                    SyscallCounters::bump(&senders.syscalls.tap_writes);
                    match tap.queue(worker).device.send(frame) {
                        Ok(_) => port.plane.counters.count_rx(frame.len()),
                        Err(_) => port.plane.counters.drops.bump(DropReason::TapWriteError),
                    }
                }
            }
        }
        for port in batch.drain(..) {
            let vni = port.plane.config().vni;
            if let Some(coalescer) = coalescers.get_mut(&vni) {
                write_coalesced(&port, receiver, coalescer, &senders.syscalls);
            }
            // What the writes produced, forwarded now; errors are the TAP thread's to report.
            let queue = port.device.queue(worker);
            if let Some(_reader) = queue.try_lock_reader() {
                let pass = passes.entry(vni).or_insert_with(|| TapPass::new(&port));
                let _ = pass.drain(&port, queue, senders);
            }
        }
    }
}

/// Writes what `coalescer` merged into `port`'s TAP (the receiver's queue), counting every
/// wire frame once. A UDP superframe the kernel refuses as invalid turns UDP coalescing off
/// for good (its datagrams are counted as dropped, once).
fn write_coalesced(
    port: &TapPort,
    receiver: &Receiver,
    coalescer: &mut Coalescer,
    syscalls: &SyscallCounters,
) {
    let queue = port.device.queue(receiver.worker);
    for write in coalescer.finish() {
        SyscallCounters::bump(&syscalls.tap_writes);
        let c = &port.plane.counters;
        match queue.device.send(write.bytes) {
            Ok(_) => {
                c.rx_frames
                    .fetch_add(u64::from(write.frames), Ordering::Relaxed);
                c.rx_bytes
                    .fetch_add(write.wire_bytes as u64, Ordering::Relaxed);
            }
            Err(e) => {
                c.drops
                    .bump_by(DropReason::TapWriteError, u64::from(write.frames));
                let refused = e.raw_os_error() == Some(libc::EINVAL);
                if refused
                    && write.gso == GsoType::UdpL4
                    && receiver.tap_udp_gso.swap(false, Ordering::Relaxed)
                {
                    tracing::warn!(error = %e,
                        "the kernel refuses UDP superframes on TAPs; writing datagrams one by one");
                }
            }
        }
    }
}
