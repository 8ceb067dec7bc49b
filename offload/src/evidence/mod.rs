//! Offload evidence: where each datapath flow of a node and of each pod attachment really runs,
//! and why it is not in hardware, from what the node reports (the datapath flow dump, tc
//! filters, the ovs-vswitchd log, a `skip_sw` probe), never from configuration alone.
//!
//! [`collect`] gathers the raw text on a node; [`report::build`] is a pure function from that
//! text to the [`report::OffloadReport`]; [`metrics`] renders it for Prometheus. The capability
//! seam ([`crate::capability`]) produces the same raw text from a fake NIC, so the hardware path
//! (`in_hw`, `offloaded:yes`) is tested without hardware. No kernel on the project's machines
//! produces `in_hw`: every emulated device refuses `skip_sw` flower rules.

pub mod collect;
pub mod dpctl;
pub mod metrics;
pub mod report;
pub mod tc;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The raw evidence of one node, as text in the formats the tools print.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEvidence {
    /// `ovs-appctl dpctl/dump-flows -m`
    pub dpctl: String,
    /// `tc -s filter show dev DEV ingress`, per device.
    pub tc: BTreeMap<String, String>,
    /// Lines of the ovs-vswitchd log about offload (`failed to offload flow: ...`).
    pub log: String,
    /// The kernel's answer to a `skip_sw` flower probe, per device (`""` = accepted).
    pub probes: BTreeMap<String, String>,
}

/// Parses `failed to offload flow: MESSAGE: DEVICE` lines of the ovs-vswitchd log
/// (lib/dpif-netlink.c logs them at debug level) into MESSAGE per device, the last one winning.
pub fn offload_failures(log: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("failed to offload flow: ") else {
            continue;
        };
        if let Some((msg, dev)) = rest.trim().rsplit_once(": ") {
            out.insert(dev.trim().to_string(), msg.trim().to_string());
        } else {
            out.insert(String::new(), rest.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_failures_are_keyed_by_device() {
        let log = "2026-11-29T10:00:00.000Z|00042|dpif_netlink(handler1)|DBG|failed to offload flow: Operation not supported: a1\n\
                   2026-11-29T10:00:00.100Z|00043|dpif_netlink(handler1)|DBG|failed to offload flow: No space left on device: eth2_0\n";
        let f = offload_failures(log);
        assert_eq!(f["a1"], "Operation not supported");
        assert_eq!(f["eth2_0"], "No space left on device");
    }
}
