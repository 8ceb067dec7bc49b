//! The commands, as functions of a [`Host`], a [`Switch`] (mode ovs), the [`Store`] and one
//! request's configuration and environment. Nothing here reads the process environment or stdin.

mod devinfo;
mod ib;
mod ovs;
mod rdma;
mod whole_pf;

use std::path::Path;

use crds::link::{NetworkMode, VfLinkState as ConfLinkState, VlanProto as ConfVlanProto};
use nic::netlink::{MacAddr, VfInfo, VfLinkState, VfSetting, VlanProto};
use serde_json::Value;

use crate::{
    config::{Attachment, NetConf},
    env::{CniEnv, Command},
    error::{CniError, code},
    host::{Host, HostErrorKind, Ns, Paths, PodIfConfig, VfDevice, VirtKind},
    ipam::Ipam,
    lock::FileLock,
    result::{AddResult, Interface},
    store::{SavedVf, Step, Store},
    switch::{NoSwitch, Switch},
};

/// Key of our extension in an ADD result: how macvlan forwarding is done.
pub const RESULT_KEY_OFFLOAD: &str = "smartnic.io/macvlanForwarding";
/// Key of our extension in an ADD result of mode ovs: the attachment decision (veth or
/// representor, and why), the bridge port and its VNI.
pub const RESULT_KEY_OVS: &str = "smartnic.io/ovs";

