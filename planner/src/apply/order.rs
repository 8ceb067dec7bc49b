//! The per-vendor orders of [`super::plan_host`], built by simulating each step on a model of
//! the PF.

use crds::{
    guid::{Guid, nth_guid},
    inventory::{EswitchMode, LinkType, Nic},
    node_state::{InterfaceSpec, VfIndexRange},
    policy::VfDeviceType,
};

use super::{FirmwareTarget, PfFacts, PlanProblem, Step, Vendor, stable_vf_mac};
use crate::{vf_range::VfSet, wire};

/// Driver state of one VF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Unbound,
    Kernel,
    Vfio,
}

impl From<VfDeviceType> for Driver {
    fn from(t: VfDeviceType) -> Self {
        match t {
            VfDeviceType::Netdevice => Self::Kernel,
            VfDeviceType::VfioPci => Self::Vfio,
        }
    }
}

#[derive(Clone, Debug)]
struct VfModel {
    driver: Driver,
    /// The netdev is in the host namespace (a free netdevice VF).
    on_host: bool,
    /// Created or (re)bound by this plan: nobody uses it.
    fresh: bool,
    mac: Option<String>,
    /// (node, port) GUID as the PF reports them.
    guids: (Option<Guid>, Option<Guid>),
    mtu: Option<u32>,
    representor: bool,
}

/// The PF as the steps planned so far leave it.
struct Model<'a> {
    nic: &'a Nic,
    want: &'a InterfaceSpec,
    num_vfs: u32,
    mode: Option<EswitchMode>,
    mtu: Option<u32>,
    hw_tc: Option<bool>,
    up: Option<bool>,
    /// The PF's own driver kind (`None`: unbound).
    pf_driver: Option<VfDeviceType>,
    vfs: Vec<VfModel>,
    steps: Vec<Step>,
}

/// The driver name of `vfio-pci`.
const VFIO_PCI: &str = "vfio-pci";

fn set_of(vfs: impl IntoIterator<Item = u32>) -> Vec<VfIndexRange> {
    VfSet::from_ranges(vfs.into_iter().map(|v| VfIndexRange { first: v, last: v })).into_ranges()
}

fn all(n: u32) -> Vec<VfIndexRange> {
    VfSet::first_n(n).into_ranges()
}

impl<'a> Model<'a> {
    fn new(nic: &'a Nic, want: &'a InterfaceSpec, facts: &PfFacts) -> Self {
        let admin = |i: u32, netdev: Option<&String>| match &facts.vf_admin_macs {
            Some(m) => m.get(&i).cloned(),
            None => netdev.cloned(),
        };
        let vfs = (0..nic.num_vfs)
            .map(|i| match nic.vfs.iter().find(|v| v.vf_id == i) {
                Some(vf) => VfModel {
                    driver: match vf.driver.as_deref() {
                        None => Driver::Unbound,
                        Some("vfio-pci") => Driver::Vfio,
                        Some(_) => Driver::Kernel,
                    },
                    on_host: vf.name.is_some(),
                    fresh: false,
                    mac: admin(i, vf.mac.as_ref()),
                    guids: (vf.node_guid, vf.port_guid),
                    mtu: vf.mtu,
                    representor: vf.representor.is_some(),
                },
                // listed by sriov_numvfs but not discovered: unknown, so never "free"
                None => VfModel {
                    driver: Driver::Kernel,
                    on_host: false,
                    fresh: false,
                    mac: admin(i, None),
                    guids: (None, None),
                    mtu: None,
                    representor: false,
                },
            })
            .collect();
        Self {
            nic,
            want,
            num_vfs: nic.num_vfs,
            mode: nic.eswitch_mode,
            mtu: nic.mtu,
            hw_tc: facts.hw_tc_offload,
            up: facts.admin_up,
            pf_driver: nic.driver.as_deref().map(|d| {
                if d == VFIO_PCI {
                    VfDeviceType::VfioPci
                } else {
                    VfDeviceType::Netdevice
                }
            }),
            vfs,
            steps: Vec::new(),
        }
    }

