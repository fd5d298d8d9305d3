//! What the node tells its owner: that the replicated state changed, or that the node stopped
//! by itself (a [`NodeError`] out of its loop, or a panic of raft-rs in its task). A node
//! stopped by a shutdown says nothing.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::NodeError;

/// What the node tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A batch of entries was applied: the replicated state changed.
    Applied,
    /// The node stopped by itself: why.
    Died(String),
}

/// Waits for the node's task, and sends [`NodeEvent::Died`] unless it ended by a shutdown.
pub(super) async fn report_death(
    run: JoinHandle<Result<(), NodeError>>,
    events: mpsc::UnboundedSender<NodeEvent>,
) {
    let why = match run.await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            format!("raft-rs panicked: {message}")
        }
        // Cancelled: the runtime is going away with everything on it.
        Err(_) => return,
    };
    let _ = events.send(NodeEvent::Died(why));
}
