//! The overlay's pure decisions in the agent (see [`crate::run_overlay`] for the shell):
//!
//! - [`tunnel_report`]: what this node publishes from its uplink's address: the
//!   `status.tunnelEndpoint` and the `TunnelEndpoint` condition (an uplink without an address
//!   withdraws the endpoint, so that no peer keeps a tunnel to an address that may move);
//! - [`EndpointView`]: every node's published endpoint, folded from the watch of all
//!   `NicNodeState`s, saying when the set of endpoints changed (only then are the peers
//!   applied again; inventory and condition updates of other nodes change nothing).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::{CONDITION_TUNNEL_ENDPOINT, node_state::TunnelEndpoint};
use offload::overlay::NodeEndpoint;
use planner::conditions::Cond;

/// What the agent publishes about its tunnel endpoint in one status apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelReport {
    /// `status.tunnelEndpoint` (`None`: withdrawn).
    pub endpoint: Option<TunnelEndpoint>,
    /// The `TunnelEndpoint` condition.
    pub condition: Cond,
}

/// The report for uplink `uplink` whose address read gave `read` (the error names the uplink).
pub fn tunnel_report(uplink: &str, read: Result<IpAddr, String>) -> TunnelReport {
    match read {
        Ok(ip) => TunnelReport {
            endpoint: Some(TunnelEndpoint {
                ip: ip.to_string(),
                interface: uplink.to_owned(),
            }),
            condition: Cond::new(
                CONDITION_TUNNEL_ENDPOINT,
                true,
                "Published",
                format!("tunnel endpoint {ip} on uplink {uplink}"),
            ),
        },
        Err(e) => TunnelReport {
            endpoint: None,
            condition: Cond::new(
                CONDITION_TUNNEL_ENDPOINT,
                false,
                "UplinkUnavailable",
                format!(
                    "no tunnel endpoint on uplink {uplink}, none published (peers drop this \
                     node): {e}"
                ),
            ),
        },
    }
}

/// Every node's published endpoint, as the watch of all `NicNodeState`s shows it.
///
/// A (re)list is buffered from [`Self::restart`] to [`Self::listed`] and replaces the view at
/// once: a node deleted while the watch was down disappears then, and nothing is applied from
/// a half-read list.
#[derive(Clone, Debug, Default)]
pub struct EndpointView {
    nodes: BTreeMap<String, Option<String>>,
    relist: Option<BTreeMap<String, Option<String>>>,
    listed: bool,
}

impl EndpointView {
    /// A (re)list starts.
    pub fn restart(&mut self) {
        self.relist = Some(BTreeMap::new());
    }

    /// A node's state was seen (listed, added or modified) with endpoint `ip`. Returns whether
    /// the set of endpoints changed (never during a list).
    pub fn seen(&mut self, node: &str, ip: Option<String>) -> bool {
        if let Some(relist) = self.relist.as_mut() {
            relist.insert(node.to_owned(), ip);
            return false;
        }
        let changed = self.nodes.get(node) != Some(&ip);
        self.nodes.insert(node.to_owned(), ip);
        self.listed && changed
    }

    /// A node's state was deleted. Returns whether the set of endpoints changed.
    pub fn gone(&mut self, node: &str) -> bool {
        if let Some(relist) = self.relist.as_mut() {
            relist.remove(node);
            return false;
        }
        self.nodes.remove(node).is_some() && self.listed
    }

    /// The (re)list is complete. Returns whether the set of endpoints changed (always after the
    /// first list: the peers are applied once at start).
    pub fn listed(&mut self) -> bool {
        let Some(relist) = self.relist.take() else {
            return false;
        };
        let first = !self.listed;
        self.listed = true;
        let changed = endpoints_of(&relist) != endpoints_of(&self.nodes);
        self.nodes = relist;
        first || changed
    }

    /// Whether a list completed (before it, nothing is applied).
    pub fn ready(&self) -> bool {
        self.listed
    }

