//! An in-memory [`Host`] for tests (feature `test-util`): namespaces with links, addresses and
//! routes, PFs with VF tables, VFs with netdevs that move between namespaces. A removed pod
//! namespace gives its VF netdevs back to the host under their pod names and drops its virtual
//! links, as the kernel does.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use nic::{
    netlink::{MacAddr, VfInfo, VfSetting},
    pci::PciAddress,
};

use crate::{
    cidr::Cidr,
    host::{
        Host, HostError, HostErrorKind, HostResult, LinkState, Ns, PfDevice, PodIfConfig, VfDevice,
        VirtKind,
    },
};

const HOST: &str = "host";

/// One link in a fake namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeLink {
    /// Index.
    pub index: u32,
    /// MAC.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Admin up.
    pub up: bool,
    /// Kind.
    pub kind: Option<String>,
    /// Addresses.
    pub addrs: Vec<Cidr>,
    /// Route destinations.
    pub routes: Vec<Cidr>,
    /// The PCI function (a VF, or a whole PF) this netdev belongs to.
    pub vf: Option<PciAddress>,
}

#[derive(Debug, Default)]
struct State {
    ns: BTreeMap<String, BTreeMap<String, FakeLink>>,
    vfs: BTreeMap<PciAddress, (String, u32, String)>,
    /// PCI functions that are no VFs: (driver, VFs enabled).
    pfs: BTreeMap<PciAddress, (String, u32)>,
    rows: BTreeMap<(String, u32), VfInfo>,
    l2fwd: BTreeSet<String>,
    next_index: u32,
    no_ipvlan: bool,
    /// VF netdevs of a destroyed namespace not yet back in the host, with the number of
    /// `vf_device` looks left before they are.
    returning: Vec<(u32, String, FakeLink)>,
    /// MACs a VF netdev refuses (as a VF whose PF holds an administrative MAC does).
    refused_macs: BTreeSet<MacAddr>,
    /// veth pairs: host end → (pod namespace key, pod end).
    veths: BTreeMap<String, (String, String)>,
    /// P_Key tables of InfiniBand VFs.
    pkeys: BTreeMap<PciAddress, Vec<u16>>,
    /// RDMA devices: name → (the VF it belongs to, the namespace key it is in).
    rdma: BTreeMap<String, (PciAddress, String)>,
    /// The RDMA netns mode (`None`: no RDMA subsystem).
    rdma_mode: Option<nic::rdma::NetnsMode>,
    /// VFs unbound from their driver.
    unbound: BTreeSet<PciAddress>,
    /// VFs whose next binds make no netdev (a driver whose probe fails half-way), by count.
    netdev_less_binds: BTreeMap<PciAddress, u32>,
    /// GUID settings, unbinds, binds and moves into pods, in order.
    events: Vec<String>,
    /// PF netdev → its PCI address, where a test gave one.
    pf_bdfs: BTreeMap<String, PciAddress>,
}

/// The fake. Clones share one state.
#[derive(Clone, Debug, Default)]
pub struct FakeHost {
    state: Arc<Mutex<State>>,
}

fn key(ns: Ns<'_>) -> String {
    match ns {
        Ns::Host => HOST.into(),
        Ns::Pod(p) => p.display().to_string(),
    }
}

fn no_link(name: &str, ns: Ns<'_>) -> HostError {
    HostError::new(HostErrorKind::NoLink, format!("no link {name} in {ns}"))
}

