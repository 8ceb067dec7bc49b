//! What Allocate hands a container, as pure functions of the pool and its devices:
//!
//! | what | content |
//! |---|---|
//! | env `PCIDEVICE_<PREFIX>_<POOL>` | the device IDs, comma-separated (`0000:3b:00.2,0000:3b:00.3`) |
//! | env `PCIDEVICE_<PREFIX>_<POOL>_INFO` | `{"<bdf>": {"generic": {"deviceID"}, "vfio": {...}, "rdma": {...}}}` |
//! | device specs | vfio-pci: `/dev/vfio/vfio` and `/dev/vfio/<group>` (or `noiommu-<group>`), rw; RDMA pools: `/dev/infiniband/{uverbsN,umadN,issmN,rdma_cm}` |
//! | device specs, `needVhostNet` pools | `/dev/vhost-net` and `/dev/net/tun`, rw, once per container (also with CDI: they belong to no device) |
//! | device-info files | `<devinfo-dir>/<prefix>-<pool>-<bdf>-device.json` (device-info-spec 1.1.0, type `pci`) |
//! | CDI (when on) | annotation `cdi.k8s.io/<prefix>_<pool>` naming `<prefix>/<pool>=<bdf>`, in place of the device specs |
//!
//! Prefix and pool are upper-cased in env names, anything not alphanumeric becoming `_`
//! (`smartnic.io/cx6_vf` -> `PCIDEVICE_SMARTNIC_IO_CX6_VF`).

use std::collections::BTreeSet;

use crds::{devinfo::DeviceInfo, vf::VfDeviceType};
use nic::pci::PciAddress;
use serde_json::{Value, json};

use crate::api::{ContainerAllocateResponse, DeviceSpec};
use crate::config::PoolSpec;
use crate::pool::{Health, PoolDevice};

/// The CDI spec version of the files written.
pub const CDI_VERSION: &str = "0.6.0";

/// An Allocate request that cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The kubelet asked for a device the pool does not have.
    #[error("{resource}: device {id} is not in the pool")]
    Unknown {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
    },
    /// The device is unhealthy (it changed since the kubelet last looked).
    #[error("{resource}: device {id} is {health}")]
    Unhealthy {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
        /// Why.
        health: Health,
    },
    /// A vfio-pci device has no IOMMU group, so there is no device node to give.
    #[error("{resource}: device {id} is on vfio-pci but has no IOMMU group")]
    NoIommuGroup {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
    },
}

/// One container's allocation: the response, and the device-info files to write first.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerAllocation {
    /// The kubelet's answer for the container.
    pub response: ContainerAllocateResponse,
    /// Device-info files: (file name in the devinfo directory, content).
    pub devinfo: Vec<(String, String)>,
}

/// The pool's env variable name (`PCIDEVICE_SMARTNIC_IO_CX6_VF`).
pub fn env_name(pool: &PoolSpec) -> String {
    let mut s = String::from("PCIDEVICE_");
    for c in format!("{}_{}", pool.prefix, pool.name).chars() {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

/// The device-info file name of a device (`smartnic.io-cx6_vf-0000:3b:00.2-device.json`).
pub fn devinfo_file_name(pool: &PoolSpec, id: &str) -> String {
    format!("{}-{}-{id}-device.json", pool.prefix, pool.name)
}

/// The CDI kind of a pool (`smartnic.io/cx6_vf`).
pub fn cdi_kind(pool: &PoolSpec) -> String {
    pool.resource()
}

/// The CDI spec file name of a pool (`smartnic.io-cx6_vf.json`).
pub fn cdi_file_name(pool: &PoolSpec) -> String {
    format!("{}-{}.json", pool.prefix, pool.name)
}

/// A pool's devices looked up by ID (a binary search over the address-sorted list the index
/// keeps: nothing to build per call).
#[derive(Clone, Copy, Debug)]
pub struct DeviceIndex<'a>(&'a [PoolDevice]);

impl<'a> DeviceIndex<'a> {
    /// The device with ID `id`.
    pub fn get(&self, id: &str) -> Option<&'a PoolDevice> {
        let addr: PciAddress = id.parse().ok()?;
        self.0
            .binary_search_by_key(&addr, |d| d.addr)
            .ok()
            .map(|i| &self.0[i])
    }
}

