//! The node agent's plan: the node's desired `NicNodeState.spec` against what the host shows →
//! ordered steps per PF and the disruption the change needs.
//!
//! Pure: the agent (and `smartnicctl plan`) discover the host, call [`plan_host`], and hand each
//! PF's [`Step`]s to an executor, one task per PF. The plan is computed from the live host, so it
//! is **idempotent** (a PF that already shows the spec gets no step: in sync means an empty plan)
//! and **resumable** (after a crash in the middle, planning again from what the host now shows
//! gives the remaining steps).
//!
//! # Orders
//!
//! Each PF's steps follow its driver's rules ([`Vendor`]), simulated on a model of the PF so
//! that a later step sees the effect of an earlier one (VFs created with autoprobe are bound to
//! their kernel driver; a mode switch unbinds nothing by itself; ...):
//!
//! | vendor | order |
//! |---|---|
//! | `mlx5_core` | firmware check (a change stops here: reboot) → (in switchdev and the count or mode changes: unbind VFs → eswitch legacy) → `sriov_numvfs` 0 → N → wait for each VF's driver and netdev → PF MTU → VF MACs → (InfiniBand: VF GUIDs → rebind the kernel-bound VFs that got one) → to switchdev: unbind VFs → eswitch switchdev → representors → `hw-tc-offload` on → rebind, each VF to its group's driver (netdevice or vfio-pci, IOMMU group checked); otherwise driver binding in place → VF MTU |
//! | `ice` | (mode differs: `sriov_numvfs` 0 → eswitch mode) → `sriov_numvfs` N → wait → (switchdev: representors, `hw-tc-offload` on) → PF MTU → VF MACs → binding → VF MTU |
//! | `igb` | `sriov_numvfs` 0 → N → wait → PF MTU → VF MACs → binding → rebind the VFs that stay on igbvf and whose MAC changed (igbvf reads its MAC at probe) → VF MTU; no eswitch. MACs come before the binding so that a crash between the two never leaves a VF on vfio-pci without its MAC (a vfio-pci VF may be in use: no later plan sets it) |
//! | `netdevsim` | (in switchdev and the count or mode changes: eswitch legacy) → `sriov_numvfs` 0 → N, no wait (its VFs have no driver or netdev) → PF MTU → VF MACs (the PF netdev answers `ip link set $PF vf N mac M`) → eswitch switchdev → representors → `hw-tc-offload` on; no binding, no VF MTU (vfio-pci and VF MTUs are refused as [`PlanProblem`]s) |
//! | other | the mlx5 order without the firmware step (the kernel's rules: 0 before a new count, VFs unbound before an eswitch change) |
//!
//! A PF the agent configured before (in the last applied spec) and that the new spec no longer
//! lists is **reset**: `sriov_numvfs` 0, then eswitch legacy. An **externally managed** PF is
//! only validated (enough VFs, the eswitch mode) and never changed; a mismatch is a
//! [`PlanProblem`].
//!
//! VF MACs: each VF gets a stable administrative MAC, set through the PF
//! (`ip link set $PF vf N mac M`), derived from the PF's MAC and the VF index
//! ([`stable_vf_mac`]); the same VF gets the same MAC after every reboot, and the MAC survives a
//! rebind to vfio-pci. Only VFs created by the plan or whose netdev is on the host (free) are
//! touched; a VF inside a pod is never changed under it.
//!
//! InfiniBand VF GUIDs (a PF whose link type is `ib`): each VF gets one GUID as node and port
//! GUID, the next one of its group's `ibGuids` (a policy's pool) or else derived from the PF's
//! node GUID and the VF index ([`Guid::derived_for_vf`]), set through the PF
//! (`ip link set $PF vf N node_guid G port_guid G`) on free VFs only. mlx5 gives a VF its GUIDs
//! when the VF driver probes (NVIDIA's sequence: set them through the PF, then unbind and bind
//! the VF), so the VFs that got one and stay on the kernel driver are rebound right after; VFs
//! going to vfio-pci are rebound by their bind step anyway. A PF without a node GUID gets no
//! GUID step.
//!
//! Node-wide settings (the RDMA network-namespace mode) are [`NodeStep`]s of the plan
//! ([`plan_node`], [`HostPlan::node_steps`]), independent of every PF.
//!
//! # Disruption
//!
//! The class comes from [`crate::drain::classify`] (the operator's table: MTU only → none;
//! `numVfs` or eswitch mode with VFs in use → evict the pods using them; firmware or link type →
//! reboot). On top of it, pods with a macvlan or ipvlan child of a PF ([`PfFacts::upper_users`])
//! count as users of that PF: a step that recreates the PF's VFs, switches its eswitch or resets
//! it makes the PF's class at least `EvictVfPods`.