impl FakeHost {
    /// An empty host namespace.
    pub fn new() -> Self {
        let fake = Self::default();
        fake.lock().ns.insert(HOST.into(), BTreeMap::new());
        fake.lock().next_index = 10;
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_link(
        st: &mut State,
        mac: MacAddr,
        kind: Option<&str>,
        vf: Option<PciAddress>,
    ) -> FakeLink {
        st.next_index += 1;
        FakeLink {
            index: st.next_index,
            mac,
            mtu: 1500,
            up: false,
            kind: kind.map(String::from),
            addrs: Vec::new(),
            routes: Vec::new(),
            vf,
        }
    }

    /// Adds a host link (a master).
    pub fn add_link(&self, name: &str, mac: MacAddr) {
        let mut st = self.lock();
        let link = Self::new_link(&mut st, mac, Some("veth"), None);
        st.ns
            .entry(HOST.into())
            .or_default()
            .insert(name.into(), link);
    }

    /// Adds a PF `pf` with VFs `0..vfs` at `0000:3b:02.<i>`-like addresses given by `bdf(i)`;
    /// each VF gets a host netdev `<pf>v<i>` with driver `driver`.
    pub fn add_pf(&self, pf: &str, vfs: u32, bdf: impl Fn(u32) -> PciAddress, driver: &str) {
        self.add_link(pf, MacAddr([2, 0, 0, 0, 0, 1]));
        let mut st = self.lock();
        for i in 0..vfs {
            let addr = bdf(i);
            st.vfs.insert(addr, (pf.into(), i, driver.into()));
            st.rows.insert((pf.into(), i), VfInfo::new_default(i));
            if driver != "vfio-pci" {
                let mac = MacAddr([2, 0xaa, 0, 0, (i >> 8) as u8, i as u8]);
                let link = Self::new_link(&mut st, mac, None, Some(addr));
                st.ns
                    .entry(HOST.into())
                    .or_default()
                    .insert(format!("{pf}v{i}"), link);
            }
        }
    }

    /// Makes the VFs of `pf` InfiniBand VFs: their rows report unset (absent) GUIDs and their
    /// ports the P_Key table `pkeys`.
    pub fn make_ib(&self, pf: &str, pkeys: &[u16]) {
        let mut st = self.lock();
        let vfs: Vec<PciAddress> = st
            .vfs
            .iter()
            .filter(|(_, (p, _, _))| p == pf)
            .map(|(a, _)| *a)
            .collect();
        for a in vfs {
            st.pkeys.insert(a, pkeys.to_vec());
        }
        for ((p, _), row) in st.rows.iter_mut() {
            if p == pf {
                row.mac = None;
                (row.node_guid, row.port_guid) = (None, None);
            }
        }
    }

    /// Adds a PF at `bdf` with no VFs, to be handed to pods whole: a host netdev `name` with
    /// driver `driver` (none for `vfio-pci`).
    pub fn add_whole_pf(&self, name: &str, bdf: PciAddress, driver: &str) {
        let mut st = self.lock();
        st.pfs.insert(bdf, (driver.into(), 0));
        if driver != "vfio-pci" {
            let link = Self::new_link(&mut st, MacAddr([2, 0xbb, 0, 0, 0, 1]), None, Some(bdf));
            st.ns
                .entry(HOST.into())
                .or_default()
                .insert(name.into(), link);
        }
    }

    /// Sets the number of VFs a whole PF reports.
    pub fn set_pf_num_vfs(&self, bdf: PciAddress, n: u32) {
        if let Some(p) = self.lock().pfs.get_mut(&bdf) {
            p.1 = n;
        }
    }

    /// Gives PF `pf` the PCI address `bdf` (its VFs' `physfn`).
    pub fn set_pf_bdf(&self, pf: &str, bdf: PciAddress) {
        self.lock().pf_bdfs.insert(pf.into(), bdf);
    }

    /// Creates an empty pod namespace at `path`.
    pub fn add_netns(&self, path: &Path) {
        self.lock()
            .ns
            .insert(path.display().to_string(), BTreeMap::new());
    }

    /// Gives VF `vf` an RDMA device `name` (in the host).
    pub fn add_rdma_device(&self, name: &str, vf: PciAddress) {
        self.lock().rdma.insert(name.into(), (vf, HOST.into()));
    }

    /// Sets the kernel's RDMA netns mode (`None`: no RDMA subsystem).
    pub fn set_rdma_mode(&self, mode: Option<nic::rdma::NetnsMode>) {
        self.lock().rdma_mode = mode;
    }

    /// Where RDMA device `name` is: `Ns::Host`'s key `"host"` or a pod namespace path.
    pub fn rdma_location(&self, name: &str) -> Option<String> {
        self.lock().rdma.get(name).map(|(_, ns)| ns.clone())
    }

    /// Deletes a pod namespace: VF netdevs go back to the host, virtual links disappear.
    pub fn remove_netns(&self, path: &Path) {
        self.remove_netns_late(path, 0);
    }

    /// Deletes a pod namespace as the kernel does, from a workqueue: the path is gone at once,
    /// its VF netdevs come back to the host only after `looks` more VF lookups.
    pub fn remove_netns_late(&self, path: &Path, looks: u32) {
        let mut st = self.lock();
        let Some(links) = st.ns.remove(&path.display().to_string()) else {
            return;
        };
        let key = path.display().to_string();
        // the kernel hands a destroyed namespace's RDMA devices back to the initial one
        for (_, ns) in st.rdma.values_mut() {
            if *ns == key {
                *ns = HOST.into();
            }
        }
        let gone: Vec<String> = st
            .veths
            .iter()
            .filter(|(_, (ns, _))| *ns == key)
            .map(|(h, _)| h.clone())
            .collect();
        for h in gone {
            st.veths.remove(&h);
            if let Some(l) = st.ns.get_mut(HOST) {
                l.remove(&h);
            }
        }
        for (name, mut link) in links {
            if link.vf.is_some() {
                link.up = false;
                link.addrs.clear();
                link.routes.clear();
                st.returning.push((looks, name, link));
            }
        }
        Self::return_netdevs(&mut st);
    }

    fn return_netdevs(st: &mut State) {
        let (back, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut st.returning)
            .into_iter()
            .partition(|(looks, _, _)| *looks == 0);
        st.returning = wait
            .into_iter()
            .map(|(looks, n, l)| (looks - 1, n, l))
            .collect();
        for (_, name, link) in back {
            st.ns.entry(HOST.into()).or_default().insert(name, link);
        }
    }

    /// Makes setting `mac` on a link fail, as a VF driver refuses a MAC other than the
    /// administrative one its PF holds.
    pub fn refuse_mac(&self, mac: MacAddr) {
        self.lock().refused_macs.insert(mac);
    }

    /// Creates a veth pair: `host` in the host, its peer in `pod` as `ifname` (up, with `mtu`).
    /// Deleting either end deletes both, and so does removing the pod's namespace.
    pub fn add_veth(
        &self,
        host: &str,
        pod: &Path,
        ifname: &str,
        mtu: Option<u32>,
    ) -> HostResult<MacAddr> {
        let mut st = self.lock();
        let pod_key = pod.display().to_string();
        match st.ns.get(&pod_key) {
            None => {
                return Err(HostError::new(
                    HostErrorKind::NoNetns,
                    format!("netns {pod_key} does not exist"),
                ));
            }
            Some(l) if l.contains_key(ifname) => {
                return Err(HostError::new(
                    HostErrorKind::Exists,
                    format!("{ifname} exists in {pod_key}"),
                ));
            }
            Some(_) => {}
        }
        if st.ns.get(HOST).is_some_and(|l| l.contains_key(host)) {
            return Err(HostError::new(
                HostErrorKind::Exists,
                format!("{host} exists in the host"),
            ));
        }
        let n = st.next_index;
        let mut h = Self::new_link(
            &mut st,
            MacAddr([2, 0xcc, 0, 0, (n >> 8) as u8, n as u8]),
            Some("veth"),
            None,
        );
        let mac = MacAddr([2, 0xdd, 0, 0, (n >> 8) as u8, n as u8]);
        let mut p = Self::new_link(&mut st, mac, Some("veth"), None);
        for l in [&mut h, &mut p] {
            l.up = true;
            if let Some(m) = mtu {
                l.mtu = m;
            }
        }
        st.ns.entry(HOST.into()).or_default().insert(host.into(), h);
        st.ns
            .entry(pod_key.clone())
            .or_default()
            .insert(ifname.into(), p);
        st.veths.insert(host.into(), (pod_key, ifname.into()));
        Ok(mac)
    }

    /// Makes the next `binds` binds of the VF at `bdf` bring up no netdev.
    pub fn netdev_less_binds(&self, bdf: PciAddress, binds: u32) {
        self.lock().netdev_less_binds.insert(bdf, binds);
    }

    /// What happened to VFs, in order: `guid <pf> <vf>`, `unbind <bdf>`, `bind <bdf>`,
    /// `move <netdev>`.
    pub fn events(&self) -> Vec<String> {
        self.lock().events.clone()
    }

    /// Makes ipvlan creation fail as on a kernel without the module.
    pub fn without_ipvlan(&self) {
        self.lock().no_ipvlan = true;
    }

    /// Makes `master` a NIC that has `l2-fwd-offload`.
    pub fn with_l2_fwd_offload(&self, master: &str) {
        let mut st = self.lock();
        st.l2fwd.insert(master.into());
        // Only NIC drivers offer it, and a NIC's netdev has no link kind.
        if let Some(l) = st.ns.get_mut(HOST).and_then(|l| l.get_mut(master)) {
            l.kind = None;
        }
    }

    /// The links of a namespace.
    pub fn links(&self, ns: Ns<'_>) -> BTreeMap<String, FakeLink> {
        self.lock().ns.get(&key(ns)).cloned().unwrap_or_default()
    }

    /// Every VF row, by (PF, index).
    pub fn vf_rows(&self) -> BTreeMap<(String, u32), VfInfo> {
        self.lock().rows.clone()
    }

    /// Removes an address from a link (to make CHECK fail).
    pub fn remove_address(&self, ns: Ns<'_>, name: &str, addr: &Cidr) {
        if let Some(l) = self
            .lock()
            .ns
            .get_mut(&key(ns))
            .and_then(|n| n.get_mut(name))
        {
            l.addrs.retain(|a| a != addr);
        }
    }

    fn with_link<T>(
        &self,
        ns: Ns<'_>,
        name: &str,
        f: impl FnOnce(&mut FakeLink) -> T,
    ) -> HostResult<T> {
        let mut st = self.lock();
        let links = st.ns.get_mut(&key(ns)).ok_or_else(|| {
            HostError::new(HostErrorKind::NoNetns, format!("{ns} does not exist"))
        })?;
        links.get_mut(name).map(f).ok_or_else(|| no_link(name, ns))
    }
}

impl Host for FakeHost {
    fn vf_device(&self, bdf: &PciAddress) -> HostResult<VfDevice> {
        let mut st = self.lock();
        Self::return_netdevs(&mut st);
        let (pf, index, driver) = st
            .vfs
            .get(bdf)
            .cloned()
            .ok_or_else(|| HostError::other(format!("no PCI device {bdf}")))?;
        let netdev = st.ns.get(HOST).and_then(|links| {
            links
                .iter()
                .find(|(_, l)| l.vf == Some(*bdf))
                .map(|(n, _)| n.clone())
        });
        let pf_bdf = st.pf_bdfs.get(&pf).copied();
        Ok(VfDevice {
            bdf: *bdf,
            pf,
            pf_bdf,
            index,
            netdev,
            driver: (!st.unbound.contains(bdf)).then_some(driver),
        })
    }

