//! The VF an ADD takes must be one the kubelet allocated to **this** pod, not only one of this
//! node's pools ([`crate::pools`]): two pods of the same pool could otherwise name each other's
//! VFs in a NetworkAttachmentDefinition of their own.
//!
//! The kubelet's device manager records every allocation in its checkpoint
//! (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`, JSON, written whole by the
//! kubelet before the pod's sandbox and so before its CNI ADD):
//!
//! ```json
//! {"Data": {"PodDeviceEntries": [{"PodUID": "...", "ContainerName": "app",
//!   "ResourceName": "smartnic.io/cx6_vf", "DeviceIDs": {"0": ["0000:3b:00.2"]},
//!   "AllocResp": "..."}], "RegisteredDevices": {...}}, "Checksum": 1234}
//! ```
//!
//! (`DeviceIDs` per NUMA node; older kubelets wrote a plain list, read too.) The pod is the
//! `K8S_POD_UID` of `CNI_ARGS`. When both are there, the device must be among the devices the
//! checkpoint lists for that pod under a resource of this node's pools; a pod it lists for none of
//! them got no VF at all, and is refused as well. Without a pod UID or a checkpoint (the plugin
//! run outside a kubelet), or with a checkpoint this code cannot read, the pool check is all
//! there is, and the plugin says so in its log.
//!
//! The file is the kubelet's (root's), not a tenant's, but it is read defensively all the same:
//! at most [`MAX_CHECKPOINT`] bytes, and every field of the wrong type is skipped.

use std::{collections::BTreeSet, fs, io::Read, path::Path};

use nic::pci::PciAddress;
use serde_json::Value;

use crate::error::{CniError, code};

/// The kubelet's device-manager checkpoint.
pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// The `CNI_ARGS` key in which the kubelet's runtimes (and Multus) pass the pod's UID.
pub const ARG_POD_UID: &str = "K8S_POD_UID";

/// The largest checkpoint read: a node's pods and their allocation responses are a few hundred
/// KiB at most.
pub const MAX_CHECKPOINT: u64 = 16 << 20;

/// What the per-pod check found, when it did not refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodCheck {
    /// The device is one the kubelet allocated to this pod.
    Allocated,
    /// The check could not be made (why); the pool check stands alone.
    NotPossible(String),
}

/// The checkpoint, as far as it is read: the allocation responses (most of its bytes) and the
/// registered devices are skipped without being kept.
#[derive(serde::Deserialize)]
struct Checkpoint {
    #[serde(rename = "Data")]
    data: Data,
}

#[derive(serde::Deserialize)]
struct Data {
    /// `null` for a node without allocations.
    #[serde(rename = "PodDeviceEntries")]
    entries: Option<Vec<Entry>>,
}

/// One entry; each field is taken as JSON and checked, so that an entry of the wrong shape is
/// skipped rather than failing the whole file.
#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "PodUID", default)]
    pod_uid: Value,
    #[serde(rename = "ResourceName", default)]
    resource: Value,
    #[serde(rename = "DeviceIDs", default)]
    devices: Value,
}

/// The devices the checkpoint `bytes` lists for `pod_uid` under a resource for which `ours`
/// holds; `None` when `bytes` is not a checkpoint of the known shape.
pub fn pod_devices(
    bytes: &[u8],
    pod_uid: &str,
    ours: impl Fn(&str) -> bool,
) -> Option<BTreeSet<String>> {
    // entries that are not objects are skipped, not fatal
    let entries: Vec<Entry> = match serde_json::from_slice::<Checkpoint>(bytes) {
        Ok(c) => c.data.entries.unwrap_or_default(),
        Err(_) => {
            let v: Value = serde_json::from_slice(bytes).ok()?;
            match v.get("Data")?.get("PodDeviceEntries")? {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|e| serde_json::from_value(e.clone()).ok())
                    .collect(),
                Value::Null => Vec::new(),
                _ => return None,
            }
        }
    };
    let mut out = BTreeSet::new();
    for e in entries {
        let (Some(uid), Some(resource)) = (e.pod_uid.as_str(), e.resource.as_str()) else {
            continue;
        };
        if uid != pod_uid || !ours(resource) {
            continue;
        }
        let lists: Vec<&Value> = match &e.devices {
            Value::Object(per_numa) => per_numa.values().collect(),
            list @ Value::Array(_) => vec![list],
            _ => continue,
        };
        for id in lists
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
        {
            out.insert(id.to_owned());
        }
    }
    Some(out)
}

