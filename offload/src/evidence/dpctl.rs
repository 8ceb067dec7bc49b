//! Parser of `ovs-appctl dpctl/dump-flows -m`: one datapath flow per line, with the layer that
//! holds it (`dp:ovs` = kernel or userspace datapath, `dp:tc` = tc flower, `offloaded:yes` = in
//! hardware, `offloaded:partial` = DPDK mark offload) (openvswitch lib/dpctl.c).

use serde::{Deserialize, Serialize};

/// Where a datapath flow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Layer {
    /// In the NIC (`offloaded:yes`; tc flower `in_hw`).
    Hardware,
    /// Partly in hardware (`offloaded:partial`: DPDK flow marks).
    Partial,
    /// In tc flower, in software (`dp:tc` without `offloaded:yes`; `not_in_hw`).
    TcSoftware,
    /// In the OVS datapath (`dp:ovs`: openvswitch.ko or the userspace datapath).
    Datapath,
}

impl Layer {
    /// `hardware`, `partial`, `tc`, `ovs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::Partial => "partial",
            Self::TcSoftware => "tc",
            Self::Datapath => "ovs",
        }
    }

    /// Offloaded to the NIC (fully or partly).
    pub fn in_hardware(self) -> bool {
        matches!(self, Self::Hardware | Self::Partial)
    }
}

/// One datapath flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DpFlow {
    /// `ufid:` when shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ufid: Option<String>,
    /// `in_port(NAME)`.
    pub in_port: String,
    /// The VNI the flow was received on (`tunnel(tun_id=0x64,...)`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_vni: Option<u32>,
    /// The VNIs the flow encapsulates into (`set(tunnel(tun_id=...))`, `geneve(vni=...)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encap_vnis: Vec<u32>,
    /// `packets:`
    pub packets: u64,
    /// `bytes:`
    pub bytes: u64,
    /// `dp:` (`ovs`, `tc`, `dpdk`).
    pub dp: String,
    /// The layer that holds it.
    pub layer: Layer,
    /// The match, as printed.
    #[serde(rename = "match")]
    pub matches: String,
    /// The actions, as printed.
    pub actions: String,
}

/// Parses the output of `dpctl/dump-flows -m` (also without `-m`: then `dp:` is missing and the
/// flow is taken as `dp:ovs`). Lines that are not flows (`flow-dump from ...`) are skipped.
pub fn parse_dump(text: &str) -> Vec<DpFlow> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<DpFlow> {
    let line = line.trim();
    let (head, actions) = line.split_once(", actions:")?;
    let actions = actions
        .split_once(", dp-extra-info:")
        .map_or(actions, |(a, _)| a)
        .to_string();
    let (ufid, rest) = match head.strip_prefix("ufid:") {
        Some(r) => {
            let (u, rest) = r.split_once(", ")?;
            (Some(u.to_string()), rest)
        }
        None => (None, head),
    };
    // The match is everything before the first ", packets:"; the stats follow.
    let (matches, stats) = rest.split_once(", packets:")?;
    let stats = format!("packets:{stats}");
    let mut packets = 0;
    let mut bytes = 0;
    let mut dp = "ovs".to_string();
    let mut offloaded = None;
    for kv in stats.split(", ") {
        match kv.split_once(':') {
            Some(("packets", v)) => packets = v.parse().unwrap_or(0),
            Some(("bytes", v)) => bytes = v.parse().unwrap_or(0),
            Some(("dp", v)) => dp = v.to_string(),
            Some(("offloaded", v)) => offloaded = Some(v.to_string()),
            _ => {}
        }
    }
    let layer = match (offloaded.as_deref(), dp.as_str()) {
        (Some("yes"), _) => Layer::Hardware,
        (Some("partial"), _) => Layer::Partial,
        (_, "tc") => Layer::TcSoftware,
        _ => Layer::Datapath,
    };
    let in_port = paren_value(matches, "in_port(").unwrap_or_default();
    let tunnel_vni =
        paren_value(matches, "tunnel(").and_then(|t| kv_in(&t, "tun_id").and_then(parse_num));
    let mut encap_vnis: Vec<u32> = Vec::new();
    for key in ["tun_id=", "vni="] {
        let mut s = actions.as_str();
        while let Some(i) = s.find(key) {
            s = &s[i + key.len()..];
            let end = s.find([',', ')']).unwrap_or(s.len());
            if let Some(v) = parse_num(&s[..end])
                && !encap_vnis.contains(&v)
            {
                encap_vnis.push(v);
            }
        }
    }
    Some(DpFlow {
        ufid,
        in_port,
        tunnel_vni,
        encap_vnis,
        packets,
        bytes,
        dp,
        layer,
        matches: matches.to_string(),
        actions,
    })
}