    fn unbind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()> {
        let mut st = self.lock();
        let bound = st.vfs.get(bdf).map(|(_, _, d)| d.clone());
        if bound.as_deref() != Some(driver) || st.unbound.contains(bdf) {
            return Err(HostError::other(format!(
                "unbind {bdf} from {driver}: No such device (os error 19)"
            )));
        }
        // the driver's remove destroys the netdev in whichever namespace it is
        for links in st.ns.values_mut() {
            links.retain(|_, l| l.vf != Some(*bdf));
        }
        st.returning.retain(|(_, _, l)| l.vf != Some(*bdf));
        st.unbound.insert(*bdf);
        st.events.push(format!("unbind {bdf}"));
        Ok(())
    }

    fn bind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()> {
        let mut st = self.lock();
        let Some((_, index, drv)) = st.vfs.get(bdf).cloned() else {
            return Err(HostError::other(format!("no PCI device {bdf}")));
        };
        if drv != driver || !st.unbound.remove(bdf) {
            return Err(HostError::other(format!(
                "bind {bdf} to {driver}: Device or resource busy (os error 16)"
            )));
        }
        st.events.push(format!("bind {bdf}"));
        if let Some(n) = st.netdev_less_binds.get_mut(bdf).filter(|n| **n > 0) {
            *n -= 1;
            return Ok(());
        }
        // a new netdev, under the kernel's name for it (udev has not renamed it)
        let mac = MacAddr([2, 0xaa, 0, 0, (index >> 8) as u8, index as u8]);
        let link = Self::new_link(&mut st, mac, None, Some(*bdf));
        let name = format!("ib{}", link.index);
        st.ns.entry(HOST.into()).or_default().insert(name, link);
        Ok(())
    }

