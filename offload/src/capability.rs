//! The capability seam: what a NIC does with the flower rules OVS offers it, behind a trait, and
//! a simulator that turns offered flows into the same [`RawEvidence`] text a real node gives
//! (`dpctl/dump-flows -m`, `tc filter show`, the ovs-vswitchd log). With [`FakeNic`] the
//! hardware path (`in_hw`, `offloaded:yes`) and every fallback go through the real parsers and
//! the real report, without hardware. No device on the project's machines accepts a flower rule
//! in hardware; only this fake does.

use std::collections::{BTreeMap, BTreeSet};

use crate::evidence::{RawEvidence, report::TcPolicy};

/// A datapath flow that OVS would offer to tc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedFlow {
    /// Ingress device.
    pub in_port: String,
    /// Match, in `dpctl` notation without `in_port`.
    pub matches: String,
    /// Actions, in `dpctl` notation.
    pub actions: String,
    /// Packets seen.
    pub packets: u64,
}

/// What the NIC driver does with a flower rule.
pub trait NicOffload {
    /// The device is a switchdev port with `hw-tc-offload` on.
    fn switchdev(&self, dev: &str) -> bool;
    /// Offers a rule to the hardware: `Err` carries the kernel's message.
    fn offer(&self, dev: &str, flow: &OfferedFlow) -> Result<(), String>;
}

/// A fake switchdev NIC: its ports take every rule except those whose match or actions contain
/// one of the refused patterns.
#[derive(Clone, Debug, Default)]
pub struct FakeNic {
    ports: BTreeSet<String>,
    refuse: Vec<(String, String)>,
}

impl FakeNic {
    /// A NIC with these switchdev ports (representors, uplink).
    pub fn with_ports<'a>(ports: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            ports: ports.into_iter().map(str::to_string).collect(),
            refuse: Vec::new(),
        }
    }

    /// Refuses rules containing `pattern` with the kernel message `message`.
    pub fn refusing(mut self, pattern: &str, message: &str) -> Self {
        self.refuse.push((pattern.into(), message.into()));
        self
    }
}

impl NicOffload for FakeNic {
    fn switchdev(&self, dev: &str) -> bool {
        self.ports.contains(dev)
    }

    fn offer(&self, dev: &str, flow: &OfferedFlow) -> Result<(), String> {
        if !self.switchdev(dev) {
            return Err("Operation not supported".into());
        }
        match self
            .refuse
            .iter()
            .find(|(p, _)| flow.matches.contains(p.as_str()) || flow.actions.contains(p.as_str()))
        {
            Some((_, m)) => Err(m.clone()),
            None => Ok(()),
        }
    }
}

