//! Shared setup for the tests on the in-memory host.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use nic::{netlink::MacAddr, pci::PciAddress};
use smartnic_cni::{
    config::NetConf,
    env::{CniEnv, Command},
    fake::FakeHost,
    fake_switch::FakeSwitch,
    host::Paths,
    plugin::Plugin,
    store::Store,
};

pub fn bdf(i: u32) -> PciAddress {
    PciAddress::new(0, 0x3b, 2 + (i / 8) as u8, (i % 8) as u8).unwrap()
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub fake: FakeHost,
    pub switch: FakeSwitch,
    pub plugin: Plugin<FakeHost, FakeSwitch>,
}

impl World {
    pub fn new(vfs: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeHost::new();
        fake.add_pf("pf0", vfs, bdf, "igbvf");
        fake.add_link("master0", MacAddr([2, 0, 0, 0, 9, 9]));
        let switch = FakeSwitch::new(fake.clone());
        let plugin = Plugin {
            host: fake.clone(),
            switch: switch.clone(),
            store: Store::new(dir.path().join("state")),
            paths: Paths {
                ready_file: dir.path().join("ready"),
                devinfo_dirs: vec![dir.path().join("devinfo")],
            },
        };
        Self {
            dir,
            fake,
            switch,
            plugin,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    pub fn netns(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(format!("/var/run/netns/{name}"));
        self.fake.add_netns(&p);
        p
    }

    pub fn sriov_conf(&self, vf: u32, extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({
            "cniVersion": "1.1.0", "name": "vfnet", "type": "smartnic", "mode": "sriov",
            "vlan": 10, "vlanQoS": 2, "spoofChk": false, "trust": true, "maxTxRate": 100,
            "deviceID": bdf(vf).to_string(),
            "runtimeConfig": {"mac": "02:00:00:00:aa:01"},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.data_dir().to_str().unwrap()}
        });
        merge(&mut c, extra);
        c
    }

    pub fn macvlan_conf(&self, mode: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "1.0.0", "name": "mvnet", "type": "smartnic", "mode": "macvlan",
            "master": "master0", "macvlanMode": mode,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.8.0.0/24"}]],
                     "dataDir": self.data_dir().to_str().unwrap()}
        })
    }

    pub fn ovs_conf(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({
            "cniVersion": "1.1.0", "name": "ovsnet", "type": "smartnic", "mode": "ovs",
            "geneve": {"vni": 100}, "mtu": 1400,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.7.0.0/24"}]],
                     "dataDir": self.data_dir().to_str().unwrap()}
        });
        merge(&mut c, extra);
        c
    }

    pub fn leases(&self) -> usize {
        let mut n = 0;
        for net in ["vfnet", "mvnet", "ovsnet"] {
            if let Ok(rd) = std::fs::read_dir(self.data_dir().join(net)) {
                n += rd
                    .flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .parse::<std::net::IpAddr>()
                            .is_ok()
                    })
                    .count();
            }
        }
        n
    }
}

pub fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

pub fn env(command: Command, id: &str, ifname: &str, netns: Option<&Path>) -> CniEnv {
    CniEnv {
        command,
        container_id: id.into(),
        netns: netns.map(Path::to_path_buf),
        ifname: ifname.into(),
        args: vec![],
        path: vec![],
    }
}

pub fn parse(conf: &serde_json::Value, env: &CniEnv) -> NetConf {
    NetConf::parse(conf.to_string().as_bytes(), env).unwrap()
}

/// ADD of `conf` for container `id` as `net1` in `ns`.
pub fn add(
    w: &World,
    conf: &serde_json::Value,
    id: &str,
    ns: &Path,
) -> Result<serde_json::Value, smartnic_cni::error::CniError> {
    let e = env(Command::Add, id, "net1", Some(ns));
    w.plugin.add(&parse(conf, &e), &e)
}

/// DEL of container `id`'s `net1` (the pod's namespace given or gone); it must succeed.
pub fn del(w: &World, conf: &serde_json::Value, id: &str, ns: Option<&Path>) {
    let e = env(Command::Del, id, "net1", ns);
    w.plugin.del(&parse(conf, &e), &e).unwrap();
}
