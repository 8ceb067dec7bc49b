//! Gathers a node's evidence: the context from OVSDB, the datapath flows from ovs-vswitchd's
//! control socket, tc filters and an optional `skip_sw` probe through `tc`, offload failures
//! from the ovs-vswitchd log.

use std::path::PathBuf;

use tokio::process::Command;

use super::{
    RawEvidence,
    report::{AttachmentInfo, NodeContext, OffloadReport, TcPolicy, build},
};
use crate::{
    appctl::{Appctl, AppctlError},
    attach::{EXT_IFNAME, EXT_KIND, EXT_NETNS, EXT_POD, EXT_REASON, EXT_VF},
    decision::Datapath,
    overlay::{EXT_NETWORK, EXT_VNI},
    vswitch::{DbView, Ovs},
};

/// Collects evidence on one node.
#[derive(Clone, Debug)]
pub struct Collector {
    ovs: Ovs,
    appctl: Appctl,
    node: String,
    bridge: String,
    log: Option<PathBuf>,
    probe: bool,
}

/// The ethertype the `skip_sw` probe matches (IEEE local experimental: no real traffic).
const PROBE_ETHERTYPE: &str = "0x88b5";
/// The probe's priority (far from OVS's own).
const PROBE_PREF: &str = "49151";

impl Collector {
    /// A collector for `bridge` on `node`.
    pub fn new(ovs: Ovs, appctl: Appctl, node: &str, bridge: &str) -> Self {
        Self {
            ovs,
            appctl,
            node: node.to_string(),
            bridge: bridge.to_string(),
            log: None,
            probe: false,
        }
    }

    /// Reads `failed to offload flow` lines from this ovs-vswitchd log file.
    pub fn with_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Asks the kernel directly: on each attachment port, add and remove a `skip_sw` flower
    /// rule that matches nothing real, and record the kernel's answer (its extack message).
    pub fn with_probe(mut self, on: bool) -> Self {
        self.probe = on;
        self
    }

    /// The context, from the OVSDB monitor.
    pub async fn context(&self) -> NodeContext {
        let view = self.ovs.view();
        let datapath = match view.bridge(&self.bridge).map(|b| b.datapath_type.as_str()) {
            Some("netdev") => Datapath::Netdev,
            _ => Datapath::System,
        };
        let attachments = attachments(&view, &self.bridge);
        let mut switchdev_ports = std::collections::BTreeSet::new();
        for a in &attachments {
            let p = format!("/sys/class/net/{}/phys_switch_id", a.port);
            if tokio::fs::read_to_string(&p)
                .await
                .is_ok_and(|s| !s.trim().is_empty())
            {
                switchdev_ports.insert(a.port.clone());
            }
        }
        NodeContext {
            node: self.node.clone(),
            bridge: self.bridge.clone(),
            hw_offload: view
                .other_config
                .get("hw-offload")
                .is_some_and(|v| v == "true"),
            tc_policy: TcPolicy::parse(view.other_config.get("tc-policy").map(String::as_str)),
            datapath,
            attachments,
            switchdev_ports,
        }
    }

    /// The raw evidence for `ctx`.
    pub async fn raw(&self, ctx: &NodeContext) -> Result<RawEvidence, AppctlError> {
        let dp = match ctx.datapath {
            Datapath::Netdev => "netdev@ovs-netdev",
            Datapath::System => "system@ovs-system",
        };
        let mut raw = RawEvidence {
            dpctl: self.appctl.dump_flows(Some(dp), None).await?,
            ..Default::default()
        };
        if ctx.datapath == Datapath::System {
            let mut devs: Vec<String> = ctx.attachments.iter().map(|a| a.port.clone()).collect();
            devs.push("genev_sys_6081".into());
            for d in devs {
                if let Ok(t) = tc(&["-s", "filter", "show", "dev", &d, "ingress"]).await {
                    raw.tc.insert(d.clone(), t);
                }
                if self.probe {
                    raw.probes.insert(d.clone(), probe(&d).await);
                }
            }
        }
        if let Some(p) = &self.log
            && let Ok(text) = tokio::fs::read_to_string(p).await
        {
            raw.log = text
                .lines()
                .filter(|l| l.contains("failed to offload flow"))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        Ok(raw)
    }

    /// Context, evidence and report in one go.
    pub async fn report(&self) -> Result<OffloadReport, AppctlError> {
        let ctx = self.context().await;
        let raw = self.raw(&ctx).await?;
        Ok(build(&ctx, &raw))
    }
}

/// The pod attachments on `bridge`, from their interfaces' `external_ids`.
pub fn attachments(view: &DbView, bridge: &str) -> Vec<AttachmentInfo> {
    view.bridge_interfaces(bridge)
        .into_iter()
        .filter_map(|i| {
            let e = &i.external_ids;
            let vni = e.get(EXT_VNI)?.parse().ok()?;
            Some(AttachmentInfo {
                port: i.name.clone(),
                ofport: i.ofport.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                kind: e.get(EXT_KIND).cloned().unwrap_or_else(|| "veth".into()),
                pod: e.get(EXT_POD).cloned(),
                netns: e.get(EXT_NETNS).cloned(),
                ifname: e.get(EXT_IFNAME).cloned().unwrap_or_default(),
                network: e.get(EXT_NETWORK).cloned().unwrap_or_default(),
                vni,
                vf: e.get(EXT_VF).cloned(),
                reason: e.get(EXT_REASON).cloned().unwrap_or_default(),
                mac: e.get("attached-mac").cloned(),
            })
        })
        .collect()
}

async fn tc(args: &[&str]) -> Result<String, String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(kernel_message(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// iproute2's error text without its generic trailer.
fn kernel_message(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("We have an error talking to the kernel"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Adds and removes a `skip_sw` flower rule on `dev`: `""` when the kernel took it, else its
/// message (`Error: TC offload is disabled on net device.`, `Operation not supported`, ...).
async fn probe(dev: &str) -> String {
    let add = [
        "filter",
        "add",
        "dev",
        dev,
        "ingress",
        "pref",
        PROBE_PREF,
        "protocol",
        PROBE_ETHERTYPE,
        "flower",
        "skip_sw",
        "action",
        "drop",
    ];
    match tc(&add).await {
        Ok(_) => {
            let _ = tc(&[
                "filter",
                "del",
                "dev",
                dev,
                "ingress",
                "pref",
                PROBE_PREF,
                "protocol",
                PROBE_ETHERTYPE,
                "flower",
            ])
            .await;
            String::new()
        }
        Err(m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generic_iproute2_trailer_is_dropped() {
        assert_eq!(
            kernel_message(
                "Error: netdevsim: only offload of BPF classifiers supported.\nWe have an error talking to the kernel\n"
            ),
            "Error: netdevsim: only offload of BPF classifiers supported."
        );
    }
}
