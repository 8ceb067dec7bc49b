//! The VF of a pod that got it by Dynamic Resource Allocation.
//!
//! Multus (v4.2) hands a delegate the devices of a ResourceClaim only when the claim's name
//! equals the NAD's `k8s.v1.cni.cncf.io/resourceName` annotation: it passes the part after `=`
//! of the claim's CDI device name as `deviceID`, which with our CDI names
//! ([`crds::dra::cdi_device`]) is the VF's PCI address. Claims made from a
//! ResourceClaimTemplate have generated names, and the NAD of a pool offered by DRA only has no
//! such annotation, so in the common case no `deviceID` arrives. Then the plugin reads the
//! records the DRA driver wrote at NodePrepareResources ([`crds::dra::PreparedClaim`], one
//! `<claim uid>.json` per claim in [`crds::dra::PREPARED_DIR`]) and takes a device of the
//! network's resource prepared for this pod (`K8S_POD_UID`) that no other attachment holds
//! ([`pick`]). A `deviceID` that Multus did pass is accepted as this pod's when it is among those
//! devices ([`prepared_devices`]).
//!
//! The records are root's, but they name pods and devices a tenant asked for: the pod UID and
//! every file name must be UUIDs, a record is a regular file of at most [`MAX_RECORD`] bytes, its
//! `claimUid` must be its file name, and every PCI address must be one
//! ([`crds::dra::is_pci_address`]); a record that fails any of this is skipped with a warning.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crds::dra::{PreparedClaim, is_pci_address};
use nic::pci::PciAddress;

use crate::{
    error::{CniError, code},
    store::Store,
};

/// The largest record read: a claim of a few devices is a few hundred bytes.
pub const MAX_RECORD: u64 = 64 << 10;

/// `8-4-4-4-12` hex digits, what Kubernetes UIDs are.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The resource name without prefix (`smartnic.io/cx6_vf` → `cx6_vf`), as the records have it.
fn bare(resource: &str) -> &str {
    resource.rsplit_once('/').map_or(resource, |(_, r)| r)
}

