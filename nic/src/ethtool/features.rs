//! What `ethtool -k` shows ([`Features`]), what an `ethtool -K` did ([`FeatureChange`]), and
//! the legacy `ethtool -K` names.

use std::collections::BTreeMap;

use serde::Serialize;

use super::message::{Bitset, FeaturesAttr, FeaturesMessage};

/// `ethtool -K` legacy names: (short, long, kernel name pattern with at most one `*`), from
/// `off_flag_def` in ethtool's common.c.
const LEGACY_NAMES: &[(&str, &str, &str)] = &[
    ("rx", "rx-checksumming", "rx-checksum"),
    ("tx", "tx-checksumming", "tx-checksum-*"),
    ("sg", "scatter-gather", "tx-scatter-gather*"),
    ("tso", "tcp-segmentation-offload", "tx-tcp*-segmentation"),
    ("ufo", "udp-fragmentation-offload", "tx-udp-fragmentation"),
    (
        "gso",
        "generic-segmentation-offload",
        "tx-generic-segmentation",
    ),
    ("gro", "generic-receive-offload", "rx-gro"),
    ("lro", "large-receive-offload", "rx-lro"),
    ("rxvlan", "rx-vlan-offload", "rx-vlan-hw-parse"),
    ("txvlan", "tx-vlan-offload", "tx-vlan-hw-insert"),
    ("ntuple", "ntuple-filters", "rx-ntuple-filter"),
    ("rxhash", "receive-hashing", "rx-hashing"),
];

/// One feature as `ethtool -k` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeatureState {
    /// On now.
    pub active: bool,
    /// Cannot be changed (`[fixed]`): not in the device's changeable set, or never changeable.
    pub fixed: bool,
    /// What was last asked for (differs from `active` when the kernel could not honour it).
    #[serde(skip)]
    pub requested: bool,
}

/// The features of one interface, by kernel name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Features {
    /// The interface.
    pub ifname: String,
    /// Every named feature of the device.
    pub features: BTreeMap<String, FeatureState>,
}