/// The text inside `prefix...)` with nested parentheses balanced.
fn paren_value(s: &str, prefix: &str) -> Option<String> {
    let start = s.find(prefix)? + prefix.len();
    let mut depth = 1;
    for (i, c) in s[start..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(s[start..start + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

fn kv_in<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.split(',').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

fn parse_num(s: &str) -> Option<u32> {
    let s = s.split('/').next()?.trim();
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from OVS 3.1, userspace datapath, two pods on a netdev bridge.
    const USERSPACE: &str = "flow-dump from the main thread:
ufid:7469ce1b-c06d-4790-b622-f5cdcef12a54, skb_priority(0/0),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),ct_label(0/0),recirc_id(0),dp_hash(0/0),in_port(pod2),packet_type(ns=0,id=0),eth(src=9e:c2:38:30:86:3c,dst=1e:36:d7:27:c8:a1),eth_type(0x0806),arp(sip=10.9.0.2/0.0.0.0,tip=10.9.0.1/0.0.0.0,op=2/0,sha=9e:c2:38:30:86:3c/00:00:00:00:00:00,tha=1e:36:d7:27:c8:a1/00:00:00:00:00:00), packets:0, bytes:0, used:never, dp:ovs, actions:pod1, dp-extra-info:miniflow_bits(5,0)
ufid:2af8b60d-4a26-43b0-a7e0-1054e74deb3f, skb_priority(0/0),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),ct_label(0/0),recirc_id(0),dp_hash(0/0),in_port(pod2),packet_type(ns=0,id=0),eth(src=9e:c2:38:30:86:3c,dst=1e:36:d7:27:c8:a1),eth_type(0x0800),ipv4(src=10.9.0.2/0.0.0.0,dst=10.9.0.1/0.0.0.0,proto=1/0,tos=0/0,ttl=64/0,frag=no),icmp(type=0/0,code=0/0), packets:1, bytes:98, used:0.057s, dp:ovs, actions:pod1, dp-extra-info:miniflow_bits(5,1)
";

    /// Kernel datapath with hw-offload=true (tc-policy none): tc in software, and one flow the
    /// NIC took (format of lib/dpctl.c: `offloaded:yes, dp:tc`).
    const KERNEL_TC: &str = "ufid:1d2c3b4a-0000-0000-0000-000000000001, recirc_id(0),dp_hash(0/0),skb_priority(0/0),in_port(eth2_0),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),ct_label(0/0),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),ipv4(src=0.0.0.0/0.0.0.0,dst=0.0.0.0/0.0.0.0,proto=0/0,tos=0/0,ttl=0/0,frag=no), packets:4, bytes:336, used:0.520s, dp:tc, actions:set(tunnel(tun_id=0x64,dst=172.31.0.2,ttl=64,tp_dst=6081,flags(key))),genev_sys_6081
ufid:1d2c3b4a-0000-0000-0000-000000000002, tunnel(tun_id=0x64,src=172.31.0.2,dst=172.31.0.1,tp_dst=6081,flags(+key)),recirc_id(0),in_port(genev_sys_6081),eth(src=02:00:00:00:00:02,dst=02:00:00:00:00:01),eth_type(0x0800),ipv4(frag=no), packets:4, bytes:336, used:0.520s, offloaded:yes, dp:tc, actions:eth2_0
recirc_id(0),in_port(3),eth_type(0x0806), packets:1, bytes:42, used:1.2s, actions:2
";

    #[test]
    fn userspace_flows_are_in_the_datapath() {
        let f = parse_dump(USERSPACE);
        assert_eq!(f.len(), 2);
        assert!(
            f.iter()
                .all(|f| f.layer == Layer::Datapath && f.in_port == "pod2")
        );
        assert_eq!(f[1].packets, 1);
        assert_eq!(f[1].bytes, 98);
        assert_eq!(f[1].actions, "pod1");
        assert_eq!(
            f[0].ufid.as_deref(),
            Some("7469ce1b-c06d-4790-b622-f5cdcef12a54")
        );
    }

    #[test]
    fn tc_flows_are_told_apart_by_offloaded_yes() {
        let f = parse_dump(KERNEL_TC);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].layer, Layer::TcSoftware);
        assert_eq!(f[0].encap_vnis, vec![100]);
        assert_eq!(f[1].layer, Layer::Hardware);
        assert_eq!(f[1].tunnel_vni, Some(100));
        assert_eq!(f[1].in_port, "genev_sys_6081");
        // without -m: no dp: field, the datapath's own flow
        assert_eq!(f[2].layer, Layer::Datapath);
        assert_eq!(f[2].in_port, "3");
    }

    #[test]
    fn userspace_geneve_encap_gives_the_vni() {
        let l = "ufid:x, recirc_id(0),in_port(sn1),eth(src=a,dst=b),eth_type(0x0800),ipv4(frag=no), packets:3, bytes:294, used:0.1s, dp:ovs, actions:tnl_push(tnl_port(4),header(size=50,type=5,eth(dst=02:00:00:00:00:0b,src=02:00:00:00:00:0a,dl_type=0x0800),ipv4(src=172.31.0.1,dst=172.31.0.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(vni=0xc8)),out_port(2))";
        let f = parse_dump(l);
        assert_eq!(f[0].encap_vnis, vec![200]);
    }
}