    fn vfs_of(&mut self, ranges: &[VfIndexRange]) -> impl Iterator<Item = &mut VfModel> {
        let set = VfSet::from_ranges(ranges.iter().copied());
        self.vfs
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| u32::try_from(*i).is_ok_and(|i| set.contains(i)))
            .map(|(_, v)| v)
    }

    /// Records `step` and its effect on the model.
    fn push(&mut self, step: Step) {
        match &step {
            Step::SetNumVfs { count } | Step::SetNumVfsUnprobed { count } => {
                let probed = matches!(step, Step::SetNumVfs { .. });
                self.num_vfs = *count;
                self.vfs = (0..*count)
                    .map(|_| VfModel {
                        driver: if probed {
                            Driver::Kernel
                        } else {
                            Driver::Unbound
                        },
                        on_host: probed,
                        fresh: true,
                        mac: None,
                        guids: (None, None),
                        mtu: None,
                        representor: false,
                    })
                    .collect();
            }
            Step::EswitchMode { mode } => {
                // representors appear asynchronously: found by their own step
                self.mode = Some(*mode);
                self.vfs.iter_mut().for_each(|v| v.representor = false);
            }
            Step::UnbindVfs { vfs } => {
                let vfs = vfs.clone();
                for v in self.vfs_of(&vfs) {
                    v.driver = Driver::Unbound;
                    v.on_host = false;
                }
            }
            Step::BindVfs { vfs, device_type } => {
                let (vfs, t) = (vfs.clone(), *device_type);
                for v in self.vfs_of(&vfs) {
                    v.driver = t.into();
                    v.on_host = t == VfDeviceType::Netdevice;
                    v.fresh = true;
                    v.mtu = None;
                }
            }
            Step::RebindVfs { vfs } => {
                let vfs = vfs.clone();
                for v in self.vfs_of(&vfs) {
                    v.fresh = true;
                    v.mtu = None;
                }
            }
            Step::SetVfMac { vf, mac } => {
                if let Some(v) = self.vfs.get_mut(*vf as usize) {
                    v.mac = Some(mac.clone());
                }
            }
            Step::SetVfGuid { vf, guid } => {
                if let Some(v) = self.vfs.get_mut(*vf as usize) {
                    v.guids = (Some(*guid), Some(*guid));
                }
            }
            Step::VfMtu { vfs, mtu } => {
                let (vfs, mtu) = (vfs.clone(), *mtu);
                for v in self.vfs_of(&vfs) {
                    v.mtu = Some(mtu);
                }
            }
            Step::PfMtu { mtu } => self.mtu = Some(*mtu),
            Step::PfUp => self.up = Some(true),
            Step::HwTcOffload { on } => self.hw_tc = Some(*on),
            Step::Representors { .. } => self.vfs.iter_mut().for_each(|v| v.representor = true),
            Step::BindPf { device_type } => {
                self.pf_driver = Some(*device_type);
                self.mtu = None;
            }
            Step::Firmware(_) | Step::WaitVfs { .. } => {}
        }
        self.steps.push(step);
    }

    /// The driver kind VF `vf` should have: its group's, or the kernel driver outside groups.
    fn wanted_type(&self, vf: u32) -> VfDeviceType {
        self.want
            .vf_groups
            .iter()
            .find(|g| g.vfs.iter().any(|r| r.first <= vf && vf <= r.last))
            .map(|g| g.device_type)
            .unwrap_or_default()
    }

    fn wanted_mtu(&self, vf: u32) -> Option<u32> {
        self.want
            .vf_groups
            .iter()
            .find(|g| g.vfs.iter().any(|r| r.first <= vf && vf <= r.last))
            .and_then(|g| g.mtu)
    }

    /// `sriov_numvfs` 0 → N and the wait, when the count differs.
    fn vf_count(&mut self) {
        if let Some(n) = self.vf_count_change() {
            self.push(Step::SetNumVfs { count: n });
            self.push(Step::WaitVfs { count: n });
        }
    }

    /// `sriov_numvfs` 0 → N with the new VFs left without a driver, when the count differs.
    fn vf_count_unprobed(&mut self) {
        if let Some(n) = self.vf_count_change() {
            self.push(Step::SetNumVfsUnprobed { count: n });
        }
    }

    /// The new VF count when it differs, after the step to 0 the kernel needs first; `None`
    /// when the count stays or the new one is 0.
    fn vf_count_change(&mut self) -> Option<u32> {
        let n = self.want.num_vfs;
        if self.num_vfs == n {
            return None;
        }
        if self.num_vfs > 0 {
            self.push(Step::SetNumVfs { count: 0 });
        }
        (n > 0).then_some(n)
    }

    /// The PF netdev: its MTU, then up when it gets VFs.
    fn pf_link(&mut self) {
        if let Some(mtu) = self.want.mtu
            && self.mtu != Some(mtu)
        {
            self.push(Step::PfMtu { mtu });
        }
        // A PF with VFs is brought up: its VFs have no link while it is down.
        if self.want.num_vfs > 0 && self.up == Some(false) {
            self.push(Step::PfUp);
        }
    }

    /// Stable MACs on the VFs nobody uses; returns the VFs whose MAC was set.
    fn vf_macs(&mut self) -> Vec<u32> {
        let Some(pf_mac) = self.nic.mac.clone() else {
            return Vec::new();
        };
        let mut set = Vec::new();
        for vf in 0..self.num_vfs {
            let Some(mac) = stable_vf_mac(&pf_mac, vf) else {
                return set;
            };
            let m = &self.vfs[vf as usize];
            if (m.fresh || m.on_host) && m.mac.as_deref() != Some(mac.as_str()) {
                self.push(Step::SetVfMac { vf, mac });
                set.push(vf);
            }
        }
        set
    }

    /// The GUID VF `vf` should have: the next one of its group's pool, else derived from the
    /// PF's node GUID; `None` on Ethernet or without a node GUID to derive from.
    fn wanted_guid(&self, vf: u32) -> Option<Guid> {
        if self.nic.link_type != Some(LinkType::Ib) {
            return None;
        }
        let group = self
            .want
            .vf_groups
            .iter()
            .find(|g| g.vfs.iter().any(|r| r.first <= vf && vf <= r.last));
        if let Some(g) = group.filter(|g| !g.ib_guids.is_empty()) {
            // the k-th VF of the group, in ascending order, takes the k-th GUID
            let k: u128 = g
                .vfs
                .iter()
                .map(|r| u128::from(vf.min(r.last + 1).saturating_sub(r.first)))
                .sum();
            return nth_guid(&g.ib_guids, k);
        }
        Guid::derived_for_vf(self.nic.node_guid?, vf)
    }

    /// InfiniBand GUIDs on the VFs nobody uses, then a rebind of those that stay on the kernel
    /// driver (mlx5 reads the GUIDs at probe).
    fn vf_guids(&mut self) {
        let mut rebind = Vec::new();
        for vf in 0..self.num_vfs {
            let Some(guid) = self.wanted_guid(vf) else {
                continue;
            };
            let m = &self.vfs[vf as usize];
            if (m.fresh || m.on_host) && m.guids != (Some(guid), Some(guid)) {
                self.push(Step::SetVfGuid { vf, guid });
                if self.vfs[vf as usize].driver == Driver::Kernel
                    && self.wanted_type(vf) == VfDeviceType::Netdevice
                {
                    rebind.push(vf);
                }
            }
        }
        if !rebind.is_empty() {
            self.push(Step::RebindVfs {
                vfs: set_of(rebind),
            });
        }
    }

    /// Binds every VF whose driver differs from its group's (kernel driver first).
    fn vf_bind(&mut self) {
        for t in [VfDeviceType::Netdevice, VfDeviceType::VfioPci] {
            let vfs: Vec<u32> = (0..self.num_vfs)
                .filter(|&vf| {
                    self.wanted_type(vf) == t && self.vfs[vf as usize].driver != Driver::from(t)
                })
                .collect();
            if !vfs.is_empty() {
                self.push(Step::BindVfs {
                    vfs: set_of(vfs),
                    device_type: t,
                });
            }
        }
    }

    /// VF MTUs of free netdevice VFs, one step per MTU value.
    fn vf_mtu(&mut self) {
        let mut by_mtu: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
        for vf in 0..self.num_vfs {
            let m = &self.vfs[vf as usize];
            if let Some(mtu) = self.wanted_mtu(vf)
                && m.driver == Driver::Kernel
                && (m.fresh || m.on_host)
                && m.mtu != Some(mtu)
            {
                by_mtu.entry(mtu).or_default().push(vf);
            }
        }
        for (mtu, vfs) in by_mtu {
            self.push(Step::VfMtu {
                vfs: set_of(vfs),
                mtu,
            });
        }
    }

    fn has_representors(&self) -> bool {
        self.vfs.iter().all(|v| v.representor)
    }

    /// In switchdev already: representors and `hw-tc-offload` checked.
    fn switchdev_extras(&mut self) {
        if self.num_vfs > 0 && !self.has_representors() {
            self.push(Step::Representors {
                count: self.num_vfs,
            });
        }
        if self.hw_tc != Some(true) {
            self.push(Step::HwTcOffload { on: true });
        }
    }
}

