//! The offload report: a pure function of the node's context and its [`RawEvidence`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    RawEvidence,
    dpctl::{DpFlow, Layer, parse_dump},
    offload_failures,
    tc::{TcFilter, parse_filters},
};
use crate::decision::Datapath;

/// `other_config:tc-policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcPolicy {
    /// Software rule and hardware rule (the default).
    #[default]
    None,
    /// Hardware only: a rule the NIC refuses is not in tc at all (OVS keeps it in its datapath).
    SkipSw,
    /// Software only.
    SkipHw,
}

impl TcPolicy {
    /// Parses the `other_config` value (unset or unknown = `none`).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("skip_sw") => Self::SkipSw,
            Some("skip_hw") => Self::SkipHw,
            _ => Self::None,
        }
    }

    /// The gauge value ovn-kubernetes uses: none 0, skip_sw 1, skip_hw 2.
    pub fn gauge(self) -> u8 {
        match self {
            Self::None => 0,
            Self::SkipSw => 1,
            Self::SkipHw => 2,
        }
    }

    /// The `other_config` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SkipSw => "skip_sw",
            Self::SkipHw => "skip_hw",
        }
    }
}

/// A pod attachment as OVSDB records it (see `attach`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentInfo {
    /// Bridge port (host veth end or representor).
    pub port: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// `veth` or `representor`.
    pub kind: String,
    /// Pod (`NAMESPACE/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Pod network namespace path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Interface inside the pod.
    #[serde(default)]
    pub ifname: String,
    /// Network (`NAMESPACE/NAME`).
    pub network: String,
    /// VNI.
    pub vni: u32,
    /// VF PCI address (representor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf: Option<String>,
    /// Why this kind of attachment (the decision).
    pub reason: String,
    /// MAC of the pod interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What the report is about, besides the raw evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeContext {
    /// Node name.
    pub node: String,
    /// The bridge.
    pub bridge: String,
    /// `other_config:hw-offload=true`.
    pub hw_offload: bool,
    /// `other_config:tc-policy`.
    pub tc_policy: TcPolicy,
    /// The bridge's datapath.
    pub datapath: Datapath,
    /// Pod attachments on the bridge.
    pub attachments: Vec<AttachmentInfo>,
    /// Devices known to be switchdev ports (representors, uplinks).
    pub switchdev_ports: BTreeSet<String>,
}

/// Flow counts per layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// In hardware (`offloaded:yes`).
    pub hardware: u32,
    /// Partly in hardware.
    pub partial: u32,
    /// In tc software (`dp:tc`, `not_in_hw`).
    pub tc: u32,
    /// In the OVS datapath (`dp:ovs`).
    pub ovs: u32,
}

impl Counts {
    fn add(&mut self, l: Layer) {
        match l {
            Layer::Hardware => self.hardware += 1,
            Layer::Partial => self.partial += 1,
            Layer::TcSoftware => self.tc += 1,
            Layer::Datapath => self.ovs += 1,
        }
    }

    /// All flows.
    pub fn total(&self) -> u32 {
        self.hardware + self.partial + self.tc + self.ovs
    }

    /// Share of flows in hardware (0 with no flows).
    pub fn ratio(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            t => f64::from(self.hardware + self.partial) / f64::from(t),
        }
    }

    /// `hardware`, `software`, `mixed` or `idle` (no flows).
    pub fn verdict(&self) -> &'static str {
        let hw = self.hardware + self.partial;
        match (hw, self.total()) {
            (_, 0) => "idle",
            (h, t) if h == t => "hardware",
            (0, _) => "software",
            _ => "mixed",
        }
    }
}

/// One flow with where it runs and, when not in hardware, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowEvidence {
    /// The flow.
    #[serde(flatten)]
    pub flow: DpFlow,
    /// Why it is not in hardware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// One attachment's part of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentReport {
    /// The attachment.
    #[serde(flatten)]
    pub info: AttachmentInfo,
    /// Flow counts (flows in from, or out to, its port).
    pub counts: Counts,
    /// `hardware`, `software`, `mixed`, `idle`.
    pub verdict: String,
    /// Distinct fallback reasons of its flows (the attachment's reason when idle in software).
    pub fallbacks: Vec<String>,
    /// Its flows.
    pub flows: Vec<FlowEvidence>,
    /// tc rules on its port.
    pub tc_filters: Vec<TcFilter>,
    /// The kernel's answer to the `skip_sw` probe on its port (`""` = accepted), when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// One network's share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkReport {
    /// Network.
    pub network: String,
    /// VNI.
    pub vni: u32,
    /// Flow counts.
    pub counts: Counts,
    /// Hardware share.
    pub ratio: f64,
}

