//! Parser of `tc -s filter show dev DEV ingress`: each flower rule with its flags (`skip_hw`,
//! `skip_sw`) and where the kernel says it is (`in_hw in_hw_count N` or `not_in_hw`).

use serde::{Deserialize, Serialize};

/// One tc filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcFilter {
    /// Device.
    pub dev: String,
    /// Classifier kind (`flower`, `u32`, ...).
    pub kind: String,
    /// `pref`
    pub pref: u32,
    /// `handle`
    pub handle: String,
    /// `skip_hw` (software only).
    pub skip_hw: bool,
    /// `skip_sw` (hardware only).
    pub skip_sw: bool,
    /// The kernel reports the rule in hardware.
    pub in_hw: bool,
    /// `in_hw_count`
    pub in_hw_count: u32,
}

/// Parses the filters of one device. Only lines starting with `filter` that carry a `handle`
/// open a rule (the bare `filter ... chain 0` line is the chain header).
pub fn parse_filters(dev: &str, text: &str) -> Vec<TcFilter> {
    let mut out: Vec<TcFilter> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("filter ") {
            let words: Vec<&str> = t.split_whitespace().collect();
            let after = |k: &str| {
                words
                    .iter()
                    .position(|w| *w == k)
                    .and_then(|i| words.get(i + 1))
                    .map(|s| s.to_string())
            };
            let Some(handle) = after("handle") else {
                continue;
            };
            let kind = ["flower", "u32", "bpf", "matchall"]
                .iter()
                .find(|k| words.contains(k))
                .map_or_else(String::new, |k| k.to_string());
            out.push(TcFilter {
                dev: dev.to_string(),
                kind,
                pref: after("pref").and_then(|p| p.parse().ok()).unwrap_or(0),
                handle,
                ..Default::default()
            });
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.first().copied() {
            Some("skip_hw") => f.skip_hw = true,
            Some("skip_sw") => f.skip_sw = true,
            Some("in_hw") => {
                f.in_hw = true;
                f.in_hw_count = words
                    .iter()
                    .position(|w| *w == "in_hw_count")
                    .and_then(|i| words.get(i + 1))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
            }
            Some("not_in_hw") => f.in_hw = false,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As iproute2 6.x prints OVS's flower rules on a representor (one in hardware, one not).
    const SHOW: &str = "filter protocol ip pref 2 flower chain 0
filter protocol ip pref 2 flower chain 0 handle 0x1
  dst_mac 02:00:00:00:00:02
  src_mac 02:00:00:00:00:01
  eth_type ipv4
  ip_flags nofrag
  in_hw in_hw_count 1
\taction order 1: mirred (Egress Redirect to device eth2_1) stolen
 \tindex 1 ref 1 bind 1 installed 3 sec used 0 sec
 \tAction statistics:
\tSent 336 bytes 4 pkt (dropped 0, overlimits 0 requeues 0)
filter protocol arp pref 3 flower chain 0
filter protocol arp pref 3 flower chain 0 handle 0x1
  eth_type arp
  skip_hw
  not_in_hw
\taction order 1: mirred (Egress Redirect to device eth2_1) stolen
";

    #[test]
    fn in_hw_and_not_in_hw_rules_are_told_apart() {
        let f = parse_filters("eth2_0", SHOW);
        assert_eq!(f.len(), 2);
        assert!(f[0].in_hw && f[0].in_hw_count == 1 && f[0].kind == "flower");
        assert_eq!(f[0].pref, 2);
        assert!(!f[1].in_hw && f[1].skip_hw);
        assert_eq!(f[1].dev, "eth2_0");
    }

    #[test]
    fn nothing_installed_is_an_empty_list() {
        assert!(parse_filters("a1", "").is_empty());
    }
}