/// Why the PF cannot be configured as asked, if it cannot.
pub(super) fn check(nic: &Nic, want: &InterfaceSpec) -> Option<PlanProblem> {
    let pf = pf_label(nic);
    let problem = |message: String| {
        Some(PlanProblem {
            pci_address: nic.pci_address.clone(),
            message,
        })
    };
    let fw_total = want.firmware.as_ref().and_then(|f| f.total_vfs);
    let vendor = Vendor::of(nic);
    let link_change = want
        .link_type
        .is_some_and(|l| nic.link_type.is_some_and(|h| h != l));
    if vendor != Vendor::Mlx5 && (fw_total.is_some_and(|t| t != nic.total_vfs) || link_change) {
        return problem(format!(
            "PF {pf}: firmware settings (totalVfs, link type) are supported on NVIDIA NICs only"
        ));
    }
    let allowed = fw_total.unwrap_or(nic.total_vfs);
    if want.num_vfs > allowed {
        return problem(format!(
            "PF {pf}: {} VFs asked, sriov_totalvfs allows {allowed}",
            want.num_vfs
        ));
    }
    if vendor == Vendor::Netdevsim
        && let Some(g) = want
            .vf_groups
            .iter()
            .find(|g| g.device_type == VfDeviceType::VfioPci || g.mtu.is_some())
    {
        return problem(format!(
            "PF {pf}: netdevsim VFs have no PCI function or netdev: VF group {} asks for {}",
            g.resource_name,
            if g.device_type == VfDeviceType::VfioPci {
                "vfio-pci"
            } else {
                "a VF MTU"
            }
        ));
    }
    if want.eswitch_mode == Some(EswitchMode::Switchdev) && nic.eswitch_mode.is_none() {
        return problem(format!("PF {pf} has no eswitch: switchdev is not possible"));
    }
    None
}