/// What OVS with the kernel datapath does with each flow (openvswitch lib/dpif.c
/// `dpif_operate`, §1.7 of the offload notes): without hw-offload it stays in the datapath;
/// with `skip_hw` it goes to tc software; otherwise tc offers it to the NIC: taken → `in_hw`;
/// refused → with `skip_sw` tc fails and OVS keeps it in its datapath (logging the kernel's
/// message), with `none` it stays in tc software (`not_in_hw`).
pub fn simulate(
    nic: &dyn NicOffload,
    hw_offload: bool,
    policy: TcPolicy,
    flows: &[OfferedFlow],
) -> RawEvidence {
    let mut raw = RawEvidence::default();
    let mut tc: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, f) in flows.iter().enumerate() {
        let bytes = f.packets * 98;
        let head = format!(
            "ufid:00000000-0000-0000-0000-{i:012x}, recirc_id(0),in_port({}),{}, packets:{}, bytes:{bytes}, used:0.1s",
            f.in_port, f.matches, f.packets
        );
        let (dp, flags) = if !hw_offload {
            ("dp:ovs", None)
        } else if policy == TcPolicy::SkipHw {
            ("dp:tc", Some("skip_hw\n  not_in_hw"))
        } else {
            match nic.offer(&f.in_port, f) {
                Ok(()) => ("offloaded:yes, dp:tc", Some("in_hw in_hw_count 1")),
                Err(m) if policy == TcPolicy::SkipSw => {
                    raw.log.push_str(&format!(
                        "2026-11-29T00:00:00.000Z|{i:05}|dpif_netlink(handler1)|DBG|failed to offload flow: {m}: {}\n",
                        f.in_port
                    ));
                    ("dp:ovs", None)
                }
                Err(_) => ("dp:tc", Some("not_in_hw")),
            }
        };
        raw.dpctl
            .push_str(&format!("{head}, {dp}, actions:{}\n", f.actions));
        if let Some(fl) = flags {
            let skip = if policy == TcPolicy::SkipSw {
                "  skip_sw\n"
            } else {
                ""
            };
            tc.entry(f.in_port.clone()).or_default().push(format!(
                "filter protocol all pref {p} flower chain 0\nfilter protocol all pref {p} flower chain 0 handle 0x1\n{skip}  {fl}\n\taction order 1: mirred (Egress Redirect to device x) stolen\n",
                p = i + 1
            ));
        }
    }
    raw.tc = tc.into_iter().map(|(d, v)| (d, v.concat())).collect();
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decision::Datapath,
        evidence::{
            dpctl::Layer,
            report::{AttachmentInfo, NodeContext, build},
        },
    };

    fn flows() -> Vec<OfferedFlow> {
        let f = |dev: &str, m: &str, a: &str| OfferedFlow {
            in_port: dev.into(),
            matches: m.into(),
            actions: a.into(),
            packets: 10,
        };
        vec![
            f(
                "eth2_0",
                "eth_type(0x0800),ipv4(proto=6)",
                "set(tunnel(tun_id=0x64,dst=10.0.0.2)),genev_sys_6081",
            ),
            f(
                "eth2_0",
                "eth_type(0x0800),ipv4(proto=17,dst=10.0.0.9)",
                "ct(commit,alg=ftp),eth2_1",
            ),
            f(
                "sn1234",
                "eth_type(0x0806)",
                "set(tunnel(tun_id=0xc8,dst=10.0.0.2)),genev_sys_6081",
            ),
        ]
    }

    fn ctx(policy: TcPolicy) -> NodeContext {
        NodeContext {
            node: "n1".into(),
            bridge: "br-int".into(),
            hw_offload: true,
            tc_policy: policy,
            datapath: Datapath::System,
            attachments: vec![
                AttachmentInfo {
                    port: "eth2_0".into(),
                    kind: "representor".into(),
                    network: "default/red".into(),
                    vni: 100,
                    reason: "switchdev VF".into(),
                    ..Default::default()
                },
                AttachmentInfo {
                    port: "sn1234".into(),
                    kind: "veth".into(),
                    network: "default/blue".into(),
                    vni: 200,
                    reason: "no VF allocated (the switchdev pool is exhausted or the pod requested none)".into(),
                    ..Default::default()
                },
            ],
            switchdev_ports: ["eth2_0".to_string()].into(),
        }
    }

    fn nic() -> FakeNic {
        FakeNic::with_ports(["eth2_0"]).refusing("alg=", "Operation not supported")
    }

    #[test]
    fn skip_sw_puts_accepted_rules_in_hardware_and_refused_ones_in_the_datapath() {
        let raw = simulate(&nic(), true, TcPolicy::SkipSw, &flows());
        let r = build(&ctx(TcPolicy::SkipSw), &raw);
        assert_eq!((r.counts.hardware, r.counts.ovs), (1, 2));
        let rep = &r.attachments[0];
        assert_eq!(rep.verdict, "mixed");
        assert_eq!(rep.counts.hardware, 1);
        assert!(rep.tc_filters.iter().any(|t| t.in_hw && t.skip_sw));
        assert!(
            rep.fallbacks.iter().any(|f| f.contains("conntrack ALG")),
            "{:?}",
            rep.fallbacks
        );
        let veth = &r.attachments[1];
        assert_eq!(veth.verdict, "software");
        assert!(veth.fallbacks[0].contains("pool is exhausted"));
        let red = r.networks.iter().find(|n| n.vni == 100).unwrap();
        assert!((red.ratio - 0.5).abs() < 1e-9);
    }

    #[test]
    fn without_skip_sw_refused_rules_stay_in_tc_software() {
        let raw = simulate(&nic(), true, TcPolicy::None, &flows());
        let r = build(&ctx(TcPolicy::None), &raw);
        assert_eq!((r.counts.hardware, r.counts.tc), (1, 2));
        assert!(
            r.attachments[0]
                .flows
                .iter()
                .any(|f| f.flow.layer == Layer::TcSoftware)
        );
    }

    #[test]
    fn a_device_that_is_not_switchdev_is_named_with_the_kernel_message() {
        // the representor is gone from switchdev (legacy eswitch): every rule is refused
        let raw = simulate(&FakeNic::default(), true, TcPolicy::SkipSw, &flows()[..1]);
        let mut c = ctx(TcPolicy::SkipSw);
        c.switchdev_ports.clear();
        let r = build(&c, &raw);
        assert_eq!(r.counts.ovs, 1);
        assert_eq!(
            r.attachments[0].fallbacks,
            vec!["tc refused the rule on eth2_0 with skip_sw: Operation not supported"]
        );
        let raw = simulate(&FakeNic::default(), true, TcPolicy::None, &flows()[..1]);
        let r = build(&c, &raw);
        assert!(r.attachments[0].fallbacks[0].contains("not a switchdev port"));
    }

    #[test]
    fn hw_offload_off_keeps_everything_in_the_datapath() {
        let raw = simulate(&nic(), false, TcPolicy::None, &flows());
        let mut c = ctx(TcPolicy::None);
        c.hw_offload = false;
        let r = build(&c, &raw);
        assert_eq!(r.counts.ovs, 3);
        assert!(r.fallbacks.iter().any(|f| f.contains("hw-offload is off")));
        let m = crate::evidence::metrics::render(&r);
        assert!(m.contains("smartnic_ovs_hw_offload{node=\"n1\"} 0"), "{m}");
        assert!(
            m.contains("smartnic_offload_ratio{node=\"n1\",network=\"default/red\",vni=\"100\"} 0")
        );
    }
}
