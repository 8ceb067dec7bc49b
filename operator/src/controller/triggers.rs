//! Change notifications from the watch caches to the reconcilers.
//!
//! Each kind is watched once ([`super::watches`]); an applied or deleted object whose inputs to
//! the controllers changed becomes a [`Change`] on one broadcast channel (status writes and other
//! noise are filtered out there), and each controller maps the changes it cares about to the
//! objects it reconciles (a policy change to the nodes it selects before and after, a node
//! state's change to its node, a NAD change to its network). A receiver that falls behind gets
//! [`Change::Resync`] instead of the lost changes.

use std::{convert::Infallible, time::Duration};

use crds::{NicNetwork, k8s::LabelSelector};
use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;

/// Something in the caches changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A Node's labels or schedulability changed, or it was added or deleted.
    Node(String),
    /// What the planner reads of a `NicNodeState` (named after its node) changed: the planning
    /// facts of its inventory ([`planner::planning_fingerprint`]), its spec (`generation`), its
    /// labels, owner, finalizers or deletion; or it was added or deleted. A status write that
    /// changes none of these (sync status, conditions, VF MACs, link state) is not published.
    NodeState(String),
    /// The drain annotations of a `NicNodeState` changed, or it was added or deleted.
    NodeDrain(String),
    /// A `NicPolicy`'s spec changed (`generation`), or it was added or deleted.
    Policy(PolicyChange),
    /// A `NicPool`'s spec changed, or it was added or deleted.
    Pool,
    /// The `NicOperatorConfig`'s spec changed, or it was added or deleted.
    OperatorConfig,
    /// A `NicNetwork` changed.
    Network(ObjectRef<NicNetwork>),
    /// A NAD owned by this `NicNetwork` changed (or was deleted).
    Nad(ObjectRef<NicNetwork>),
    /// Reconcile everything: a cache was relisted, a receiver lagged, or the periodic resync.
    Resync,
}

/// A policy change: the node selectors the policy had before and has after it, so that only
/// the nodes it selected or selects are planned again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyChange {
    /// Policy name.
    pub name: String,
    /// `spec.nodeSelector` before (when known) and after (absent when deleted).
    pub selectors: Vec<LabelSelector>,
}

impl PolicyChange {
    /// A change of policy `name` whose node selector went from `before` to `after`.
    pub fn new(
        name: impl Into<String>,
        before: Option<&LabelSelector>,
        after: Option<&LabelSelector>,
    ) -> Self {
        let mut selectors: Vec<LabelSelector> = before.into_iter().cloned().collect();
        if let Some(a) = after
            && before != Some(a)
        {
            selectors.push(a.clone());
        }
        Self {
            name: name.into(),
            selectors,
        }
    }

    /// Whether a node with these labels is selected before or after the change. A selector that
    /// does not compile selects nothing (the policy is invalid and planned nowhere).
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.compiled().iter().any(|s| s.matches(labels))
    }

    /// The compiled selectors, to test many nodes.
    pub fn compiled(&self) -> Vec<planner::selector::CompiledSelector> {
        self.selectors
            .iter()
            .filter_map(|s| planner::selector::CompiledSelector::compile(s).ok())
            .collect()
    }
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
        t.send(Change::Pool);
        assert_eq!(rx.next().await, Some(Change::Pool));
        for i in 0..5 {
            t.send(Change::Node(format!("n{i}")));
        }
        assert_eq!(rx.next().await, Some(Change::Resync));
        assert_eq!(rx.next().await, Some(Change::Node("n3".into())));
    }
}
