//! Change notifications from the watch caches to the reconcilers.
//!
//! Each kind is watched once ([`super::watches`]); every applied or deleted object becomes a
//! [`Change`] on one broadcast channel, and each controller maps the changes it cares about to
//! the objects it reconciles (a policy change fans out to every node, a NAD change maps to its
//! network). A receiver that falls behind gets [`Change::Resync`] instead of the lost changes.

use std::{convert::Infallible, time::Duration};

use crds::NicNetwork;
use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;

/// Something in the caches changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Node's labels or schedulability changed, or it was added or deleted.
    Node(String),
    /// A `NicNodeState` (named after its node) changed.
    NodeState(String),
    /// A `NicPolicy` changed.
    Policy,
    /// A `NicPool` changed.
    Pool,
    /// The `NicOperatorConfig` changed.
    OperatorConfig,
    /// A `NicNetwork` changed.
    Network(ObjectRef<NicNetwork>),
    /// A NAD owned by this `NicNetwork` changed (or was deleted).
    Nad(ObjectRef<NicNetwork>),
    /// Reconcile everything: a cache was relisted, a receiver lagged, or the periodic resync.
    Resync,
}

/// The sending side, cloned into every watch task.
#[derive(Clone, Debug)]
pub struct Triggers {
    tx: broadcast::Sender<Change>,
}

impl Default for Triggers {
    fn default() -> Self {
        Self::new()
    }
}

impl Triggers {
    /// A channel holding up to 4096 undelivered changes per receiver.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
        }
    }

    /// Publishes a change (dropped when no controller listens, e.g. on a non-leader replica).
    pub fn send(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    /// Every change from now on. Ends when every sender is dropped.
    pub fn subscribe(&self) -> impl Stream<Item = Change> + Send + Unpin + 'static {
        Box::pin(stream::unfold(self.tx.subscribe(), |mut rx| async move {
            match rx.recv().await {
                Ok(c) => Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "change receiver lagged; resyncing everything");
                    Some((Change::Resync, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }
}

/// [`Change::Resync`] every `period` (first one after `period`).
pub fn resync_every(period: Duration) -> impl Stream<Item = Change> + Send + Unpin + 'static {
    Box::pin(stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some((Change::Resync, ()))
    }))
}

/// Turns changes into an applier queue: `map` says which objects each change concerns.
pub fn queue<K, I>(
    changes: impl Stream<Item = Change> + Send + 'static,
    mut map: impl FnMut(Change) -> I + Send + 'static,
) -> impl Stream<Item = Result<ObjectRef<K>, Infallible>> + Send + 'static
where
    K: kube::Resource + 'static,
    K::DynamicType: Send,
    I: IntoIterator<Item = ObjectRef<K>>,
    I::IntoIter: Send + 'static,
    ObjectRef<K>: Send,
{
    changes.flat_map(move |c| stream::iter(map(c))).map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_changes_and_a_resync_after_lagging() {
        let t = Triggers {
            tx: broadcast::channel(2).0,
        };
        let mut rx = t.subscribe();
        t.send(Change::Policy);
        assert_eq!(rx.next().await, Some(Change::Policy));
        for i in 0..5 {
            t.send(Change::Node(format!("n{i}")));
        }
        assert_eq!(rx.next().await, Some(Change::Resync));
        assert_eq!(rx.next().await, Some(Change::Node("n3".into())));
    }
}
