//! The overlay's peers from the cluster: every other node's published tunnel endpoint
//! (`NicNodeState.status.tunnelEndpoint.ip`) → the [`Peer`] set that
//! [`Overlay::set_peers`](super::Overlay::set_peers) makes the tunnel ports of. The choice is
//! pure ([`peers_from_endpoints`]); [`PeerSync`] is the agent's shell around it, which touches
//! OVS only when the set changes.
//!
//! ```text
//!   NicNodeState[].status.tunnelEndpoint ─► peers_from_endpoints(self) ─► PeerSet ─► set_peers
//!                                           (self, unset, bad, conflicting, other family: skipped)
//! ```

use std::{collections::BTreeMap, net::IpAddr};

use super::{Overlay, OverlayError, Peer, PeerChange};

/// One node's published endpoint, as the agent reads it from the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// Node name (the NicNodeState's name).
    pub node: String,
    /// `status.tunnelEndpoint.ip`, when the node published one.
    pub ip: Option<String>,
}

impl NodeEndpoint {
    /// A node with endpoint `ip` (or none).
    pub fn new(node: impl Into<String>, ip: Option<impl Into<String>>) -> Self {
        Self {
            node: node.into(),
            ip: ip.map(Into::into),
        }
    }
}

/// A node left out of the peer set, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Node name.
    pub node: String,
    /// Why (for a log line or an event).
    pub reason: String,
}

/// The peers of this node, sorted by node name, and the nodes left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSet {
    /// Tunnel peers.
    pub peers: Vec<Peer>,
    /// Nodes that are not peers, with the reason (nodes without an endpoint are not listed:
    /// they take no part in the overlay).
    pub skipped: Vec<Skipped>,
}

/// The peer set of node `self_node` (whose own endpoint is `self_ip`, when known): every other
/// node with a valid endpoint, in node-name order. Left out, with a reason: an endpoint that is
/// not an IP address, this node's own endpoint under another name, an endpoint two or more
/// nodes claim (every claimant: two tunnel ports to one address would loop, and no name order
/// decides which claim is true, so a node cannot take another node's endpoint by its name; the
/// conflict is reported until one of them withdraws), and an endpoint of the other IP family
/// than this node's (Geneve needs both ends in one family).
pub fn peers_from_endpoints(
    self_node: &str,
    self_ip: Option<IpAddr>,
    nodes: &[NodeEndpoint],
) -> PeerSet {
    let mut sorted: Vec<&NodeEndpoint> = nodes.iter().filter(|n| n.node != self_node).collect();
    sorted.sort_by(|a, b| a.node.cmp(&b.node));
    sorted.dedup_by(|a, b| a.node == b.node);
    let mut out = PeerSet::default();
    let mut claimants: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for n in &sorted {
        if let Some(ip) =
            n.ip.as_deref()
                .and_then(|r| r.trim().parse::<IpAddr>().ok())
        {
            claimants.entry(ip).or_default().push(&n.node);
        }
    }
    let mut skip = |node: &str, reason: String| {
        out.skipped.push(Skipped {
            node: node.to_string(),
            reason,
        })
    };
    for n in sorted {
        let Some(raw) = n.ip.as_deref() else {
            continue;
        };
        let Ok(ip) = raw.trim().parse::<IpAddr>() else {
            skip(
                &n.node,
                format!("tunnel endpoint {raw:?} is not an IP address"),
            );
            continue;
        };
        if Some(ip) == self_ip {
            skip(
                &n.node,
                format!("tunnel endpoint {ip} is this node's own ({self_node})"),
            );
            continue;
        }
        if let Some(s) = self_ip
            && s.is_ipv4() != ip.is_ipv4()
        {
            skip(
                &n.node,
                format!("tunnel endpoint {ip} is of another IP family than this node's {s}"),
            );
            continue;
        }
        if let Some(all) = claimants.get(&ip).filter(|c| c.len() > 1) {
            skip(
                &n.node,
                format!(
                    "tunnel endpoint {ip} is claimed by nodes {}: a conflict, no tunnel to any of them until one withdraws it",
                    all.join(", ")
                ),
            );
            continue;
        }
        out.peers.push(Peer {
            node: n.node.clone(),
            ip,
        });
    }
    out
}

/// The agent's peer loop: recompute on every change of the NicNodeStates, apply only when the
/// set differs from the last one applied (a restarted agent applies once: `set_peers` is
/// idempotent and also removes tunnel ports of nodes that left while it was down).
#[derive(Debug)]
pub struct PeerSync {
    overlay: Overlay,
    node: String,
    dst_port: u16,
    applied: Option<Vec<Peer>>,
}

/// What one [`PeerSync::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSyncOutcome {
    /// The peer set computed (applied or already in place).
    pub set: PeerSet,
    /// The tunnel ports changed; `None` when the set was already applied.
    pub change: Option<PeerChange>,
}

impl PeerSync {
    /// The peers of `node` on `overlay`, tunnels to UDP port `dst_port` (normally
    /// [`super::GENEVE_PORT`]).
    pub fn new(overlay: Overlay, node: &str, dst_port: u16) -> Self {
        Self {
            overlay,
            node: node.to_string(),
            dst_port,
            applied: None,
        }
    }

