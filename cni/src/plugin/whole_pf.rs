//! `mode: sriov` with a whole PF (a `wholePf` pool): the PF's own netdev moves into the pod, as
//! the reference host-device plugin does, and comes back on DEL under its name, MAC and MTU. A
//! PF on `vfio-pci` has no netdev: its device node comes from the device plugin, and the ADD only
//! claims it and runs IPAM.
//!
//! ```text
//!   ADD  begin ─► pf-claimed ─► vf-saved (netdev name, MAC, MTU) ─► vf-move ─► ipam ─► addresses ─► done
//!   DEL  the netdev back to the host (renamed, MAC and MTU restored) ─► owner cleared ─► IPAM DEL
//! ```
//!
//! Moving a PF takes a port off the host, so the plugin hands one out only when the node's applied
//! device-plugin configuration (the file the node agent writes, root-owned on the host) offers that
//! very PF in a whole-PF pool of the network's resource; a `deviceID` naming any other PF (in a
//! hand-written NetworkAttachmentDefinition, say) is refused. A PF with VFs enabled is refused
//! too, and so are the VF settings, which a PF does not have.

use std::path::Path;

use crds::device_plugin::DevicePluginConfig;
use nic::pci::PciAddress;

use super::{ModeResult, Plugin, journaled_ipam, name_taken};
use crate::{
    config::NetConf,
    env::CniEnv,
    error::{CniError, code},
    host::{Host, Ns, PfDevice},
    ipam::Ipam,
    result::Interface,
    store::{Journal, SavedVf, Step},
    switch::Switch,
};

use super::Replay;

/// The first VF-only key a configuration sets, if any (a whole PF has no VF settings).
fn vf_only_key(conf: &NetConf) -> Option<&'static str> {
    let c = &conf.conf;
    [
        ("vlan", c.vlan.is_some()),
        ("vlanQoS", c.vlan_qos.is_some()),
        ("vlanProto", c.vlan_proto.is_some()),
        ("spoofChk", c.spoof_chk.is_some()),
        ("trust", c.trust.is_some()),
        ("linkState", c.link_state.is_some()),
        ("minTxRate", c.min_tx_rate.is_some()),
        ("maxTxRate", c.max_tx_rate.is_some()),
    ]
    .into_iter()
    .find_map(|(k, set)| set.then_some(k))
}

/// Whether the node's applied device-plugin configuration (`text` of `file`) offers the PF at
/// `bdf` whole, in the pool of `resource` (`prefix/name`) when the network names one.
pub fn offered_whole(
    file: &Path,
    text: &str,
    bdf: &PciAddress,
    resource: Option<&str>,
) -> Result<(), CniError> {
    let cfg: DevicePluginConfig = serde_json::from_str(text).map_err(|e| {
        CniError::new(
            code::HOST,
            format!("{}: not a device-plugin configuration: {e}", file.display()),
        )
    })?;
    let offered = cfg
        .resource_list
        .iter()
        .filter(|p| {
            resource.is_none_or(|r| r == format!("{}/{}", p.resource_prefix, p.resource_name))
        })
        .flat_map(|p| &p.selectors)
        .filter(|s| s.pfs.is_empty())
        .flat_map(|s| &s.pci_addresses)
        .any(|a| a.parse::<PciAddress>().is_ok_and(|a| a == *bdf));
    if offered {
        return Ok(());
    }
    Err(CniError::new(
        code::INVALID_CONFIG,
        format!(
            "key deviceID: {bdf} is a PF, and no whole-PF pool{} on this node offers it ({}); \
             mode sriov hands out VFs, and whole PFs only from a wholePf NicPolicy",
            resource.map(|r| format!(" of {r}")).unwrap_or_default(),
            file.display()
        ),
    ))
}