/// The devices of `resource` (with or without prefix) prepared for the pod `pod_uid` in `dir`,
/// sorted by PCI address. No directory (no DRA driver on the node) is no devices.
pub fn prepared_devices(
    dir: &Path,
    pod_uid: &str,
    resource: &str,
) -> Result<Vec<PciAddress>, CniError> {
    if !is_uuid(pod_uid) {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_ARGS K8S_POD_UID: {pod_uid:?} is not a pod UID"),
        ));
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CniError::new(
                code::IO,
                format!(
                    "cannot read the prepared DRA claims in {}: {e}",
                    dir.display()
                ),
            ));
        }
    };
    let resource = bare(resource);
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(claim) = read_record(&path) else {
            continue;
        };
        if !claim.pod_uids.iter().any(|u| u == pod_uid) {
            continue;
        }
        for d in claim.devices.iter().filter(|d| d.resource_name == resource) {
            match d.pci_address.parse::<PciAddress>() {
                Ok(a) if is_pci_address(&d.pci_address) => out.push(a),
                _ => tracing::warn!(
                    record = %path.display(),
                    "prepared DRA claim lists {:?}, which is not a PCI address; skipped",
                    d.pci_address
                ),
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One record, or `None` (with a warning) for anything that is not a valid one.
fn read_record(path: &Path) -> Option<PreparedClaim> {
    let name = path.file_name()?.to_str()?;
    let uid = name.strip_suffix(".json").filter(|u| is_uuid(u));
    let skip = |why: &str| {
        tracing::warn!(record = %path.display(), "prepared DRA claim skipped: {why}");
        None
    };
    let Some(uid) = uid else {
        // the driver's temporary files and anything else that is not `<uid>.json`
        return None;
    };
    let bytes = match crate::small_file::read(path, MAX_RECORD) {
        Ok(b) => b,
        Err(e) => return skip(&e.to_string()),
    };
    match serde_json::from_slice::<PreparedClaim>(&bytes) {
        Ok(c) if c.claim_uid == uid => Some(c),
        Ok(c) => skip(&format!(
            "its claimUid {:?} is not its file name",
            c.claim_uid
        )),
        Err(e) => skip(&e.to_string()),
    }
}

/// Where the prepared claims are read: `override_dir` (the binary's environment override, for
/// tests) or [`crds::dra::PREPARED_DIR`].
pub fn prepared_dir(override_dir: Option<std::ffi::OsString>) -> PathBuf {
    override_dir.map_or_else(|| crds::dra::PREPARED_DIR.into(), PathBuf::from)
}

/// The attachment a device is picked for, and the pod it belongs to (for errors).
#[derive(Clone, Copy, Debug)]
pub struct Attachment<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The pod's UID (`K8S_POD_UID`).
    pub pod_uid: &'a str,
    /// The pod as `namespace/name` (or its UID), for messages.
    pub pod: &'a str,
}

/// The device `at` takes for `resource` among `devices` (the pod's prepared devices of that
/// resource, [`prepared_devices`] read from `dir`): the first that no attachment holds, or the
/// one this attachment already holds (a repeated ADD).
pub fn pick(
    devices: &[PciAddress],
    dir: &Path,
    store: &Store,
    resource: &str,
    at: Attachment<'_>,
) -> Result<PciAddress, CniError> {
    let Attachment {
        container_id,
        ifname,
        pod_uid,
        pod,
    } = at;
    if devices.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "pod {pod} has no prepared {} claim for resource {resource} (no deviceID was passed and {} holds no claim reserved for pod UID {pod_uid}); give the pod a ResourceClaim of the resource's DeviceClass",
                crds::dra::DRIVER_NAME,
                dir.display()
            ),
        ));
    }
    let mut held = Vec::new();
    for d in devices {
        match store.vf_owner(d)? {
            None => return Ok(*d),
            Some((id, ifn)) if id == container_id && ifn == ifname => return Ok(*d),
            Some((id, ifn)) => held.push(format!("{d} (by {id}:{ifn})")),
        }
    }
    Err(CniError::new(
        code::DEVICE_BUSY,
        format!(
            "pod {pod}: every device of its {} claims for resource {resource} is attached already: {}; claim one device per network of the resource",
            crds::dra::DRIVER_NAME,
            held.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use crds::dra::PreparedDevice;

    use super::*;

    const POD: &str = "6f1c2a3b-0000-4000-8000-00000000000a";
    const OTHER_POD: &str = "6f1c2a3b-0000-4000-8000-00000000000b";
    const CLAIM_A: &str = "c1a1a1a1-0000-4000-8000-000000000001";
    const CLAIM_B: &str = "c1a1a1a1-0000-4000-8000-000000000002";

    fn record(dir: &Path, uid: &str, pods: &[&str], devices: &[(&str, &str)]) {
        let claim = PreparedClaim {
            claim_uid: uid.into(),
            namespace: "team-a".into(),
            name: format!("claim-{uid}"),
            pod_uids: pods.iter().map(|p| (*p).to_owned()).collect(),
            devices: devices
                .iter()
                .map(|(pci, res)| PreparedDevice {
                    request: "vf".into(),
                    pool: "node-1".into(),
                    device: crds::dra::device_name(pci).unwrap_or_default(),
                    pci_address: (*pci).into(),
                    resource_name: (*res).into(),
                    cdi_device: crds::dra::cdi_device(pci),
                })
                .collect(),
        };
        fs::write(
            dir.join(format!("{uid}.json")),
            serde_json::to_vec(&claim).unwrap(),
        )
        .unwrap();
    }

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn the_pods_devices_of_the_resource_are_found_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        record(
            dir.path(),
            CLAIM_A,
            &[POD],
            &[("0000:3b:02.3", "cx6_vf"), ("0000:af:00.1", "gpu_like")],
        );
        record(dir.path(), CLAIM_B, &[POD], &[("0000:3b:02.1", "cx6_vf")]);
        record(
            dir.path(),
            "c1a1a1a1-0000-4000-8000-000000000003",
            &[OTHER_POD],
            &[("0000:3b:02.5", "cx6_vf")],
        );
        assert_eq!(
            prepared_devices(dir.path(), POD, "smartnic.io/cx6_vf").unwrap(),
            vec![addr("0000:3b:02.1"), addr("0000:3b:02.3")]
        );
        assert_eq!(
            prepared_devices(dir.path(), OTHER_POD, "cx6_vf").unwrap(),
            vec![addr("0000:3b:02.5")]
        );
        assert!(
            prepared_devices(dir.path(), POD, "other")
                .unwrap()
                .is_empty()
        );
        // no DRA driver on the node: nothing prepared
        assert!(
            prepared_devices(&dir.path().join("absent"), POD, "cx6_vf")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn hostile_records_and_pod_uids_are_refused_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // a path in the pod UID never reaches the file system
        for bad in [
            "../../etc/passwd",
            "",
            "6f1c2a3b-0000-4000-8000-00000000000",
            "*",
        ] {
            let e = prepared_devices(d, bad, "cx6_vf").unwrap_err();
            assert!(e.msg.contains("K8S_POD_UID"), "{bad}: {}", e.msg);
        }
        // a record whose claimUid is not its name, a name that is no UID, a symlink, a huge
        // file, a bad PCI address: all skipped
        record(d, CLAIM_A, &[POD], &[("0000:3b:02.3", "cx6_vf")]);
        fs::rename(
            d.join(format!("{CLAIM_A}.json")),
            d.join(format!("{CLAIM_B}.json")),
        )
        .unwrap();
        fs::write(
            d.join("not-a-uid.json"),
            fs::read(d.join(format!("{CLAIM_B}.json"))).unwrap(),
        )
        .unwrap();
        let target = d.join("elsewhere");
        fs::create_dir(&target).unwrap();
        record(&target, CLAIM_A, &[POD], &[("0000:3b:02.4", "cx6_vf")]);
        std::os::unix::fs::symlink(
            target.join(format!("{CLAIM_A}.json")),
            d.join(format!("{CLAIM_A}.json")),
        )
        .unwrap();
        let big = "c1a1a1a1-0000-4000-8000-000000000009";
        fs::write(d.join(format!("{big}.json")), vec![b' '; 70 << 10]).unwrap();
        let pci = "c1a1a1a1-0000-4000-8000-000000000008";
        record(
            d,
            pci,
            &[POD],
            &[("../../sys/x", "cx6_vf"), ("3b:02.6", "cx6_vf")],
        );
        assert!(prepared_devices(d, POD, "cx6_vf").unwrap().is_empty());
    }

    #[test]
    fn each_attachment_takes_a_device_no_other_holds() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let store = Store::new(state.path());
        record(
            dir.path(),
            CLAIM_A,
            &[POD],
            &[("0000:3b:02.1", "cx6_vf"), ("0000:3b:02.2", "cx6_vf")],
        );
        let at = |pod_uid, pod, container_id, ifname| Attachment {
            container_id,
            ifname,
            pod_uid,
            pod,
        };
        let devices = |pod| prepared_devices(dir.path(), pod, "smartnic.io/cx6_vf").unwrap();
        let pick = |ifname| {
            pick(
                &devices(POD),
                dir.path(),
                &store,
                "smartnic.io/cx6_vf",
                at(POD, "team-a/web", "ctr1", ifname),
            )
        };
        let first = pick("net1").unwrap();
        assert_eq!(first, addr("0000:3b:02.1"));
        fs::create_dir_all(state.path().join("vf")).unwrap();
        store.set_vf_owner(&first, "ctr1", "net1").unwrap();
        // the same attachment again keeps its device; the next one gets the other
        assert_eq!(pick("net1").unwrap(), first);
        let second = pick("net2").unwrap();
        assert_eq!(second, addr("0000:3b:02.2"));
        store.set_vf_owner(&second, "ctr1", "net2").unwrap();
        let e = pick("net3").unwrap_err();
        assert_eq!(e.code, code::DEVICE_BUSY);
        assert!(e.msg.contains("0000:3b:02.1 (by ctr1:net1)"), "{}", e.msg);
        // a pod without a claim: the error names the pod and the resource
        let e = super::pick(
            &devices(OTHER_POD),
            dir.path(),
            &store,
            "smartnic.io/cx6_vf",
            at(OTHER_POD, "team-a/db", "ctr2", "net1"),
        )
        .unwrap_err();
        assert!(
            e.msg.starts_with(
                "pod team-a/db has no prepared smartnic.io claim for resource smartnic.io/cx6_vf"
            ),
            "{}",
            e.msg
        );
    }
}