/// An ADD's result and our extension key, if any.
type ModeResult = (AddResult, Option<(&'static str, Value)>);

/// How long a DEL waits for a VF netdev to come back from a destroyed pod namespace.
const NETDEV_RETURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One plugin instance.
pub struct Plugin<H, S = NoSwitch> {
    /// The machine.
    pub host: H,
    /// Open vSwitch (mode ovs).
    pub switch: S,
    /// The state directory.
    pub store: Store,
    /// Other paths.
    pub paths: Paths,
}

fn netns_of(env: &CniEnv) -> Result<&Path, CniError> {
    env.netns.as_deref().ok_or_else(|| {
        CniError::new(
            code::INVALID_ENV,
            "CNI_NETNS is required for this CNI_COMMAND",
        )
    })
}

fn proto(p: Option<ConfVlanProto>) -> VlanProto {
    match p {
        Some(ConfVlanProto::Dot1Ad) => VlanProto::Dot1Ad,
        _ => VlanProto::Dot1Q,
    }
}

fn link_state(s: ConfLinkState) -> VfLinkState {
    match s {
        ConfLinkState::Auto => VfLinkState::Auto,
        ConfLinkState::Enable => VfLinkState::Enable,
        ConfLinkState::Disable => VfLinkState::Disable,
    }
}

/// The VF settings a configuration asks for, in the order they are applied. Mode ovs sets only
/// the MAC through the PF: its `vlan` is the port's access tag on the bridge.
pub fn vf_settings(conf: &NetConf) -> Vec<VfSetting> {
    let c = &conf.conf;
    if c.mode == NetworkMode::Ovs {
        return conf.mac.map(VfSetting::Mac).into_iter().collect();
    }
    if c.mode == NetworkMode::Ib {
        // node GUID first, then port GUID (the order `ip link` sends them); then the link state
        let mut out: Vec<VfSetting> = conf
            .ib_guid
            .into_iter()
            .flat_map(|g| [VfSetting::IbNodeGuid(g), VfSetting::IbPortGuid(g)])
            .collect();
        out.extend(c.link_state.map(|s| VfSetting::LinkState(link_state(s))));
        return out;
    }
    let mut out = Vec::new();
    if let Some(vlan) = c.vlan {
        out.push(VfSetting::Vlan {
            vlan,
            qos: c.vlan_qos.unwrap_or(0),
            proto: proto(c.vlan_proto),
        });
    }
    if let Some(mac) = conf.mac {
        out.push(VfSetting::Mac(mac));
    }
    if let Some(v) = c.max_tx_rate {
        out.push(VfSetting::MaxTxRate(v));
    }
    if let Some(v) = c.min_tx_rate {
        out.push(VfSetting::MinTxRate(v));
    }
    if let Some(v) = c.spoof_chk {
        out.push(VfSetting::SpoofCheck(v));
    }
    if let Some(v) = c.trust {
        out.push(VfSetting::Trust(v));
    }
    if let Some(s) = c.link_state {
        out.push(VfSetting::LinkState(link_state(s)));
    }
    out
}

/// Whether a P_Key table holds `pkey`'s partition with the membership it asks for: a full-member
/// key (top bit set) needs a full-member entry; a limited one accepts either.
pub fn pkey_admits(table: &[u16], pkey: u16) -> bool {
    let partition = pkey & !crds::PKEY_FULL_MEMBER;
    let full = pkey & crds::PKEY_FULL_MEMBER != 0;
    table.iter().any(|&k| {
        k & !crds::PKEY_FULL_MEMBER == partition && (!full || k & crds::PKEY_FULL_MEMBER != 0)
    })
}

/// The settings that put back what `settings` changed, from the saved row.
fn restore_settings(saved: &SavedVf, changed: &[VfSetting]) -> Vec<VfSetting> {
    let mut out = Vec::new();
    for s in changed {
        match s {
            VfSetting::Vlan { .. } => out.push(VfSetting::Vlan {
                vlan: saved.vlan.unwrap_or(0),
                qos: saved.qos.unwrap_or(0),
                proto: saved
                    .vlan_proto
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_default(),
            }),
            VfSetting::Mac(_) => {
                if let Some(m) = saved.mac.as_deref().and_then(|m| m.parse().ok()) {
                    out.push(VfSetting::Mac(m));
                }
            }
            VfSetting::MaxTxRate(_) => {
                out.push(VfSetting::MaxTxRate(saved.max_tx_rate.unwrap_or(0)))
            }
            VfSetting::MinTxRate(_) => {
                out.push(VfSetting::MinTxRate(saved.min_tx_rate.unwrap_or(0)))
            }
            VfSetting::SpoofCheck(_) => {
                if let Some(v) = saved.spoofchk {
                    out.push(VfSetting::SpoofCheck(v));
                }
            }
            VfSetting::Trust(_) => {
                if let Some(v) = saved.trust {
                    out.push(VfSetting::Trust(v));
                }
            }
            VfSetting::LinkState(_) => {
                if let Some(v) = saved.link_state.as_deref().and_then(|s| s.parse().ok()) {
                    out.push(VfSetting::LinkState(v));
                }
            }
            // a GUID the PF did not report is left as the pod had it: there is none to go back to
            VfSetting::IbNodeGuid(_) => {
                if let Some(g) = saved.node_guid.as_deref().and_then(|g| g.parse().ok()) {
                    out.push(VfSetting::IbNodeGuid(g));
                }
            }
            VfSetting::IbPortGuid(_) => {
                if let Some(g) = saved.port_guid.as_deref().and_then(|g| g.parse().ok()) {
                    out.push(VfSetting::IbPortGuid(g));
                }
            }
        }
    }
    // Rates go back min first, so that a lowered max never falls below a still-raised min.
    out.sort_by_key(|s| matches!(s, VfSetting::MaxTxRate(_)));
    out
}

fn saved_from(row: &VfInfo) -> SavedVf {
    SavedVf {
        mac: row.mac.map(|m| m.to_string()),
        vlan: row.vlan,
        qos: row.qos,
        vlan_proto: row.vlan_proto.map(|p| p.to_string()),
        spoofchk: row.spoofchk,
        trust: row.trust,
        min_tx_rate: row.min_tx_rate,
        max_tx_rate: row.max_tx_rate,
        link_state: row.link_state.map(|s| s.to_string()),
        node_guid: row.node_guid.map(|g| g.to_string()),
        port_guid: row.port_guid.map(|g| g.to_string()),
        ..SavedVf::default()
    }
}

/// The IPAM step: journaled before it runs, so that a DEL after a crash at any point frees
/// whatever it may have allocated. An IPAM that answers nothing gives an empty result.
fn journaled_ipam(
    ipam: &Ipam,
    journal: &mut crate::store::Journal,
    conf: &NetConf,
    env: &CniEnv,
) -> Result<AddResult, CniError> {
    journal.record(&Step::Ipam {
        kind: ipam.kind().into(),
    })?;
    Ok(ipam.add(conf, env)?.unwrap_or_default())
}

/// An "exists" answer to a create or move into the pod: the name belongs to something else, so
/// the journal says so (undo must not remove it) and the error says which name.
fn name_taken(
    e: crate::host::HostError,
    journal: &mut crate::store::Journal,
    ifname: &str,
    netns: &Path,
) -> CniError {
    if e.kind != HostErrorKind::Exists {
        return e.into();
    }
    if let Err(j) = journal.record(&Step::NameTaken) {
        return j;
    }
    CniError::new(
        code::HOST,
        format!("interface {ifname} already exists in {}", netns.display()),
    )
}

/// What a journal says happened.
#[derive(Debug, Default)]
struct Replay {
    network: Option<String>,
    netns: Option<String>,
    conf: Option<Value>,
    vf: Option<(String, String, u32)>,
    /// A whole PF, by address.
    pf: Option<String>,
    saved: Option<SavedVf>,
    configured: bool,
    /// The RDMA device moved into the pod with the VF.
    rdma: Option<String>,
    /// Mode ib: the VF was (maybe) rebound to this driver after its GUID was set.
    rebind: Option<String>,
    moved: bool,
    created: Option<String>,
    /// Mode ovs: (bridge, port, veth).
    ovs_port: Option<(String, String, bool)>,
    /// The device-info file the ADD wrote (or was about to).
    devinfo: Option<String>,
    done: Option<AddResult>,
}

fn replay(steps: &[Step]) -> Replay {
    let mut r = Replay::default();
    for s in steps {
        match s {
            Step::Begin {
                network,
                netns,
                conf,
                ..
            } => {
                r.network = Some(network.clone());
                r.netns = Some(netns.clone());
                r.conf = Some(conf.clone());
            }
            Step::VfClaimed { bdf, pf, vf } => r.vf = Some((bdf.clone(), pf.clone(), *vf)),
            Step::PfClaimed { bdf } => r.pf = Some(bdf.clone()),
            Step::VfSaved { saved } => r.saved = Some(saved.clone()),
            Step::VfConfigure => r.configured = true,
            Step::RdmaMove { device } => r.rdma = Some(device.clone()),
            Step::VfRebind { driver } => r.rebind = Some(driver.clone()),
            Step::VfMove => r.moved = true,
            Step::LinkCreate { name } => r.created = Some(name.clone()),
            Step::OvsPort { bridge, port, veth } => {
                r.ovs_port = Some((bridge.clone(), port.clone(), *veth));
            }
            Step::NameTaken => {
                r.created = None;
                r.moved = false;
            }
            Step::DeviceInfo { path } => r.devinfo = Some(path.clone()),
            Step::Ipam { .. } | Step::Addresses | Step::VfBind => {}
            Step::Done { result } => r.done = Some(result.clone()),
        }
    }
    r
}

impl<H: Host, S: Switch> Plugin<H, S> {
    /// Runs one command; the JSON to print on success (nothing for DEL, STATUS, GC).
    pub fn run(&self, conf: &NetConf, env: &CniEnv) -> Result<Option<Value>, CniError> {
        match env.command {
            Command::Add => self.add(conf, env).map(Some),
            Command::Del => self.del(conf, env).map(|()| None),
            Command::Check => self.check(conf, env).map(|()| None),
            Command::Status => self.status(conf, env).map(|()| None),
            Command::Gc => self.gc(conf, env).map(|()| None),
            Command::Version => Ok(Some(crate::version::version_answer(&conf.conf.cni_version))),
        }
    }

    /// ADD.
    pub fn add(&self, conf: &NetConf, env: &CniEnv) -> Result<Value, CniError> {
        let netns = netns_of(env)?;
        if !self.host.netns_exists(netns) {
            return Err(CniError::new(
                code::INVALID_NETNS,
                format!("network namespace {} does not exist", netns.display()),
            ));
        }
        // A journal left by an ADD that crashed and was not followed by a DEL: undo it first, so
        // that the VF state saved below is the original one and not the half-configured one.
        if self.store.read(&env.container_id, &env.ifname)?.is_some() {
            self.undo(&env.container_id, &env.ifname, Some(conf), env)?;
        }
        let ipam = Ipam::from_conf(conf, env)?;
        // read before the VF moves: its RDMA device is in the host until then
        let devinfo = self.devinfo_planned(conf);
        let mut journal = self.store.begin(&env.container_id, &env.ifname)?;
        journal.record(&Step::Begin {
            network: conf.conf.name.clone(),
            mode: conf.conf.mode.as_str().into(),
            netns: netns.display().to_string(),
            conf: Value::Object(conf.raw.clone()),
            pod: env.pod(),
        })?;
        let outcome = match conf.conf.mode {
            NetworkMode::Sriov | NetworkMode::Ib => {
                self.sriov_add(conf, env, netns, &ipam, &mut journal)
            }
            NetworkMode::Macvlan | NetworkMode::Ipvlan => {
                self.virt_add(conf, env, netns, &ipam, &mut journal)
            }
            NetworkMode::Ovs => self.ovs_add(conf, env, netns, &ipam, &mut journal),
        };
        match outcome {
            Ok((result, extra)) => {
                if let Some((path, info)) = &devinfo {
                    self.devinfo_write(path, info, &mut journal)?;
                }
                journal.record(&Step::Done {
                    result: result.clone(),
                })?;
                let mut json = result.to_json(conf.version);
                if let (Some((key, extra)), Some(obj)) = (extra, json.as_object_mut()) {
                    obj.insert(key.into(), extra);
                }
                Ok(json)
            }
            Err(e) => {
                tracing::warn!(container = %env.container_id, ifname = %env.ifname, error = %e.msg, "ADD failed; undoing");
                if let Err(undo) = self.undo(&env.container_id, &env.ifname, Some(conf), env) {
                    tracing::warn!(error = %undo.msg, "undo after a failed ADD left something behind");
                }
                Err(e)
            }
        }
    }

    /// Records this attachment as the owner of the function at `bdf` (a VF, or a whole PF),
    /// taking it back first from an attachment whose pod is gone.
    fn claim_vf(&self, bdf: &nic::pci::PciAddress, env: &CniEnv) -> Result<(), CniError> {
        if let Some((oid, oif)) = self.store.vf_owner(bdf)? {
            if (oid.as_str(), oif.as_str()) == (env.container_id.as_str(), env.ifname.as_str()) {
                return Ok(());
            }
            let live = self
                .store
                .read(&oid, &oif)?
                .map(|s| replay(&s))
                .and_then(|r| r.netns)
                .is_some_and(|ns| self.host.netns_exists(Path::new(&ns)));
            if live {
                return Err(CniError::new(
                    code::DEVICE_BUSY,
                    format!("VF {bdf} is held by container {oid} (interface {oif})"),
                ));
            }
            // Its pod is gone without a DEL: give the VF back first, then take it.
            tracing::warn!(vf = %bdf, container = %oid, "reclaiming a VF whose pod is gone (missed DEL)");
            self.undo_locked(&oid, &oif, None, env, true)?;
        }
        self.store.set_vf_owner(bdf, &env.container_id, &env.ifname)
    }

    /// Takes the VF at `bdf` for this attachment: its lock (held until the returned guard is
    /// dropped), its owner record, and its original state in the journal.
    fn take_vf(
        &self,
        bdf: &nic::pci::PciAddress,
        env: &CniEnv,
        journal: &mut crate::store::Journal,
    ) -> Result<(VfDevice, FileLock), CniError> {
        let dev = self.host.vf_device(bdf)?;
        let lock = self.store.lock_vf(bdf)?;
        journal.record(&Step::VfClaimed {
            bdf: bdf.to_string(),
            pf: dev.pf.clone(),
            vf: dev.index,
        })?;
        self.claim_vf(bdf, env)?;
        let dev = self.host.vf_device(bdf)?;
        let row = self.host.vf_row(&dev.pf, dev.index)?;
        let mut saved = saved_from(&row);
        if let Some(nd) = &dev.netdev {
            let link = self.host.link(Ns::Host, nd)?;
            saved.netdev = Some(nd.clone());
            saved.netdev_mac = link.as_ref().and_then(|l| l.mac).map(|m| m.to_string());
            saved.netdev_mtu = link.map(|l| l.mtu);
        }
        journal.record(&Step::VfSaved { saved })?;
        Ok((dev, lock))
    }

    fn sriov_add(
        &self,
        conf: &NetConf,
        env: &CniEnv,
        netns: &Path,
        ipam: &Ipam,
        journal: &mut crate::store::Journal,
    ) -> Result<ModeResult, CniError> {
        let bdf = conf.device_id.ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "key deviceID: mode sriov needs the VF's PCI address (deviceID, pciBusID or runtimeConfig.deviceID)",
            )
        })?;
        if let Some(pf) = self.host.whole_pf(&bdf)? {
            return self.pf_add(conf, env, netns, ipam, journal, pf);
        }
        let (dev, _lock) = self.take_vf(&bdf, env, journal)?;
        let mut new_guid = false;
        if conf.conf.mode == NetworkMode::Ib {
            self.ib_checks(conf, &dev)?;
            new_guid = self.ib_guid_changes(conf, &dev)?;
        }
        journal.record(&Step::VfConfigure)?;
        for s in vf_settings(conf) {
            self.host.set_vf(&dev.pf, dev.index, s)?;
        }
        // mlx5 reads a VF's GUIDs when the VF probes: rebind it, and carry on with its new netdev
        let dev = if new_guid {
            self.ib_rebind(dev, journal)?
        } else {
            dev
        };
        let mut iface = Interface {
            name: env.ifname.clone(),
            sandbox: Some(netns.display().to_string()),
            pci_id: Some(bdf.to_string()),
            ..Interface::default()
        };
        if dev.is_userspace() {
            // vfio-pci: the PF-side settings are all; the device node comes from the device plugin.
            let mut result = journaled_ipam(ipam, journal, conf, env)?;
            iface.mac = conf.mac.map(|m| m.to_string());
            result.interfaces = vec![iface];
            return Ok((result, None));
        }
        let netdev = dev.netdev.clone().ok_or_else(|| {
            CniError::new(
                code::HOST,
                format!(
                    "VF {bdf} has no netdev in the host and is not bound to a userspace driver"
                ),
            )
        })?;
        self.rdma_add(&dev, netns, journal)?;
        journal.record(&Step::VfMove)?;
        self.host
            .move_to_pod(&netdev, netns, &env.ifname)
            .map_err(|e| name_taken(e, journal, &env.ifname, netns))?;
        let ipam_result = journaled_ipam(ipam, journal, conf, env)?;
        journal.record(&Step::Addresses)?;
        self.finish_pod_if(env, netns, ipam_result, iface, conf.conf.mtu, conf.mac)
            .map(|r| (r, None))
    }

    /// Mode ib, before the VF is touched: the GUID the pod gets (its runtime config's, else the
    /// VF's own port GUID) must be assignable, and the VF must be in the network's partition.
    fn ib_checks(&self, conf: &NetConf, dev: &VfDevice) -> Result<(), CniError> {
        if conf.ib_guid.is_none() {
            let row = self.host.vf_row(&dev.pf, dev.index)?;
            crate::config::assignable_guid(
                row.port_guid.unwrap_or_default(),
                &format!("the port GUID of VF {} of {}", dev.index, dev.pf),
            )?;
        }
        if let Some(pkey) = conf.conf.pkey {
            let table = self.host.vf_pkeys(&dev.bdf)?;
            if !pkey_admits(&table, pkey) {
                return Err(CniError::new(
                    code::HOST,
                    format!(
                        "VF {} is not a {} member of partition {:#06x} (its P_Key table: {}); the subnet manager must add the VF's GUID to the partition",
                        dev.bdf,
                        if pkey & crds::PKEY_FULL_MEMBER != 0 {
                            "full"
                        } else {
                            "limited or full"
                        },
                        pkey & !crds::PKEY_FULL_MEMBER,
                        if table.is_empty() {
                            "empty or unreadable".to_owned()
                        } else {
                            table
                                .iter()
                                .map(|k| format!("{k:#06x}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    fn finish_pod_if(
        &self,
        env: &CniEnv,
        netns: &Path,
        mut result: AddResult,
        mut iface: Interface,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> Result<AddResult, CniError> {
        let pod_conf = PodIfConfig {
            mtu,
            mac,
            addresses: result.ips.iter().map(|i| i.address).collect(),
            routes: result.routes.clone(),
            gateways: result.ips.iter().filter_map(|i| i.gateway).collect(),
        };
        let link = self.host.configure(netns, &env.ifname, &pod_conf)?;
        iface.mac = link.mac.map(|m| m.to_string());
        iface.mtu = Some(link.mtu);
        result.interfaces = vec![iface];
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        Ok(result)
    }

    fn virt_add(
        &self,
        conf: &NetConf,
        env: &CniEnv,
        netns: &Path,
        ipam: &Ipam,
        journal: &mut crate::store::Journal,
    ) -> Result<ModeResult, CniError> {
        let c = &conf.conf;
        let master_name = c.master.clone().unwrap_or_default();
        let Some(master) = self.host.link(Ns::Host, &master_name)? else {
            return Err(CniError::new(
                code::HOST,
                format!("master interface {master_name} not found in the host"),
            ));
        };
        let (kind, forwarding) = if c.mode == NetworkMode::Macvlan {
            // A master with a link kind (veth, bond, vlan, bridge, ...) is a software device:
            // only NIC drivers offer l2-fwd-offload, so there is nothing to ask ethtool.
            let on = master.kind.is_none()
                && match self.host.l2_fwd_offload(&master_name) {
                    Ok(on) => on,
                    Err(e) => {
                        tracing::debug!(master = %master_name, error = %e.msg, "l2-fwd-offload unavailable");
                        false
                    }
                };
            let how = if on { "l2-fwd-offload" } else { "software" };
            tracing::info!(master = %master_name, forwarding = how, "macvlan forwarding");
            (
                VirtKind::Macvlan(
                    c.macvlan_mode.unwrap_or_default(),
                    // Checked when the configuration was read.
                    c.macvlan_source_macs
                        .iter()
                        .filter_map(|m| m.parse().ok())
                        .collect(),
                ),
                Some(how),
            )
        } else {
            (VirtKind::Ipvlan(c.ipvlan_mode.unwrap_or_default()), None)
        };
        journal.record(&Step::LinkCreate {
            name: env.ifname.clone(),
        })?;
        let mac = if c.mode == NetworkMode::Macvlan {
            conf.mac
        } else {
            None
        };
        self.host
            .create_child(&master, &kind, netns, &env.ifname, c.mtu, mac)
            .map_err(|e| {
                if e.kind == HostErrorKind::Exists {
                    return name_taken(e, journal, &env.ifname, netns);
                }
                let said = format!("no {} support", c.mode.as_str());
                if e.kind == HostErrorKind::Unsupported && !e.msg.contains(&said) {
                    CniError::new(
                        code::HOST,
                        format!("{}: this kernel has no {} support", e.msg, c.mode.as_str()),
                    )
                } else {
                    e.into()
                }
            })?;
        let ipam_result = journaled_ipam(ipam, journal, conf, env)?;
        journal.record(&Step::Addresses)?;
        let iface = Interface {
            name: env.ifname.clone(),
            sandbox: Some(netns.display().to_string()),
            ..Interface::default()
        };
        // MAC and MTU were set at creation.
        self.finish_pod_if(env, netns, ipam_result, iface, None, None)
            .map(|r| (r, forwarding.map(|f| (RESULT_KEY_OFFLOAD, Value::from(f)))))
    }

    /// DEL: undoes what the journal of `CNI_CONTAINERID`/`CNI_IFNAME` says happened, frees the
    /// addresses, and succeeds when everything is already gone.
    pub fn del(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        self.undo(&env.container_id, &env.ifname, Some(conf), env)
    }

    fn undo(
        &self,
        id: &str,
        ifname: &str,
        conf: Option<&NetConf>,
        env: &CniEnv,
    ) -> Result<(), CniError> {
        self.undo_locked(id, ifname, conf, env, false)
    }

    /// Undoes one attachment. `vf_locked`: the caller holds the VF lock already.
    fn undo_locked(
        &self,
        id: &str,
        ifname: &str,
        conf: Option<&NetConf>,
        env: &CniEnv,
        vf_locked: bool,
    ) -> Result<(), CniError> {
        // A journal that cannot be read at all: undo what the request still says (IPAM), report
        // it, and remove it, rather than failing this DEL and every retry.
        let steps = match self.store.read(id, ifname) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e.msg, "DEL: the journal cannot be read; undoing what the request says");
                Vec::new()
            }
        };
        let r = replay(&steps);
        // The configuration of the ADD, when the journal has it; else the request's own.
        let add_conf = r
            .conf
            .as_ref()
            .and_then(|c| NetConf::parse(c.to_string().as_bytes(), env).ok());
        let conf_for_undo = add_conf.as_ref().or(conf);
        let netns = r.netns.as_deref().map(Path::new).or(env.netns.as_deref());
        let attach_env = CniEnv {
            container_id: id.into(),
            ifname: ifname.into(),
            netns: netns.map(Path::to_path_buf),
            ..env.clone()
        };
        let mut first_err: Option<CniError> = None;
        let mut keep = |res: Result<(), CniError>| {
            if let Err(e) = res {
                tracing::warn!(error = %e.msg, "DEL step failed");
                first_err.get_or_insert(e);
            }
        };
        // Interfaces first, so the addresses are off the wire before they are handed out again.
        // The bridge port before the VF, so the representor leaves the bridge before its VF
        // goes back.
        if let Some((bridge, port, veth)) = &r.ovs_port {
            keep(self.switch.detach(bridge, port).map_err(Into::into));
            // A veth made before a crash that kept it off the bridge.
            if *veth {
                keep(
                    self.host
                        .delete_link(Ns::Host, port)
                        .map(|_| ())
                        .map_err(Into::into),
                );
            }
        }
        if let Some(name) = &r.created
            && let Some(ns) = netns
        {
            keep(
                self.host
                    .delete_link(Ns::Pod(ns), name)
                    .map(|_| ())
                    .map_err(Into::into),
            );
        }
        if let Some(bdf) = &r.pf {
            keep(self.release_pf(id, ifname, bdf, &r, conf_for_undo, netns, vf_locked));
        }
        if let Some((bdf, pf, vf)) = &r.vf {
            keep(self.release_vf(
                id,
                ifname,
                bdf,
                pf,
                *vf,
                &r,
                conf_for_undo,
                netns,
                vf_locked,
            ));
        }
        if let (Some(path), Some(bdf)) = (&r.devinfo, r.vf.as_ref().map(|v| &v.0).or(r.pf.as_ref()))
        {
            self.devinfo_remove(Path::new(path), bdf);
        }
        if let Some(c) = conf_for_undo {
            // Always, journal or not: IPAM DEL is idempotent, and the spec wants DEL forwarded
            // to a delegate even when we do not know how far its ADD got.
            keep(Ipam::from_conf(c, &attach_env).and_then(|ipam| ipam.del(c, &attach_env)));
        }
        match first_err {
            Some(e) => Err(e),
            None => self.store.forget(id, ifname),
        }
    }

    /// Puts a VF netdev's name, MAC and MTU back. A MAC the VF driver refuses is left as it is,
    /// with a warning: the PF holds an administrative MAC for the VF (igbvf, iavf answer
    /// EADDRNOTAVAIL), and that one is restored through the PF right after.
    fn reset_vf_netdev(
        &self,
        ns: Ns<'_>,
        name: &str,
        rename: Option<&str>,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> Result<(), CniError> {
        match self.host.reset_link(ns, name, rename, mac, mtu) {
            Err(e) if mac.is_some() => {
                tracing::warn!(link = name, %ns, error = %e.msg, "VF netdev MAC not restored");
                Ok(self.host.reset_link(ns, name, rename, None, mtu)?)
            }
            other => Ok(other?),
        }
    }

    /// The VF after its pod's namespace was destroyed, once its netdev is back in the host.
    ///
    // Destroying a netns hands its physical devices back to the initial namespace from the
    // kernel's cleanup_net workqueue (net/core/dev.c, default_device_exit_net), some time after
    // `ip netns del` or the runtime's unmount has returned. A DEL that looked only once would
    // miss the netdev, leave it named like the pod's interface, and forget the VF.
    fn vf_back_from_gone_netns(
        &self,
        addr: &nic::pci::PciAddress,
        netns: Option<&Path>,
    ) -> Result<VfDevice, CniError> {
        self.back_from_gone_netns(addr, netns, || {
            let dev = self.host.vf_device(addr)?;
            // No driver, or a userspace one: there is no netdev to wait for.
            let settled = dev.netdev.is_some() || dev.driver.is_none() || dev.is_userspace();
            Ok(settled.then_some(dev))
        })
    }

    /// Polls `look` (which answers once the function's netdev is back, or there is none to
    /// wait for) until it answers or [`NETDEV_RETURN_WAIT`] has passed.
    fn back_from_gone_netns<T>(
        &self,
        addr: &nic::pci::PciAddress,
        netns: Option<&Path>,
        look: impl Fn() -> Result<Option<T>, CniError>,
    ) -> Result<T, CniError> {
        let deadline = std::time::Instant::now() + NETDEV_RETURN_WAIT;
        loop {
            if let Some(found) = look()? {
                return Ok(found);
            }
            if std::time::Instant::now() >= deadline {
                return Err(CniError::new(
                    code::TRY_AGAIN,
                    format!(
                        "{addr}: its netdev has not come back to the host from the deleted netns {} \
                         within {}s; the device stays reserved, DEL again",
                        netns.map(|p| p.display().to_string()).unwrap_or_default(),
                        NETDEV_RETURN_WAIT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The device a journal names (a VF or a whole PF), locked unless the caller holds its lock,
    /// when this attachment still holds it; `None` when another attachment (or nobody) holds it
    /// now: a late DEL must not touch it.
    pub(super) fn held_for_release(
        &self,
        id: &str,
        ifname: &str,
        bdf: &str,
        locked: bool,
    ) -> Result<Option<(nic::pci::PciAddress, Option<FileLock>)>, CniError> {
        let addr = crate::validate::device_id(bdf, "journal")?;
        let lock = if locked {
            None
        } else {
            Some(self.store.lock_vf(&addr)?)
        };
        Ok(match self.store.vf_owner(&addr)? {
            Some((oid, oif)) if oid == id && oif == ifname => Some((addr, lock)),
            _ => None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn release_vf(
        &self,
        id: &str,
        ifname: &str,
        bdf: &str,
        pf: &str,
        vf: u32,
        r: &Replay,
        conf: Option<&NetConf>,
        netns: Option<&Path>,
        vf_locked: bool,
    ) -> Result<(), CniError> {
        let Some((addr, _lock)) = self.held_for_release(id, ifname, bdf, vf_locked)? else {
            return Ok(());
        };
        let saved = r.saved.clone().unwrap_or_default();
        if let Some(device) = &r.rdma {
            self.rdma_release(device, netns)?;
        }
        if r.moved {
            self.netdev_home(ifname, &saved, conf, netns, |ns_alive| {
                let dev = if ns_alive {
                    self.host.vf_device(&addr)?
                } else {
                    self.vf_back_from_gone_netns(&addr, netns)?
                };
                Ok(dev.netdev)
            })?;
        }
        if r.configured {
            let changed = conf.map(vf_settings).unwrap_or_default();
            for s in restore_settings(&saved, &changed) {
                self.host.set_vf(pf, vf, s)?;
            }
        }
        if let Some(driver) = &r.rebind {
            self.ib_rebind_release(&addr, driver, &saved)?;
        }
        self.store.clear_vf_owner(&addr)
    }

    /// Puts a netdev moved into a pod back into the host under its saved name, MAC and MTU.
    /// `current(ns_alive)` finds its host name when it is no longer in the pod (the pod's
    /// namespace was destroyed, and the kernel gave the netdev back under its pod name).
    fn netdev_home(
        &self,
        ifname: &str,
        saved: &SavedVf,
        conf: Option<&NetConf>,
        netns: Option<&Path>,
        current: impl Fn(bool) -> Result<Option<String>, CniError>,
    ) -> Result<(), CniError> {
        let host_name = saved.netdev.clone().unwrap_or_else(|| ifname.to_string());
        // The netdev MAC is put back only when the ADD set one (or its config is lost):
        // otherwise the kernel may have changed it itself (a VF driver that takes the
        // administrative MAC at its next reset), and the old value is stale.
        let mac = saved
            .netdev_mac
            .as_deref()
            .and_then(|m| m.parse::<MacAddr>().ok())
            .filter(|_| conf.is_none_or(|c| c.mac.is_some()));
        let ns_alive = netns.is_some_and(|ns| self.host.netns_exists(ns));
        let in_pod = match netns {
            Some(ns) if ns_alive => self.host.link(Ns::Pod(ns), ifname)?.is_some(),
            _ => false,
        };
        if in_pod {
            let ns = netns.unwrap_or(Path::new("/"));
            self.reset_vf_netdev(Ns::Pod(ns), ifname, None, mac, saved.netdev_mtu)?;
            self.host.move_to_host(ns, ifname, &host_name)?;
        } else {
            // The pod's namespace is gone: the kernel gave the netdev back to the host
            // under its pod name; find it through sysfs and put its name back.
            if let Some(current) = current(ns_alive)? {
                let rename = (current != host_name).then_some(host_name.as_str());
                self.reset_vf_netdev(Ns::Host, &current, rename, mac, saved.netdev_mtu)?;
            }
        }
        Ok(())
    }

    /// CHECK: the interface, its addresses and routes, and the VF settings still match.
    pub fn check(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        if !conf.version.has_check() {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CHECK needs cniVersion 0.4.0 or later; the configuration has {}",
                    conf.version
                ),
            ));
        }
        let netns = netns_of(env)?;
        let prev = conf.prev_result.as_ref().ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "key prevResult: CHECK needs the ADD result",
            )
        })?;
        let steps = self.store.read(&env.container_id, &env.ifname)?;
        let r = steps.as_deref().map(replay).unwrap_or_default();
        if r.done.is_none() {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!(
                    "no completed attachment {}/{} is known here",
                    env.container_id, env.ifname
                ),
            ));
        }
        let fail = |msg: String| Err(CniError::new(code::HOST, msg));
        let vf_userspace = match (&r.vf, &r.pf, conf.device_id) {
            (Some(_), _, Some(bdf)) => self
                .host
                .vf_device(&bdf)
                .map(|d| d.is_userspace())
                .unwrap_or(false),
            (_, Some(_), Some(bdf)) => self
                .host
                .whole_pf(&bdf)
                .is_ok_and(|d| d.is_some_and(|d| d.is_userspace())),
            _ => false,
        };
        if !vf_userspace {
            let Some(link) = self.host.link(Ns::Pod(netns), &env.ifname)? else {
                return fail(format!(
                    "interface {} is missing from {}",
                    env.ifname,
                    netns.display()
                ));
            };
            let ours = prev.interfaces.iter().position(|i| {
                i.name == env.ifname && i.sandbox.as_deref() == Some(&*netns.to_string_lossy())
            });
            if let Some(i) = ours {
                if let Some(mac) = &prev.interfaces[i].mac {
                    let now = link.mac.map(|m| m.to_string()).unwrap_or_default();
                    if !now.eq_ignore_ascii_case(mac) {
                        return fail(format!(
                            "{}: MAC is {now}, the ADD result says {mac}",
                            env.ifname
                        ));
                    }
                }
                let addrs = self.host.addresses(Ns::Pod(netns), &env.ifname)?;
                for ip in prev.ips.iter().filter(|ip| ip.interface == Some(i)) {
                    if !addrs.contains(&ip.address) {
                        return fail(format!("{}: address {} is missing", env.ifname, ip.address));
                    }
                }
                let routes = self.host.routes(Ns::Pod(netns), &env.ifname)?;
                for route in &prev.routes {
                    if !routes.contains(&route.dst.canonical()) {
                        return fail(format!("{}: route to {} is missing", env.ifname, route.dst));
                    }
                }
            }
        }
        if let Some((_, pf, vf)) = &r.vf {
            let row = self.host.vf_row(pf, *vf)?;
            for s in vf_settings(conf) {
                let mut want = row.clone();
                s.apply_to(&mut want);
                // Compare only the field the setting is about.
                if want != row {
                    return fail(format!(
                        "VF {vf} of {pf}: {} differs from the configuration",
                        s.name()
                    ));
                }
            }
        }
        if let Some((bridge, port, _)) = &r.ovs_port {
            self.check_ovs_port(conf, bridge, port)?;
        }
        let ipam = Ipam::from_conf(conf, env)?;
        ipam.check(conf, env, prev)
    }

    /// STATUS: ready when the node's VFs are configured (for networks that use them), the master
    /// exists (macvlan, ipvlan) and a delegated IPAM says it is ready.
    pub fn status(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        if !conf.version.has_status_and_gc() {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "STATUS needs cniVersion 1.1.0 or later; the configuration has {}",
                    conf.version
                ),
            ));
        }
        let uses_vfs = conf.conf.mode == NetworkMode::Sriov || conf.conf.resource_name.is_some();
        if uses_vfs && !self.paths.ready_file.exists() {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!(
                    "the node's VFs are not configured yet ({} is absent)",
                    self.paths.ready_file.display()
                ),
            ));
        }
        if conf.conf.mode == NetworkMode::Ovs {
            let bridge = conf
                .conf
                .bridge
                .as_deref()
                .unwrap_or(crate::switch::DEFAULT_BRIDGE);
            let up = self
                .switch
                .bridge_exists(bridge)
                .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
            if !up {
                return Err(CniError::new(
                    code::NOT_AVAILABLE,
                    format!("OVS bridge {bridge} does not exist (yet)"),
                ));
            }
        }
        if let Some(master) = &conf.conf.master
            && self.host.link(Ns::Host, master)?.is_none()
        {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!("master interface {master} does not exist"),
            ));
        }
        Ipam::from_conf(conf, env)
            .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?
            .status(conf, env)
    }

    /// GC: undoes every attachment of this network that the runtime no longer lists, frees
    /// host-local leases of such attachments, and drops VF owner records without a journal.
    pub fn gc(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        if !conf.version.has_status_and_gc() {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "GC needs cniVersion 1.1.0 or later; the configuration has {}",
                    conf.version
                ),
            ));
        }
        let valid: Vec<Attachment> = conf.valid_attachments.clone().unwrap_or_default();
        let is_valid = |id: &str, ifname: &str| {
            valid
                .iter()
                .any(|a| a.container_id == id && a.ifname == ifname)
        };
        let mut first_err = None;
        for (id, ifname, steps) in self.store.attachments()? {
            let r = replay(&steps);
            if r.network.as_deref() != Some(conf.conf.name.as_str()) || is_valid(&id, &ifname) {
                continue;
            }
            tracing::info!(container = %id, ifname = %ifname, "GC: removing a stale attachment");
            if let Err(e) = self.undo(&id, &ifname, None, env) {
                first_err.get_or_insert(e);
            }
        }
        for (bdf, owner) in self.store.vf_owners()? {
            let Some((id, ifname)) = owner.split_once(':') else {
                continue;
            };
            if matches!(self.store.read(id, ifname), Ok(None))
                && let Ok(addr) = crate::validate::device_id(&bdf, "vf owner")
            {
                let _lock = self.store.lock_vf(&addr)?;
                if self
                    .store
                    .vf_owner(&addr)?
                    .is_some_and(|(a, b)| a == id && b == ifname)
                {
                    self.store.clear_vf_owner(&addr)?;
                }
            }
        }
        // Lock files of VFs nobody holds: removed under their own lock (see `lock`).
        for bdf in self.store.vf_locks() {
            let Ok(addr) = crate::validate::device_id(&bdf, "vf lock") else {
                continue;
            };
            let lock = self.store.lock_vf(&addr)?;
            if self.store.vf_owner(&addr)?.is_none() {
                lock.remove()
                    .map_err(|e| CniError::new(code::IO, format!("cannot remove {}: {e}", bdf)))?;
            }
        }
        if let Err(e) = Ipam::from_conf(conf, env).and_then(|i| i.gc(conf, env, &valid)) {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}
