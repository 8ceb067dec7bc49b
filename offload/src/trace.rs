//! `smartnicctl trace`: one attachment's path hop by hop — VF → representor → OVS port → the
//! OpenFlow rules it hits → the datapath flow → tunnel port → remote node — each hop marked
//! hardware or software with the evidence behind it. Pure: the inputs are the attachment, its
//! part of the offload report, `ofproto/trace` output and the bridge's tunnel ports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    appctl::{Appctl, AppctlError},
    evidence::{dpctl::Layer, report::AttachmentReport},
    overlay::{EXT_PEER_NODE, overlay_peer_ip},
    vswitch::Ovs,
};

/// Where a hop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Where {
    /// In the NIC.
    Hardware,
    /// In the host's software.
    Software,
    /// Partly in each (some flows offloaded, some not).
    Mixed,
    /// Not decided here (e.g. the remote node, or no traffic yet).
    Unknown,
}

/// One hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// What the hop is (`vf`, `veth`, `representor`, `ovs-port`, `openflow`, `datapath`,
    /// `tunnel`, `remote-node`).
    pub hop: String,
    /// Its name (device, table, node).
    pub name: String,
    /// Hardware or software.
    #[serde(rename = "where")]
    pub at: Where,
    /// The evidence.
    pub evidence: Vec<String>,
}

/// A tunnel port of the bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelInfo {
    /// Port name.
    pub port: String,
    /// Its OpenFlow port number.
    pub ofport: u32,
    /// Peer node.
    pub peer_node: String,
    /// Peer endpoint IP.
    pub peer_ip: String,
}

/// The rules `ofproto/trace` shows a packet hitting (` 0. in_port=3, priority 100, cookie
/// 0x...`) and its `Datapath actions:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfTrace {
    /// `TABLE. MATCH, priority N[, cookie C]`, in order.
    pub rules: Vec<String>,
    /// The OpenFlow ports the packet is output to (`output:N`, `-> output to ...`).
    pub outputs: Vec<String>,
    /// `Datapath actions:`
    pub datapath_actions: String,
}

/// Parses `ovs-appctl ofproto/trace` output.
pub fn parse_of_trace(text: &str) -> OfTrace {
    let mut t = OfTrace::default();
    for line in text.lines() {
        let s = line.trim();
        if let Some(a) = s.strip_prefix("Datapath actions:") {
            t.datapath_actions = a.trim().to_string();
        } else if let Some((n, rest)) = s.split_once(". ")
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
        {
            t.rules.push(format!("table {n}: {rest}"));
        } else if let Some(p) = s.strip_prefix("output:") {
            t.outputs.push(p.trim().to_string());
        }
    }
    t
}