#[cfg(test)]
mod netdevsim_tests;
mod node;
mod order;
#[cfg(test)]
mod tests;

pub use node::{NodeFacts, NodeStep, plan_node};

use std::collections::BTreeMap;
use std::fmt;

use crds::{
    device_plugin::DevicePluginConfig,
    guid::Guid,
    inventory::{EswitchMode, LinkType, Nic, NicInventory},
    node_state::{InterfaceSpec, NicNodeStateSpec, VfIndexRange},
    policy::VfDeviceType,
};
use serde::Serialize;

use crate::{
    drain::{ChangeClass, classify},
    vf_range::VfSet,
    wire,
};

/// The driver family that decides a PF's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// NVIDIA ConnectX / BlueField (`mlx5_core`).
    Mlx5,
    /// Intel E810 (`ice`).
    Ice,
    /// Intel 82576 and relatives (`igb`).
    Igb,
    /// The kernel's simulated NIC (`netdevsim`): a bus device, not a PCI function, whose VFs
    /// have no driver or netdev of their own but whose devlink eswitch and representors are
    /// real.
    Netdevsim,
    /// Any other driver.
    Generic,
}

impl Vendor {
    /// The family of a discovered PF, by its bound driver.
    pub fn of(nic: &Nic) -> Self {
        match nic.driver.as_deref() {
            Some("mlx5_core") => Self::Mlx5,
            Some("ice") => Self::Ice,
            Some("igb") => Self::Igb,
            Some("netdevsim") => Self::Netdevsim,
            _ => Self::Generic,
        }
    }
}

/// Facts about a PF that the inventory does not carry, gathered by the agent (ethtool, netlink).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PfFacts {
    /// `hw-tc-offload` of the PF netdev; `None` when unknown (the step is then planned).
    pub hw_tc_offload: Option<bool>,
    /// Users of the PF netdev itself: pods (`namespace/name`, or a netns name) holding a macvlan
    /// or ipvlan child of it.
    pub upper_users: Vec<String>,
    /// The administrative MAC of each VF as the PF reports it (`ip link show $PF`, all-zero ones
    /// left out). When the PF answered, this is what the MAC steps are compared with: some VF
    /// drivers show the MAC on their netdev only after a reset.
    pub vf_admin_macs: Option<BTreeMap<u32, String>>,
    /// Whether the PF netdev is administratively up (`ip link show $PF`: `UP`); `None` when
    /// unknown (no step is planned then).
    pub admin_up: Option<bool>,
}

/// The settings the firmware step makes true (NVIDIA NV-config names in brackets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareTarget {
    /// VF capacity (`SRIOV_EN=True`, `NUM_OF_VFS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_vfs: Option<u32>,
    /// Port link type (`LINK_TYPE_P1`/`LINK_TYPE_P2`, by the PF's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_type: Option<LinkType>,
}

