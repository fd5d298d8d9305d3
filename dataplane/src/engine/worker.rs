//! The forwarding worker: one thread that waits on the VXLAN socket and on every network's TAP
//! at once (epoll) and runs each packet to completion.
//!
//! Why one thread: a packet that crosses threads pays a wakeup (tens of microseconds on a VM)
//! at each crossing. With the receive side and every TAP on one thread, a datagram is
//! decapsulated, written into its TAP, and whatever that write produced in the container (an
//! echo reply, TCP ACKs, the next segments of a window) is read back and sent in the same pass;
//! no other thread is woken for it. One TCP stream keeps one side of each host busy anyway (the
//! sender splits, the receiver coalesces), so a second thread per host bought no speed for it.
//!
//! Rules:
//! - Registration ([`WorkerHandle::watch`], [`WorkerHandle::unwatch`]) happens from other
//!   threads through `epoll_ctl`, which the kernel serialises; the worker finds a TAP's port by
//!   the VNI in the event's token, in the engine's [`Dataplane`] table.
//! - After [`WorkerHandle::unwatch`] returns, the worker holds no reference to that port any
//!   more (it waits for the worker to finish its current round), so the TAP closes when the
//!   engine lets go of it.
//! - A TAP that cannot be read any more (deleted from outside) is reported once on the
//!   failure channel under the name its thread used to have, and no longer watched.
//! - Epoll is level-triggered: what is left unread (a batch cut short) shows up again at once.
//! - With busy polling, the worker waits with a zero timeout until nothing has come for that
//!   long.

use std::collections::HashMap;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::rx::Receiver;
use super::tx::{Senders, TapPass};
use super::{TapDevice, ThreadFailure, RX_TICK};
use crate::core::forward::Dataplane;
use crate::wire::Vni;

/// Token of the VXLAN socket's events.
const SOCKET: u64 = u64::MAX;
/// Token of the wake-up eventfd (stop, or a round wanted by `unwatch`).
const WAKE: u64 = u64::MAX - 1;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;
/// Batches taken from the socket per round before the TAPs get their turn.
const SOCKET_BATCHES_PER_ROUND: usize = 4;

/// What the engine keeps of the worker: the epoll set to register TAPs in, and the way to
/// wake or stop it.
pub(super) struct WorkerHandle {
    epoll: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    /// Rounds the worker has finished; `unwatch` waits for it to move on twice.
    rounds: Arc<AtomicU64>,
}

/// The worker's own state.
pub(super) struct Worker {
    epoll: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    socket: UdpSocket,
    /// Whether the socket has UDP GRO (the receive buffers are sized for it).
    gro: bool,
    busy_poll: Duration,
    failures: mpsc::Sender<ThreadFailure>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn epoll_add(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: live fds and an initialised event the kernel copies.
    cvt(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }).map(drop)
}

impl WorkerHandle {
    /// Makes the epoll set with `socket` (set non-blocking) in it, and the worker that waits
    /// on it.
    pub(super) fn new(
        socket: UdpSocket,
        gro: bool,
        busy_poll: Duration,
        failures: mpsc::Sender<ThreadFailure>,
    ) -> io::Result<(WorkerHandle, Worker)> {
        socket.set_nonblocking(true)?;
        // SAFETY: plain syscalls; each returned fd is owned from here on.
        let epoll = Arc::new(unsafe {
            OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?)
        });
        let wake = Arc::new(unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        });
        epoll_add(epoll.as_raw_fd(), socket.as_raw_fd(), SOCKET)?;
        epoll_add(epoll.as_raw_fd(), wake.as_raw_fd(), WAKE)?;
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let handle = WorkerHandle {
            epoll: Arc::clone(&epoll),
            wake: Arc::clone(&wake),
            stop: Arc::clone(&stop),
            rounds: Arc::clone(&rounds),
        };
        let worker = Worker {
            epoll,
            wake,
            stop,
            rounds,
            socket,
            gro,
            busy_poll,
            failures,
        };
        Ok((handle, worker))
    }

    /// Starts watching `tap` (non-blocking) for network `vni`.
    pub(super) fn watch(&self, vni: Vni, tap: &TapDevice) -> io::Result<()> {
        epoll_add(
            self.epoll.as_raw_fd(),
            tap.device.as_raw_fd(),
            u64::from(vni.get()),
        )
    }

    /// Stops watching `tap`, and returns once the worker holds nothing of it.
    pub(super) fn unwatch(&self, tap: &TapDevice) {
        // SAFETY: live fds; a null event is allowed for EPOLL_CTL_DEL. An fd not in the set
        // (a TAP dropped after a failure) is not an error worth reporting.
        let _ = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                tap.device.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        self.wait_rounds(2);
    }

    /// Wakes the worker and waits (bounded) until it has finished `n` more rounds: the round
    /// it may be in when this is called, and a whole one after. A worker that has stopped
    /// finishes none; the bound keeps this from hanging on it.
    fn wait_rounds(&self, n: u64) {
        let target = self.rounds.load(Ordering::Acquire) + n;
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.rounds.load(Ordering::Acquire) < target && Instant::now() < deadline {
            self.poke();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 into a live eventfd.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Tells the worker to stop; it returns from [`Worker::run`] at its next round.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.poke();
    }
}