/// Builds the hops of one attachment.
pub fn build(att: &AttachmentReport, of: &OfTrace, tunnels: &[TunnelInfo]) -> Vec<Hop> {
    let a = &att.info;
    let mut hops = Vec::new();
    let pod = a
        .pod
        .clone()
        .unwrap_or_else(|| a.netns.clone().unwrap_or_default());
    if a.kind == "representor" {
        hops.push(Hop {
            hop: "vf".into(),
            name: format!("{} ({pod} {})", a.vf.clone().unwrap_or_default(), a.ifname),
            at: Where::Hardware,
            evidence: vec!["SR-IOV VF in the pod: its packets enter the NIC eswitch".into()],
        });
        let in_hw = att.tc_filters.iter().filter(|f| f.in_hw).count();
        let not = att.tc_filters.len() - in_hw;
        hops.push(Hop {
            hop: "representor".into(),
            name: a.port.clone(),
            at: match (in_hw, not) {
                // The kernel refused a hardware-only rule: nothing can be in hardware here.
                (0, 0) if att.probe.as_deref().is_some_and(|m| !m.is_empty()) => Where::Software,
                (0, 0) => Where::Unknown,
                (_, 0) => Where::Hardware,
                (0, _) => Where::Software,
                _ => Where::Mixed,
            },
            evidence: std::iter::once(format!(
                "tc ingress on {}: {in_hw} flower rule(s) in_hw, {not} not_in_hw",
                a.port
            ))
            .chain(att.probe.as_ref().map(|m| match m.as_str() {
                "" => "skip_sw probe: the kernel took a hardware-only flower rule".to_string(),
                m => format!("skip_sw probe refused by the kernel: {m}"),
            }))
            .collect(),
        });
    } else {
        hops.push(Hop {
            hop: "veth".into(),
            name: format!("{pod} {} <-> {}", a.ifname, a.port),
            at: Where::Software,
            evidence: vec![format!("veth pair: {}", a.reason)],
        });
    }
    hops.push(Hop {
        hop: "ovs-port".into(),
        name: format!(
            "{} (ofport {}, network {}, VNI {})",
            a.port, a.ofport, a.network, a.vni
        ),
        at: Where::Software,
        evidence: vec!["OpenFlow pipeline: consulted on a datapath miss (first packet)".into()],
    });
    hops.push(Hop {
        hop: "openflow".into(),
        name: format!("{} rule(s)", of.rules.len()),
        at: Where::Software,
        evidence: of.rules.clone(),
    });
    let own: Vec<_> = att
        .flows
        .iter()
        .filter(|f| f.flow.in_port == a.port)
        .collect();
    let hw = own.iter().filter(|f| f.flow.layer.in_hardware()).count();
    let mut ev: Vec<String> = own
        .iter()
        .map(|f| {
            format!(
                "dp:{}{} packets:{} {} -> {}{}",
                f.flow.dp,
                if f.flow.layer == Layer::Hardware {
                    " offloaded:yes"
                } else {
                    ""
                },
                f.flow.packets,
                short(&f.flow.matches),
                short(&f.flow.actions),
                f.fallback
                    .as_ref()
                    .map(|r| format!(" [software: {r}]"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if ev.is_empty() {
        ev.push("no datapath flow from this port yet (no traffic, or expired)".into());
    }
    hops.push(Hop {
        hop: "datapath".into(),
        name: format!("{} flow(s) from {}", own.len(), a.port),
        at: match (hw, own.len()) {
            (_, 0) => Where::Unknown,
            (h, n) if h == n => Where::Hardware,
            (0, _) => Where::Software,
            _ => Where::Mixed,
        },
        evidence: ev,
    });
    // Tunnels: the OpenFlow outputs that are tunnel ports, else any encap in the datapath
    // actions, matched by remote IP.
    let by_ofport: BTreeMap<String, &TunnelInfo> =
        tunnels.iter().map(|t| (t.ofport.to_string(), t)).collect();
    let mut used: Vec<&TunnelInfo> = of
        .outputs
        .iter()
        .filter_map(|o| by_ofport.get(o).copied())
        .collect();
    if used.is_empty() {
        used = tunnels
            .iter()
            .filter(|t| of.datapath_actions.contains(&format!("dst={}", t.peer_ip)))
            .collect();
    }
    let encap_layer = if own.iter().any(|f| !f.flow.encap_vnis.is_empty()) {
        let enc: Vec<_> = own
            .iter()
            .filter(|f| !f.flow.encap_vnis.is_empty())
            .collect();
        if enc.iter().all(|f| f.flow.layer.in_hardware()) {
            Where::Hardware
        } else if enc.iter().any(|f| f.flow.layer.in_hardware()) {
            Where::Mixed
        } else {
            Where::Software
        }
    } else {
        Where::Unknown
    };
    for t in used {
        hops.push(Hop {
            hop: "tunnel".into(),
            name: format!("{} (ofport {}) geneve VNI {}", t.port, t.ofport, a.vni),
            at: encap_layer,
            evidence: vec![format!(
                "encapsulation by the datapath flow above; datapath actions: {}",
                short(&of.datapath_actions)
            )],
        });
        hops.push(Hop {
            hop: "remote-node".into(),
            name: format!("{} ({})", t.peer_node, t.peer_ip),
            at: Where::Unknown,
            evidence: vec![format!(
                "decapsulated on {}: see `smartnicctl offload` there",
                t.peer_node
            )],
        });
    }
    hops
}

/// Traces one attachment on a live node: runs `ofproto/trace` for a packet from the pod's MAC
/// to `dst_mac` (broadcast: the flood path) and builds the hops with the bridge's tunnel ports.
pub async fn trace_attachment(
    ovs: &Ovs,
    appctl: &Appctl,
    bridge: &str,
    att: &AttachmentReport,
    dst_mac: &str,
) -> Result<Vec<Hop>, AppctlError> {
    let src = att
        .info
        .mac
        .clone()
        .unwrap_or_else(|| "02:00:00:00:00:01".into());
    let flow = format!(
        "in_port={},dl_src={src},dl_dst={dst_mac},dl_type=0x0800,nw_src=0.0.0.0,nw_dst=0.0.0.0",
        att.info.ofport
    );
    let of = parse_of_trace(&appctl.trace(bridge, &flow).await?);
    let tunnels: Vec<TunnelInfo> = ovs
        .view()
        .bridge_interfaces(bridge)
        .into_iter()
        .filter_map(|i| {
            Some(TunnelInfo {
                port: i.name.clone(),
                ofport: u32::try_from(i.ofport?).ok()?,
                peer_node: i.external_ids.get(EXT_PEER_NODE)?.clone(),
                peer_ip: overlay_peer_ip(i).unwrap_or_default(),
            })
        })
        .collect();
    Ok(build(att, &of, &tunnels))
}

fn short(s: &str) -> String {
    const MAX: usize = 160;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

/// Prints hops as text, one per line with its evidence indented.
pub fn render(hops: &[Hop]) -> String {
    let mut s = String::new();
    for (i, h) in hops.iter().enumerate() {
        let at = match h.at {
            Where::Hardware => "HARDWARE",
            Where::Software => "software",
            Where::Mixed => "mixed",
            Where::Unknown => "?",
        };
        s.push_str(&format!(
            "{:>2}. {:<12} {:<9} {}\n",
            i + 1,
            h.hop,
            at,
            h.name
        ));
        for e in &h.evidence {
            s.push_str(&format!("      {e}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::report::{AttachmentInfo, Counts};

    /// Captured from OVS 3.1 (userspace datapath) on the overlay bridge.
    const OF_TRACE: &str = "Flow: in_port=3,vlan_tci=0x0000,dl_src=aa:bb:cc:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x0000

bridge(\"br-int\")
----------------
 0. in_port=3, priority 100, cookie 0x534e000000000000
    load:0x64->NXM_NX_REG0[0..23]
    resubmit(,10)
10. priority 0, cookie 0x534e000000000000
    learn(table=20,idle_timeout=300,priority=100,NXM_NX_REG0[0..23],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])
    move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]
     -> NXM_NX_TUN_ID[0..23] is now 0x64
    resubmit(,20)
20. priority 0, cookie 0x534e000000000000
    resubmit(,30)
30. reg0=0x64,reg1=0, priority 100, cookie 0x534e000000000000
    output:3
    output:2
     -> output to native tunnel

Final flow: unchanged
Datapath actions: tnl_push(tnl_port(4),header(size=50,type=5,eth(dst=02:00:00:00:00:0b,src=02:00:00:00:00:0a,dl_type=0x0800),ipv4(src=172.31.0.1,dst=172.31.0.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(vni=0x64)),out_port(2))
";

    #[test]
    fn a_veth_path_is_software_to_the_tunnel_and_names_the_remote_node() {
        let of = parse_of_trace(OF_TRACE);
        assert_eq!(of.rules.len(), 4);
        assert!(of.rules[0].starts_with("table 0: in_port=3"));
        assert_eq!(of.outputs, vec!["3", "2"]);
        let att = AttachmentReport {
            info: AttachmentInfo {
                port: "sn1".into(),
                ofport: 3,
                kind: "veth".into(),
                pod: Some("default/a".into()),
                ifname: "eth0".into(),
                network: "default/red".into(),
                vni: 100,
                reason: "no offload-capable device".into(),
                ..Default::default()
            },
            counts: Counts::default(),
            verdict: "idle".into(),
            fallbacks: vec![],
            flows: vec![],
            tc_filters: vec![],
            probe: None,
        };
        let tunnels = [TunnelInfo {
            port: "gnvac1f0002".into(),
            ofport: 2,
            peer_node: "node-b".into(),
            peer_ip: "172.31.0.2".into(),
        }];
        let hops = build(&att, &of, &tunnels);
        let kinds: Vec<_> = hops.iter().map(|h| h.hop.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "veth",
                "ovs-port",
                "openflow",
                "datapath",
                "tunnel",
                "remote-node"
            ]
        );
        assert_eq!(hops[0].at, Where::Software);
        assert!(hops[0].evidence[0].contains("no offload-capable device"));
        assert!(hops[5].name.contains("node-b"));
        let text = render(&hops);
        assert!(text.contains("remote-node"), "{text}");
    }
}