    fn wait_vf_netdev(
        &self,
        bdf: &PciAddress,
        _timeout: std::time::Duration,
    ) -> HostResult<Option<VfDevice>> {
        // no clock here: a netdev that is not there after a bind never comes
        let dev = self.vf_device(bdf)?;
        Ok(dev.netdev.is_some().then_some(dev))
    }

    fn whole_pf(&self, bdf: &PciAddress) -> HostResult<Option<PfDevice>> {
        let mut st = self.lock();
        Self::return_netdevs(&mut st);
        if st.vfs.contains_key(bdf) {
            return Ok(None);
        }
        let (driver, num_vfs) = st
            .pfs
            .get(bdf)
            .cloned()
            .ok_or_else(|| HostError::other(format!("no PCI device {bdf}")))?;
        let netdev = st.ns.get(HOST).and_then(|links| {
            links
                .iter()
                .find(|(_, l)| l.vf == Some(*bdf))
                .map(|(n, _)| n.clone())
        });
        Ok(Some(PfDevice {
            bdf: *bdf,
            netdev,
            driver: Some(driver),
            num_vfs,
        }))
    }

    fn vf_row(&self, pf: &str, vf: u32) -> HostResult<VfInfo> {
        self.lock()
            .rows
            .get(&(pf.to_string(), vf))
            .cloned()
            .ok_or_else(|| HostError::other(format!("{pf} has no VF {vf}")))
    }