/// The lookup over `devices`, which must be sorted by address (as pools are).
pub fn index(devices: &[PoolDevice]) -> DeviceIndex<'_> {
    debug_assert!(devices.windows(2).all(|w| w[0].addr < w[1].addr));
    DeviceIndex(devices)
}

/// The allocation of `ids` to one container.
pub fn allocate(
    pool: &PoolSpec,
    devices: &DeviceIndex<'_>,
    ids: &[String],
    cdi: bool,
) -> Result<ContainerAllocation, AllocError> {
    let resource = pool.resource();
    let mut picked = Vec::with_capacity(ids.len());
    for id in ids {
        let d = devices.get(id).ok_or_else(|| AllocError::Unknown {
            resource: resource.clone(),
            id: id.clone(),
        })?;
        if let Health::Unhealthy(_) = d.health {
            return Err(AllocError::Unhealthy {
                resource: resource.clone(),
                id: id.clone(),
                health: d.health.clone(),
            });
        }
        picked.push(d);
    }

    let env = env_name(pool);
    let mut info = serde_json::Map::new();
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut devinfo = Vec::with_capacity(picked.len());
    for d in &picked {
        let id = d.id();
        let mut entry = serde_json::Map::new();
        entry.insert("generic".into(), json!({ "deviceID": id }));
        let dev_nodes = device_nodes(pool, d).map_err(|()| AllocError::NoIommuGroup {
            resource: resource.clone(),
            id: id.clone(),
        })?;
        if pool.device_type == VfDeviceType::VfioPci
            && let Some(group_node) = dev_nodes.iter().find(|n| *n != VFIO_CONTAINER)
        {
            entry.insert(
                "vfio".into(),
                json!({ "mount": VFIO_CONTAINER, "dev-mount": group_node }),
            );
        }
        if pool.is_rdma {
            entry.insert("rdma".into(), rdma_info(d));
        }
        info.insert(id.clone(), Value::Object(entry));
        nodes.extend(dev_nodes);
        devinfo.push((devinfo_file_name(pool, &id), devinfo_json(d)));
    }

    let mut response = ContainerAllocateResponse::default();
    response.envs.insert(
        env.clone(),
        picked.iter().map(|d| d.id()).collect::<Vec<_>>().join(","),
    );
    response
        .envs
        .insert(format!("{env}_INFO"), Value::Object(info).to_string());
    if cdi {
        let names: Vec<String> = picked
            .iter()
            .filter(|d| device_nodes(pool, d).is_ok_and(|n| !n.is_empty()))
            .map(|d| format!("{}={}", cdi_kind(pool), d.id()))
            .collect();
        if !names.is_empty() {
            response.annotations.insert(
                format!("cdi.k8s.io/{}_{}", pool.prefix, pool.name),
                names.join(","),
            );
        }
    } else {
        response.devices = nodes
            .into_iter()
            .map(|n| DeviceSpec {
                container_path: n.clone(),
                host_path: n,
                permissions: "rw".into(),
            })
            .collect();
    }
    if pool.need_vhost_net {
        // Host-wide nodes, not per device: the kubelet gets them as plain device specs even
        // when the device nodes travel by CDI (the SR-IOV device plugin does the same).
        for n in VHOST_NET_NODES {
            if !response.devices.iter().any(|d| d.host_path == n) {
                response.devices.push(DeviceSpec {
                    container_path: n.to_owned(),
                    host_path: n.to_owned(),
                    permissions: "rw".into(),
                });
            }
        }
    }
    Ok(ContainerAllocation { response, devinfo })
}

const VFIO_CONTAINER: &str = "/dev/vfio/vfio";

/// What a `needVhostNet` pool's containers get besides their devices (vhost-net backends for
/// virtio-user / DPDK, and tap devices).
pub const VHOST_NET_NODES: [&str; 2] = ["/dev/vhost-net", "/dev/net/tun"];

