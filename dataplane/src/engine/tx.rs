//! TAP → wire: one thread per queue of each network's TAP reads it, splits offloaded superframes into wire
//! frames, asks the core once per read, and sends the datagrams with `sendmmsg` (or UDP GSO
//! where the kernel has it) from a small pool of sockets picked by the inner-flow hash.
//!
//! On an encrypted network each frame is split behind room for the sealed header and before
//! room for the tag, and sealed in place for its VTEP once the core decided where it goes
//! (a flooded frame is copied first, one copy per VTEP, each under that VTEP's key). The
//! overhead is the same for every datagram, so a superframe's segments keep the equal sizes
//! UDP GSO needs. A frame that cannot be sealed is dropped, never sent in plaintext.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tun_rs::InterruptEvent;

use super::{set_int_option, TapDevice, TapPort, TapQueue, MAX_FRAME};
use crate::core::counters::{DropReason, SyscallCounters};
use crate::core::forward::{NetworkPlane, TapAction};
use crate::core::offload::{segment, Segments, VirtioNetHdr, VNET_HDR_LEN};
use crate::core::seal::Seal;
use crate::wire::{
    flow_hash, FrameHeaders, VxlanHeader, ETHERNET_HEADER_LEN, SEALED_HEADER_LEN, SEAL_TAG_LEN,
};

/// A TAP with offloads hands over up to 64 KB of IP packet, plus headers.
const MAX_SUPERFRAME: usize = VNET_HDR_LEN + ETHERNET_HEADER_LEN + 65535 + 64;
/// A TAP thread stops taking more from the TAP once this many datagrams wait to be sent.
const TX_BATCH: usize = 64;

pub(super) struct Senders {
    sockets: Vec<UdpSocket>,
    port: u16,
    /// UDP segmentation offload (`UDP_SEGMENT`, Linux 4.18+): found at start, turned off for
    /// good the first time the kernel refuses a segmented send.
    gso: AtomicBool,
    /// The forwarding threads' system calls; here because every one of them holds the pool.
    pub(super) syscalls: SyscallCounters,
}

impl Senders {
    /// The pool: `sockets` bound to distinct ports, sending to `port`, with UDP GSO if `gso`.
    pub(super) fn new(sockets: Vec<UdpSocket>, port: u16, gso: bool) -> Senders {
        let senders = Senders {
            sockets,
            port,
            gso: AtomicBool::new(gso),
            syscalls: SyscallCounters::default(),
        };
        if !gso {
            senders.send_zero_checksums();
        }
        senders
    }

    /// Without UDP GSO, datagrams leave with an outer UDP checksum of zero (`SO_NO_CHECK`), as
    /// RFC 7348 recommends and a kernel vxlan device sends by default: where the underlay
    /// device cannot checksum (which is also where GSO fails), the kernel would otherwise
    /// compute it over every byte, and the receiver check it again. The inner frame keeps its
    /// own checksums end to end. With GSO the outer checksum stays: the kernel segments only
    /// checksummed datagrams, and a device that takes GSO computes them itself.
    fn send_zero_checksums(&self) {
        for socket in &self.sockets {
            // Best effort: a kernel without the option sends checksums, which is correct too.
            let _ = set_int_option(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1);
        }
    }

    fn pick(&self, hash: u32) -> usize {
        hash as usize % self.sockets.len()
    }

    fn gso(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    fn disable_gso(&self, error: &io::Error) {
        if self.gso.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "the kernel refuses UDP segmentation offload; sending datagrams one by one");
            self.send_zero_checksums();
        }
    }
}

