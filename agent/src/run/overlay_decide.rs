//! The overlay's pure decisions in the agent (see [`crate::run::overlay`] for the shell):
//!
//! - [`tunnel_report`]: what this node publishes from its uplink's address: the
//!   `status.tunnelEndpoint` and the `TunnelEndpoint` condition (an uplink without an address
//!   withdraws the endpoint, so that no peer keeps a tunnel to an address that may move);
//! - [`EndpointView`]: every node's published endpoint, folded from the watch of all
//!   `NicNodeState`s, saying when the set of endpoints changed (only then are the peers
//!   applied again; inventory and condition updates of other nodes change nothing);
//! - [`node_setup`]: the OVS node setup this node's inventory asks for (the integration bridge;
//!   `hw-offload=true` and `hw-tc-offload` on the PFs and representors only when a PF is in
//!   switchdev), [`host_datapath`] its datapath, and [`setup_events`] what the agent tells about
//!   a setup that changed something (an ovs-vswitchd restart it does not do itself).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::{
    CONDITION_TUNNEL_ENDPOINT,
    inventory::{EswitchMode, NicInventory},
    node_state::TunnelEndpoint,
};
use offload::decision::Datapath;
use offload::node::{NodeSetup, SetupOutcome};
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

/// The OVS node setup `inventory` asks for on `bridge` of `datapath`: with a PF in switchdev,
/// `other_config:hw-offload=true` and `hw-tc-offload` on every such PF and its VFs'
/// representors; without one, `hw-offload` is left as OVS has it and no device is touched.
pub fn node_setup(bridge: &str, datapath: Datapath, inventory: &NicInventory) -> NodeSetup {
    let mut devs: Vec<&str> = Vec::new();
    let mut switchdev = false;
    for nic in &inventory.nics {
        if nic.eswitch_mode != Some(EswitchMode::Switchdev) {
            continue;
        }
        switchdev = true;
        devs.extend(nic.name.as_deref());
        devs.extend(nic.vfs.iter().filter_map(|v| v.representor.as_deref()));
    }
    let cfg = NodeSetup::new(bridge)
        .datapath(datapath)
        .tc_offload_on(devs);
    if switchdev {
        cfg
    } else {
        cfg.keep_hw_offload()
    }
}

/// The datapath for a bridge the agent creates: the kernel's when the host has the
/// `openvswitch` module loaded (ovs-vswitchd's start script loads it where it exists), else
/// the userspace one. `configured` (`--ovs-datapath`) wins.
pub fn host_datapath(configured: Option<Datapath>, kernel_module: bool) -> Datapath {
    configured.unwrap_or(if kernel_module {
        Datapath::System
    } else {
        Datapath::Netdev
    })
}

/// An event the agent publishes about its OVS node setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupEvent {
    /// Warning (else Normal).
    pub warning: bool,
    /// `OvsSetup` or `OvsRestartRequired`.
    pub reason: &'static str,
    /// What happened.
    pub note: String,
}