/// One step on one PF. Each is idempotent on its own: doing it twice leaves the PF as doing it
/// once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "step"
)]
pub enum Step {
    /// Query the firmware settings and set the ones that differ; any change needs a reboot, and
    /// the PF's other steps wait for it (`mstconfig -d $PF query`, then `set`).
    Firmware(FirmwareTarget),
    /// `devlink dev eswitch set pci/$PF mode legacy|switchdev`.
    EswitchMode {
        /// The mode to set.
        mode: EswitchMode,
    },
    /// `echo N > /sys/bus/pci/devices/$PF/sriov_numvfs` (the kernel needs 0 before a new count),
    /// with `sriov_drivers_autoprobe` turned on first: the kernel probes the new VFs.
    SetNumVfs {
        /// VF count.
        count: u32,
    },
    /// `echo 0 > .../sriov_drivers_autoprobe; echo N > .../sriov_numvfs`: VFs created without a
    /// driver, for a later step to bind (with `driver_override`) once the PF is up and their MACs
    /// are set. igbvf asks the PF for its MAC once, at probe, over a mailbox that only an up PF
    /// answers; a VF probed earlier keeps a random MAC and no carrier. Autoprobe stays off (the
    /// VF driver's module may load, and bind unbound VFs, later); [`Step::SetNumVfs`] turns it
    /// back on. Waits until the VFs' PCI functions exist.
    SetNumVfsUnprobed {
        /// VF count.
        count: u32,
    },
    /// Wait until VFs `0..count` exist, each bound to its kernel driver and, for netdevice VFs,
    /// with its netdev (VF creation is asynchronous on mlx5).
    WaitVfs {
        /// VF count.
        count: u32,
    },
    /// `ip link set $PF vf N mac M`: the VF's administrative MAC.
    SetVfMac {
        /// VF index.
        vf: u32,
        /// MAC address.
        mac: String,
    },
    /// `ip link set $PF vf N node_guid G` then `... port_guid G`: an InfiniBand VF's GUIDs (one
    /// GUID for both). mlx5 hands them to the VF at probe, so a bound VF is rebound after.
    SetVfGuid {
        /// VF index.
        vf: u32,
        /// The node and port GUID.
        guid: Guid,
    },
    /// Unbind the VFs from their driver (before an eswitch mode change).
    UnbindVfs {
        /// VF indices.
        vfs: Vec<VfIndexRange>,
    },
    /// Bind the VFs to the kernel VF driver (`netdevice`) or to `vfio-pci`
    /// (`driver_override` + `drivers_probe`); vfio-pci first checks the VF's IOMMU group. Waits
    /// for the driver (and the netdev of a netdevice VF).
    BindVfs {
        /// VF indices.
        vfs: Vec<VfIndexRange>,
        /// Driver kind.
        device_type: VfDeviceType,
    },
    /// Unbind and bind again to the same driver (igbvf takes a new MAC only at probe).
    RebindVfs {
        /// VF indices.
        vfs: Vec<VfIndexRange>,
    },
    /// Wait for each VF's representor netdev and record its name (switchdev).
    Representors {
        /// VF count.
        count: u32,
    },
    /// `ethtool -K $PF hw-tc-offload on|off`.
    HwTcOffload {
        /// On or off.
        on: bool,
    },
    /// `ip link set $PF mtu N`.
    PfMtu {
        /// MTU.
        mtu: u32,
    },
    /// `ip link set $PF up`: the VFs of a PF that is down have no link, and the device plugin
    /// reports them Unhealthy.
    PfUp,
    /// Bind the PF itself (a whole-PF pool) to `vfio-pci` (`driver_override` + `drivers_probe`,
    /// IOMMU group checked), or back to its own kernel driver (`netdevice`: unbind, override
    /// cleared, `drivers_probe`).
    BindPf {
        /// Driver kind.
        device_type: VfDeviceType,
    },
    /// `ip link set $VF mtu N` for netdevice VFs on the host.
    VfMtu {
        /// VF indices.
        vfs: Vec<VfIndexRange>,
        /// MTU.
        mtu: u32,
    },
}

impl Step {
    /// Whether the step destroys, unbinds or rebinds VFs: the device plugin must stop
    /// advertising the PF's VFs before it.
    pub fn disturbs_vfs(&self) -> bool {
        matches!(
            self,
            Self::Firmware(_)
                | Self::EswitchMode { .. }
                | Self::SetNumVfs { .. }
                | Self::SetNumVfsUnprobed { .. }
                | Self::UnbindVfs { .. }
                | Self::BindVfs { .. }
                | Self::RebindVfs { .. }
                | Self::BindPf { .. }
        )
    }