impl Worker {
    /// Forwards until stopped. The buffers are made here, on the worker's own thread (they
    /// hold pointers into themselves, for the kernel).
    pub(super) fn run(self, dataplane: &Dataplane<TapDevice>, senders: &Senders) {
        let mut receiver = Receiver::new(self.gro);
        let mut passes: HashMap<Vni, TapPass> = HashMap::new();
        // SAFETY: an array of plain C structs, for which all-zero is a valid value.
        let mut events: [libc::epoll_event; EVENTS] = unsafe { std::mem::zeroed() };
        let mut last_packet: Option<Instant> = None;
        let mut last_sweep = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let polling = last_packet.is_some_and(|at| at.elapsed() < self.busy_poll);
            let timeout = if polling {
                0
            } else {
                RX_TICK.as_millis() as libc::c_int
            };
            // SAFETY: `events` has room for EVENTS entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as _,
                    timeout,
                )
            };
            let n = match cvt(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    tracing::warn!(error = %e, "epoll_wait failed");
                    std::thread::sleep(RX_TICK);
                    0
                }
            };
            let mut moved = false;
            for event in &events[..n] {
                match event.u64 {
                    SOCKET => {
                        moved |= self.on_socket(&mut receiver, &mut passes, dataplane, senders)
                    }
                    WAKE => self.drain_wake(),
                    token => moved |= self.on_tap(token, &mut passes, dataplane, senders),
                }
            }
            let now = Instant::now();
            if moved && !self.busy_poll.is_zero() {
                last_packet = Some(now);
            } else if polling {
                std::hint::spin_loop();
            }
            if now.duration_since(last_sweep) >= super::rx::AGING_SWEEP {
                receiver.sweep(dataplane, now);
                passes.retain(|vni, _| dataplane.get(*vni).is_some());
                last_sweep = now;
            }
            self.rounds.fetch_add(1, Ordering::Release);
        }
        self.rounds.fetch_add(1, Ordering::Release);
    }

    /// Takes what the socket holds (a few batches at most, so the TAPs get their turn) and
    /// forwards it, with what its TAP writes produced.
    fn on_socket(
        &self,
        receiver: &mut Receiver,
        passes: &mut HashMap<Vni, TapPass>,
        dataplane: &Dataplane<TapDevice>,
        senders: &Senders,
    ) -> bool {
        let mut moved = false;
        for _ in 0..SOCKET_BATCHES_PER_ROUND {
            match receiver.receive_batch(self.socket.as_raw_fd(), dataplane, senders, passes) {
                Ok(0) => break,
                Ok(_) => moved = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "receive on the VXLAN socket failed");
                    break;
                }
            }
        }
        moved
    }

    /// Forwards what the TAP of network `token` holds.
    fn on_tap(
        &self,
        token: u64,
        passes: &mut HashMap<Vni, TapPass>,
        dataplane: &Dataplane<TapDevice>,
        senders: &Senders,
    ) -> bool {
        let Some(vni) = u32::try_from(token).ok().and_then(Vni::new) else {
            return false;
        };
        let Some(port) = dataplane.get(vni) else {
            // Removed while its event was on the way.
            return false;
        };
        let pass = passes.entry(vni).or_insert_with(|| TapPass::new(&port));
        match pass.drain(&port, senders) {
            Ok(reads) => reads > 0,
            Err(e) => {
                // The TAP is gone for good (deleted from outside): say so once, watch no more.
                // SAFETY: live fds; a null event is allowed for EPOLL_CTL_DEL.
                let _ = unsafe {
                    libc::epoll_ctl(
                        self.epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        port.device.device.as_raw_fd(),
                        std::ptr::null_mut(),
                    )
                };
                let _ = self.failures.send(ThreadFailure {
                    thread: format!("vxnet-tap-{}", vni.get()),
                    error: e.to_string(),
                });
                false
            }
        }
    }

    fn drain_wake(&self) {
        let mut value: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64 from a live non-blocking eventfd.
        let _ = unsafe { libc::read(self.wake.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }
}
