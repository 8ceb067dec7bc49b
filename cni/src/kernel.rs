//! [`Host`] on the kernel, through `nic`: `nic::netlink` handles (one rtnetlink socket per network
//! namespace), `nic::sysfs` for the VF's PF, index, netdev and driver, `nic::ethtool` for
//! `l2-fwd-offload`.
//!
//! Nothing is opened before it is needed: the tokio runtime (current-thread), the host socket and
//! each pod's socket are made on first use and kept for the rest of the (short) process.
//!
//! Why not `nic::host::RealHost`: it serves each namespace from a worker thread, so every request
//! is two thread hand-offs; on a loaded node each hand-off waits for the scheduler, and an ADD
//! makes several requests (measured: our ADD was slower than the reference plugin's under load).
//! A socket belongs to the namespace it was opened in, whichever thread uses it later, so here
//! the (only) thread steps into the pod's namespace just to open the socket and write the
//! interface's sysctls, and comes straight back ([`nic::netns::run_in_netns_here`]); every
//! request then goes out from the host. A thread for that step cost about a fifth of a macvlan
//! ADD (measured with the benchmark in `bench/`).
//!
//! Links are named by index once one lookup has found them: each lookup by name is one more
//! round trip.

use std::{
    collections::HashMap,
    fs::File,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use nic::{
    ethtool::EthtoolHandle,
    netlink::{
        IpFamily, IpPrefix, Ipvlan, MacAddr, Macvlan, NetlinkError, NetlinkHandle, VfInfo,
        VfSetting,
    },
    netns::{NetnsRef, run_in_netns_here},
    pci::PciAddress,
    sysfs::SysFs,
};

use crate::{
    cidr::Cidr,
    error::{CniError, code},
    host::{
        Host, HostError, HostErrorKind, HostResult, LinkState, Ns, PfDevice, PodIfConfig, VfDevice,
        VirtKind,
    },
};

/// The kernel.
pub struct KernelHost {
    sysfs: SysFs,
    rt: OnceLock<tokio::runtime::Runtime>,
    handles: Mutex<HashMap<PathBuf, NetlinkHandle>>,
    host_handle: OnceLock<NetlinkHandle>,
}

impl Default for KernelHost {
    fn default() -> Self {
        Self::new()
    }
}

fn nl_err(e: NetlinkError) -> HostError {
    let kind = if e.is_not_found() {
        HostErrorKind::NoLink
    } else if e.is_exists() {
        HostErrorKind::Exists
    } else if e.is_not_supported() {
        HostErrorKind::Unsupported
    } else {
        HostErrorKind::Other
    };
    HostError::new(kind, e.to_string())
}

/// A link name (at most 15 bytes) for one pod interface while it is being created.
fn temp_name(pod: &Path, name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (pod, name).hash(&mut h);
    format!("snc{:08x}", h.finish() as u32)
}

/// Names the link of a request that was sent by index, where the kernel's message shows only the
/// number.
fn named(mut e: HostError, name: &str, index: u32) -> HostError {
    if !e.msg.contains(name) {
        e.msg = format!("{name} (index {index}): {}", e.msg);
    }
    e
}

fn sys_err(e: nic::sysfs::SysfsError) -> HostError {
    HostError::other(e.to_string())
}

fn prefix(c: &Cidr) -> IpPrefix {
    IpPrefix {
        addr: c.addr,
        prefix_len: c.prefix,
    }
}

fn cidr(p: &IpPrefix) -> Cidr {
    Cidr {
        addr: p.addr,
        prefix: p.prefix_len,
    }
}

impl KernelHost {
    /// The host's kernel, sysfs at `/`.
    pub fn new() -> Self {
        Self::with_sysfs(SysFs::host())
    }

    /// The kernel with another sysfs root (tests with a fixture tree).
    pub fn with_sysfs(sysfs: SysFs) -> Self {
        Self {
            sysfs,
            rt: OnceLock::new(),
            handles: Mutex::new(HashMap::new()),
            host_handle: OnceLock::new(),
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.get_or_init(|| {
            // Sockets only: nothing here waits on a timer.
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
        })
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt().block_on(f)
    }

    /// Creates a macvlan/ipvlan child of `master` straight into `pod` under `name`.
    fn create_child_named(
        &self,
        master: u32,
        kind: &VirtKind,
        pod: &Path,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> HostResult<()> {
        let nl = self.nl(Ns::Host)?;
        let mut req = match kind {
            VirtKind::Macvlan(crds::link::MacvlanMode::Source, macs) => {
                nl.link().add(Macvlan::source(master, macs.iter().copied()))
            }
            VirtKind::Macvlan(m, _) => nl.link().add(Macvlan::new(master, (*m).into())),
            VirtKind::Ipvlan(m) => nl.link().add(Ipvlan::new(master, (*m).into())),
        };
        req = req.name(name).netns(NetnsRef::path(pod));
        if let Some(m) = mtu {
            req = req.mtu(m);
        }
        if let Some(m) = mac {
            req = req.mac(m);
        }
        self.block_on(req.execute()).map_err(nl_err)
    }

    fn nl(&self, ns: Ns<'_>) -> HostResult<NetlinkHandle> {
        match ns {
            Ns::Host => {
                if let Some(h) = self.host_handle.get() {
                    return Ok(h.clone());
                }
                let _in_rt = self.rt().enter();
                let h = NetlinkHandle::connect().map_err(nl_err)?;
                Ok(self.host_handle.get_or_init(|| h).clone())
            }
            Ns::Pod(p) => self.pod_nl(p, None).map(|(h, _)| h),
        }
    }

    /// The pod's socket, opened from inside the namespace. When the socket is new and
    /// `sysctls_for` names an interface, its sysctls are written on the same visit; the flag
    /// says whether they were.
    fn pod_nl(
        &self,
        p: &Path,
        sysctls_for: Option<Announce<'_>>,
    ) -> HostResult<(NetlinkHandle, bool)> {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = handles.get(p) {
            return Ok((h.clone(), false));
        }
        let netns = File::open(p).map(|f| NetnsRef::fd(f.into())).map_err(|e| {
            HostError::new(
                HostErrorKind::NoNetns,
                format!("cannot open network namespace {}: {e}", p.display()),
            )
        })?;
        let _in_rt = self.rt().enter();
        let (h, sysctls) = run_in_netns_here(&netns, || {
            let h = NetlinkHandle::connect();
            (h, sysctls_for.map(Announce::write))
        })
        .map_err(|e| HostError::new(HostErrorKind::NoNetns, e.to_string()))?;
        let h = h.map_err(nl_err)?;
        handles.insert(p.to_path_buf(), h.clone());
        match sysctls {
            Some(Err(e)) => Err(HostError::other(e)),
            Some(Ok(())) => Ok((h, true)),
            None => Ok((h, false)),
        }
    }

    fn write_sysctls(&self, pod: &Path, announce: Announce<'_>) -> HostResult<()> {
        run_in_netns_here(&NetnsRef::path(pod), || announce.write())
            .map_err(|e| HostError::new(HostErrorKind::NoNetns, e.to_string()))?
            .map_err(HostError::other)
    }
}

/// arp_notify / ndisc_notify on interface `name`, for the families it gets addresses of: the
/// kernel sends a gratuitous ARP and an unsolicited NA when the link goes up (and when its MAC
/// changes), so the addresses are announced without a raw socket.
#[derive(Clone, Copy, Debug)]
struct Announce<'a> {
    name: &'a str,
    v4: bool,
    v6: bool,
}

impl Announce<'_> {
    /// /proc/sys/net belongs to the namespace of the thread that opens it: call this inside the
    /// pod's namespace.
    fn write(self) -> Result<(), String> {
        let name = self.name;
        for (path, wanted, required) in [
            (
                format!("/proc/sys/net/ipv4/conf/{name}/arp_notify"),
                self.v4,
                true,
            ),
            // A kernel booted with ipv6.disable=1 has no such file.
            (
                format!("/proc/sys/net/ipv6/conf/{name}/ndisc_notify"),
                self.v6,
                false,
            ),
        ] {
            if !wanted {
                continue;
            }
            match std::fs::write(&path, "1") {
                Err(e) if required => return Err(format!("cannot write {path}: {e}")),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Host for KernelHost {
    fn vf_device(&self, bdf: &PciAddress) -> HostResult<VfDevice> {
        let s = &self.sysfs;
        let dev = s.pci_device_dir(bdf);
        if !s.exists(&dev) {
            return Err(HostError::other(format!(
                "no PCI device {bdf} ({} is missing)",
                dev.display()
            )));
        }
        let physfn = dev.join("physfn");
        s.read_link(&physfn).map_err(|_| {
            HostError::other(format!(
                "{bdf} is not a VF ({} is missing)",
                physfn.display()
            ))
        })?;
        let pf = s
            .list_dir(&physfn.join("net"))
            .map_err(sys_err)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                HostError::other(format!(
                    "the PF of VF {bdf} has no netdev in this namespace"
                ))
            })?;
        let mut index = None;
        for entry in s.list_dir(&physfn).map_err(sys_err)? {
            let Some(n) = entry
                .strip_prefix("virtfn")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if s.read_link_name(&physfn.join(&entry)).ok().as_deref() == Some(&*bdf.to_string()) {
                index = Some(n);
                break;
            }
        }
        let index = index
            .ok_or_else(|| HostError::other(format!("VF {bdf} is not listed by its PF {pf}")))?;
        let netdev = s
            .list_dir(&dev.join("net"))
            .ok()
            .and_then(|l| l.into_iter().next());
        let driver = s.read_link_name(&dev.join("driver")).ok();
        let pf_bdf = s.read_link_name(&physfn).ok().and_then(|n| n.parse().ok());
        Ok(VfDevice {
            bdf: *bdf,
            pf,
            pf_bdf,
            index,
            netdev,
            driver,
        })
    }

    fn whole_pf(&self, bdf: &PciAddress) -> HostResult<Option<PfDevice>> {
        let s = &self.sysfs;
        let dev = s.pci_device_dir(bdf);
        if !s.exists(&dev) {
            return Err(HostError::other(format!(
                "no PCI device {bdf} ({} is missing)",
                dev.display()
            )));
        }
        if s.read_link(&dev.join("physfn")).is_ok() {
            return Ok(None);
        }
        let netdev = s
            .list_dir(&dev.join("net"))
            .ok()
            .and_then(|l| l.into_iter().next());
        let driver = s.read_link_name(&dev.join("driver")).ok();
        let num_vfs = s
            .read_optional_string(&dev.join("sriov_numvfs"))
            .ok()
            .flatten()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Ok(Some(PfDevice {
            bdf: *bdf,
            netdev,
            driver,
            num_vfs,
        }))
    }

    fn unbind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()> {
        let s = &self.sysfs;
        let file = s.pci_drivers_dir().join(driver).join("unbind");
        s.write(&file, bdf)
            .map_err(|e| HostError::other(format!("cannot unbind VF {bdf} from {driver}: {e}")))
    }

    fn bind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()> {
        let s = &self.sysfs;
        let file = s.pci_drivers_dir().join(driver).join("bind");
        s.write(&file, bdf)
            .map_err(|e| HostError::other(format!("cannot bind VF {bdf} to {driver}: {e}")))
    }

    fn vf_row(&self, pf: &str, vf: u32) -> HostResult<VfInfo> {
        let nl = self.nl(Ns::Host)?;
        self.block_on(nl.vf(pf).get(vf).execute()).map_err(nl_err)
    }

    fn set_vf(&self, pf: &str, vf: u32, setting: VfSetting) -> HostResult<()> {
        let nl = self.nl(Ns::Host)?;
        self.block_on(nl.vf(pf).set(vf).setting(setting).execute())
            .map_err(nl_err)
    }

    fn vf_pkeys(&self, bdf: &PciAddress) -> HostResult<Vec<u16>> {
        let s = &self.sysfs;
        let ib = s.pci_device_dir(bdf).join("infiniband");
        let Some(dev) = s.list_dir(&ib).ok().and_then(|d| d.into_iter().min()) else {
            return Ok(Vec::new());
        };
        let dir = ib.join(dev).join("ports/1/pkeys");
        let mut keys: Vec<u16> = s
            .list_dir(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| s.read_hex(&dir.join(e)).ok())
            .filter_map(|k| u16::try_from(k).ok())
            .filter(|&k| k & 0x7fff != 0)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn link(&self, ns: Ns<'_>, name: &str) -> HostResult<Option<LinkState>> {
        let nl = self.nl(ns)?;
        let link = self
            .block_on(nl.link().get(name).execute_optional())
            .map_err(nl_err)?;
        Ok(link.map(|l| LinkState {
            name: l.name,
            index: l.index,
            mac: l.mac,
            mtu: l.mtu,
            up: l.up,
            kind: l.kind,
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
        let (master_name, master) = (&master.name, master.index);
        let created = self
            .create_child_named(master, kind, pod, name, mtu, mac)
            .map_err(|e| named(e, master_name, master));
        match created {
            // RTM_NEWLINK looks the new name up in the sender's namespace even when the link
            // is created in another one (net/core/rtnetlink.c, __rtnl_newlink): a host link
            // that happens to bear the pod's interface name makes it fail with EEXIST. Create
            // under a name of our own and rename inside the pod.
            Err(e)
                if e.kind == HostErrorKind::Exists && self.link(Ns::Pod(pod), name)?.is_none() =>
            {
                let tmp = temp_name(pod, name);
                self.delete_link(Ns::Pod(pod), &tmp)?;
                self.create_child_named(master, kind, pod, &tmp, mtu, mac)
                    .map_err(|e| named(e, master_name, master))?;
                let nl = self.nl(Ns::Pod(pod))?;
                if let Err(e) = self.block_on(nl.link().set(&tmp).name(name).execute()) {
                    let _ = self.delete_link(Ns::Pod(pod), &tmp);
                    return Err(nl_err(e));
                }
                Ok(())
            }
            other => other,
        }
    }

    fn move_to_pod(&self, name: &str, pod: &Path, new_name: &str) -> HostResult<()> {
        let nl = self.nl(Ns::Host)?;
        self.block_on(
            nl.link()
                .set(name)
                .netns_rename(NetnsRef::path(pod), new_name)
                .execute(),
        )
        .map_err(nl_err)
    }

    fn move_to_host(&self, pod: &Path, name: &str, new_name: &str) -> HostResult<()> {
        let nl = self.nl(Ns::Pod(pod))?;
        let home = NetnsRef::current().map_err(|e| HostError::other(e.to_string()))?;
        self.block_on(
            nl.link()
                .set(name)
                .down()
                .netns_rename(home, new_name)
                .execute(),
        )
        .map_err(nl_err)
    }

    fn reset_link(
        &self,
        ns: Ns<'_>,
        name: &str,
        new_name: Option<&str>,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> HostResult<()> {
        let nl = self.nl(ns)?;
        let mut req = nl.link().set(name).down();
        if let Some(n) = new_name {
            req = req.name(n);
        }
        if let Some(m) = mac {
            req = req.mac(m);
        }
        if let Some(m) = mtu {
            req = req.mtu(m);
        }
        self.block_on(req.execute()).map_err(nl_err)
    }

    fn configure(&self, pod: &Path, name: &str, conf: &PodIfConfig) -> HostResult<LinkState> {
        let announce = Announce {
            name,
            v4: conf.addresses.iter().any(|a| a.addr.is_ipv4()),
            v6: conf.addresses.iter().any(|a| a.addr.is_ipv6()),
        };
        let (nl, announced) = self.pod_nl(pod, Some(announce))?;
        if !announced && (announce.v4 || announce.v6) {
            self.write_sysctls(pod, announce)?;
        }
        let mut link = self.link(Ns::Pod(pod), name)?.ok_or_else(|| {
            HostError::new(
                HostErrorKind::NoLink,
                format!("{name} vanished from {}", pod.display()),
            )
        })?;
        let index = link.index;
        self.block_on(async {
            if conf.mtu.is_some() || conf.mac.is_some() {
                let mut set = nl.link().set(index);
                if let Some(m) = conf.mtu {
                    set = set.mtu(m);
                }
                if let Some(m) = conf.mac {
                    set = set.mac(m);
                }
                set.execute().await?;
            }
            for a in &conf.addresses {
                nl.address().add(index, prefix(a)).execute().await?;
            }
            nl.link().set(index).up().execute().await?;
            for r in &conf.routes {
                // A route without a next hop goes through the gateway of its family's address.
                let gw: Option<IpAddr> = r.gw.or_else(|| {
                    conf.gateways
                        .iter()
                        .copied()
                        .find(|g| g.is_ipv4() == r.dst.is_ipv4())
                });
                let mut add = nl.route().add(prefix(&r.dst.canonical())).dev(index);
                if let Some(g) = gw {
                    add = add.gateway(g);
                }
                if let Some(m) = r.priority {
                    add = add.metric(m);
                }
                if let Some(t) = r.table {
                    add = add.table(t);
                }
                add.execute().await?;
            }
            Ok::<(), NetlinkError>(())
        })
        .map_err(|e| named(nl_err(e), name, index))?;
        link.mtu = conf.mtu.unwrap_or(link.mtu);
        link.mac = conf.mac.or(link.mac);
        link.up = true;
        Ok(link)
    }

    fn delete_link(&self, ns: Ns<'_>, name: &str) -> HostResult<bool> {
        let nl = match self.nl(ns) {
            Ok(nl) => nl,
            Err(e) if e.kind == HostErrorKind::NoNetns => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.block_on(nl.link().del(name).execute()) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(nl_err(e)),
        }
    }

    fn addresses(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        let nl = self.nl(ns)?;
        let list = self
            .block_on(nl.address().list().dev(name).execute())
            .map_err(nl_err)?;
        Ok(list.iter().map(|a| cidr(&a.address)).collect())
    }

    fn routes(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        let nl = self.nl(ns)?;
        let mut out = Vec::new();
        for fam in [IpFamily::V4, IpFamily::V6] {
            let list = self
                .block_on(nl.route().list(fam).dev(name).execute())
                .map_err(nl_err)?;
            out.extend(list.iter().map(|r| cidr(&r.destination).canonical()));
        }
        Ok(out)
    }

    fn l2_fwd_offload(&self, master: &str) -> HostResult<bool> {
        const FEATURE: &str = "l2-fwd-offload";
        self.block_on(async {
            let eth = EthtoolHandle::connect()
                .await
                .map_err(|e| HostError::other(e.to_string()))?;
            let features = eth
                .features()
                .get(master)
                .execute()
                .await
                .map_err(|e| HostError::other(e.to_string()))?;
            match features.features.get(FEATURE) {
                Some(f) if f.active => Ok(true),
                Some(f) if !f.fixed => Ok(eth
                    .features()
                    .set(master)
                    .feature(FEATURE, true)
                    .execute()
                    .await
                    .is_ok()),
                _ => Ok(false),
            }
        })
    }

    fn netns_exists(&self, pod: &Path) -> bool {
        File::open(pod).is_ok()
    }

    fn rdma_device(&self, vf: &VfDevice) -> HostResult<Option<String>> {
        Ok(crate::kernel_rdma::device(&self.sysfs, vf))
    }

    fn rdma_netns_mode(&self) -> HostResult<Option<nic::rdma::NetnsMode>> {
        crate::kernel_rdma::netns_mode()
    }

    fn rdma_to_pod(&self, name: &str, pod: &Path) -> HostResult<()> {
        crate::kernel_rdma::to_pod(name, pod)
    }

    fn rdma_to_host(&self, pod: &Path, name: &str) -> HostResult<bool> {
        crate::kernel_rdma::to_host(pod, name)
    }
}

/// Checks that `CNI_NETNS` names a network namespace other than the plugin's own: anything else
/// (`/proc/self/ns/net`, the host's namespace, a mount namespace, a plain file) would make an
/// ADD move a host device into the host or configure the host's own links. The namespace file
/// is compared with the plugin's own by device and inode, and entered once (and left) to prove
/// it is a network namespace. A path that cannot be opened is left to the command, which
/// answers that it does not exist.
pub fn check_pod_netns(path: &Path) -> Result<(), CniError> {
    use std::os::unix::fs::MetadataExt;
    let bad = |why: String| {
        Err(CniError::new(
            code::INVALID_NETNS,
            format!("CNI_NETNS {}: {why}", path.display()),
        ))
    };
    let Ok(theirs) = std::fs::metadata(path) else {
        return Ok(());
    };
    if let Ok(own) = std::fs::metadata("/proc/thread-self/ns/net")
        && (own.dev(), own.ino()) == (theirs.dev(), theirs.ino())
    {
        return bad("is the plugin's own (host) network namespace, not a pod's".into());
    }
    match run_in_netns_here(&NetnsRef::path(path), || ()) {
        Ok(()) => Ok(()),
        Err(nic::netns::NetnsError::Open { .. }) => Ok(()),
        Err(e) => bad(format!("is not a network namespace ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use nic::fixtures::HostBuilder;

    use super::*;

    #[test]
    fn a_vf_is_found_through_sysfs() {
        let fixture = HostBuilder::new().igb_82576().build().unwrap();
        let host = KernelHost::with_sysfs(fixture.sysfs());
        let pf = fixture.path("sys/bus/pci/devices/0000:01:00.0");
        let vf1: PciAddress = fixture
            .sysfs()
            .read_link_name(&pf.join("virtfn1"))
            .unwrap()
            .parse()
            .unwrap();
        let dev = host.vf_device(&vf1).unwrap();
        assert_eq!((dev.pf.as_str(), dev.index), ("enp1s0", 1));
        assert_eq!(dev.driver.as_deref(), Some("igbvf"));
        assert!(
            dev.netdev
                .as_ref()
                .is_some_and(|n| n.starts_with("enp1s0v"))
        );
        assert!(!dev.is_userspace());
        let pf_addr: PciAddress = "0000:01:00.0".parse().unwrap();
        let err = host.vf_device(&pf_addr).unwrap_err();
        assert!(err.msg.contains("is not a VF"), "{}", err.msg);
        let none: PciAddress = "0000:09:00.0".parse().unwrap();
        assert!(
            host.vf_device(&none)
                .unwrap_err()
                .msg
                .contains("no PCI device")
        );
    }

    /// An mlx5 IB VF's P_Key table as mlx5_ib lays it out (`infiniband/mlx5_N/ports/1/pkeys/*`,
    /// hex, unused entries 0x0000); an Ethernet VF has none.
    #[test]
    fn an_ib_vfs_pkey_table_is_read_from_its_rdma_device() {
        let fixture = HostBuilder::new()
            .connectx6_ib()
            .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2))
            .igb_82576()
            .build()
            .unwrap();
        let host = KernelHost::with_sysfs(fixture.sysfs());
        let vf: PciAddress = "0000:af:00.2".parse().unwrap();
        let dev = fixture.device_dir("0000:af:00.2");
        let pkeys = dev.join("infiniband/mlx5_11/ports/1/pkeys");
        assert_eq!(
            std::fs::read_to_string(pkeys.join("0")).unwrap(),
            "0xffff\n"
        );
        std::fs::write(pkeys.join("1"), "0x8001\n").unwrap();
        std::fs::write(pkeys.join("2"), "0x0000\n").unwrap();
        assert_eq!(host.vf_pkeys(&vf).unwrap(), [0x8001, 0xffff]);
        let eth: PciAddress = "0000:01:10.0".parse().unwrap();
        assert!(host.vf_pkeys(&eth).unwrap().is_empty());
    }

    /// The rebind of mode ib: the writes to the driver's `unbind` and `bind` take the VF's
    /// netdev away and bring one back.
    #[test]
    fn an_ib_vf_is_unbound_and_bound_again_through_its_driver() {
        let fixture = HostBuilder::new()
            .connectx6_ib()
            .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2))
            .build()
            .unwrap();
        let host = KernelHost::with_sysfs(fixture.sysfs());
        let vf: PciAddress = "0000:af:00.2".parse().unwrap();
        let before = host.vf_device(&vf).unwrap();
        let driver = before.driver.clone().unwrap();
        assert!(before.netdev.is_some());
        host.unbind_vf(&vf, &driver).unwrap();
        fixture.settle().unwrap();
        let gone = host.vf_device(&vf).unwrap();
        assert_eq!((gone.driver, gone.netdev), (None, None));
        host.bind_vf(&vf, &driver).unwrap();
        fixture.settle().unwrap();
        let back = host
            .wait_vf_netdev(&vf, std::time::Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert_eq!(back.driver.as_deref(), Some(driver.as_str()));
        let err = host.unbind_vf(&vf, "no_such_driver").unwrap_err();
        assert!(
            err.msg.contains("cannot unbind VF 0000:af:00.2"),
            "{}",
            err.msg
        );
    }
}