impl Features {
    /// Reads a `ETHTOOL_MSG_FEATURES_GET` reply in the verbose form.
    pub fn from_reply(ifname: &str, reply: &FeaturesMessage) -> Self {
        let names = |pick: fn(&FeaturesAttr) -> Option<&Bitset>| -> Vec<String> {
            reply
                .bitset(pick)
                .map(|b| b.set_names().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let active = names(|a| {
            if let FeaturesAttr::Active(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let wanted = names(|a| {
            if let FeaturesAttr::Wanted(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let nochange = names(|a| {
            if let FeaturesAttr::NoChange(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let mut features = BTreeMap::new();
        if let Some(hw) = reply.bitset(|a| {
            if let FeaturesAttr::Hw(b) = a {
                Some(b)
            } else {
                None
            }
        }) {
            // The kernel's strings table has unnamed (reserved) bits; they are not features.
            for (name, changeable) in hw.named_values().filter(|(n, _)| !n.is_empty()) {
                let has = |list: &[String]| list.iter().any(|n| n == name);
                features.insert(
                    name.to_string(),
                    FeatureState {
                        active: has(&active),
                        fixed: !changeable || has(&nochange),
                        requested: has(&wanted),
                    },
                );
            }
        }
        Self {
            ifname: ifname.to_string(),
            features,
        }
    }
}

/// The kernel's answer to a features SET (`ethtool -K`'s "Actual changes").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureChange {
    /// The bits that were requested, after legacy names were expanded.
    pub requested: Vec<(String, bool)>,
    /// Requested bits that did not reach the requested value (with the value asked for).
    pub not_applied: Vec<(String, bool)>,
    /// Bits whose active state changed, with their new value (may include bits not requested,
    /// which the kernel switched as dependencies).
    pub changed: Vec<(String, bool)>,
}

impl FeatureChange {
    /// Reads a `ETHTOOL_MSG_FEATURES_SET_REPLY`: its WANTED bitset lists the requested bits
    /// that differ from the result, its ACTIVE bitset the bits that changed.
    pub fn from_reply(requested: Vec<(String, bool)>, reply: Option<&FeaturesMessage>) -> Self {
        let pairs = |b: Option<&Bitset>| -> Vec<(String, bool)> {
            b.map(|b| b.named_values().map(|(n, v)| (n.to_string(), v)).collect())
                .unwrap_or_default()
        };
        let (not_applied, changed) = match reply {
            Some(r) => (
                pairs(r.bitset(|a| {
                    if let FeaturesAttr::Wanted(b) = a {
                        Some(b)
                    } else {
                        None
                    }
                })),
                pairs(r.bitset(|a| {
                    if let FeaturesAttr::Active(b) = a {
                        Some(b)
                    } else {
                        None
                    }
                })),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Self {
            requested,
            not_applied,
            changed,
        }
    }

    /// No requested bit reached its requested value.
    pub fn nothing_changed(&self) -> bool {
        !self.requested.is_empty()
            && self
                .requested
                .iter()
                .all(|(n, _)| self.not_applied.iter().any(|(m, _)| m == n))
    }
}

/// Matches a kernel feature name against an `off_flag_def` pattern (at most one `*`).
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

/// Expands one requested name to kernel feature names of the device: a kernel name stays
/// itself; a legacy `ethtool -K` name (`tx-checksumming`, `tx`, `tso`, ...) becomes every
/// known feature its pattern matches. `None` when nothing matches.
pub fn expand_feature_name<'a>(
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<String>> {
    let known: Vec<&str> = known.into_iter().collect();
    if known.contains(&name) {
        return Some(vec![name.to_string()]);
    }
    let (_, _, pattern) = LEGACY_NAMES
        .iter()
        .find(|(short, long, _)| *short == name || *long == name)?;
    let matched: Vec<String> = known
        .iter()
        .filter(|k| pattern_matches(pattern, k))
        .map(|k| k.to_string())
        .collect();
    (!matched.is_empty()).then_some(matched)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NLA_F_NESTED, ParseableParametrized};
    use netlink_packet_generic::GenlHeader;

    use super::*;
    use crate::ethtool::{
        BitsetBit, ETHTOOL_MSG_FEATURES_GET, ETHTOOL_MSG_FEATURES_SET, EthtoolError, HeaderAttr,
    };

    fn emit(msg: &FeaturesMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    fn parse(buf: &[u8], cmd: u8) -> FeaturesMessage {
        FeaturesMessage::parse_with_param(buf, GenlHeader { cmd, version: 1 }).unwrap()
    }

    /// `ethtool -K veth0 hw-tc-offload on`, byte for byte:
    /// HEADER{DEV_NAME "veth0"} WANTED{BITS{BIT{NAME "hw-tc-offload", VALUE}}}.
    #[test]
    fn set_request_bytes() {
        let msg = FeaturesMessage::set("veth0", &[("hw-tc-offload".into(), true)]);
        let mut want: Vec<u8> = Vec::new();
        let nla = |kind: u16, body: &[u8]| -> Vec<u8> {
            let mut v = Vec::new();
            v.extend_from_slice(&((4 + body.len()) as u16).to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.extend_from_slice(body);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v
        };
        let name = nla(2, b"veth0\0");
        want.extend(nla(1 | NLA_F_NESTED, &name));
        let mut bit = nla(2, b"hw-tc-offload\0");
        bit.extend(nla(3, &[]));
        let bits = nla(3 | NLA_F_NESTED, &nla(1 | NLA_F_NESTED, &bit));
        want.extend(nla(3 | NLA_F_NESTED, &bits));
        assert_eq!(emit(&msg), want);
        // and it reads back
        assert_eq!(parse(&want, ETHTOOL_MSG_FEATURES_SET), msg);
    }

    fn bit(index: u32, name: &str, value: bool) -> BitsetBit {
        BitsetBit {
            index: Some(index),
            name: Some(name.into()),
            value,
        }
    }

    /// A GET reply shaped like the kernel's verbose one: HW with mask (all named bits, VALUE on
    /// the changeable ones), the others in the nomask form.
    fn get_reply() -> FeaturesMessage {
        let nomask = |bits: Vec<BitsetBit>| Bitset {
            nomask: true,
            size: Some(64),
            bits,
            ..Default::default()
        };
        FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![
                FeaturesAttr::Header(vec![
                    HeaderAttr::DevIndex(7),
                    HeaderAttr::DevName("veth0".into()),
                ]),
                FeaturesAttr::Hw(Bitset {
                    size: Some(64),
                    bits: vec![
                        bit(0, "tx-scatter-gather", true),
                        bit(1, "tx-checksum-ipv4", false),
                        bit(3, "tx-checksum-ip-generic", true),
                        bit(4, "tx-checksum-ipv6", false),
                        bit(14, "rx-gro", true),
                        bit(55, "hw-tc-offload", false),
                        bit(13, "netns-local", true),
                    ],
                    ..Default::default()
                }),
                FeaturesAttr::Wanted(nomask(vec![
                    bit(0, "tx-scatter-gather", false),
                    bit(3, "tx-checksum-ip-generic", false),
                ])),
                FeaturesAttr::Active(nomask(vec![
                    bit(0, "tx-scatter-gather", false),
                    bit(3, "tx-checksum-ip-generic", false),
                    bit(14, "rx-gro", false),
                ])),
                FeaturesAttr::NoChange(nomask(vec![bit(13, "netns-local", false)])),
            ],
        }
    }

    #[test]
    fn get_reply_round_trips_and_reads_like_ethtool_k() {
        let reply = get_reply();
        let parsed = parse(&emit(&reply), ETHTOOL_MSG_FEATURES_GET);
        assert_eq!(parsed, reply);
        let f = Features::from_reply("veth0", &parsed);
        let st = |n: &str| f.features[n];
        assert_eq!(
            st("tx-scatter-gather"),
            FeatureState {
                active: true,
                fixed: false,
                requested: true
            }
        );
        assert_eq!(
            st("hw-tc-offload"),
            FeatureState {
                active: false,
                fixed: true,
                requested: false
            }
        );
        assert!(st("tx-checksum-ipv4").fixed && !st("tx-checksum-ipv4").active);
        assert!(st("rx-gro").active && !st("rx-gro").requested);
        assert!(st("netns-local").fixed, "NOCHANGE bits are fixed");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json["features"]["hw-tc-offload"],
            serde_json::json!({"active": false, "fixed": true})
        );
        assert_eq!(json["ifname"], "veth0");
    }

    #[test]
    fn compact_bitsets_parse_without_panicking() {
        let set = Bitset {
            size: Some(64),
            value: Some(vec![1, 0, 0, 0, 0, 0, 0, 0]),
            mask: Some(vec![0xff; 8]),
            ..Default::default()
        };
        let msg = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![FeaturesAttr::Active(set)],
        };
        assert_eq!(parse(&emit(&msg), ETHTOOL_MSG_FEATURES_GET), msg);
        for cut in 0..emit(&msg).len() {
            let _ = FeaturesMessage::parse_with_param(
                &emit(&msg)[..cut],
                GenlHeader {
                    cmd: 11,
                    version: 1,
                },
            );
        }
    }

    #[test]
    fn legacy_names_expand_like_ethtool_dash_capital_k() {
        let known = [
            "tx-checksum-ipv4",
            "tx-checksum-ip-generic",
            "tx-checksum-ipv6",
            "tx-checksum-fcoe-crc",
            "tx-checksum-sctp",
            "tx-tcp-segmentation",
            "tx-tcp-ecn-segmentation",
            "tx-tcp6-segmentation",
            "rx-gro",
            "hw-tc-offload",
            "l2-fwd-offload",
            "tx-scatter-gather",
            "tx-scatter-gather-fraglist",
        ];
        let tx = expand_feature_name("tx-checksumming", known).unwrap();
        assert_eq!(tx.len(), 5);
        assert!(tx.iter().all(|n| n.starts_with("tx-checksum-")));
        assert_eq!(expand_feature_name("tx", known).unwrap(), tx);
        assert_eq!(expand_feature_name("tso", known).unwrap().len(), 3);
        assert_eq!(expand_feature_name("sg", known).unwrap().len(), 2);
        assert_eq!(expand_feature_name("gro", known).unwrap(), vec!["rx-gro"]);
        assert_eq!(
            expand_feature_name("hw-tc-offload", known).unwrap(),
            vec!["hw-tc-offload"]
        );
        assert_eq!(
            expand_feature_name("l2-fwd-offload", known).unwrap(),
            vec!["l2-fwd-offload"]
        );
        assert!(expand_feature_name("lro", known).is_none());
        assert!(expand_feature_name("bogus", known).is_none());
    }

    #[test]
    fn set_reply_says_what_did_not_take() {
        let req = vec![("hw-tc-offload".to_string(), true)];
        let reply = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                FeaturesAttr::Wanted(Bitset {
                    bits: vec![bit(55, "hw-tc-offload", true)],
                    ..Default::default()
                }),
                FeaturesAttr::Active(Bitset::default()),
            ],
        };
        let change = FeatureChange::from_reply(req.clone(), Some(&reply));
        assert!(change.nothing_changed());
        assert_eq!(change.not_applied, req);

        let req = vec![
            ("tx-checksum-ipv4".to_string(), true),
            ("tx-checksum-ip-generic".to_string(), true),
        ];
        let reply = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                FeaturesAttr::Wanted(Bitset {
                    bits: vec![bit(1, "tx-checksum-ipv4", true)],
                    ..Default::default()
                }),
                FeaturesAttr::Active(Bitset {
                    bits: vec![bit(3, "tx-checksum-ip-generic", true)],
                    ..Default::default()
                }),
            ],
        };
        let change = FeatureChange::from_reply(req, Some(&reply));
        assert!(!change.nothing_changed());
        assert_eq!(
            change.changed,
            vec![("tx-checksum-ip-generic".to_string(), true)]
        );
        let err = EthtoolError::NotChanged {
            ifname: "eth0".into(),
            features: vec![("hw-tc-offload".into(), true)],
        };
        assert_eq!(
            err.to_string(),
            "cannot set hw-tc-offload=on on eth0: fixed on this device or refused by the driver"
        );
    }
}
