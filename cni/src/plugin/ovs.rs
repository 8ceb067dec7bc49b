//! `mode: ovs`: the pod joins an Open vSwitch bridge, through its VF (the VF moves into the pod,
//! its representor joins the bridge) when the VF is a switchdev one, else through a veth pair.
//! The choice is [`offload::decision::decide`] over probed capabilities; it is logged and
//! returned in the result under [`super::RESULT_KEY_OVS`].
//!
//! ```text
//!   ADD  begin ─► [vf-claimed ─► vf-saved ─► vf-configure (MAC) ─► vf-move]   representor only
//!              ─► ovs-port (veth made + port on the bridge, or representor on the bridge)
//!              ─► ipam ─► addresses ─► done
//!   DEL  port off the bridge (and the veth deleted) ─► the VF back as sriov mode ─► IPAM DEL
//! ```

use std::path::Path;

use offload::{
    attach::host_veth_name,
    decision::{Attachment, decide},
    probe::VfRef,
};
use serde_json::{Value, json};

use super::{ModeResult, Plugin, RESULT_KEY_OVS, journaled_ipam, name_taken, vf_settings};
use crate::{
    config::NetConf,
    env::CniEnv,
    error::{CniError, code},
    host::Host,
    ipam::Ipam,
    result::Interface,
    store::{Journal, Step},
    switch::{DEFAULT_BRIDGE, Switch, SwitchAttach},
};

