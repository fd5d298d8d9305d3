//! The outbound side: one task per peer, owning its queue and at most one connection, with
//! backoff between failed attempts (see the rules in the transport's module docs).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use ::raft::SnapshotStatus;
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::frame::{self, Frame};
use super::peer::PeerChannels;
use super::request::{connect, ClientConn, Credentials};
use super::{raft_frame, Shared, TransportError, TransportEvent};

/// Raft messages written before one flush: batches bursts without delaying a lone message.
const MAX_BATCH: usize = 64;

/// What woke a peer task.
enum Wake {
    Message(Option<RaftMessage>),
    AddressChanged(bool),
    ConnectionClosed,
}

/// Resolves when the peer closes the connection (or sends anything: it has no reason to on a
/// connection this side opened); never, without a connection.
async fn closed(conn: Option<&mut ClientConn>) {
    match conn {
        Some(framed) => {
            let _ = framed.next().await;
        }
        None => std::future::pending().await,
    }
}

/// The outbound side of one peer: owns the queue and the connection.
pub(super) async fn run_peer(id: u64, channels: PeerChannels, shared: Arc<Shared>) {
    let PeerChannels {
        mut addr,
        mut queue,
    } = channels;
    let config = &shared.config;
    let mut conn: Option<ClientConn> = None;
    let credentials = Credentials::Member(shared.tls.clone());
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut retry_at: Option<Instant> = None;
    // The last failure logged at warn, so a peer that stays down is not logged every retry.
    let mut last_failure: Option<String> = None;
    loop {
        let wake = tokio::select! {
            msg = queue.recv() => Wake::Message(msg),
            changed = addr.changed() => Wake::AddressChanged(changed.is_ok()),
            () = closed(conn.as_mut()) => Wake::ConnectionClosed,
        };
        let first = match wake {
            Wake::Message(Some(msg)) => msg,
            Wake::Message(None) | Wake::AddressChanged(false) => return,
            Wake::AddressChanged(true) => {
                // A new address deserves a prompt first attempt.
                conn = None;
                retry_at = None;
                backoff.reset();
                continue;
            }
            Wake::ConnectionClosed => {
                debug!(peer = id, "the cluster connection to a peer closed");
                conn = None;
                continue;
            }
        };

        if conn.is_none() {
            if retry_at.is_some_and(|at| Instant::now() < at) {
                shared.undeliverable(&first);
                continue;
            }
            let peer_addr = *addr.borrow_and_update();
            match connect(peer_addr, &credentials, Some(id), config).await {
                Ok(framed) => {
                    if last_failure.take().is_some() {
                        info!(peer = id, addr = %peer_addr, "reached the cluster peer again");
                    } else {
                        debug!(peer = id, addr = %peer_addr, "connected to a cluster peer");
                    }
                    conn = Some(framed);
                    backoff.reset();
                    retry_at = None;
                }
                Err(e) => {
                    if e.is_auth_failure() {
                        shared
                            .counters
                            .auth_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let text = e.to_string();
                    if last_failure.as_deref() != Some(text.as_str()) {
                        warn!(peer = id, "{text}");
                        last_failure = Some(text);
                    } else {
                        debug!(peer = id, "{text}");
                    }
                    shared.undeliverable(&first);
                    retry_at = Some(Instant::now() + backoff.next_delay());
                    continue;
                }
            }
        }
        let Some(framed) = conn.as_mut() else {
            continue;
        };

        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        let mut frames = Vec::with_capacity(batch.len());
        let mut sent = Vec::with_capacity(batch.len());
        for msg in batch {
            match raft_frame(&msg) {
                Ok(f) if f.body.len() <= frame::cap(f.kind, config.max_frame) => {
                    frames.push(f);
                    sent.push(msg);
                }
                Ok(f) => {
                    // Not transient: raft will keep producing it, so say so every time.
                    warn!(
                        peer = id,
                        "dropped a raft {:?}: {}",
                        msg.get_msg_type(),
                        TransportError::TooLarge {
                            len: f.body.len(),
                            max: frame::cap(f.kind, config.max_frame)
                        }
                    );
                    shared.undeliverable(&msg);
                }
                Err(e) => {
                    warn!(peer = id, error = %e, "cannot encode a raft message");
                    shared.undeliverable(&msg);
                }
            }
        }
        if frames.is_empty() {
            continue;
        }

        let write = async {
            for f in frames {
                framed.feed(f).await?;
            }
            // `Framed` is a sink of anything its codec encodes; name the item.
            SinkExt::<Frame>::flush(framed).await
        };
        match timeout(config.write_timeout, write).await {
            Ok(Ok(())) => {
                for msg in &sent {
                    if msg.get_msg_type() == MessageType::MsgSnapshot {
                        shared.tell(TransportEvent::SnapshotStatus(id, SnapshotStatus::Finish));
                    }
                }
            }
            outcome => {
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no progress for {} ms", config.write_timeout.as_millis()),
                };
                debug!(peer = id, %reason, "lost the cluster connection to a peer");
                conn = None;
                // Which of the batch got through is unknown; raft resends what matters.
                for msg in &sent {
                    shared.undeliverable(msg);
                }
            }
        }
    }
}