fn pf_label(nic: &Nic) -> String {
    match &nic.name {
        Some(n) => format!("{n} ({})", nic.pci_address),
        None => nic.pci_address.clone(),
    }
}

/// The steps that make `nic` match `want`, in its vendor's order.
pub(super) fn configure(nic: &Nic, want: &InterfaceSpec, facts: &PfFacts) -> Vec<Step> {
    let vendor = Vendor::of(nic);
    if vendor == Vendor::Mlx5 {
        let target = FirmwareTarget {
            total_vfs: want
                .firmware
                .as_ref()
                .and_then(|f| f.total_vfs)
                .filter(|&t| t != nic.total_vfs),
            link_type: want
                .link_type
                .filter(|&l| nic.link_type.is_some_and(|h| h != l)),
        };
        if target != FirmwareTarget::default() {
            // the rest is planned again after the reboot, against the new capacity
            return vec![Step::Firmware(target)];
        }
    }
    let mut m = Model::new(nic, want, facts);
    if let Some(pool) = &want.whole_pf {
        whole_pf_order(&mut m, pool.device_type);
        return m.steps;
    }
    match vendor {
        Vendor::Mlx5 | Vendor::Generic => mlx5_order(&mut m),
        Vendor::Ice => ice_order(&mut m),
        Vendor::Igb => igb_order(&mut m),
        Vendor::Netdevsim => netdevsim_order(&mut m),
    }
    m.steps
}