/// A node's offload report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadReport {
    /// Node.
    pub node: String,
    /// Bridge.
    pub bridge: String,
    /// `hw-offload`.
    pub hw_offload: bool,
    /// `tc-policy`.
    pub tc_policy: TcPolicy,
    /// Datapath.
    pub datapath: Datapath,
    /// Every datapath flow of the node.
    pub counts: Counts,
    /// Hardware share of the node's flows.
    pub ratio: f64,
    /// Per network.
    pub networks: Vec<NetworkReport>,
    /// Per attachment.
    pub attachments: Vec<AttachmentReport>,
    /// Node-wide reasons (every distinct fallback).
    pub fallbacks: Vec<String>,
}

/// Builds the report.
pub fn build(ctx: &NodeContext, raw: &RawEvidence) -> OffloadReport {
    let flows = parse_dump(&raw.dpctl);
    let failures = offload_failures(&raw.log);
    let tc: BTreeMap<&str, Vec<TcFilter>> = raw
        .tc
        .iter()
        .map(|(d, t)| (d.as_str(), parse_filters(d, t)))
        .collect();
    let by_port: BTreeMap<&str, &AttachmentInfo> = ctx
        .attachments
        .iter()
        .map(|a| (a.port.as_str(), a))
        .collect();
    let vni_net: BTreeMap<u32, &str> = ctx
        .attachments
        .iter()
        .map(|a| (a.vni, a.network.as_str()))
        .collect();

    let mut counts = Counts::default();
    let mut nets: BTreeMap<(String, u32), Counts> = BTreeMap::new();
    for a in &ctx.attachments {
        nets.entry((a.network.clone(), a.vni)).or_default();
    }
    let mut att_flows: BTreeMap<&str, Vec<FlowEvidence>> = BTreeMap::new();
    let mut fallbacks = BTreeSet::new();
    for f in &flows {
        counts.add(f.layer);
        let outs: Vec<&str> = action_ports(&f.actions);
        let owner = by_port
            .get(f.in_port.as_str())
            .or_else(|| outs.iter().find_map(|p| by_port.get(p)))
            .copied();
        let vni = owner
            .map(|a| a.vni)
            .or(f.tunnel_vni)
            .or_else(|| f.encap_vnis.first().copied());
        if let Some(v) = vni
            && let Some(n) = vni_net.get(&v)
        {
            nets.entry(((*n).to_string(), v)).or_default().add(f.layer);
        }
        let fallback =
            (!f.layer.in_hardware()).then(|| why_software(f, owner, ctx, &failures, raw));
        if let Some(r) = &fallback {
            fallbacks.insert(r.clone());
        }
        let ev = FlowEvidence {
            flow: f.clone(),
            fallback,
        };
        let mut seen = BTreeSet::new();
        for p in std::iter::once(f.in_port.as_str()).chain(outs.iter().copied()) {
            if by_port.contains_key(p) && seen.insert(p) {
                att_flows.entry(p).or_default().push(ev.clone());
            }
        }
    }
    let attachments = ctx
        .attachments
        .iter()
        .map(|a| {
            let flows = att_flows.remove(a.port.as_str()).unwrap_or_default();
            let mut c = Counts::default();
            let mut fb = BTreeSet::new();
            for f in &flows {
                c.add(f.flow.layer);
                fb.extend(f.fallback.clone());
            }
            if flows.is_empty() && a.kind == "veth" {
                fb.insert(a.reason.clone());
            }
            AttachmentReport {
                info: a.clone(),
                counts: c,
                verdict: c.verdict().to_string(),
                fallbacks: fb.into_iter().collect(),
                flows,
                tc_filters: tc.get(a.port.as_str()).cloned().unwrap_or_default(),
                probe: raw.probes.get(&a.port).cloned(),
            }
        })
        .collect();
    OffloadReport {
        node: ctx.node.clone(),
        bridge: ctx.bridge.clone(),
        hw_offload: ctx.hw_offload,
        tc_policy: ctx.tc_policy,
        datapath: ctx.datapath,
        ratio: counts.ratio(),
        counts,
        networks: nets
            .into_iter()
            .map(|((network, vni), counts)| NetworkReport {
                network,
                vni,
                ratio: counts.ratio(),
                counts,
            })
            .collect(),
        attachments,
        fallbacks: fallbacks.into_iter().collect(),
    }
}

/// The port names an action list outputs to (`pod1`, `eth2_0`; `output:` and bare names).
fn action_ports(actions: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in actions.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&actions[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&actions[start..]);
    out.into_iter()
        .map(|a| a.trim().trim_start_matches("output:"))
        .filter(|a| !a.is_empty() && !a.contains('(') && !a.contains('='))
        .collect()
}

