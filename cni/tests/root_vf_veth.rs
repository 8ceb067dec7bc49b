//! The sriov path on the running kernel with a veth standing in for the VF netdev: the move into
//! the pod and rename in one request, MTU, MAC, addresses, routes, up, and DEL putting the
//! netdev back under its host name with its MAC and MTU. The PF's VF table is in memory (there
//! is no SR-IOV here; the lab suite covers a real igbvf VF). Runs in a private host namespace.
//! Needs root; without it the test says `SKIP` and returns.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_skip;

use std::{collections::HashMap, path::Path, process::Command, sync::Mutex};

use nic::{
    netlink::{MacAddr, VfInfo, VfSetting},
    netns::{NetnsRef, run_in_netns},
    pci::PciAddress,
};
use smartnic_cni::{
    cidr::Cidr,
    config::NetConf,
    env::{CniEnv, Command as Verb},
    host::{
        Host, HostError, HostResult, LinkState, Ns, Paths, PfDevice, PodIfConfig, VfDevice,
        VirtKind,
    },
    kernel::KernelHost,
    plugin::Plugin,
    store::Store,
};

const VF_NAME: &str = "svf0";

/// The kernel for links, an in-memory VF table for the PF side.
struct VethAsVf {
    kernel: KernelHost,
    rows: Mutex<HashMap<u32, VfInfo>>,
}