/// A PF offered whole: no VFs, the PF on its pool's driver, its MTU while its netdev is on the
/// host (a PF inside a pod has none here, and is left alone).
fn whole_pf_order(m: &mut Model<'_>, device_type: VfDeviceType) {
    m.vf_count();
    if m.pf_driver != Some(device_type) {
        m.push(Step::BindPf { device_type });
    }
    if device_type == VfDeviceType::Netdevice && m.nic.name.is_some() {
        m.pf_link();
    }
}

fn mlx5_order(m: &mut Model<'_>) {
    let want_mode = m.want.eswitch_mode;
    let n = m.want.num_vfs;
    if m.mode == Some(EswitchMode::Switchdev)
        && (m.num_vfs != n || want_mode == Some(EswitchMode::Legacy))
    {
        // mode changes need every VF unbound; a new VF count needs legacy first
        if m.num_vfs > 0 {
            m.push(Step::UnbindVfs {
                vfs: all(m.num_vfs),
            });
        }
        m.push(Step::EswitchMode {
            mode: EswitchMode::Legacy,
        });
    }
    m.vf_count();
    m.pf_link();
    m.vf_macs();
    if want_mode == Some(EswitchMode::Switchdev) && m.mode != Some(EswitchMode::Switchdev) {
        // every VF is unbound for the mode switch; binding each to its group's driver happens
        // once, at the rebind
        if n > 0 {
            m.push(Step::UnbindVfs { vfs: all(n) });
        }
        m.push(Step::EswitchMode {
            mode: EswitchMode::Switchdev,
        });
        if n > 0 {
            m.push(Step::Representors { count: n });
        }
        m.push(Step::HwTcOffload { on: true });
        m.vf_bind();
        // VFs found unbound (a resumed plan) show their MAC only now
        m.vf_macs();
    } else {
        m.vf_guids();
        m.vf_bind();
        m.vf_macs();
        if m.mode == Some(EswitchMode::Switchdev) {
            m.switchdev_extras();
        }
    }
    m.vf_mtu();
}

fn ice_order(m: &mut Model<'_>) {
    if let (Some(want), Some(have)) = (m.want.eswitch_mode, m.mode)
        && want != have
    {
        // ice changes the eswitch mode only without VFs
        if m.num_vfs > 0 {
            m.push(Step::SetNumVfs { count: 0 });
        }
        m.push(Step::EswitchMode { mode: want });
    }
    m.vf_count();
    if m.mode == Some(EswitchMode::Switchdev) {
        m.switchdev_extras();
    }
    m.pf_link();
    m.vf_macs();
    m.vf_bind();
    m.vf_macs();
    m.vf_mtu();
}

fn igb_order(m: &mut Model<'_>) {
    // igbvf asks the PF for its MAC and link once, at probe, over a mailbox that only an up PF
    // answers (and the emulated 82576 signals "PF reset done" once per PF start, consumed by the
    // first read of the VF's mailbox): new VFs get a driver only after the PF is up and their
    // MACs are set, so that their one probe sees both
    m.vf_count_unprobed();
    // an unbound VF is in no pod: free for its MAC (VFs a resumed plan created unprobed)
    m.vfs
        .iter_mut()
        .filter(|v| v.driver == Driver::Unbound)
        .for_each(|v| v.fresh = true);
    m.pf_link();
    // MACs before the binding: a VF the binding moves to vfio-pci is never free for a MAC again
    // (it may be in use), so a crash between the two would leave it without one for good
    let macs = m.vf_macs();
    let kernel_before: Vec<bool> = m.vfs.iter().map(|v| v.driver == Driver::Kernel).collect();
    m.vf_bind();
    // igbvf reads the MAC the PF gave it at probe: rebind the VFs that got one on igbvf and stay
    // there (a VF the binding just moved to igbvf was probed after its MAC)
    let rebind: Vec<u32> = macs
        .into_iter()
        .filter(|&vf| {
            kernel_before[vf as usize]
                && m.vfs[vf as usize].driver == Driver::Kernel
                && m.wanted_type(vf) == VfDeviceType::Netdevice
        })
        .collect();
    if !rebind.is_empty() {
        m.push(Step::RebindVfs {
            vfs: set_of(rebind),
        });
    }
    m.vf_mtu();
}