/// The character devices a container needs for `d` (`None` for vfio-pci without a group): the
/// device nodes of its CDI device, also for the DRA driver.
pub fn container_device_nodes(pool: &PoolSpec, d: &PoolDevice) -> Option<Vec<String>> {
    device_nodes(pool, d).ok()
}

/// The character devices a container needs for `d` (`Err` for vfio-pci without a group).
fn device_nodes(pool: &PoolSpec, d: &PoolDevice) -> Result<Vec<String>, ()> {
    let mut nodes = Vec::new();
    if pool.device_type == VfDeviceType::VfioPci {
        let group = d.iommu_group.ok_or(())?;
        nodes.push(VFIO_CONTAINER.to_owned());
        nodes.push(if d.noiommu {
            format!("/dev/vfio/noiommu-{group}")
        } else {
            format!("/dev/vfio/{group}")
        });
    }
    if pool.is_rdma && !d.rdma.devices.is_empty() {
        for n in d.rdma.verbs.iter().chain(&d.rdma.mad) {
            nodes.push(format!("/dev/infiniband/{n}"));
        }
        nodes.push("/dev/infiniband/rdma_cm".to_owned());
    }
    Ok(nodes)
}

fn rdma_info(d: &PoolDevice) -> Value {
    let node = |prefix: &str, list: &[String]| {
        list.iter()
            .find(|n| n.starts_with(prefix))
            .map(|n| format!("/dev/infiniband/{n}"))
    };
    if d.rdma.devices.is_empty() {
        return json!({});
    }
    json!({
        "uverbs": node("uverbs", &d.rdma.verbs),
        "umad": node("umad", &d.rdma.mad),
        "issm": node("issm", &d.rdma.mad),
        "rdma_cm": "/dev/infiniband/rdma_cm",
    })
}

/// The device-info-spec document of a device.
pub fn devinfo_json(d: &PoolDevice) -> String {
    DeviceInfo::pci(
        d.id(),
        d.pf().map(|pf| pf.to_string()),
        d.rdma.devices.first().cloned(),
    )
    .to_json()
}