    /// A short name for metrics and logs (`set-num-vfs`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Firmware(_) => "firmware",
            Self::EswitchMode { .. } => "eswitch-mode",
            Self::SetNumVfs { .. } => "set-num-vfs",
            Self::SetNumVfsUnprobed { .. } => "set-num-vfs-unprobed",
            Self::WaitVfs { .. } => "wait-vfs",
            Self::SetVfMac { .. } => "set-vf-mac",
            Self::SetVfGuid { .. } => "set-vf-guid",
            Self::UnbindVfs { .. } => "unbind-vfs",
            Self::BindVfs { .. } => "bind-vfs",
            Self::RebindVfs { .. } => "rebind-vfs",
            Self::Representors { .. } => "representors",
            Self::HwTcOffload { .. } => "hw-tc-offload",
            Self::PfMtu { .. } => "pf-mtu",
            Self::PfUp => "pf-up",
            Self::VfMtu { .. } => "vf-mtu",
            Self::BindPf { .. } => "bind-pf",
        }
    }
}

/// The VF indices of a step's ranges.
pub trait VfRanges {
    /// Every index, ascending.
    fn indices(&self) -> Vec<u32>;
}

impl VfRanges for [VfIndexRange] {
    fn indices(&self) -> Vec<u32> {
        VfSet::from_ranges(self.iter().copied()).iter().collect()
    }
}

fn ranges(vfs: &[VfIndexRange]) -> String {
    VfSet::from_ranges(vfs.iter().copied()).to_string()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Firmware(t) => {
                f.write_str("firmware: query, then set")?;
                if let Some(n) = t.total_vfs {
                    write!(f, " SRIOV_EN=True NUM_OF_VFS={n}")?;
                }
                if let Some(l) = t.link_type {
                    write!(f, " LINK_TYPE={}", wire(&l).to_uppercase())?;
                }
                f.write_str(" (reboot)")
            }
            Self::EswitchMode { mode } => write!(f, "eswitch mode {}", wire(mode)),
            Self::SetNumVfs { count } => write!(f, "sriov_numvfs {count}"),
            Self::SetNumVfsUnprobed { count } => {
                write!(
                    f,
                    "sriov_numvfs {count}, no driver yet (drivers_autoprobe 0)"
                )
            }
            Self::WaitVfs { count } => write!(f, "wait for {count} VFs (driver, netdev)"),
            Self::SetVfMac { vf, mac } => write!(f, "vf {vf} mac {mac}"),
            Self::SetVfGuid { vf, guid } => {
                write!(f, "vf {vf} node_guid {guid} port_guid {guid}")
            }
            Self::UnbindVfs { vfs } => write!(f, "unbind VFs {}", ranges(vfs)),
            Self::BindVfs { vfs, device_type } => {
                write!(f, "bind VFs {} to {}", ranges(vfs), wire(device_type))?;
                if *device_type == VfDeviceType::VfioPci {
                    f.write_str(" (IOMMU group checked)")?;
                }
                Ok(())
            }
            Self::RebindVfs { vfs } => write!(f, "rebind VFs {}", ranges(vfs)),
            Self::Representors { count } => write!(f, "find {count} representors"),
            Self::HwTcOffload { on } => {
                write!(f, "hw-tc-offload {}", if *on { "on" } else { "off" })
            }
            Self::PfMtu { mtu } => write!(f, "PF mtu {mtu}"),
            Self::PfUp => f.write_str("PF up"),
            Self::VfMtu { vfs, mtu } => write!(f, "VFs {} mtu {mtu}", ranges(vfs)),
            Self::BindPf { device_type } => match device_type {
                VfDeviceType::VfioPci => {
                    f.write_str("bind the PF to vfio-pci (IOMMU group checked)")
                }
                VfDeviceType::Netdevice => f.write_str("bind the PF back to its kernel driver"),
            },
        }
    }
}

/// What the plan does with a PF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PfAction {
    /// Make the PF match its `InterfaceSpec`.
    Configure,
    /// Externally managed: check only.
    Validate,
    /// Configured before, no longer in the spec: back to 0 VFs and legacy.
    Reset,
}

/// Something the plan cannot do; the PF gets no step until it is resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProblem {
    /// PCI address of the PF.
    pub pci_address: String,
    /// What is wrong, naming the PF and the numbers.
    pub message: String,
}