    /// Computes the peer set from `nodes` (every NicNodeState, this node's included or not) and
    /// applies it if it changed. `self_ip`: this node's endpoint, as published.
    pub async fn apply(
        &mut self,
        self_ip: Option<IpAddr>,
        nodes: &[NodeEndpoint],
    ) -> Result<PeerSyncOutcome, OverlayError> {
        let set = peers_from_endpoints(&self.node, self_ip, nodes);
        if self.applied.as_ref() == Some(&set.peers) {
            return Ok(PeerSyncOutcome { set, change: None });
        }
        let change = self.overlay.set_peers(&set.peers, self.dst_port).await?;
        tracing::info!(
            node = %self.node, peers = set.peers.len(), added = ?change.added,
            removed = ?change.removed, skipped = ?set.skipped, "overlay peers applied"
        );
        self.applied = Some(set.peers.clone());
        Ok(PeerSyncOutcome {
            set,
            change: Some(change),
        })
    }

    /// Forgets what was applied: the next [`Self::apply`] applies (after OVS restarted).
    pub fn reset(&mut self) {
        self.applied = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(node: &str, ip: Option<&str>) -> NodeEndpoint {
        NodeEndpoint::new(node, ip)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_other_node_with_an_endpoint_is_a_peer_in_name_order() {
        let nodes = [
            ep("node-c", Some("10.0.0.3")),
            ep("node-a", Some("10.0.0.1")),
            ep("node-b", Some("10.0.0.2")),
            ep("node-d", None),
        ];
        let set = peers_from_endpoints("node-a", Some(ip("10.0.0.1")), &nodes);
        assert_eq!(
            set.peers,
            [
                Peer {
                    node: "node-b".into(),
                    ip: ip("10.0.0.2")
                },
                Peer {
                    node: "node-c".into(),
                    ip: ip("10.0.0.3")
                }
            ]
        );
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        // The order of the input does not matter.
        let mut rev = nodes.to_vec();
        rev.reverse();
        assert_eq!(
            peers_from_endpoints("node-a", Some(ip("10.0.0.1")), &rev),
            set
        );
    }

    #[test]
    fn bad_own_duplicate_and_foreign_family_endpoints_are_skipped_with_a_reason() {
        let nodes = [
            ep("a", Some("10.0.0.1")),
            ep("b", Some("not-an-ip")),
            ep("c", Some("10.0.0.1")),
            ep("d", Some("10.0.0.4")),
            ep("e", Some("10.0.0.4")),
            ep("f", Some("fd00::6")),
            ep("d", Some("10.0.0.9")),
        ];
        let set = peers_from_endpoints("a", Some(ip("10.0.0.1")), &nodes);
        assert_eq!(set.peers, []);
        let why: Vec<(&str, &str)> = set
            .skipped
            .iter()
            .map(|s| (s.node.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(why.len(), 5, "{why:?}");
        assert!(why[0].0 == "b" && why[0].1.contains("not an IP"));
        assert!(why[1].0 == "c" && why[1].1.contains("this node's own"));
        assert!(why[2].0 == "d" && why[2].1.contains("claimed by nodes d, e: a conflict"));
        assert!(why[3].0 == "e" && why[3].1.contains("claimed by nodes d, e: a conflict"));
        assert!(why[4].0 == "f" && why[4].1.contains("another IP family"));
    }

    #[test]
    fn a_node_cannot_take_another_nodes_endpoint_by_its_name() {
        // "aaa" sorts before the victim "node-7": name order must not hand it the endpoint.
        let honest = [
            ep("node-7", Some("10.0.0.7")),
            ep("node-8", Some("10.0.0.8")),
        ];
        let before = peers_from_endpoints("node-1", Some(ip("10.0.0.1")), &honest);
        assert_eq!(before.peers.len(), 2);
        let mut attacked = honest.to_vec();
        attacked.push(ep("aaa", Some("10.0.0.7")));
        let after = peers_from_endpoints("node-1", Some(ip("10.0.0.1")), &attacked);
        assert!(
            after.peers.iter().all(|p| p.node != "aaa"),
            "{:?}",
            after.peers
        );
        assert_eq!(
            after.peers,
            [Peer {
                node: "node-8".into(),
                ip: ip("10.0.0.8")
            }]
        );
        assert_eq!(after.skipped.len(), 2, "both claimants are reported");
        // the attacker withdraws: the victim is a peer again
        let back = peers_from_endpoints("node-1", Some(ip("10.0.0.1")), &honest);
        assert_eq!(back, before);
    }

    #[test]
    fn without_its_own_endpoint_a_node_still_peers_with_every_other() {
        let nodes = [
            ep("a", None),
            ep("b", Some("fd00::2")),
            ep("c", Some("10.0.0.3")),
        ];
        let set = peers_from_endpoints("a", None, &nodes);
        assert_eq!(set.peers.len(), 2);
        assert_eq!(peers_from_endpoints("a", None, &[]), PeerSet::default());
    }
}