/// Why a flow is not in hardware, most specific cause first.
fn why_software(
    f: &DpFlow,
    owner: Option<&AttachmentInfo>,
    ctx: &NodeContext,
    failures: &BTreeMap<String, String>,
    raw: &RawEvidence,
) -> String {
    let dev = f.in_port.as_str();
    let kernel = failures
        .get(dev)
        .or_else(|| raw.probes.get(dev).filter(|m| !m.is_empty()));
    if let Some(a) = owner
        && a.kind == "veth"
    {
        let refused = match (f.layer, kernel) {
            (Layer::Datapath, Some(m)) => format!(
                "; tc refused the rule on {dev}{}: {m}",
                if ctx.tc_policy == TcPolicy::SkipSw {
                    " with skip_sw"
                } else {
                    ""
                }
            ),
            _ => String::new(),
        };
        return format!("{} ({} is a veth){refused}", a.reason, a.port);
    }
    if ctx.datapath == Datapath::Netdev {
        return "userspace datapath (netdev): no tc offload".into();
    }
    if !ctx.hw_offload {
        return "OVS hw-offload is off (other_config:hw-offload)".into();
    }
    if f.actions.contains("ct(") && f.actions.contains("alg=") {
        return "conntrack ALG (ct alg=...) cannot be offloaded to tc".into();
    }
    match f.layer {
        Layer::Datapath => match (kernel, ctx.tc_policy) {
            (Some(m), TcPolicy::SkipSw) => {
                format!("tc refused the rule on {dev} with skip_sw: {m}")
            }
            (Some(m), _) => format!("tc refused the rule on {dev}: {m}"),
            (None, TcPolicy::SkipHw) => "tc-policy=skip_hw keeps rules out of hardware".into(),
            (None, _) => format!(
                "not in tc: OVS kept the flow from {dev} in its datapath (no tc flow API on the port, or see the ovs-vswitchd log)"
            ),
        },
        _ if ctx.tc_policy == TcPolicy::SkipHw => {
            "tc-policy=skip_hw keeps rules out of hardware".into()
        }
        _ if !ctx.switchdev_ports.contains(dev) => {
            format!("{dev} is not a switchdev port: the rule stays in tc software (not_in_hw)")
        }
        _ => format!("the NIC did not take the rule on {dev} (not_in_hw)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth(port: &str, net: &str, vni: u32) -> AttachmentInfo {
        AttachmentInfo {
            port: port.into(),
            ofport: 3,
            kind: "veth".into(),
            network: net.into(),
            vni,
            reason: "no offload-capable device".into(),
            ..Default::default()
        }
    }

    #[test]
    fn userspace_veth_flows_are_dp_ovs_with_no_offload_capable_device() {
        let ctx = NodeContext {
            node: "a".into(),
            datapath: Datapath::Netdev,
            attachments: vec![
                veth("sn1", "default/red", 100),
                veth("sn2", "default/blue", 200),
            ],
            ..Default::default()
        };
        let raw = RawEvidence {
            dpctl: "ufid:1, recirc_id(0),in_port(sn1),eth(src=a,dst=b),eth_type(0x0800),ipv4(frag=no), packets:3, bytes:294, used:0.1s, dp:ovs, actions:tnl_push(tnl_port(4),header(size=50,type=5,geneve(vni=0x64)),out_port(2))\n\
                    ufid:2, tunnel(tun_id=0x64,src=172.31.0.2,dst=172.31.0.1),recirc_id(0),in_port(gnv0a000002),eth_type(0x0800), packets:3, bytes:294, used:0.1s, dp:ovs, actions:sn1\n".into(),
            ..Default::default()
        };
        let r = build(&ctx, &raw);
        assert_eq!(r.counts.ovs, 2);
        assert_eq!(r.ratio, 0.0);
        let a = &r.attachments[0];
        assert_eq!(a.counts.ovs, 2, "both directions belong to sn1");
        assert_eq!(a.verdict, "software");
        assert_eq!(
            a.fallbacks,
            vec!["no offload-capable device (sn1 is a veth)"]
        );
        // idle attachment still says why it would be in software
        assert_eq!(
            r.attachments[1].fallbacks,
            vec!["no offload-capable device"]
        );
        let red = r.networks.iter().find(|n| n.vni == 100).unwrap();
        assert_eq!(red.counts.ovs, 2);
    }

    #[test]
    fn action_ports_skip_nested_actions() {
        assert_eq!(
            action_ports("set(tunnel(tun_id=0x64,dst=1.2.3.4)),genev_sys_6081,output:eth2_1"),
            vec!["genev_sys_6081", "eth2_1"]
        );
        assert_eq!(action_ports("br0,pod2"), vec!["br0", "pod2"]);
        assert!(action_ports("drop").contains(&"drop"));
    }
}