/// The plan of one PF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PfPlan {
    /// PCI address.
    pub pci_address: String,
    /// Netdev name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver family.
    pub vendor: Vendor,
    /// Configure, validate or reset.
    pub action: PfAction,
    /// Ordered steps; empty when the PF is in sync.
    pub steps: Vec<Step>,
    /// The disruption the steps need.
    pub class: ChangeClass,
    /// Why, one line per change.
    pub reasons: Vec<String>,
    /// The desired configuration (the VF layout after the plan); `None` for a reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<InterfaceSpec>,
}

impl PfPlan {
    /// Whether a step destroys, unbinds or rebinds VFs ([`Step::disturbs_vfs`]).
    pub fn disturbs_vfs(&self) -> bool {
        self.steps.iter().any(Step::disturbs_vfs)
    }

    /// Whether the PF needs a reboot (a firmware step).
    pub fn needs_reboot(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Firmware(_)))
    }
}

/// The plan of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPlan {
    /// Every PF of the spec and of the last applied spec, by PCI address, in sync or not.
    pub pfs: Vec<PfPlan>,
    /// The most disruptive class of any PF.
    pub class: ChangeClass,
    /// What the plan cannot do.
    pub problems: Vec<PlanProblem>,
    /// Node-wide steps ([`plan_node`]; [`plan_host`] leaves them empty), run besides the PFs'.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_steps: Vec<NodeStep>,
}

impl HostPlan {
    /// No step and no problem: the host shows the spec.
    pub fn in_sync(&self) -> bool {
        self.problems.is_empty()
            && self.node_steps.is_empty()
            && self.pfs.iter().all(|p| p.steps.is_empty())
    }

    /// Number of steps over all PFs and the node.
    pub fn step_count(&self) -> usize {
        self.node_steps.len() + self.pfs.iter().map(|p| p.steps.len()).sum::<usize>()
    }

    /// The plan with the node-wide steps that move the host (`facts`) to `desired`
    /// ([`plan_node`]).
    pub fn with_node(mut self, desired: &NicNodeStateSpec, facts: &NodeFacts) -> Self {
        self.node_steps = plan_node(desired, facts);
        self
    }

    /// PFs whose VFs are in place as planned (no step, no problem): their device-plugin pools
    /// may be advertised.
    pub fn ready_pfs(&self) -> impl Iterator<Item = &str> {
        self.pfs
            .iter()
            .filter(|p| {
                p.steps.is_empty()
                    && p.action != PfAction::Reset
                    && !self.problems.iter().any(|x| x.pci_address == p.pci_address)
            })
            .map(|p| p.pci_address.as_str())
    }
}

