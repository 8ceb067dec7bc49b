//! What one attachment can get, probed: the inputs of [`crate::decision::decide`].
//!
//! | probed | from | by hand |
//! |---|---|---|
//! | the bridge's datapath | OVSDB (the monitor) | `ovs-vsctl get bridge br-int datapath_type` |
//! | `hw-offload` | OVSDB | `ovs-vsctl get Open_vSwitch . other_config:hw-offload` |
//! | switchdev PFs on the node | devlink | `devlink dev eswitch show DEV` (each) |
//! | the VF's PF in switchdev | devlink port dump → the PF's device | `devlink port show PF`, `devlink dev eswitch show DEV` |
//! | the VF's representor | devlink port dump, else sysfs names | `devlink port show \| grep "pfnum 0 vfnum N"` |
//! | `hw-tc-offload` on the PF | ethtool | `ethtool -k PF \| grep hw-tc-offload` |
//!
//! Every probe that cannot answer (no devlink in the kernel, a driver without ports) answers
//! "not capable": the decision then falls back to a veth and says why. Nothing here fails.

use nic::{
    devlink::{DevlinkDev, DevlinkHandle, EswitchMode, Port, PortFlavour},
    ethtool::EthtoolHandle,
    sysfs::SysFs,
};

use crate::{
    Ovs,
    decision::{Capabilities, Datapath, VfProbe},
};

/// The VF allocated to an attachment, as the host knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfRef {
    /// VF PCI address.
    pub pci_address: String,
    /// The PF's netdev.
    pub pf: String,
    /// The VF's index on the PF.
    pub index: u32,
}

/// The datapath of `bridge` as OVSDB says it (`netdev` → userspace; anything else → kernel).
pub fn bridge_datapath(ovs: &Ovs, bridge: &str) -> Datapath {
    match ovs.view().bridge(bridge).map(|b| b.datapath_type.clone()) {
        Some(t) if t == "netdev" => Datapath::Netdev,
        _ => Datapath::System,
    }
}

fn is_switchdev(m: Option<EswitchMode>) -> bool {
    matches!(
        m,
        Some(EswitchMode::Switchdev | EswitchMode::SwitchdevInactive)
    )
}

/// The devlink device whose physical port has `netdev` (the PF's uplink), from a port dump.
pub fn device_of_uplink<'a>(ports: &'a [Port], netdev: &str) -> Option<&'a DevlinkDev> {
    ports
        .iter()
        .find(|p| p.netdev.as_deref() == Some(netdev) && p.flavour == Some(PortFlavour::Physical))
        .map(|p| &p.dev)
}

/// Probes what the attachment of `vf` (or of no VF) to `bridge` can get.
/// `network_wants_software` comes from the network's configuration.
pub async fn capabilities(
    ovs: &Ovs,
    bridge: &str,
    vf: Option<&VfRef>,
    network_wants_software: bool,
) -> Capabilities {
    let datapath = bridge_datapath(ovs, bridge);
    let ovs_hw_offload = ovs
        .open_vswitch()
        .other_config()
        .get("hw-offload")
        .is_some_and(|v| v == "true");
    let devlink = DevlinkHandle::connect_optional().await.ok().flatten();
    let mut switchdev_devs: Vec<DevlinkDev> = Vec::new();
    let mut ports: Vec<Port> = Vec::new();
    if let Some(dl) = &devlink {
        for dev in dl.dev().list().await.unwrap_or_default() {
            let mode = dl.eswitch(&dev).get().await.ok().and_then(|e| e.mode);
            if is_switchdev(mode) {
                switchdev_devs.push(dev);
            }
        }
        if vf.is_some() && !switchdev_devs.is_empty() {
            ports = dl.port().list(None).await.unwrap_or_default();
        }
    }
    let vf = match vf {
        None => None,
        Some(v) => {
            let switchdev =
                device_of_uplink(&ports, &v.pf).is_some_and(|d| switchdev_devs.contains(d));
            let representor = if switchdev {
                nic::representor::vf_representor(devlink.as_ref(), &SysFs::host(), &v.pf, v.index)
                    .await
                    .inspect_err(|e| tracing::debug!(error = %e, "representor lookup failed"))
                    .ok()
                    .flatten()
                    .map(|r| r.netdev)
            } else {
                None
            };
            let hw_tc_offload = match EthtoolHandle::connect().await {
                Ok(et) => et
                    .features()
                    .get(&v.pf)
                    .execute()
                    .await
                    .ok()
                    .and_then(|f| f.features.get("hw-tc-offload").map(|s| s.active))
                    .unwrap_or(false),
                Err(_) => false,
            };
            Some(VfProbe {
                pci_address: v.pci_address.clone(),
                pf: v.pf.clone(),
                switchdev,
                representor,
                hw_tc_offload,
            })
        }
    };
    Capabilities {
        vf,
        switchdev_pfs: u32::try_from(switchdev_devs.len()).unwrap_or(u32::MAX),
        ovs_hw_offload,
        datapath,
        network_wants_software,
    }
}
