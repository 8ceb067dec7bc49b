//! The Geneve overlay: one VNI per network, one tunnel port per peer node, and the OpenFlow
//! pipeline that keeps each network's ports in its VNI.
//!
//! Everything here is pure: the state comes from OVSDB (interfaces tagged with
//! [`EXT_VNI`] / [`EXT_PEER_NODE`]), the output is flow text for `ovs-ofctl --bundle`. The shell
//! that reads the state and applies the flows is [`sync`].
//!
//! Pipeline (registers: `reg0` = VNI, `reg1[0]` = came from a tunnel):
//!
//! ```text
//! table 0  classify   in_port=POD            → reg0=VNI                       → table 10
//!                     in_port=TUN,tun_id=VNI → reg0=VNI, reg1=1               → table 10
//!                     anything else          → drop (unknown port or VNI)
//! table 10 learn      learn(table 20: reg0 + eth_dst=this eth_src → output:in_port),
//!                     tun_id=reg0                                             → table 20
//! table 20 forward    learned: reg0=VNI,eth_dst=MAC → output:PORT (pod or tunnel)
//!                     miss                                                    → table 30
//! table 30 flood      reg0=VNI,reg1=0 → every pod port of VNI + every tunnel port
//!                     reg0=VNI,reg1=1 → every pod port of VNI (split horizon)
//! ```

pub mod peers;
pub mod sync;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

pub use peers::{NodeEndpoint, PeerSet, PeerSync, PeerSyncOutcome, Skipped, peers_from_endpoints};
pub use sync::{EXT_PEER_IP, Overlay, OverlayError, PeerChange};

/// A tunnel interface's peer IP (`external_ids`, else `options:remote_ip`).
pub fn overlay_peer_ip(i: &crate::vswitch::InterfaceRow) -> Option<String> {
    i.external_ids
        .get(EXT_PEER_IP)
        .or_else(|| i.options.get("remote_ip"))
        .cloned()
}

/// `external_ids` key on a pod attachment's interface: the network's VNI.
pub const EXT_VNI: &str = "smartnic.io/vni";
/// `external_ids` key on a pod attachment's interface: the network (`NAMESPACE/NAME`).
pub const EXT_NETWORK: &str = "smartnic.io/network";
/// `external_ids` key on a tunnel interface: the peer node's name.
pub const EXT_PEER_NODE: &str = "smartnic.io/peer-node";
/// Geneve's IANA UDP port.
pub const GENEVE_PORT: u16 = 6081;
/// Highest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Cookie of every flow this crate programs (learned flows carry 0); the low bit is the
/// generation used to replace the flow set atomically (see [`bundle`]).
pub const COOKIE_BASE: u64 = 0x534e_0000_0000_0000;

/// A remote node's tunnel endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// Node name.
    pub node: String,
    /// Its tunnel endpoint (`NicNodeState.status.tunnelEndpoint.ip`).
    pub ip: IpAddr,
}

/// The name of the tunnel port to a peer: `gnv` + the IPv4 address in hex (`gnv0a000002`), or a
/// hash of an IPv6 address; a non-default UDP port is appended. At most 15 characters, so the
/// name is also a valid netdev name.
pub fn tunnel_port_name(peer: IpAddr, dst_port: u16) -> String {
    let base = match peer {
        IpAddr::V4(v4) => format!("gnv{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("gnv{:08x}", fnv32(&v6.octets())),
    };
    if dst_port == GENEVE_PORT {
        base
    } else {
        format!("{base}{dst_port:04x}")
    }
}

fn fnv32(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, x| {
        (h ^ u32::from(*x)).wrapping_mul(0x0100_0193)
    })
}

/// A pod attachment on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPort {
    /// Port name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// The network's VNI.
    pub vni: u32,
}

/// A tunnel port to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPort {
    /// Port name ([`tunnel_port_name`]).
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// The peer node.
    pub peer_node: String,
}

/// What the pipeline is computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverlayState {
    /// Pod attachments.
    pub locals: Vec<LocalPort>,
    /// Tunnel ports.
    pub tunnels: Vec<TunnelPort>,
}

/// The OpenFlow tables of the pipeline.
pub mod table {
    /// Classify by in_port (and tun_id).
    pub const CLASSIFY: u8 = 0;
    /// Learn the source MAC.
    pub const LEARN: u8 = 10;
    /// Forward to a learned port.
    pub const FORWARD: u8 = 20;
    /// Flood within the VNI.
    pub const FLOOD: u8 = 30;
}