/// Plans the move of a host from what it shows (`host`, plus `facts` by PF PCI address) to
/// `desired`. `applied` is the spec applied last (empty when unknown): it names the PFs to reset
/// and the VF groups as they were. See the module documentation.
pub fn plan_host(
    applied: &NicNodeStateSpec,
    desired: &NicNodeStateSpec,
    host: &NicInventory,
    facts: &BTreeMap<String, PfFacts>,
) -> HostPlan {
    let change = classify(applied, desired, host);
    let no_facts = PfFacts::default();
    let mut plan = HostPlan::default();
    let mut addrs: Vec<&str> = applied
        .interfaces
        .iter()
        .chain(&desired.interfaces)
        .map(|i| i.pci_address.as_str())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    for addr in addrs {
        let want = desired.interfaces.iter().find(|i| i.pci_address == addr);
        let was = applied.interfaces.iter().find(|i| i.pci_address == addr);
        let nic = host
            .nics
            .iter()
            .find(|n| n.pci_address.eq_ignore_ascii_case(addr));
        let Some(nic) = nic else {
            if want.is_some() {
                plan.problems.push(PlanProblem {
                    pci_address: addr.to_owned(),
                    message: format!("PF {addr} is not on this host (removed or renumbered?)"),
                });
            }
            continue;
        };
        let pf_facts = facts.get(addr).unwrap_or(&no_facts);
        let (action, steps) = match (want, was) {
            (Some(w), _) if w.externally_managed => {
                plan.problems.extend(order::validate_external(nic, w));
                (PfAction::Validate, Vec::new())
            }
            (Some(w), _) => match order::check(nic, w) {
                Some(problem) => {
                    plan.problems.push(problem);
                    (PfAction::Configure, Vec::new())
                }
                None => (PfAction::Configure, order::configure(nic, w, pf_facts)),
            },
            (None, Some(w)) if !w.externally_managed => (PfAction::Reset, order::reset(nic, w)),
            (None, _) => continue,
        };
        let classified = change.pfs.iter().find(|c| c.pci_address == addr);
        let mut class = classified.map(|c| c.class).unwrap_or_default();
        let mut reasons: Vec<String> = classified
            .map(|c| c.reasons.iter().map(|(_, r)| r.clone()).collect())
            .unwrap_or_default();
        if steps.is_empty() {
            // in sync on the host: only device-plugin or bookkeeping changes remain
            class = class.min(ChangeClass::NonDisruptive);
        }
        if !pf_facts.upper_users.is_empty() && steps.iter().any(order::touches_pf) {
            class = class.max(ChangeClass::EvictVfPods);
            reasons.push(format!(
                "the PF netdev is reset under macvlan/ipvlan users: {}",
                pf_facts.upper_users.join(", ")
            ));
        }
        if steps.iter().any(|s| matches!(s, Step::Firmware(_))) {
            class = ChangeClass::Reboot;
        }
        plan.class = plan.class.max(class);
        plan.pfs.push(PfPlan {
            pci_address: addr.to_owned(),
            name: nic
                .name
                .clone()
                .or_else(|| want.and_then(|w| w.name.clone())),
            vendor: Vendor::of(nic),
            action,
            steps,
            class,
            reasons,
            desired: want.cloned(),
        });
    }
    plan
}

/// A stable, locally administered unicast MAC for VF `vf` of a PF whose MAC is `pf_mac`: the
/// PF's first octet with the local bit set, the PF's last three octets (the NIC-specific part),
/// then the VF index. `None` when `pf_mac` is not a MAC.
pub fn stable_vf_mac(pf_mac: &str, vf: u32) -> Option<String> {
    let octets: Vec<u8> = pf_mac
        .split(':')
        .map(|o| u8::from_str_radix(o, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if octets.len() != 6 || octets.iter().all(|&o| o == 0) {
        return None;
    }
    let first = (octets[0] | 0x02) & 0xfe;
    let [hi, lo] = u16::try_from(vf).unwrap_or(u16::MAX).to_be_bytes();
    Some(format!(
        "{first:02x}:{:02x}:{:02x}:{:02x}:{hi:02x}:{lo:02x}",
        octets[3], octets[4], octets[5]
    ))
}

/// The device-plugin configuration to hand to the plugin now: `desired` (rendered by the
/// operator) restricted to the PFs for which `ready` is true. A pool left without any PF is
/// dropped, so the plugin never advertises VFs that do not exist yet or are being rebuilt. A
/// PF offered whole (listed in `pciAddresses`) is kept only when it is ready too.
pub fn applied_device_plugin_config(
    desired: &DevicePluginConfig,
    ready: impl Fn(&str) -> bool,
) -> DevicePluginConfig {
    let mut out = DevicePluginConfig {
        rdma_exclusive: desired.rdma_exclusive,
        ..DevicePluginConfig::default()
    };
    for pool in &desired.resource_list {
        let mut pool = pool.clone();
        // a selector that named PFs and has none left would match more than it did: dropped
        pool.selectors.retain_mut(|sel| {
            if !sel.pfs.is_empty() {
                sel.pfs.retain(|p| ready(&p.pci_address));
                return !sel.pfs.is_empty();
            }
            // the operator lists whole PFs by address (a `wholePf` pool)
            if !sel.pci_addresses.is_empty() {
                sel.pci_addresses.retain(|a| ready(a));
                return !sel.pci_addresses.is_empty();
            }
            true
        });
        if !pool.selectors.is_empty() {
            out.resource_list.push(pool);
        }
    }
    out
}