/// The events of a setup of `bridge` that gave `out`: none when nothing changed; what changed
/// (`OvsSetup`), and a warning when ovs-vswitchd must be restarted for it (`OvsRestartRequired`:
/// the agent never restarts OVS, whose restart cuts every pod's traffic).
pub fn setup_events(bridge: &str, out: &SetupOutcome) -> Vec<SetupEvent> {
    let mut evs = Vec::new();
    if !out.changed() {
        return evs;
    }
    let mut what: Vec<String> = Vec::new();
    if out.bridge_created {
        what.push(format!("created bridge {bridge} (fail_mode=secure)"));
    }
    if !out.changed_other_config.is_empty() {
        what.push(format!(
            "set other_config {}",
            out.changed_other_config.join(", ")
        ));
    }
    if !out.tc_offload_on.is_empty() {
        what.push(format!(
            "hw-tc-offload on for {}",
            out.tc_offload_on.join(", ")
        ));
    }
    evs.push(SetupEvent {
        warning: false,
        reason: "OvsSetup",
        note: what.join("; "),
    });
    if out.restart_required {
        evs.push(SetupEvent {
            warning: true,
            reason: "OvsRestartRequired",
            note: format!(
                "other_config {} changed: ovs-vswitchd reads it only when it starts; restart it \
                 (e.g. systemctl restart openvswitch-switch) for the change to take effect",
                out.changed_other_config.join(", ")
            ),
        });
    }
    evs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    fn pf(name: &str, mode: Option<EswitchMode>, reps: &[&str]) -> crds::inventory::Nic {
        crds::inventory::Nic {
            name: Some(name.to_owned()),
            eswitch_mode: mode,
            vfs: reps
                .iter()
                .map(|r| crds::inventory::Vf {
                    representor: Some((*r).to_owned()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_switchdev_pf_turns_hw_offload_on_for_it_and_its_representors_only() {
        let inv = NicInventory {
            nics: vec![
                pf("eth0", Some(EswitchMode::Legacy), &[]),
                pf("enp3s0f0", Some(EswitchMode::Switchdev), &["eth4", "eth5"]),
                pf("enp4s0", None, &[]),
            ],
        };
        let cfg = node_setup("br-int", Datapath::System, &inv);
        assert_eq!(cfg.bridge, "br-int");
        assert_eq!(cfg.datapath, Datapath::System);
        assert_eq!(cfg.hw_offload, Some(true));
        assert_eq!(cfg.tc_offload, ["enp3s0f0", "eth4", "eth5"]);
        assert_eq!(cfg.tc_policy, None, "tc-policy is the operator's choice");
    }

    #[test]
    fn without_a_switchdev_pf_hw_offload_is_left_alone_and_no_device_touched() {
        let inv = NicInventory {
            nics: vec![pf("eth0", Some(EswitchMode::Legacy), &[])],
        };
        let cfg = node_setup("br-int", Datapath::Netdev, &inv);
        assert_eq!(cfg.hw_offload, None);
        assert!(cfg.tc_offload.is_empty());
        assert_eq!(cfg.datapath, Datapath::Netdev);
        assert_eq!(
            node_setup("br-int", Datapath::Netdev, &NicInventory::default()),
            cfg
        );
    }

    #[test]
    fn the_datapath_follows_the_kernel_module_unless_configured() {
        assert_eq!(host_datapath(None, true), Datapath::System);
        assert_eq!(host_datapath(None, false), Datapath::Netdev);
        assert_eq!(
            host_datapath(Some(Datapath::System), false),
            Datapath::System
        );
    }

    #[test]
    fn a_setup_that_changed_nothing_says_nothing() {
        assert!(setup_events("br-int", &SetupOutcome::default()).is_empty());
    }

    #[test]
    fn a_hw_offload_change_says_what_changed_and_that_ovs_must_be_restarted() {
        let out = SetupOutcome {
            changed_other_config: vec!["hw-offload".into()],
            restart_required: true,
            bridge_created: true,
            tc_offload_on: vec!["enp3s0f0".into()],
            warnings: vec![],
        };
        let evs = setup_events("br-int", &out);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].reason, "OvsSetup");
        assert!(!evs[0].warning);
        assert!(
            evs[0].note.contains("created bridge br-int")
                && evs[0].note.contains("hw-offload")
                && evs[0].note.contains("enp3s0f0"),
            "{}",
            evs[0].note
        );
        assert_eq!(evs[1].reason, "OvsRestartRequired");
        assert!(evs[1].warning);
        assert!(evs[1].note.contains("restart"), "{}", evs[1].note);
        // only the bridge: no restart
        let br = SetupOutcome {
            bridge_created: true,
            ..SetupOutcome::default()
        };
        assert_eq!(setup_events("br-int", &br).len(), 1);
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
