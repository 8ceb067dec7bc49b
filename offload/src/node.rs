//! Node setup, done by the agent through this module: `hw-offload` (and `tc-policy`) in
//! `Open_vSwitch.other_config`, the integration bridge, `hw-tc-offload` on the PF and its
//! representors, and the node's tunnel endpoint from its uplink (published in
//! `NicNodeState.status.tunnelEndpoint`). What to change is pure ([`plan`] of [`NodeSetup`]
//! and [`Observed`]); [`setup`] reads the node, plans and writes only the difference. Putting the PF in switchdev is the host layer's job
//! (`nic::devlink`); peers and tunnel ports are [`crate::overlay::Overlay::set_peers`].
//!
//! | here | by hand |
//! |---|---|
//! | `setup(&ovs, &NodeSetup::new("br-int").hw_offload(true))` | `ovs-vsctl set Open_vSwitch . other_config:hw-offload=true -- --may-exist add-br br-int -- set bridge br-int fail_mode=secure` |
//! | `.tc_offload_on(["enp3s0f0", "enp3s0f0_0"])` | `ethtool -K enp3s0f0 hw-tc-offload on` (each) |
//! | `tunnel_endpoint("enp3s0f0")` | `ip -br addr show dev enp3s0f0 scope global` (first IPv4, else IPv6) |

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressScope};
use nic::ethtool::{EthtoolError, EthtoolHandle};
use serde::{Deserialize, Serialize};

use crate::{
    decision::Datapath,
    evidence::report::TcPolicy,
    vswitch::{FailMode, Ovs, VswitchError},
};

/// Errors of node setup.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// OVSDB.
    #[error(transparent)]
    Vswitch(#[from] VswitchError),
    /// ethtool.
    #[error(transparent)]
    Ethtool(#[from] EthtoolError),
    /// The uplink's addresses could not be read.
    #[error("cannot read the addresses of uplink {uplink}: {detail}")]
    Addresses {
        /// Uplink.
        uplink: String,
        /// Why.
        detail: String,
    },
    /// The uplink has no global address.
    #[error("uplink {0} has no global IPv4 or IPv6 address to be the tunnel endpoint")]
    NoEndpoint(String),
}

/// What to set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSetup {
    /// Integration bridge (`br-int`).
    pub bridge: String,
    /// Its datapath (used when the bridge is created; an existing bridge keeps its own).
    pub datapath: Datapath,
    /// `other_config:hw-offload` (unset: leave it as it is).
    pub hw_offload: Option<bool>,
    /// `other_config:tc-policy` (unset: leave it).
    pub tc_policy: Option<TcPolicy>,
    /// Devices that get `hw-tc-offload on` (PF uplinks and representors).
    pub tc_offload: Vec<String>,
}

impl NodeSetup {
    /// The defaults: kernel datapath, hw-offload on, tc-policy untouched.
    pub fn new(bridge: &str) -> Self {
        Self {
            bridge: bridge.to_string(),
            datapath: Datapath::System,
            hw_offload: Some(true),
            tc_policy: None,
            tc_offload: Vec::new(),
        }
    }

    /// The datapath.
    pub fn datapath(mut self, d: Datapath) -> Self {
        self.datapath = d;
        self
    }

    /// `hw-offload`.
    pub fn hw_offload(mut self, on: bool) -> Self {
        self.hw_offload = Some(on);
        self
    }

    /// `hw-offload` left as OVS has it (a node without a switchdev PF).
    pub fn keep_hw_offload(mut self) -> Self {
        self.hw_offload = None;
        self
    }

    /// `tc-policy`.
    pub fn tc_policy(mut self, p: TcPolicy) -> Self {
        self.tc_policy = Some(p);
        self
    }

    /// Devices for `hw-tc-offload on`.
    pub fn tc_offload_on<'a>(mut self, devs: impl IntoIterator<Item = &'a str>) -> Self {
        self.tc_offload.extend(devs.into_iter().map(str::to_string));
        self
    }
}

/// What setup found on the node: the inputs of [`plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `Open_vSwitch.other_config`.
    pub other_config: BTreeMap<String, String>,
    /// The integration bridge's `datapath_type` (`None`: no such bridge; `""` is `system`).
    pub bridge_datapath: Option<String>,
    /// `hw-tc-offload` of the devices that could be read (a device missing here is set).
    pub tc_offload: BTreeMap<String, bool>,
}

/// What setup will change (empty: everything is in place).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetupPlan {
    /// `other_config` keys to set, with their values.
    pub other_config: Vec<(String, String)>,
    /// Create the bridge (`fail_mode=secure`, the configured datapath).
    pub create_bridge: bool,
    /// Devices to turn `hw-tc-offload` on for.
    pub tc_offload_on: Vec<String>,
    /// Setting `other_config` needs an ovs-vswitchd restart.
    pub restart_required: bool,
    /// What is not as configured and is left alone, with why.
    pub warnings: Vec<String>,
}

impl SetupPlan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.other_config.is_empty() && !self.create_bridge && self.tc_offload_on.is_empty()
    }
}