impl<H: Host, S: Switch> Plugin<H, S> {
    /// The whole-PF form of `mode: sriov`'s ADD.
    pub(super) fn pf_add(
        &self,
        conf: &NetConf,
        env: &CniEnv,
        netns: &Path,
        ipam: &Ipam,
        journal: &mut Journal,
        pf: PfDevice,
    ) -> Result<ModeResult, CniError> {
        let bdf = pf.bdf;
        let file = &self.paths.ready_file;
        let text = std::fs::read_to_string(file).map_err(|e| {
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "key deviceID: {bdf} is a PF, handed out whole only when this node's device-plugin configuration offers it, \
                     and {} cannot be read: {e}",
                    file.display()
                ),
            )
        })?;
        offered_whole(file, &text, &bdf, conf.conf.resource_name.as_deref())?;
        if let Some(key) = vf_only_key(conf) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("key {key}: {bdf} is a whole PF, which has no VF settings"),
            ));
        }
        if pf.num_vfs > 0 {
            return Err(CniError::new(
                code::HOST,
                format!(
                    "PF {bdf} has {} VFs enabled; a PF is handed out whole only without VFs",
                    pf.num_vfs
                ),
            ));
        }
        let _lock = self.store.lock_vf(&bdf)?;
        journal.record(&Step::PfClaimed {
            bdf: bdf.to_string(),
        })?;
        self.claim_vf(&bdf, env)?;
        // again: taking it back from a gone pod may have returned its netdev
        let pf = self
            .host
            .whole_pf(&bdf)?
            .ok_or_else(|| CniError::new(code::HOST, format!("{bdf} became a VF")))?;
        let mut saved = SavedVf::default();
        if let Some(nd) = &pf.netdev {
            let link = self.host.link(Ns::Host, nd)?;
            saved.netdev = Some(nd.clone());
            saved.netdev_mac = link.as_ref().and_then(|l| l.mac).map(|m| m.to_string());
            saved.netdev_mtu = link.map(|l| l.mtu);
        }
        journal.record(&Step::VfSaved { saved })?;
        let mut iface = Interface {
            name: env.ifname.clone(),
            sandbox: Some(netns.display().to_string()),
            pci_id: Some(bdf.to_string()),
            ..Interface::default()
        };
        if pf.is_userspace() {
            let mut result = journaled_ipam(ipam, journal, conf, env)?;
            iface.mac = conf.mac.map(|m| m.to_string());
            result.interfaces = vec![iface];
            return Ok((result, None));
        }
        let netdev = pf.netdev.ok_or_else(|| {
            CniError::new(
                code::HOST,
                format!(
                    "PF {bdf} has no netdev in the host and is not bound to a userspace driver"
                ),
            )
        })?;
        journal.record(&Step::VfMove)?;
        self.host
            .move_to_pod(&netdev, netns, &env.ifname)
            .map_err(|e| name_taken(e, journal, &env.ifname, netns))?;
        let ipam_result = journaled_ipam(ipam, journal, conf, env)?;
        journal.record(&Step::Addresses)?;
        self.finish_pod_if(env, netns, ipam_result, iface, conf.conf.mtu, conf.mac)
            .map(|r| (r, None))
    }

    /// Gives a whole PF back: its netdev to the host (name, MAC, MTU) and its owner record.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn release_pf(
        &self,
        id: &str,
        ifname: &str,
        bdf: &str,
        r: &Replay,
        conf: Option<&NetConf>,
        netns: Option<&Path>,
        locked: bool,
    ) -> Result<(), CniError> {
        let Some((addr, _lock)) = self.held_for_release(id, ifname, bdf, locked)? else {
            return Ok(());
        };
        if r.moved {
            let saved = r.saved.clone().unwrap_or_default();
            let look = || {
                let pf = self.host.whole_pf(&addr)?;
                Ok(match pf {
                    Some(p) if p.netdev.is_some() || p.driver.is_none() || p.is_userspace() => {
                        Some(p.netdev)
                    }
                    Some(_) => None,
                    // no longer a PF at this address: nothing to wait for
                    None => Some(None),
                })
            };
            self.netdev_home(ifname, &saved, conf, netns, |ns_alive| {
                if ns_alive {
                    Ok(look()?.flatten())
                } else {
                    self.back_from_gone_netns(&addr, netns, look)
                }
            })?;
        }
        self.store.clear_vf_owner(&addr)
    }
}