/// Whether `id` (as the device plugin advertised it) names `addr`.
fn same_device(id: &str, addr: PciAddress) -> bool {
    id.parse::<PciAddress>().is_ok_and(|a| a == addr)
}

/// Refuses `addr` unless the kubelet's checkpoint at `checkpoint` lists it for the pod
/// `pod_uid` under one of `resources` (`<prefix>/<name>` of this node's pools; only the network's
/// own resource when it names one). `pod_name` (`namespace/name`) is for the message. See the
/// module documentation for when it cannot check.
pub fn check(
    checkpoint: &Path,
    pod_uid: Option<&str>,
    pod_name: Option<&str>,
    resources: &[String],
    addr: PciAddress,
) -> Result<PodCheck, CniError> {
    let Some(uid) = pod_uid.filter(|u| !u.is_empty()) else {
        return Ok(PodCheck::NotPossible(format!(
            "no {ARG_POD_UID} in CNI_ARGS (not run by a kubelet)"
        )));
    };
    let mut bytes = Vec::new();
    let read =
        fs::File::open(checkpoint).and_then(|f| f.take(MAX_CHECKPOINT + 1).read_to_end(&mut bytes));
    match read {
        Err(e) => {
            return Ok(PodCheck::NotPossible(format!(
                "cannot read the kubelet's device checkpoint {}: {e}",
                checkpoint.display()
            )));
        }
        Ok(_) if bytes.len() as u64 > MAX_CHECKPOINT => {
            return Ok(PodCheck::NotPossible(format!(
                "the kubelet's device checkpoint {} is larger than {} MiB",
                checkpoint.display(),
                MAX_CHECKPOINT >> 20
            )));
        }
        Ok(_) => {}
    }
    let Some(devices) = pod_devices(&bytes, uid, |r| resources.iter().any(|x| x == r)) else {
        return Ok(PodCheck::NotPossible(format!(
            "the kubelet's device checkpoint {} is not of a known shape",
            checkpoint.display()
        )));
    };
    if devices.iter().any(|id| same_device(id, addr)) {
        return Ok(PodCheck::Allocated);
    }
    let what = if resources.len() == 1 {
        resources[0].clone()
    } else {
        "this node's pools".to_owned()
    };
    let held = if devices.is_empty() {
        format!("the kubelet allocated it no device of {what}")
    } else {
        format!(
            "the kubelet allocated it {}",
            devices.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Err(CniError::new(
        code::INVALID_CONFIG,
        format!(
            "key deviceID: {addr} was not allocated to pod {} (UID {uid}; {held}); only a \
             device the kubelet allocated to this pod can be attached",
            pod_name.unwrap_or("(name unknown)")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pci(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn checkpoint() -> Value {
        json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "pod-a", "ContainerName": "app", "ResourceName": "smartnic.io/vf",
             "DeviceIDs": {"0": ["0000:3b:02.2"], "1": ["0000:af:02.1"]}, "AllocResp": "CgA="},
            {"PodUID": "pod-b", "ContainerName": "app", "ResourceName": "smartnic.io/vf",
             "DeviceIDs": {"0": ["0000:3b:02.3"]}, "AllocResp": "CgA="},
            {"PodUID": "pod-a", "ContainerName": "app", "ResourceName": "nvidia.com/gpu",
             "DeviceIDs": {"0": ["0000:3b:02.4"]}, "AllocResp": "CgA="},
            // older kubelets: a plain list
            {"PodUID": "pod-c", "ContainerName": "app", "ResourceName": "smartnic.io/vf",
             "DeviceIDs": ["0000:3b:02.5"]},
            // damaged entries are skipped
            {"PodUID": 7, "ResourceName": "smartnic.io/vf", "DeviceIDs": {"0": ["0000:3b:02.6"]}},
            {"PodUID": "pod-a", "ResourceName": "smartnic.io/vf", "DeviceIDs": {"0": [1, null]}},
            "garbage"
        ], "RegisteredDevices": {"smartnic.io/vf": ["0000:3b:02.2"]}}, "Checksum": 1})
    }

    fn write(dir: &Path, v: &Value) -> std::path::PathBuf {
        let p = dir.join("kubelet_internal_checkpoint");
        fs::write(&p, v.to_string()).unwrap();
        p
    }

    #[test]
    fn the_pods_own_devices_of_our_resources() {
        let b = checkpoint().to_string();
        let ours = |r: &str| r == "smartnic.io/vf";
        let a = pod_devices(b.as_bytes(), "pod-a", ours).unwrap();
        assert_eq!(
            a.into_iter().collect::<Vec<_>>(),
            ["0000:3b:02.2", "0000:af:02.1"]
        );
        let c = pod_devices(b.as_bytes(), "pod-c", ours).unwrap();
        assert_eq!(c.into_iter().collect::<Vec<_>>(), ["0000:3b:02.5"]);
        assert!(pod_devices(b.as_bytes(), "pod-z", ours).unwrap().is_empty());
        let none = json!({"Data": {"PodDeviceEntries": null}, "Checksum": 0}).to_string();
        assert!(
            pod_devices(none.as_bytes(), "pod-a", ours)
                .unwrap()
                .is_empty()
        );
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"Data\":{\"PodDeviceEntries\":7}}",
            b"{}",
        ] {
            assert_eq!(pod_devices(bad, "pod-a", ours), None, "{bad:?}");
        }
    }

    #[test]
    fn another_pods_device_is_refused_naming_the_pod_and_the_device() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), &checkpoint());
        let ours = ["smartnic.io/vf".to_owned()];
        assert_eq!(
            check(&p, Some("pod-a"), Some("ns/a"), &ours, pci("0000:3b:02.2")).unwrap(),
            PodCheck::Allocated
        );
        let e = check(&p, Some("pod-a"), Some("ns/a"), &ours, pci("0000:3b:02.3")).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        for needle in [
            "0000:3b:02.3",
            "pod ns/a (UID pod-a",
            "0000:3b:02.2, 0000:af:02.1",
        ] {
            assert!(e.msg.contains(needle), "{needle}: {}", e.msg);
        }
        // a device of another resource (the GPU's) is not one of ours
        assert!(check(&p, Some("pod-a"), Some("ns/a"), &ours, pci("0000:3b:02.4")).is_err());
        // a pod the kubelet gave no VF
        let e = check(&p, Some("pod-z"), None, &ours, pci("0000:3b:02.2")).unwrap_err();
        assert!(e.msg.contains("no device of smartnic.io/vf"), "{}", e.msg);
    }

    #[test]
    fn without_a_pod_uid_or_a_readable_checkpoint_the_check_is_not_possible() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = ["smartnic.io/vf".to_owned()];
        let p = write(tmp.path(), &checkpoint());
        let addr = pci("0000:3b:02.3");
        for uid in [None, Some("")] {
            let r = check(&p, uid, None, &ours, addr).unwrap();
            assert!(
                matches!(&r, PodCheck::NotPossible(w) if w.contains(ARG_POD_UID)),
                "{r:?}"
            );
        }
        let r = check(&tmp.path().join("none"), Some("pod-a"), None, &ours, addr).unwrap();
        assert!(
            matches!(&r, PodCheck::NotPossible(w) if w.contains("cannot read")),
            "{r:?}"
        );
        fs::write(&p, b"not json").unwrap();
        let r = check(&p, Some("pod-a"), Some("ns/a"), &ours, addr).unwrap();
        assert!(
            matches!(&r, PodCheck::NotPossible(w) if w.contains("known shape")),
            "{r:?}"
        );
        let big = fs::File::create(&p).unwrap();
        big.set_len(MAX_CHECKPOINT + 1).unwrap();
        let r = check(&p, Some("pod-a"), Some("ns/a"), &ours, addr).unwrap();
        assert!(
            matches!(&r, PodCheck::NotPossible(w) if w.contains("larger")),
            "{r:?}"
        );
    }
}