/// `ovs-vsctl`'s spelling of a datapath.
pub fn datapath_type(d: Datapath) -> &'static str {
    match d {
        Datapath::System => "system",
        Datapath::Netdev => "netdev",
    }
}

/// What to change so that the node shows `cfg`, given what it shows (pure).
///
/// `hw-offload` and `tc-policy` are read by ovs-vswitchd when it starts (`ovs-vswitchd.conf.db(5)`:
/// "changing this value requires restarting the daemon"): any change of them sets
/// [`SetupPlan::restart_required`]. An existing bridge with another datapath is left alone (a
/// change of `datapath_type` re-creates every port on it) and named in the warnings.
pub fn plan(cfg: &NodeSetup, seen: &Observed) -> SetupPlan {
    let mut p = SetupPlan::default();
    let mut want: Vec<(&str, String)> = Vec::new();
    if let Some(on) = cfg.hw_offload {
        want.push(("hw-offload", on.to_string()));
    }
    if let Some(tp) = cfg.tc_policy {
        want.push(("tc-policy", tp.as_str().to_string()));
    }
    for (k, v) in want {
        if seen.other_config.get(k) != Some(&v) {
            p.other_config.push((k.to_string(), v));
        }
    }
    p.restart_required = !p.other_config.is_empty();
    match seen.bridge_datapath.as_deref() {
        None => p.create_bridge = true,
        Some(t) => {
            let t = if t.is_empty() { "system" } else { t };
            let want = datapath_type(cfg.datapath);
            if t != want {
                p.warnings.push(format!(
                    "bridge {} has datapath_type {t}, not {want}: left as it is (changing it \
                     re-creates every port on it)",
                    cfg.bridge
                ));
            }
        }
    }
    for d in &cfg.tc_offload {
        if seen.tc_offload.get(d) != Some(&true) && !p.tc_offload_on.contains(d) {
            p.tc_offload_on.push(d.clone());
        }
    }
    p
}

/// What setup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupOutcome {
    /// `other_config` keys changed.
    pub changed_other_config: Vec<String>,
    /// ovs-vswitchd reads `hw-offload` and `tc-policy` once at start: it must be restarted for
    /// the change to take effect (this crate never restarts it).
    pub restart_required: bool,
    /// Whether the bridge was created.
    #[serde(default)]
    pub bridge_created: bool,
    /// Devices whose `hw-tc-offload` was turned on (those already on are not listed).
    pub tc_offload_on: Vec<String>,
    /// What is not as configured and was left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl SetupOutcome {
    /// Whether anything was changed.
    pub fn changed(&self) -> bool {
        !self.changed_other_config.is_empty()
            || self.bridge_created
            || !self.tc_offload_on.is_empty()
    }
}

/// Reads what the node shows of `cfg` (OVSDB through `ovs`'s monitor, ethtool).
pub async fn observe(ovs: &Ovs, cfg: &NodeSetup) -> Result<Observed, NodeError> {
    let view = ovs.view();
    let mut seen = Observed {
        other_config: view.other_config.clone(),
        bridge_datapath: view.bridge(&cfg.bridge).map(|b| b.datapath_type.clone()),
        tc_offload: BTreeMap::new(),
    };
    if !cfg.tc_offload.is_empty() {
        let et = EthtoolHandle::connect().await?;
        for d in &cfg.tc_offload {
            // unreadable: left out, so it is set (and that names the device if it fails)
            if let Ok(f) = et.features().get(d).execute().await
                && let Some(s) = f.features.get("hw-tc-offload")
            {
                seen.tc_offload.insert(d.clone(), s.active);
            }
        }
    }
    Ok(seen)
}

/// Applies `cfg`: [`observe`], [`plan`], then only the changes. Idempotent: a node that shows
/// `cfg` gets no write at all.
pub async fn setup(ovs: &Ovs, cfg: &NodeSetup) -> Result<SetupOutcome, NodeError> {
    let p = plan(cfg, &observe(ovs, cfg).await?);
    let mut out = SetupOutcome {
        warnings: p.warnings.clone(),
        ..SetupOutcome::default()
    };
    if let Some(((k0, v0), rest)) = p.other_config.split_first() {
        let mut req = ovs.open_vswitch().set_other_config(k0, v0);
        for (k, v) in rest {
            req = req.set(k, v);
        }
        req.execute().await?;
        out.restart_required = p.restart_required;
        out.changed_other_config = p.other_config.iter().map(|(k, _)| k.clone()).collect();
    }
    if p.create_bridge {
        ovs.bridge()
            .add(&cfg.bridge)
            .datapath_type(datapath_type(cfg.datapath))
            .fail_mode(FailMode::Secure)
            .may_exist()
            .execute()
            .await?;
        out.bridge_created = true;
    }
    if !p.tc_offload_on.is_empty() {
        let et = EthtoolHandle::connect().await?;
        for d in &p.tc_offload_on {
            et.features()
                .set(d)
                .feature("hw-tc-offload", true)
                .execute()
                .await?;
            out.tc_offload_on.push(d.clone());
        }
    }
    Ok(out)
}