/// Whether the kernel knows `UDP_SEGMENT` (it answers the option on a UDP socket).
pub(super) fn udp_gso_supported(socket: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live socket, and a c_int-sized out-parameter with its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

/// Datagrams waiting to be sent: which socket of the pool, where to, and which frames of the
/// TAP thread's [`Segments`] (all segments of one superframe, or one frame).
#[derive(Clone)]
struct TxEntry {
    socket: usize,
    vtep: Ipv4Addr,
    frames: Range<usize>,
}

/// One message of a `sendmmsg`: one datagram, or with `gso_size` a run of datagrams the
/// kernel cuts into `gso_size`-byte pieces (all of that size but the last).
#[derive(Clone)]
struct TxMessage {
    socket: usize,
    vtep: Ipv4Addr,
    frames: Range<usize>,
    gso_size: Option<u16>,
}

/// Most segments one UDP GSO send may carry (`UDP_MAX_SEGMENTS` of older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes of UDP payload one UDP GSO send may carry (IPv4 length minus headers).
const GSO_MAX_BYTES: usize = 65535 - 20 - 8;

/// Room for one `UDP_SEGMENT` control message, 8-byte aligned as `cmsghdr` wants.
type GsoControl = [u64; 4];

/// The datagrams of one round of TAP reads, and the scratch `sendmmsg` needs for them.
#[derive(Default)]
struct TxQueue {
    entries: Vec<TxEntry>,
    messages: Vec<TxMessage>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    controls: Vec<GsoControl>,
    msgs: Vec<libc::mmsghdr>,
}

impl TxQueue {
    fn push(&mut self, socket: usize, vtep: Ipv4Addr, frames: Range<usize>) {
        self.entries.push(TxEntry {
            socket,
            vtep,
            frames,
        });
    }

    fn queued(&self) -> usize {
        self.entries.iter().map(|e| e.frames.len()).sum()
    }

    /// Cuts the queue into messages: with UDP GSO, each superframe's segments become as few
    /// segmented sends as the kernel's limits allow; without, one message per datagram.
    fn plan(&mut self, frames: &Segments, gso: bool) {
        self.messages.clear();
        for e in &self.entries {
            let mut i = e.frames.start;
            while i < e.frames.end {
                let size = frames.datagram_len(i);
                let mut end = i + 1;
                if gso {
                    let mut total = size;
                    while end < e.frames.end && end - i < GSO_MAX_SEGMENTS {
                        let next = frames.datagram_len(end);
                        // Equal sizes, but for a shorter last one.
                        if next > size || total + next > GSO_MAX_BYTES {
                            break;
                        }
                        total += next;
                        end += 1;
                        if next < size {
                            break;
                        }
                    }
                }
                self.messages.push(TxMessage {
                    socket: e.socket,
                    vtep: e.vtep,
                    frames: i..end,
                    gso_size: (end - i > 1).then_some(size as u16),
                });
                i = end;
            }
        }
    }

    /// Sends every queued datagram — each already behind its VXLAN header in `frames` — in
    /// `sendmmsg` calls of consecutive messages that share a socket, counting each datagram.
    fn flush(&mut self, senders: &Senders, frames: &Segments, plane: &NetworkPlane) {
        if self.entries.is_empty() {
            return;
        }
        self.plan(frames, senders.gso());
        let n = self.messages.len();
        // All scratch is sized before any pointer into it is taken.
        // SAFETY: plain C structs, for which all-zero bytes are a valid value.
        let (addr, iov, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        self.addrs.resize(n, addr);
        self.iovs.resize(n, iov);
        self.controls.resize(n, [0; 4]);
        self.msgs.resize(n, msg);
        for (i, m) in self.messages.iter().enumerate() {
            let bytes = frames.run(m.frames.clone());
            self.addrs[i] = sockaddr(m.vtep, senders.port);
            self.iovs[i] = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_flags = 0;
            match m.gso_size {
                Some(size) => set_gso_control(hdr, &mut self.controls[i], size),
                None => {
                    hdr.msg_control = std::ptr::null_mut();
                    hdr.msg_controllen = 0;
                }
            }
        }
        let mut i = 0;
        while i < n {
            let socket = self.messages[i].socket;
            let end = self.messages[i..]
                .iter()
                .position(|m| m.socket != socket)
                .map_or(n, |k| i + k);
            let fd = senders.sockets[socket].as_raw_fd();
            while i < end {
                SyscallCounters::bump(&senders.syscalls.sendmmsg);
                // SAFETY: headers `i..end` point into `self` and `frames`, alive and unmoved
                // for the call.
                let sent =
                    unsafe { libc::sendmmsg(fd, self.msgs[i..].as_mut_ptr(), (end - i) as _, 0) };
                if sent > 0 {
                    for m in &self.messages[i..i + sent as usize] {
                        count_sent(plane, frames, m.frames.clone());
                    }
                    i += sent as usize;
                    continue;
                }
                let error = io::Error::last_os_error();
                if sent < 0 && error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message was refused. A segmented one may be refused for being
                // segmented (EIO, EINVAL from a device or path without UDP GSO): send its
                // datagrams one by one, and segment no more.
                let m = &self.messages[i];
                if m.gso_size.is_some() {
                    senders.disable_gso(&error);
                    let to = SocketAddrV4::new(m.vtep, senders.port);
                    for f in m.frames.clone() {
                        SyscallCounters::bump(&senders.syscalls.send_fallback);
                        match senders.sockets[socket].send_to(frames.run(f..f + 1), to) {
                            Ok(_) => count_sent(plane, frames, f..f + 1),
                            Err(_) => plane.counters.drops.bump(DropReason::SendError),
                        }
                    }
                } else {
                    plane.counters.drops.bump(DropReason::SendError);
                }
                i += 1;
            }
        }
        self.entries.clear();
    }
}

fn count_sent(plane: &NetworkPlane, frames: &Segments, sent: Range<usize>) {
    for f in sent {
        plane.counters.count_tx(frames.get(f).len());
    }
}

/// Points `hdr` at a `UDP_SEGMENT` control message in `control` asking for `size`-byte
/// datagrams.
fn set_gso_control(hdr: &mut libc::msghdr, control: &mut GsoControl, size: u16) {
    *control = [0; 4];
    hdr.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE of a u16 (24 bytes on 64-bit) fits the 32 bytes of `control`,
    // which is 8-byte aligned; `hdr.msg_control` points at it with that length.
    unsafe {
        hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in; the fields that matter are set below.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    a
}

/// Forwards until `stop` is triggered; a TAP that cannot be read (deleted from outside, say)
/// ends it with the error. Waits for the TAP to be readable, then takes its reader lock and
/// forwards everything it holds ([`TapPass::drain`]): the receive thread may be doing the same
/// for a frame its own TAP write produced, and one reader at a time keeps a flow in order.
/// With `busy_poll`, it keeps draining until the TAP has been empty that long, then waits.
pub(super) fn tap_loop(
    port: &TapPort,
    worker: usize,
    senders: &Senders,
    stop: &InterruptEvent,
    busy_poll: Duration,
) -> io::Result<()> {
    let queue = port.device.queue(worker);
    let mut pass = TapPass::new(port);
    loop {
        match queue.device.wait_readable_intr(stop) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if stop.is_trigger() {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let mut last_frame = Instant::now();
        loop {
            let read = {
                let _reader = queue.lock_reader();
                pass.drain(port, queue, senders)?
            };
            if read > 0 {
                last_frame = Instant::now();
            }
            let quiet = read == 0 && last_frame.elapsed() >= busy_poll;
            if busy_poll.is_zero() || quiet || stop.is_trigger() {
                break;
            }
            std::hint::spin_loop();
        }
    }
}

/// What one thread needs to forward a TAP's frames: a read buffer, the frames split behind
/// their VXLAN header (a datagram, or a run of them, is then one slice to gather or to hand to
/// UDP segmentation), the send queue, and room for an ARP reply. Kept across passes for the
/// buffers; bound to one network (its VNI is in the headroom).
pub(super) struct TapPass {
    buf: Vec<u8>,
    frames: Segments,
    tx: TxQueue,
    reply: [u8; 64],
}

impl TapPass {
    pub(super) fn new(port: &TapPort) -> TapPass {
        let read_len = if port.device.vnet_hdr {
            MAX_SUPERFRAME
        } else {
            MAX_FRAME
        };
        let vni = port.plane.config().vni;
        let frames = if port.plane.seal().is_some() {
            // Sealing writes the header.
            Segments::with_rooms(&[0; SEALED_HEADER_LEN], SEAL_TAG_LEN)
        } else {
            Segments::with_headroom(&VxlanHeader { vni }.to_bytes())
        };
        TapPass {
            buf: vec![0u8; read_len],
            frames,
            tx: TxQueue::default(),
            reply: [0u8; 64],
        }
    }

    /// Forwards what the TAP holds right now, without waiting: reads until it is empty,
    /// sending every [`TX_BATCH`] datagrams; returns how many reads it forwarded. The caller
    /// holds the TAP's reader lock. An error other than "nothing more to read" is returned
    /// (after sending what was read).
    pub(super) fn drain(
        &mut self,
        port: &TapPort,
        queue: &TapQueue,
        senders: &Senders,
    ) -> io::Result<usize> {
        let (tap, plane) = (&port.device, &port.plane);
        let mut reads = 0;
        loop {
            self.frames.clear();
            let now = Instant::now();
            let ended = loop {
                SyscallCounters::bump(&senders.syscalls.tap_reads);
                match queue.device.recv(&mut self.buf) {
                    Ok(len) => {
                        reads += 1;
                        handle_tap_read(
                            &self.buf[..len],
                            tap,
                            queue,
                            plane,
                            senders,
                            now,
                            &mut self.frames,
                            &mut self.tx,
                            &mut self.reply,
                        )
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                }
                if self.tx.queued() >= TX_BATCH {
                    break Ok(());
                }
            };
            let full = self.tx.queued() >= TX_BATCH;
            self.tx.flush(senders, &self.frames, plane);
            if !full {
                return ended.map(|()| reads);
            }
        }
    }
}

/// One read from the TAP: split (if offloaded), decide once, queue or answer.
#[allow(clippy::too_many_arguments)]
fn handle_tap_read(
    read: &[u8],
    tap: &TapDevice,
    queue: &TapQueue,
    plane: &NetworkPlane,
    senders: &Senders,
    now: Instant,
    frames: &mut Segments,
    tx: &mut TxQueue,
    reply: &mut [u8],
) {
    let vnet = if tap.vnet_hdr {
        VirtioNetHdr::parse(read).map(|hdr| (hdr, &read[VNET_HDR_LEN..]))
    } else {
        Ok((VirtioNetHdr::default(), read))
    };
    let first = frames.len();
    // One parse of the read serves the split and the flow hash (segments share its addresses).
    let split = vnet.map_err(DropReason::from).and_then(|(hdr, frame)| {
        let headers = FrameHeaders::parse(frame);
        segment(&hdr, &headers, frames)
            .map(|n| (n, headers))
            .map_err(DropReason::from)
    });
    let (count, headers) = match split {
        Ok(split) => split,
        Err(reason) => {
            plane.counters.drops.bump(reason);
            return;
        }
    };
    // Every segment carries the read's addresses: one decision serves them all; the first
    // segment is the longest.
    let lead = frames.get(first);
    let segments = first..first + count;
    match plane.handle_tap_frame(&headers, lead.len(), count, now, reply) {
        TapAction::Unicast(vtep) => {
            if let Some(seal) = plane.seal() {
                if !seal_run(seal, plane, frames, vtep, segments.clone(), now) {
                    return;
                }
            }
            tx.push(senders.pick(flow_hash(&headers)), vtep, segments)
        }
        TapAction::Flood(vteps) => {
            let socket = senders.pick(flow_hash(&headers));
            let Some(seal) = plane.seal() else {
                for &vtep in vteps.iter() {
                    tx.push(socket, vtep, segments.clone());
                }
                return;
            };
            // One copy per VTEP, made before the first is sealed: copy `k` is the `k`th run
            // of `count` frames from `first`.
            for _ in 1..vteps.len() {
                frames.duplicate(segments.clone());
            }
            for (k, &vtep) in vteps.iter().enumerate() {
                let copy = first + k * count..first + (k + 1) * count;
                if seal_run(seal, plane, frames, vtep, copy.clone(), now) {
                    tx.push(socket, vtep, copy);
                }
            }
        }
        TapAction::Reply(n) => {
            SyscallCounters::bump(&senders.syscalls.tap_writes);
            if queue.write_frame(&reply[..n], tap.vnet_hdr).is_err() {
                plane.counters.drops.bump(DropReason::TapWriteError);
            }
        }
        // The core counted the drop, once per segment.
        TapAction::Local | TapAction::Drop(_) => {}
    }
}

/// Seals frames `run` of `frames` for `vtep`; on failure counts them dropped and says so.
fn seal_run(
    seal: &Seal,
    plane: &NetworkPlane,
    frames: &mut Segments,
    vtep: Ipv4Addr,
    run: Range<usize>,
    now: Instant,
) -> bool {
    let sealed = seal.sealer(vtep, now).and_then(|sealer| {
        run.clone()
            .try_for_each(|i| sealer.seal(frames.datagram_mut(i)))
    });
    match sealed {
        Ok(()) => true,
        Err(e) => {
            plane.counters.drops.bump_by(e.into(), run.len() as u64);
            false
        }
    }
}

#[cfg(test)]
mod tests;