/// The trunk VLANs of a configuration, expanded (`[{minId: 10, maxId: 12}]` → 10, 11, 12).
pub fn trunk_vlans(conf: &NetConf) -> Vec<u16> {
    let mut v: Vec<u16> = conf
        .conf
        .trunk
        .iter()
        .flat_map(|r| r.min_id..=r.max_id)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The pod as the runtime names it in `CNI_ARGS` (`K8S_POD_NAMESPACE/K8S_POD_NAME`).
fn pod_name(env: &CniEnv) -> Option<String> {
    Some(format!(
        "{}/{}",
        env.arg("K8S_POD_NAMESPACE")?,
        env.arg("K8S_POD_NAME")?
    ))
}

impl<H: Host, S: Switch> Plugin<H, S> {
    pub(super) fn ovs_add(
        &self,
        conf: &NetConf,
        env: &CniEnv,
        netns: &Path,
        ipam: &Ipam,
        journal: &mut Journal,
    ) -> Result<ModeResult, CniError> {
        let c = &conf.conf;
        let bridge = c.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into());
        let vni = c.geneve.as_ref().map(|g| g.vni);
        let dev = conf
            .device_id
            .map(|bdf| self.host.vf_device(&bdf))
            .transpose()?;
        let vf = dev.as_ref().map(|d| VfRef {
            pci_address: d.bdf.to_string(),
            pf: d.pf.clone(),
            index: d.index,
        });
        let caps = self.switch.capabilities(&bridge, vf.as_ref(), false)?;
        let decision = decide(&caps);
        let kind = match &decision.attachment {
            Attachment::Veth => "veth",
            Attachment::Representor { .. } => "representor",
        };
        tracing::info!(
            container = %env.container_id, ifname = %env.ifname, bridge = %bridge,
            attachment = kind, offload_possible = decision.offload_possible,
            reason = %decision.reason, "ovs attachment decided"
        );
        let mut iface = Interface {
            name: env.ifname.clone(),
            sandbox: Some(netns.display().to_string()),
            ..Interface::default()
        };
        // Held until the ADD is over, like sriov mode.
        let mut _vf_lock = None;
        let mut vf_in_pod = true;
        let port = match (&decision.attachment, dev) {
            (Attachment::Representor { representor, .. }, Some(dev)) => {
                let (dev, lock) = self.take_vf(&dev.bdf, env, journal)?;
                _vf_lock = Some(lock);
                journal.record(&Step::VfConfigure)?;
                for s in vf_settings(conf) {
                    self.host.set_vf(&dev.pf, dev.index, s)?;
                }
                iface.pci_id = Some(dev.bdf.to_string());
                if dev.is_userspace() {
                    // A DPDK pod: the VF stays bound to vfio-pci; only its representor joins.
                    vf_in_pod = false;
                } else {
                    let netdev = dev.netdev.clone().ok_or_else(|| {
                        CniError::new(
                            code::HOST,
                            format!("VF {} has no netdev in the host", dev.bdf),
                        )
                    })?;
                    journal.record(&Step::VfMove)?;
                    self.host
                        .move_to_pod(&netdev, netns, &env.ifname)
                        .map_err(|e| name_taken(e, journal, &env.ifname, netns))?;
                }
                representor.clone()
            }
            (Attachment::Veth, _) => host_veth_name(&env.container_id, &env.ifname),
            // decide() picks a representor only for a probed VF, which needs the device.
            (Attachment::Representor { .. }, None) => {
                return Err(CniError::new(
                    code::INTERNAL,
                    "mode ovs: a representor attachment without a VF",
                ));
            }
        };
        let veth = decision.attachment == Attachment::Veth;
        journal.record(&Step::OvsPort {
            bridge: bridge.clone(),
            port: port.clone(),
            veth,
        })?;
        let req = SwitchAttach {
            bridge: bridge.clone(),
            attachment: decision.attachment.clone(),
            reason: decision.reason.clone(),
            netns: netns.to_path_buf(),
            ifname: env.ifname.clone(),
            container_id: env.container_id.clone(),
            network: c.name.clone(),
            vni,
            mtu: c.mtu,
            vlan: c.vlan.filter(|v| *v != 0),
            trunks: trunk_vlans(conf),
            pod: pod_name(env),
        };
        let att = self.switch.attach(&req).map_err(|e| {
            if veth {
                name_taken(e, journal, &env.ifname, netns)
            } else {
                e.into()
            }
        })?;
        let ipam_result = journaled_ipam(ipam, journal, conf, env)?;
        let mut result = if vf_in_pod {
            journal.record(&Step::Addresses)?;
            // A veth got its MTU when it was made; a VF gets it here.
            let mtu = if veth { None } else { c.mtu };
            self.finish_pod_if(env, netns, ipam_result, iface, mtu, conf.mac)?
        } else {
            let mut r = ipam_result;
            iface.mac = conf.mac.map(|m| m.to_string());
            r.interfaces = vec![iface];
            r
        };
        // The host side, as the reference bridge plugin lists it.
        result.interfaces.push(Interface {
            name: att.port.clone(),
            ..Interface::default()
        });
        let mut ext = json!({
            "bridge": bridge,
            "port": att.port,
            "ofport": att.ofport,
            "attachment": kind,
            "offloadPossible": decision.offload_possible,
            "reason": decision.reason.to_string(),
        });
        if let Attachment::Representor { vf, representor } = &decision.attachment {
            ext["vf"] = Value::from(vf.as_str());
            ext["representor"] = Value::from(representor.as_str());
        }
        if let Some(v) = vni {
            ext["vni"] = Value::from(v);
        }
        Ok((result, Some((RESULT_KEY_OVS, ext))))
    }

    /// CHECK of mode ovs: the port is on its bridge, has an ofport, and carries the network's
    /// VNI.
    pub(super) fn check_ovs_port(
        &self,
        conf: &NetConf,
        bridge: &str,
        port: &str,
    ) -> Result<(), CniError> {
        let fail = |msg: String| Err(CniError::new(code::HOST, msg));
        let Some(p) = self.switch.port(port)? else {
            return fail(format!("OVS port {port} is missing"));
        };
        if p.bridge.as_deref() != Some(bridge) {
            return fail(format!(
                "OVS port {port} is on bridge {}, not {bridge}",
                p.bridge.unwrap_or_else(|| "(none)".into())
            ));
        }
        if p.ofport.is_none() {
            return fail(format!(
                "OVS port {port} has no OpenFlow port: {}",
                p.error
                    .unwrap_or_else(|| "ovs-vswitchd has not opened it".into())
            ));
        }
        let want = conf.conf.geneve.as_ref().map(|g| g.vni);
        if p.vni != want {
            return fail(format!(
                "OVS port {port} carries VNI {:?}, the network has {want:?}",
                p.vni
            ));
        }
        Ok(())
    }
}