/// The tunnel endpoint of `uplink`: its first global IPv4 address, else its first global IPv6
/// address (in the calling thread's network namespace).
pub async fn tunnel_endpoint(uplink: &str) -> Result<IpAddr, NodeError> {
    let err = |detail: String| NodeError::Addresses {
        uplink: uplink.to_string(),
        detail,
    };
    let nl = nic::netlink::NetlinkHandle::connect().map_err(|e| err(e.to_string()))?;
    let link = nl
        .link()
        .get(uplink)
        .execute()
        .await
        .map_err(|e| err(e.to_string()))?;
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| err(e.to_string()))?;
    let task = tokio::spawn(conn);
    let msgs: Result<Vec<_>, _> = handle
        .address()
        .get()
        .set_link_index_filter(link.index)
        .execute()
        .try_collect()
        .await;
    task.abort();
    let addrs: Vec<(IpAddr, bool)> = msgs
        .map_err(|e| err(e.to_string()))?
        .into_iter()
        .filter(|m| m.header.index == link.index)
        .filter_map(|m| {
            let global = m.header.scope == AddressScope::Universe;
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some((*ip, global)),
                _ => None,
            })
        })
        .collect();
    pick_endpoint(&addrs).ok_or_else(|| NodeError::NoEndpoint(uplink.to_string()))
}

/// First global IPv4, else first global IPv6.
pub fn pick_endpoint(addrs: &[(IpAddr, bool)]) -> Option<IpAddr> {
    let global = || addrs.iter().filter(|(_, g)| *g).map(|(a, _)| *a);
    global()
        .find(IpAddr::is_ipv4)
        .or_else(|| global().find(IpAddr::is_ipv6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(hw: Option<&str>, br: Option<&str>, tc: &[(&str, bool)]) -> Observed {
        Observed {
            other_config: hw
                .map(|v| ("hw-offload".to_string(), v.to_string()))
                .into_iter()
                .collect(),
            bridge_datapath: br.map(str::to_string),
            tc_offload: tc.iter().map(|(d, on)| (d.to_string(), *on)).collect(),
        }
    }

    #[test]
    fn a_bare_node_gets_everything_and_a_restart_is_required() {
        let cfg = NodeSetup::new("br-int").tc_offload_on(["pf0", "pf0_0"]);
        let p = plan(&cfg, &seen(None, None, &[("pf0", false)]));
        assert_eq!(p.other_config, [("hw-offload".into(), "true".into())]);
        assert!(p.restart_required);
        assert!(p.create_bridge);
        assert_eq!(
            p.tc_offload_on,
            ["pf0", "pf0_0"],
            "unreadable pf0_0 is set too"
        );
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn a_node_that_shows_the_setup_gets_nothing() {
        let cfg = NodeSetup::new("br-int").tc_offload_on(["pf0"]);
        let p = plan(&cfg, &seen(Some("true"), Some("system"), &[("pf0", true)]));
        assert!(p.is_empty(), "{p:?}");
        assert!(!p.restart_required);
        // "" is OVS's default datapath, the kernel one
        assert!(plan(&cfg, &seen(Some("true"), Some(""), &[("pf0", true)])).is_empty());
    }

    #[test]
    fn hw_offload_left_alone_is_not_touched_whatever_it_is() {
        let cfg = NodeSetup::new("br-int")
            .keep_hw_offload()
            .datapath(Datapath::Netdev);
        for hw in [None, Some("false"), Some("true")] {
            let p = plan(&cfg, &seen(hw, Some("netdev"), &[]));
            assert!(p.is_empty() && !p.restart_required, "{hw:?}: {p:?}");
        }
    }

    #[test]
    fn any_change_of_hw_offload_or_tc_policy_requires_a_restart() {
        let off = NodeSetup::new("br-int").hw_offload(false);
        let p = plan(&off, &seen(Some("true"), Some("system"), &[]));
        assert_eq!(p.other_config, [("hw-offload".into(), "false".into())]);
        assert!(p.restart_required);
        let tp = NodeSetup::new("br-int").tc_policy(TcPolicy::SkipSw);
        let p = plan(&tp, &seen(Some("true"), Some("system"), &[]));
        assert_eq!(p.other_config, [("tc-policy".into(), "skip_sw".into())]);
        assert!(p.restart_required);
    }

    #[test]
    fn an_existing_bridge_of_another_datapath_is_left_with_a_warning() {
        let cfg = NodeSetup::new("br-int").keep_hw_offload();
        let p = plan(&cfg, &seen(None, Some("netdev"), &[]));
        assert!(p.is_empty());
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].contains("br-int") && p.warnings[0].contains("netdev"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn ipv4_global_wins_over_ipv6_and_link_local() {
        let a = |s: &str, g| (s.parse::<IpAddr>().unwrap(), g);
        assert_eq!(
            pick_endpoint(&[a("fe80::1", false), a("fd00::1", true), a("10.0.0.1", true)]),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            pick_endpoint(&[a("fe80::1", false), a("fd00::1", true)]),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(pick_endpoint(&[a("fe80::1", false)]), None);
    }
}