    fn set_vf(&self, pf: &str, vf: u32, setting: VfSetting) -> HostResult<()> {
        let mut st = self.lock();
        let row = st
            .rows
            .get_mut(&(pf.to_string(), vf))
            .ok_or_else(|| HostError::other(format!("{pf} has no VF {vf}")))?;
        setting.apply_to(row);
        if matches!(setting, VfSetting::IbNodeGuid(_) | VfSetting::IbPortGuid(_)) {
            st.events.push(format!("guid {pf} {vf}"));
        }
        Ok(())
    }

    fn vf_pkeys(&self, bdf: &PciAddress) -> HostResult<Vec<u16>> {
        Ok(self.lock().pkeys.get(bdf).cloned().unwrap_or_default())
    }

    fn link(&self, ns: Ns<'_>, name: &str) -> HostResult<Option<LinkState>> {
        let st = self.lock();
        let links = st.ns.get(&key(ns)).ok_or_else(|| {
            HostError::new(HostErrorKind::NoNetns, format!("{ns} does not exist"))
        })?;
        Ok(links.get(name).map(|l| LinkState {
            name: name.into(),
            index: l.index,
            mac: Some(l.mac),
            mtu: l.mtu,
            up: l.up,
            kind: l.kind.clone(),
        }))
    }