impl Host for VethAsVf {
    fn vf_device(&self, bdf: &PciAddress) -> HostResult<VfDevice> {
        let netdev = self.kernel.link(Ns::Host, VF_NAME)?.map(|l| l.name);
        Ok(VfDevice {
            bdf: *bdf,
            pf: "fakepf".into(),
            pf_bdf: None,
            index: 0,
            netdev,
            driver: Some("igbvf".into()),
        })
    }
    fn whole_pf(&self, _bdf: &PciAddress) -> HostResult<Option<PfDevice>> {
        // the stand-in is a VF
        Ok(None)
    }
    fn vf_row(&self, _pf: &str, vf: u32) -> HostResult<VfInfo> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .entry(vf)
            .or_insert_with(|| VfInfo::new_default(vf))
            .clone())
    }
    fn set_vf(&self, _pf: &str, vf: u32, s: VfSetting) -> HostResult<()> {
        s.apply_to(
            self.rows
                .lock()
                .unwrap()
                .entry(vf)
                .or_insert_with(|| VfInfo::new_default(vf)),
        );
        Ok(())
    }
    fn vf_pkeys(&self, _: &PciAddress) -> HostResult<Vec<u16>> {
        Ok(Vec::new())
    }
    fn unbind_vf(&self, bdf: &PciAddress, _: &str) -> HostResult<()> {
        // an Ethernet stand-in: mode ib never rebinds it
        Err(HostError::other(format!("{bdf}: no driver to unbind here")))
    }
    fn bind_vf(&self, bdf: &PciAddress, _: &str) -> HostResult<()> {
        Err(HostError::other(format!("{bdf}: no driver to bind here")))
    }
    fn link(&self, ns: Ns<'_>, name: &str) -> HostResult<Option<LinkState>> {
        self.kernel.link(ns, name)
    }
    fn create_child(
        &self,
        m: &LinkState,
        k: &VirtKind,
        p: &Path,
        n: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> HostResult<()> {
        self.kernel.create_child(m, k, p, n, mtu, mac)
    }
    fn move_to_pod(&self, name: &str, pod: &Path, new_name: &str) -> HostResult<()> {
        self.kernel.move_to_pod(name, pod, new_name)
    }
    fn move_to_host(&self, pod: &Path, name: &str, new_name: &str) -> HostResult<()> {
        self.kernel.move_to_host(pod, name, new_name)
    }
    fn reset_link(
        &self,
        ns: Ns<'_>,
        name: &str,
        new: Option<&str>,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> HostResult<()> {
        self.kernel.reset_link(ns, name, new, mac, mtu)
    }
    fn configure(&self, pod: &Path, name: &str, conf: &PodIfConfig) -> HostResult<LinkState> {
        self.kernel.configure(pod, name, conf)
    }
    fn delete_link(&self, ns: Ns<'_>, name: &str) -> HostResult<bool> {
        self.kernel.delete_link(ns, name)
    }
    fn addresses(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        self.kernel.addresses(ns, name)
    }
    fn routes(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>> {
        self.kernel.routes(ns, name)
    }
    fn l2_fwd_offload(&self, master: &str) -> HostResult<bool> {
        self.kernel.l2_fwd_offload(master)
    }
    fn netns_exists(&self, pod: &Path) -> bool {
        self.kernel.netns_exists(pod)
    }
    // a veth has no RDMA device
    fn rdma_device(&self, _vf: &VfDevice) -> HostResult<Option<String>> {
        Ok(None)
    }
    fn rdma_netns_mode(&self) -> HostResult<Option<nic::rdma::NetnsMode>> {
        self.kernel.rdma_netns_mode()
    }
    fn rdma_to_pod(&self, name: &str, pod: &Path) -> HostResult<()> {
        self.kernel.rdma_to_pod(name, pod)
    }
    fn rdma_to_host(&self, pod: &Path, name: &str) -> HostResult<bool> {
        self.kernel.rdma_to_host(pod, name)
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_veth_standing_in_for_a_vf_moves_renames_and_comes_back() {
    if !nix::unistd::geteuid().is_root() || Command::new("ip").arg("-V").output().is_err() {
        common_skip::skip(
            "a_veth_standing_in_for_a_vf_moves_renames_and_comes_back",
            "needs root and iproute2",
        );
        return;
    }
    let (host_ns, pod_ns) = (
        format!("smc-vfh-{}", std::process::id()),
        format!("smc-vfp-{}", std::process::id()),
    );
    ip(&["netns", "add", &host_ns]);
    ip(&["netns", "add", &pod_ns]);
    let cleanup = || {
        let _ = Command::new("ip").args(["netns", "del", &host_ns]).status();
        let _ = Command::new("ip").args(["netns", "del", &pod_ns]).status();
    };
    ip(&[
        "-n",
        &host_ns,
        "link",
        "add",
        VF_NAME,
        "address",
        "02:00:00:00:0f:01",
        "mtu",
        "1500",
        "type",
        "veth",
        "peer",
        "name",
        "svf0p",
    ]);
    ip(&["-n", &host_ns, "link", "set", "svf0p", "up"]);
    let state = tempfile::tempdir().unwrap();
    let pod_path = std::path::PathBuf::from(format!("/run/netns/{pod_ns}"));
    let result = std::panic::catch_unwind(|| {
        run_in_netns(&NetnsRef::path(format!("/run/netns/{host_ns}")), || {
            let plugin = Plugin {
                host: VethAsVf { kernel: KernelHost::new(), rows: Mutex::default() },
                switch: smartnic_cni::switch::NoSwitch,
                store: Store::new(state.path().join("state")),
                paths: Paths {
                    ready_file: state.path().join("ready"),
                    devinfo_dirs: Vec::new(),
                },
            };
            let conf = serde_json::json!({
                "cniVersion": "1.1.0", "name": "vfveth", "type": "smartnic", "mode": "sriov",
                "deviceID": "0000:3b:02.0", "vlan": 12, "trust": true, "mtu": 1400, "mac": "02:00:00:00:0f:99",
                "ipam": {"type": "static", "addresses": [{"address": "10.92.0.5/24", "gateway": "10.92.0.1"}],
                         "routes": [{"dst": "10.200.0.0/16"}]}
            });
            let env = |verb| CniEnv {
                command: verb,
                container_id: "vfpod".into(),
                netns: Some(pod_path.clone()),
                ifname: "net1".into(),
                args: vec![],
                path: vec![],
            };
            let e = env(Verb::Add);
            let nc = NetConf::parse(conf.to_string().as_bytes(), &e).unwrap();
            let out = plugin.add(&nc, &e).unwrap();
            assert_eq!(out["interfaces"][0]["mac"], "02:00:00:00:0f:99");
            assert_eq!(out["interfaces"][0]["mtu"], 1400);
            assert_eq!(out["interfaces"][0]["pciID"], "0000:3b:02.0");
            assert_eq!(plugin.host.rows.lock().unwrap()[&0].vlan, Some(12));
            let link = ip(&["-n", &pod_ns, "-d", "link", "show", "net1"]);
            assert!(link.contains("mtu 1400") && link.contains("02:00:00:00:0f:99") && link.contains("UP"), "{link}");
            assert!(ip(&["-n", &pod_ns, "addr", "show", "net1"]).contains("10.92.0.5/24"));
            assert!(ip(&["-n", &pod_ns, "route"]).contains("10.200.0.0/16 via 10.92.0.1 dev net1"));
            let notify = Command::new("ip")
                .args(["netns", "exec", &pod_ns, "cat", "/proc/sys/net/ipv4/conf/net1/arp_notify"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&notify.stdout).trim(), "1", "arp_notify in the pod");
            let gone = Command::new("ip").args(["link", "show", VF_NAME]).output().unwrap();
            assert!(!gone.status.success(), "the VF netdev is still in the host");
            let mut check = conf.clone();
            check["prevResult"] = out.clone();
            let c = env(Verb::Check);
            plugin.check(&NetConf::parse(check.to_string().as_bytes(), &c).unwrap(), &c).unwrap();
            for _ in 0..2 {
                let d = env(Verb::Del);
                plugin.del(&NetConf::parse(conf.to_string().as_bytes(), &d).unwrap(), &d).unwrap();
            }
            let back = ip(&["link", "show", VF_NAME]);
            assert!(back.contains("mtu 1500") && back.contains("02:00:00:00:0f:01"), "{back}");
            assert_eq!(plugin.host.rows.lock().unwrap()[&0], VfInfo::new_default(0));
            assert!(!ip(&["-n", &pod_ns, "link"]).contains("net1"));
        })
        .unwrap();
    });
    cleanup();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
