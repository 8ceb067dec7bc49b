//! A VF's traffic counters as its PF reports them: `IFLA_VF_STATS`, nested in each
//! `IFLA_VF_INFO` of an `RTM_NEWLINK` read with `RTEXT_FILTER_VF` (and without
//! `RTEXT_FILTER_SKIP_STATS`).
//!
//! The kernel fills them from the driver's `ndo_get_vf_stats`; for a driver without one it still
//! sends the attribute, with every counter 0. The counters are the PF's view of the VF's traffic
//! (what the embedded switch saw), so they keep counting while the VF's netdev is in a pod.

use netlink_packet_route::link::{
    LinkAttribute, LinkMessage, LinkVfInfo, VfInfo as RawVfInfo, VfStats as RawVfStats,
};
use serde::Serialize;

/// One VF's counters (`struct ifla_vf_stats`). Broadcast and multicast count received packets
/// only, as the kernel defines them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VfStats {
    /// VF index.
    pub vf: u32,
    /// Packets received by the VF.
    pub rx_packets: u64,
    /// Packets sent by the VF.
    pub tx_packets: u64,
    /// Bytes received by the VF.
    pub rx_bytes: u64,
    /// Bytes sent by the VF.
    pub tx_bytes: u64,
    /// Broadcast packets received.
    pub broadcast: u64,
    /// Multicast packets received.
    pub multicast: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// The counters of every VF in an `RTM_NEWLINK` of a PF; VFs whose row carries no
/// `IFLA_VF_STATS` (a reply read with `RTEXT_FILTER_SKIP_STATS`) are left out.
pub(crate) fn from_message(msg: &LinkMessage) -> Vec<VfStats> {
    let mut out = Vec::new();
    for attr in &msg.attributes {
        let LinkAttribute::VfInfoList(list) = attr else {
            continue;
        };
        for LinkVfInfo(fields) in list {
            if let Some(row) = row_stats(fields) {
                out.push(row);
            }
        }
    }
    out.sort_by_key(|s| s.vf);
    out
}

