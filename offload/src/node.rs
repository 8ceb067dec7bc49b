//! Node setup, done by the agent through this module: `hw-offload` (and `tc-policy`) in
//! `Open_vSwitch.other_config`, the integration bridge, `hw-tc-offload` on the PF and its
//! representors, and the node's tunnel endpoint from its uplink (published in
//! `NicNodeState.status.tunnelEndpoint`). Putting the PF in switchdev is the host layer's job
//! (`nic::devlink`); peers and tunnel ports are [`crate::overlay::Overlay::set_peers`].
//!
//! | here | by hand |
//! |---|---|
//! | `setup(&ovs, &NodeSetup::new("br-int").hw_offload(true))` | `ovs-vsctl set Open_vSwitch . other_config:hw-offload=true -- --may-exist add-br br-int -- set bridge br-int fail_mode=secure` |
//! | `.tc_offload_on(["enp3s0f0", "enp3s0f0_0"])` | `ethtool -K enp3s0f0 hw-tc-offload on` (each) |
//! | `tunnel_endpoint("enp3s0f0")` | `ip -br addr show dev enp3s0f0 scope global` (first IPv4, else IPv6) |

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
    /// Its datapath.
    pub datapath: Datapath,
    /// `other_config:hw-offload`.
    pub hw_offload: bool,
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
            hw_offload: true,
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
        self.hw_offload = on;
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

/// What setup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupOutcome {
    /// `other_config` keys changed.
    pub changed_other_config: Vec<String>,
    /// ovs-vswitchd reads `hw-offload` and `tc-policy` once at start: it must be restarted for
    /// the change to take effect (turning hw-offload on also works at runtime on OVS 3.1, but
    /// off and tc-policy do not).
    pub restart_required: bool,
    /// Devices whose `hw-tc-offload` is now on.
    pub tc_offload_on: Vec<String>,
}

/// Applies `cfg`. Idempotent.
pub async fn setup(ovs: &Ovs, cfg: &NodeSetup) -> Result<SetupOutcome, NodeError> {
    let mut out = SetupOutcome::default();
    let current = ovs.open_vswitch().other_config();
    let mut want: Vec<(&str, String)> = vec![("hw-offload", cfg.hw_offload.to_string())];
    if let Some(p) = cfg.tc_policy {
        want.push(("tc-policy", p.as_str().to_string()));
    }
    let changes: Vec<(&str, String)> = want
        .into_iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .collect();
    if !changes.is_empty() {
        let mut req = ovs
            .open_vswitch()
            .set_other_config(changes[0].0, &changes[0].1);
        for (k, v) in &changes[1..] {
            req = req.set(k, v);
        }
        req.execute().await?;
        out.restart_required = changes
            .iter()
            .any(|(k, v)| *k == "tc-policy" || (*k == "hw-offload" && v == "false"));
        out.changed_other_config = changes.iter().map(|(k, _)| k.to_string()).collect();
    }
    ovs.bridge()
        .add(&cfg.bridge)
        .datapath_type(match cfg.datapath {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        })
        .fail_mode(FailMode::Secure)
        .may_exist()
        .execute()
        .await?;
    if !cfg.tc_offload.is_empty() {
        let et = EthtoolHandle::connect().await?;
        for d in &cfg.tc_offload {
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