/// The CDI spec of a pool: one device per device ID with its device nodes (devices that need
/// none, kernel-netdev VFs without RDMA, are left out).
pub fn cdi_spec(pool: &PoolSpec, devices: &[PoolDevice]) -> Value {
    let devs: Vec<Value> = devices
        .iter()
        .filter_map(|d| {
            let nodes = device_nodes(pool, d).ok().filter(|n| !n.is_empty())?;
            let nodes: Vec<Value> = nodes
                .iter()
                .map(|n| json!({ "path": n, "permissions": "rw" }))
                .collect();
            Some(json!({ "name": d.id(), "containerEdits": { "deviceNodes": nodes } }))
        })
        .collect();
    json!({ "cdiVersion": CDI_VERSION, "kind": cdi_kind(pool), "devices": devs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Rdma;

    fn pool(device_type: VfDeviceType, is_rdma: bool) -> PoolSpec {
        PoolSpec {
            prefix: "smartnic.io".into(),
            name: "cx6_vf".into(),
            device_type,
            is_rdma,
            exclude_topology: false,
            need_vhost_net: false,
            allocation: Default::default(),
            selectors: Vec::new(),
        }
    }

    fn dev(addr: &str, group: Option<u32>) -> PoolDevice {
        PoolDevice {
            addr: addr.parse::<PciAddress>().unwrap(),
            vf_of: Some(("0000:3b:00.0".parse().unwrap(), 0)),
            numa_node: Some(0),
            driver: Some("vfio-pci".into()),
            iommu_group: group,
            noiommu: false,
            rdma: Rdma::default(),
            health: Health::Healthy,
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_names_are_upper_case_with_underscores() {
        assert_eq!(
            env_name(&pool(VfDeviceType::Netdevice, false)),
            "PCIDEVICE_SMARTNIC_IO_CX6_VF"
        );
        let mut p = pool(VfDeviceType::Netdevice, false);
        p.prefix = "example-corp.com".into();
        p.name = "vf.fast-1".into();
        assert_eq!(env_name(&p), "PCIDEVICE_EXAMPLE_CORP_COM_VF_FAST_1");
    }

    #[test]
    fn vfio_devices_get_their_group_nodes_and_info() {
        let p = pool(VfDeviceType::VfioPci, false);
        let devs = vec![dev("0000:3b:00.2", Some(42)), dev("0000:3b:00.3", Some(43))];
        let idx = index(&devs);
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2", "0000:3b:00.3"]), false).unwrap();
        let r = &a.response;
        assert_eq!(
            r.envs["PCIDEVICE_SMARTNIC_IO_CX6_VF"],
            "0000:3b:00.2,0000:3b:00.3"
        );
        let info: Value =
            serde_json::from_str(&r.envs["PCIDEVICE_SMARTNIC_IO_CX6_VF_INFO"]).unwrap();
        assert_eq!(
            info["0000:3b:00.3"],
            json!({"generic": {"deviceID": "0000:3b:00.3"},
                   "vfio": {"mount": "/dev/vfio/vfio", "dev-mount": "/dev/vfio/43"}})
        );
        let paths: Vec<(&str, &str, &str)> = r
            .devices
            .iter()
            .map(|d| {
                (
                    d.container_path.as_str(),
                    d.host_path.as_str(),
                    d.permissions.as_str(),
                )
            })
            .collect();
        assert_eq!(
            paths,
            [
                ("/dev/vfio/42", "/dev/vfio/42", "rw"),
                ("/dev/vfio/43", "/dev/vfio/43", "rw"),
                ("/dev/vfio/vfio", "/dev/vfio/vfio", "rw"),
            ]
        );
        assert_eq!(a.devinfo.len(), 2);
        assert_eq!(
            a.devinfo[0].0,
            "smartnic.io-cx6_vf-0000:3b:00.2-device.json"
        );
        let doc: Value = serde_json::from_str(&a.devinfo[0].1).unwrap();
        assert_eq!(
            doc,
            json!({"type": "pci", "version": "1.1.0",
                   "pci": {"pci-address": "0000:3b:00.2", "pf-pci-address": "0000:3b:00.0"}})
        );
        assert!(r.annotations.is_empty() && r.mounts.is_empty());
    }

    #[test]
    fn netdev_and_rdma_devices() {
        let mut d = dev("0000:3b:00.2", Some(42));
        d.driver = Some("mlx5_core".into());
        d.rdma = Rdma {
            devices: vec!["mlx5_2".into()],
            verbs: vec!["uverbs2".into()],
            mad: vec!["issm2".into(), "umad2".into()],
        };
        let devs = vec![d];
        let idx = index(&devs);
        let plain = allocate(
            &pool(VfDeviceType::Netdevice, false),
            &idx,
            &ids(&["0000:3b:00.2"]),
            false,
        )
        .unwrap();
        assert!(plain.response.devices.is_empty());
        let rdma = allocate(
            &pool(VfDeviceType::Netdevice, true),
            &idx,
            &ids(&["0000:3b:00.2"]),
            false,
        )
        .unwrap();
        let paths: Vec<&str> = rdma
            .response
            .devices
            .iter()
            .map(|d| d.host_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "/dev/infiniband/issm2",
                "/dev/infiniband/rdma_cm",
                "/dev/infiniband/umad2",
                "/dev/infiniband/uverbs2"
            ]
        );
        let info: Value =
            serde_json::from_str(&rdma.response.envs["PCIDEVICE_SMARTNIC_IO_CX6_VF_INFO"]).unwrap();
        assert_eq!(
            info["0000:3b:00.2"]["rdma"]["uverbs"],
            "/dev/infiniband/uverbs2"
        );
        let doc: Value = serde_json::from_str(&rdma.devinfo[0].1).unwrap();
        assert_eq!(doc["pci"]["rdma-device"], "mlx5_2");
    }

    #[test]
    fn refuses_unknown_unhealthy_and_groupless_devices() {
        let p = pool(VfDeviceType::VfioPci, false);
        let mut sick = dev("0000:3b:00.3", Some(43));
        sick.health = Health::Unhealthy("PF 0000:3b:00.0 (ens1f0np0) link is down".into());
        let devs = vec![dev("0000:3b:00.2", None), sick];
        let idx = index(&devs);
        let e = allocate(&p, &idx, &ids(&["0000:3b:00.9"]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "smartnic.io/cx6_vf: device 0000:3b:00.9 is not in the pool"
        );
        let e = allocate(&p, &idx, &ids(&["0000:3b:00.3"]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "smartnic.io/cx6_vf: device 0000:3b:00.3 is unhealthy: PF 0000:3b:00.0 (ens1f0np0) link is down"
        );
        let e = allocate(&p, &idx, &ids(&["0000:3b:00.2"]), false).unwrap_err();
        assert!(e.to_string().contains("no IOMMU group"), "{e}");
    }

    #[test]
    fn need_vhost_net_adds_vhost_and_tun_once_per_container() {
        let mut p = pool(VfDeviceType::VfioPci, false);
        p.need_vhost_net = true;
        let devs = vec![dev("0000:3b:00.2", Some(42)), dev("0000:3b:00.3", Some(43))];
        let idx = index(&devs);
        let specs = |a: &ContainerAllocation| -> Vec<(String, String, String)> {
            a.response
                .devices
                .iter()
                .map(|d| {
                    (
                        d.host_path.clone(),
                        d.container_path.clone(),
                        d.permissions.clone(),
                    )
                })
                .collect()
        };
        let rw = |s: &str| (s.to_owned(), s.to_owned(), "rw".to_owned());
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2", "0000:3b:00.3"]), false).unwrap();
        assert_eq!(
            specs(&a),
            [
                rw("/dev/vfio/42"),
                rw("/dev/vfio/43"),
                rw("/dev/vfio/vfio"),
                rw("/dev/vhost-net"),
                rw("/dev/net/tun"),
            ]
        );
        // with CDI the devices' nodes move to the annotation; vhost-net and tun stay
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2"]), true).unwrap();
        assert_eq!(specs(&a), [rw("/dev/vhost-net"), rw("/dev/net/tun")]);
        assert!(
            a.response
                .annotations
                .contains_key("cdi.k8s.io/smartnic.io_cx6_vf")
        );
        // a netdevice pool with no device nodes of its own still gets them
        let mut p = pool(VfDeviceType::Netdevice, false);
        p.need_vhost_net = true;
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2"]), false).unwrap();
        assert_eq!(specs(&a), [rw("/dev/vhost-net"), rw("/dev/net/tun")]);
        // and a pool without the flag gets neither
        p.need_vhost_net = false;
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2"]), false).unwrap();
        assert!(a.response.devices.is_empty());
    }

    #[test]
    fn cdi_replaces_device_specs_with_annotations() {
        let p = pool(VfDeviceType::VfioPci, false);
        let mut noiommu = dev("0000:3b:00.3", Some(7));
        noiommu.noiommu = true;
        let devs = vec![dev("0000:3b:00.2", Some(42)), noiommu];
        let idx = index(&devs);
        let a = allocate(&p, &idx, &ids(&["0000:3b:00.2", "0000:3b:00.3"]), true).unwrap();
        assert!(a.response.devices.is_empty());
        assert_eq!(
            a.response.annotations["cdi.k8s.io/smartnic.io_cx6_vf"],
            "smartnic.io/cx6_vf=0000:3b:00.2,smartnic.io/cx6_vf=0000:3b:00.3"
        );
        let spec = cdi_spec(&p, &devs);
        assert_eq!(spec["kind"], "smartnic.io/cx6_vf");
        assert_eq!(
            spec["devices"][1],
            json!({"name": "0000:3b:00.3", "containerEdits": {"deviceNodes": [
                {"path": "/dev/vfio/vfio", "permissions": "rw"},
                {"path": "/dev/vfio/noiommu-7", "permissions": "rw"}]}})
        );
        assert_eq!(cdi_file_name(&p), "smartnic.io-cx6_vf.json");
    }
}