    fn create_child(
        &self,
        master: &LinkState,
        kind: &VirtKind,
        pod: &Path,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> HostResult<()> {
        let mut st = self.lock();
        if matches!(kind, VirtKind::Ipvlan(_)) && st.no_ipvlan {
            return Err(HostError::new(
                HostErrorKind::Unsupported,
                "create ipvlan: Operation not supported",
            ));
        }
        let master_mtu = st
            .ns
            .get(HOST)
            .and_then(|l| l.get(&master.name))
            .map(|l| l.mtu)
            .ok_or_else(|| no_link(&master.name, Ns::Host))?;
        let n = st.next_index;
        let mac = mac.unwrap_or(MacAddr([2, 0xbb, 0, 0, (n >> 8) as u8, n as u8]));
        let kind_name = match kind {
            VirtKind::Macvlan(..) => "macvlan",
            VirtKind::Ipvlan(_) => "ipvlan",
        };
        let mut link = Self::new_link(&mut st, mac, Some(kind_name), None);
        link.mtu = mtu.unwrap_or(master_mtu);
        let links = st.ns.get_mut(&pod.display().to_string()).ok_or_else(|| {
            HostError::new(
                HostErrorKind::NoNetns,
                format!("netns {} does not exist", pod.display()),
            )
        })?;
        if links.contains_key(name) {
            return Err(HostError::new(
                HostErrorKind::Exists,
                format!("{name} exists in {}", pod.display()),
            ));
        }
        links.insert(name.into(), link);
        Ok(())
    }

    fn move_to_pod(&self, name: &str, pod: &Path, new_name: &str) -> HostResult<()> {
        let mut st = self.lock();
        let pod_key = pod.display().to_string();
        if !st.ns.contains_key(&pod_key) {
            return Err(HostError::new(
                HostErrorKind::NoNetns,
                format!("netns {pod_key} does not exist"),
            ));
        }
        if st.ns[&pod_key].contains_key(new_name) {
            return Err(HostError::new(
                HostErrorKind::Exists,
                format!("{new_name} exists in {pod_key}"),
            ));
        }
        let link = st
            .ns
            .get_mut(HOST)
            .and_then(|l| l.remove(name))
            .ok_or_else(|| no_link(name, Ns::Host))?;
        st.ns
            .get_mut(&pod_key)
            .map(|l| l.insert(new_name.into(), link));
        st.events.push(format!("move {name}"));
        Ok(())
    }

    fn move_to_host(&self, pod: &Path, name: &str, new_name: &str) -> HostResult<()> {
        let mut st = self.lock();
        let pod_key = pod.display().to_string();
        if st.ns.get(HOST).is_some_and(|l| l.contains_key(new_name)) {
            return Err(HostError::new(
                HostErrorKind::Exists,
                format!("{new_name} exists in the host"),
            ));
        }
        let mut link = st
            .ns
            .get_mut(&pod_key)
            .and_then(|l| l.remove(name))
            .ok_or_else(|| no_link(name, Ns::Pod(pod)))?;
        link.up = false;
        link.addrs.clear();
        link.routes.clear();
        st.ns
            .entry(HOST.into())
            .or_default()
            .insert(new_name.into(), link);
        Ok(())
    }

    fn reset_link(
        &self,
        ns: Ns<'_>,
        name: &str,
        new_name: Option<&str>,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> HostResult<()> {
        let mut st = self.lock();
        if let Some(m) = mac.filter(|m| st.refused_macs.contains(m)) {
            return Err(HostError::other(format!(
                "set address {m} on {name}: Cannot assign requested address (os error 99)"
            )));
        }
        let links = st.ns.get_mut(&key(ns)).ok_or_else(|| {
            HostError::new(HostErrorKind::NoNetns, format!("{ns} does not exist"))
        })?;
        let mut link = links.remove(name).ok_or_else(|| no_link(name, ns))?;
        link.up = false;
        if let Some(m) = mac {
            link.mac = m;
        }
        if let Some(m) = mtu {
            link.mtu = m;
        }
        links.insert(new_name.unwrap_or(name).into(), link);
        Ok(())
    }

    fn configure(&self, pod: &Path, name: &str, conf: &PodIfConfig) -> HostResult<LinkState> {
        self.with_link(Ns::Pod(pod), name, |l| {
            if let Some(m) = conf.mtu {
                l.mtu = m;
            }
            if let Some(m) = conf.mac {
                l.mac = m;
            }
            l.addrs.extend(conf.addresses.iter().copied());
            l.up = true;
            l.routes
                .extend(conf.routes.iter().map(|r| r.dst.canonical()));
            l.routes.extend(conf.addresses.iter().map(Cidr::canonical));
        })?;
        self.link(Ns::Pod(pod), name)?
            .ok_or_else(|| no_link(name, Ns::Pod(pod)))
    }

    fn delete_link(&self, ns: Ns<'_>, name: &str) -> HostResult<bool> {
        let mut st = self.lock();
        let k = key(ns);
        let Some(links) = st.ns.get_mut(&k) else {
            return Ok(false);
        };
        let removed = links.remove(name).is_some();
        // The other end of a veth goes with it.
        let peer = if ns == Ns::Host {
            st.veths.remove(name)
        } else {
            let host = st
                .veths
                .iter()
                .find(|(_, (pk, pn))| *pk == k && pn == name)
                .map(|(h, _)| h.clone());
            host.and_then(|h| st.veths.remove(&h).map(|_| (HOST.to_string(), h)))
        };
        if let Some((pk, pn)) = peer
            && let Some(l) = st.ns.get_mut(&pk)
        {
            l.remove(&pn);
        }
        Ok(removed)
    }

    fn addresses(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        self.with_link(ns, name, |l| l.addrs.clone())
    }

    fn routes(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        self.with_link(ns, name, |l| l.routes.clone())
    }

    fn l2_fwd_offload(&self, master: &str) -> HostResult<bool> {
        Ok(self.lock().l2fwd.contains(master))
    }

    fn rdma_device(&self, vf: &VfDevice) -> HostResult<Option<String>> {
        let st = self.lock();
        Ok(st
            .rdma
            .iter()
            .find(|(_, (of, ns))| *of == vf.bdf && ns == HOST)
            .map(|(name, _)| name.clone()))
    }

    fn rdma_netns_mode(&self) -> HostResult<Option<nic::rdma::NetnsMode>> {
        Ok(self.lock().rdma_mode)
    }

    fn rdma_to_pod(&self, name: &str, pod: &Path) -> HostResult<()> {
        let mut st = self.lock();
        if st.rdma_mode != Some(nic::rdma::NetnsMode::Exclusive) {
            return Err(HostError::new(
                HostErrorKind::Unsupported,
                format!("move RDMA device {name}: Operation not supported"),
            ));
        }
        let key = pod.display().to_string();
        if !st.ns.contains_key(&key) {
            return Err(HostError::new(
                HostErrorKind::NoNetns,
                format!("no network namespace {key}"),
            ));
        }
        match st.rdma.get_mut(name) {
            Some((_, ns)) if ns == HOST => {
                *ns = key;
                Ok(())
            }
            _ => Err(HostError::new(
                HostErrorKind::NoLink,
                format!("no RDMA device {name} in the host"),
            )),
        }
    }

    fn rdma_to_host(&self, pod: &Path, name: &str) -> HostResult<bool> {
        let mut st = self.lock();
        let key = pod.display().to_string();
        match st.rdma.get_mut(name) {
            Some((_, ns)) if *ns == key => {
                *ns = HOST.into();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn netns_exists(&self, pod: &Path) -> bool {
        self.lock().ns.contains_key(&pod.display().to_string())
    }
}