fn row_stats(fields: &[RawVfInfo]) -> Option<VfStats> {
    // IFLA_VF_STATS has no VF index of its own: the row's other attributes carry it (the kernel
    // always sends IFLA_VF_MAC first).
    let vf = fields.iter().find_map(|f| match f {
        RawVfInfo::Mac(m) => Some(m.vf_id),
        RawVfInfo::Vlan(v) => Some(v.vf_id),
        RawVfInfo::Rate(r) => Some(r.vf_id),
        RawVfInfo::SpoofCheck(s) => Some(s.vf_id),
        RawVfInfo::Trust(t) => Some(t.vf_id),
        RawVfInfo::LinkState(l) => Some(l.vf_id),
        _ => None,
    })?;
    let counters = fields.iter().find_map(|f| match f {
        RawVfInfo::Stats(s) => Some(s),
        _ => None,
    })?;
    let mut row = VfStats {
        vf,
        ..VfStats::default()
    };
    for c in counters {
        match *c {
            RawVfStats::RxPackets(n) => row.rx_packets = n,
            RawVfStats::TxPackets(n) => row.tx_packets = n,
            RawVfStats::RxBytes(n) => row.rx_bytes = n,
            RawVfStats::TxBytes(n) => row.tx_bytes = n,
            RawVfStats::Broadcast(n) => row.broadcast = n,
            RawVfStats::Multicast(n) => row.multicast = n,
            RawVfStats::RxDropped(n) => row.rx_dropped = n,
            RawVfStats::TxDropped(n) => row.tx_dropped = n,
            _ => {}
        }
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::Parseable;

    use super::*;

    // Attribute numbers from include/uapi/linux/if_link.h.
    const IFLA_IFNAME: u16 = 3;
    const IFLA_VFINFO_LIST: u16 = 22;
    const IFLA_VF_INFO: u16 = 1;
    const IFLA_VF_MAC: u16 = 1;
    const IFLA_VF_SPOOFCHK: u16 = 4;
    const IFLA_VF_STATS: u16 = 8;
    const IFLA_VF_TRUST: u16 = 9;
    // enum { IFLA_VF_STATS_RX_PACKETS, _TX_PACKETS, _RX_BYTES, _TX_BYTES, _BROADCAST,
    //        _MULTICAST, _PAD, _RX_DROPPED, _TX_DROPPED }
    const STATS: [(u16, u64); 8] = [
        (0, 1_000_001),
        (1, 2_000_002),
        (2, 1_500_000_003),
        (3, 2_500_000_004),
        (4, 5),
        (5, 6),
        (7, 7),
        (8, 8),
    ];

    /// One netlink attribute: `struct nlattr { u16 len; u16 type }`, the payload, padding to 4.
    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + payload.len()).unwrap();
        let mut out = [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    fn u32s(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    /// `IFLA_VF_INFO` as `rtnl_fill_vfinfo` lays it out (nests opened without `NLA_F_NESTED`;
    /// the 64-bit counters need no pad attribute on x86-64), cut to the attributes read here.
    fn vf_info(vf: u32, mac: [u8; 6], stats: Option<&[(u16, u64)]>) -> Vec<u8> {
        let mut mac_payload = u32s(&[vf]);
        mac_payload.extend_from_slice(&mac);
        mac_payload.resize(4 + 32, 0); // struct ifla_vf_mac { __u32 vf; __u8 mac[32]; }
        let mut body = nla(IFLA_VF_MAC, &mac_payload);
        body.extend(nla(IFLA_VF_SPOOFCHK, &u32s(&[vf, 1])));
        body.extend(nla(IFLA_VF_TRUST, &u32s(&[vf, 0])));
        if let Some(stats) = stats {
            let counters: Vec<u8> = stats
                .iter()
                .flat_map(|(kind, value)| nla(*kind, &value.to_ne_bytes()))
                .collect();
            body.extend(nla(IFLA_VF_STATS, &counters));
        }
        nla(IFLA_VF_INFO, &body)
    }

    /// An `RTM_NEWLINK` payload: `struct ifinfomsg` (16 bytes), then the attributes.
    fn newlink(vfs: &[Vec<u8>]) -> Vec<u8> {
        let mut msg = vec![0u8, 0]; // ifi_family AF_UNSPEC, pad
        msg.extend(1u16.to_ne_bytes()); // ifi_type ARPHRD_ETHER
        msg.extend(7i32.to_ne_bytes()); // ifi_index
        msg.extend(u32s(&[0x1003, 0])); // ifi_flags (UP|BROADCAST|MULTICAST), ifi_change
        msg.extend(nla(IFLA_IFNAME, b"enp1s0\0"));
        msg.extend(nla(IFLA_VFINFO_LIST, &vfs.concat()));
        msg
    }

    #[test]
    fn counters_decode_from_the_kernel_layout() {
        let bytes = newlink(&[
            vf_info(1, [2, 0, 0, 0, 0, 2], Some(&[(0, 10), (1, 20)])),
            vf_info(0, [2, 0, 0, 0, 0, 1], Some(&STATS)),
        ]);
        let msg = LinkMessage::parse(bytes.as_slice()).expect("parse");
        let rows = from_message(&msg);
        assert_eq!(
            rows,
            [
                VfStats {
                    vf: 0,
                    rx_packets: 1_000_001,
                    tx_packets: 2_000_002,
                    rx_bytes: 1_500_000_003,
                    tx_bytes: 2_500_000_004,
                    broadcast: 5,
                    multicast: 6,
                    rx_dropped: 7,
                    tx_dropped: 8,
                },
                VfStats {
                    vf: 1,
                    rx_packets: 10,
                    tx_packets: 20,
                    ..VfStats::default()
                },
            ]
        );
    }

    #[test]
    fn rows_without_counters_are_left_out() {
        // a reply read with RTEXT_FILTER_SKIP_STATS, or an old kernel
        let bytes = newlink(&[
            vf_info(0, [2, 0, 0, 0, 0, 1], None),
            vf_info(1, [2, 0, 0, 0, 0, 2], Some(&[(2, 99)])),
        ]);
        let msg = LinkMessage::parse(bytes.as_slice()).expect("parse");
        let rows = from_message(&msg);
        assert_eq!(
            rows,
            [VfStats {
                vf: 1,
                rx_bytes: 99,
                ..VfStats::default()
            }]
        );
        // a link without VFs
        let bytes = newlink(&[]);
        let msg = LinkMessage::parse(bytes.as_slice()).expect("parse");
        assert!(from_message(&msg).is_empty());
    }
}