fn netdevsim_order(m: &mut Model<'_>) {
    let want_mode = m.want.eswitch_mode;
    let n = m.want.num_vfs;
    // a netdevsim VF has no netdev and can be in no pod: always free for its MAC
    m.vfs.iter_mut().for_each(|v| v.on_host = true);
    if m.mode == Some(EswitchMode::Switchdev)
        && (m.num_vfs != n || want_mode == Some(EswitchMode::Legacy))
    {
        m.push(Step::EswitchMode {
            mode: EswitchMode::Legacy,
        });
    }
    if m.num_vfs != n {
        if m.num_vfs > 0 {
            m.push(Step::SetNumVfs { count: 0 });
        }
        if n > 0 {
            // no WaitVfs: there is no VF driver or netdev to wait for
            m.push(Step::SetNumVfs { count: n });
        }
    }
    m.pf_link();
    m.vf_macs();
    if want_mode == Some(EswitchMode::Switchdev) && m.mode != Some(EswitchMode::Switchdev) {
        m.push(Step::EswitchMode {
            mode: EswitchMode::Switchdev,
        });
        if n > 0 {
            m.push(Step::Representors { count: n });
        }
        m.push(Step::HwTcOffload { on: true });
    } else if m.mode == Some(EswitchMode::Switchdev) {
        m.switchdev_extras();
    }
}

/// A PF released by the spec: 0 VFs, then legacy; a PF that was offered whole on vfio-pci goes
/// back to its kernel driver.
pub(super) fn reset(nic: &Nic, was: &InterfaceSpec) -> Vec<Step> {
    let mut steps = Vec::new();
    if was.whole_pf.is_some() && nic.driver.as_deref() == Some(VFIO_PCI) {
        steps.push(Step::BindPf {
            device_type: VfDeviceType::Netdevice,
        });
    }
    if nic.num_vfs > 0 {
        steps.push(Step::SetNumVfs { count: 0 });
    }
    if nic.eswitch_mode == Some(EswitchMode::Switchdev) {
        steps.push(Step::EswitchMode {
            mode: EswitchMode::Legacy,
        });
    }
    steps
}

/// Checks of an externally managed PF: enough VFs, the eswitch mode.
pub(super) fn validate_external(nic: &Nic, want: &InterfaceSpec) -> Vec<PlanProblem> {
    let pf = pf_label(nic);
    let mut out = Vec::new();
    if nic.num_vfs < want.num_vfs {
        out.push(PlanProblem {
            pci_address: nic.pci_address.clone(),
            message: format!(
                "externally managed PF {pf} has {} VFs, the spec needs {}; the agent does not create them",
                nic.num_vfs, want.num_vfs
            ),
        });
    }
    if let Some(m) = want.eswitch_mode
        && nic.eswitch_mode != Some(m)
    {
        out.push(PlanProblem {
            pci_address: nic.pci_address.clone(),
            message: format!(
                "externally managed PF {pf} is in eswitch mode {}, the spec needs {}; the agent does not change it",
                nic.eswitch_mode.map_or("none".to_owned(), |h| wire(&h)),
                wire(&m)
            ),
        });
    }
    out
}

/// Whether the step resets the PF netdev itself (macvlan/ipvlan children lose their parent).
pub(super) fn touches_pf(step: &Step) -> bool {
    matches!(
        step,
        Step::Firmware(_)
            | Step::EswitchMode { .. }
            | Step::SetNumVfs { .. }
            | Step::SetNumVfsUnprobed { .. }
    )
}