    /// The endpoints for [`offload::overlay::PeerSync::apply`]: every node, with or without one.
    pub fn endpoints(&self) -> Vec<NodeEndpoint> {
        self.nodes
            .iter()
            .map(|(n, ip)| NodeEndpoint::new(n.clone(), ip.clone()))
            .collect()
    }

    /// The endpoint `node` published, when it is an address.
    pub fn ip_of(&self, node: &str) -> Option<IpAddr> {
        self.nodes
            .get(node)?
            .as_deref()
            .and_then(|ip| ip.trim().parse().ok())
    }
}

/// Only the nodes with an endpoint matter to the peers: a node without one is no peer.
fn endpoints_of(nodes: &BTreeMap<String, Option<String>>) -> BTreeMap<&str, &str> {
    nodes
        .iter()
        .filter_map(|(n, ip)| ip.as_deref().map(|ip| (n.as_str(), ip)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn an_address_is_published_with_its_interface_and_a_true_condition() {
        let r = tunnel_report("eth1", Ok("10.0.0.1".parse().unwrap()));
        assert_eq!(
            r.endpoint,
            Some(TunnelEndpoint {
                ip: "10.0.0.1".into(),
                interface: "eth1".into()
            })
        );
        assert_eq!(r.condition.type_, CONDITION_TUNNEL_ENDPOINT);
        assert!(r.condition.status);
    }

    #[test]
    fn an_uplink_without_address_withdraws_the_endpoint_and_names_the_interface() {
        let r = tunnel_report(
            "eth9",
            Err("uplink eth9 has no global IPv4 or IPv6 address".into()),
        );
        assert_eq!(r.endpoint, None);
        assert!(!r.condition.status);
        assert_eq!(r.condition.reason, "UplinkUnavailable");
        assert!(r.condition.message.contains("eth9"), "{:?}", r.condition);
    }

    #[test]
    fn nothing_changes_before_the_first_list_completes_then_the_first_list_applies() {
        let mut v = EndpointView::default();
        v.restart();
        assert!(!v.seen("n1", ip("10.0.0.1")));
        assert!(!v.seen("n2", None));
        assert!(!v.ready());
        assert!(v.listed(), "the first list always applies");
        assert!(v.ready());
        assert_eq!(
            v.endpoints(),
            [
                NodeEndpoint::new("n1", ip("10.0.0.1")),
                NodeEndpoint::new("n2", None::<String>)
            ]
        );
        assert_eq!(v.ip_of("n1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(v.ip_of("n2"), None);
    }

    #[test]
    fn only_a_change_of_an_endpoint_counts() {
        let mut v = EndpointView::default();
        v.restart();
        v.seen("n1", ip("10.0.0.1"));
        v.listed();
        // the same endpoint again (an inventory or condition update of that node)
        assert!(!v.seen("n1", ip("10.0.0.1")));
        // a new node without an endpoint is no peer yet; publishing one is a change
        assert!(v.seen("n2", None));
        assert!(v.seen("n2", ip("10.0.0.2")));
        assert!(v.seen("n2", ip("10.0.0.3")));
        assert!(v.seen("n2", None), "withdrawn");
        // a node that goes away
        assert!(v.gone("n1"));
        assert!(!v.gone("n1"));
    }

    #[test]
    fn a_relist_replaces_the_view_and_drops_nodes_deleted_meanwhile() {
        let mut v = EndpointView::default();
        v.restart();
        v.seen("n1", ip("10.0.0.1"));
        v.seen("n2", ip("10.0.0.2"));
        v.listed();
        // the same endpoints: no change
        v.restart();
        v.seen("n2", ip("10.0.0.2"));
        v.seen("n1", ip("10.0.0.1"));
        v.seen("n3", None);
        assert!(!v.listed());
        // n2 went away while the watch was down
        v.restart();
        assert!(!v.seen("n1", ip("10.0.0.1")));
        assert!(!v.gone("n2"));
        assert!(v.listed());
        assert_eq!(v.endpoints(), [NodeEndpoint::new("n1", ip("10.0.0.1"))]);
        // a stray "listed" without a restart changes nothing
        assert!(!v.listed());
    }
}