/// The pipeline's flows for `state`, in `ovs-ofctl` syntax without cookie, sorted.
pub fn flows(state: &OverlayState) -> Vec<String> {
    use table::*;
    let mut out = BTreeSet::new();
    let mut by_vni: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for l in &state.locals {
        by_vni.entry(l.vni).or_default().push(l.ofport);
        out.insert(format!(
            "table={CLASSIFY},priority=100,in_port={},actions=load:{:#x}->NXM_NX_REG0[0..23],resubmit(,{LEARN})",
            l.ofport, l.vni
        ));
    }
    for t in &state.tunnels {
        for vni in by_vni.keys() {
            out.insert(format!(
                "table={CLASSIFY},priority=100,in_port={},tun_id={vni:#x},actions=load:{vni:#x}->NXM_NX_REG0[0..23],load:1->NXM_NX_REG1[0],resubmit(,{LEARN})",
                t.ofport
            ));
        }
    }
    out.insert(format!("table={CLASSIFY},priority=0,actions=drop"));
    out.insert(format!(
        "table={LEARN},priority=0,actions=learn(table={FORWARD},idle_timeout=300,priority=100,NXM_NX_REG0[0..23],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],resubmit(,{FORWARD})"
    ));
    out.insert(format!(
        "table={FORWARD},priority=0,actions=resubmit(,{FLOOD})"
    ));
    for (vni, ports) in &by_vni {
        let mut ports = ports.clone();
        ports.sort_unstable();
        let local: Vec<String> = ports.iter().map(|p| format!("output:{p}")).collect();
        let mut tunnels: Vec<u32> = state.tunnels.iter().map(|t| t.ofport).collect();
        tunnels.sort_unstable();
        let all: Vec<String> = local
            .iter()
            .cloned()
            .chain(tunnels.iter().map(|p| format!("output:{p}")))
            .collect();
        out.insert(format!(
            "table={FLOOD},priority=100,reg0={vni:#x},reg1=0,actions={}",
            all.join(",")
        ));
        out.insert(format!(
            "table={FLOOD},priority=100,reg0={vni:#x},reg1=1,actions={}",
            local.join(",")
        ));
    }
    out.insert(format!("table={FLOOD},priority=0,actions=drop"));
    out.into_iter().collect()
}

/// The `ovs-ofctl --bundle add-flows` input that replaces our flow set with `flows` in one
/// atomic transaction, leaving learned flows alone, except those that output to a port in
/// `removed_ports` (they would black-hole traffic until they expire).
///
/// An `add` of a flow that already exists (same match and priority) only replaces its actions
/// and cookie, so the flow set is swapped without a gap: everything is added with generation 1
/// and generation 0 deleted, then everything with generation 0 and generation 1 deleted. After
/// that exactly `flows` remain, whatever the bridge held before.
pub fn bundle(flows: &[String], removed_ports: &[u32]) -> String {
    let mut s = String::new();
    for gen_ in [1u64, 0] {
        for f in flows {
            s.push_str(&format!("add cookie={:#x},{f}\n", COOKIE_BASE | gen_));
        }
        s.push_str(&format!(
            "delete cookie={:#x}/-1\n",
            COOKIE_BASE | (gen_ ^ 1)
        ));
    }
    for p in removed_ports {
        s.push_str(&format!("delete table={},out_port={p}\n", table::FORWARD));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> OverlayState {
        OverlayState {
            locals: vec![
                LocalPort {
                    name: "a".into(),
                    ofport: 3,
                    vni: 100,
                },
                LocalPort {
                    name: "b".into(),
                    ofport: 4,
                    vni: 200,
                },
                LocalPort {
                    name: "c".into(),
                    ofport: 5,
                    vni: 100,
                },
            ],
            tunnels: vec![TunnelPort {
                name: "gnv".into(),
                ofport: 2,
                peer_node: "n2".into(),
            }],
        }
    }

    #[test]
    fn each_network_floods_only_to_its_own_ports_and_the_tunnels() {
        let f = flows(&state());
        assert!(
            f.contains(
                &"table=30,priority=100,reg0=0x64,reg1=0,actions=output:3,output:5,output:2"
                    .to_string()
            ),
            "{f:#?}"
        );
        assert!(f.contains(
            &"table=30,priority=100,reg0=0x64,reg1=1,actions=output:3,output:5".to_string()
        ));
        assert!(f.contains(
            &"table=30,priority=100,reg0=0xc8,reg1=0,actions=output:4,output:2".to_string()
        ));
        // traffic from the tunnel is accepted only for the VNIs that have local ports
        let tun: Vec<_> = f.iter().filter(|l| l.contains("in_port=2,")).collect();
        assert_eq!(tun.len(), 2, "{tun:#?}");
        assert!(
            tun.iter()
                .all(|l| l.contains("tun_id=0x64") || l.contains("tun_id=0xc8"))
        );
    }

    #[test]
    fn an_empty_node_drops_everything() {
        let f = flows(&OverlayState::default());
        assert!(
            f.iter()
                .all(|l| !l.contains("output:") || l.contains("learn(")),
            "{f:#?}"
        );
    }

    #[test]
    fn the_bundle_swaps_generations_and_forgets_removed_ports() {
        let b = bundle(&["table=0,priority=0,actions=drop".into()], &[7]);
        let lines: Vec<_> = b.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "add cookie=0x534e000000000001,table=0,priority=0,actions=drop"
        );
        assert_eq!(lines[1], "delete cookie=0x534e000000000000/-1");
        assert_eq!(lines[3], "delete cookie=0x534e000000000001/-1");
        assert_eq!(lines[4], "delete table=20,out_port=7");
    }

    #[test]
    fn tunnel_port_names_fit_a_netdev_name() {
        assert_eq!(
            tunnel_port_name("10.0.0.2".parse().unwrap(), 6081),
            "gnv0a000002"
        );
        assert_eq!(
            tunnel_port_name("10.0.0.2".parse().unwrap(), 6082),
            "gnv0a00000217c2"
        );
        let v6 = tunnel_port_name("fd00::2".parse().unwrap(), 6081);
        assert_eq!(v6.len(), 11);
        assert_ne!(v6, tunnel_port_name("fd00::3".parse().unwrap(), 6081));
    }
}
