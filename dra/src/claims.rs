//! Prepare/unprepare bookkeeping: what a claim's allocation means on this node, and the two
//! files that record it.
//!
//! ```text
//!   <cdi-dir>/smartnic.io-claim-<uid>.json   CDI spec, kind smartnic.io/vf, one device per VF
//!   <prepared-dir>/<uid>.json                crds::dra::PreparedClaim (read by the CNI plugin)
//! ```
//!
//! Both are written atomically (temporary file in the same directory, fsync, rename, fsync of
//! the directory). The order makes every crash point repairable:
//!
//! - prepare writes the CDI spec, then the record. A crash in between leaves a CDI spec without a
//!   record: the kubelet got no answer and calls again (which rewrites both), and [`Store::reconcile`]
//!   at start removes such a spec if it does not.
//! - unprepare removes the record, then the CDI spec. A crash in between leaves a spec without a
//!   record, removed by the repeated call or at start.
//! - The record is the proof that a claim is prepared: preparing a claim that has one answers from
//!   it (idempotent, the same answer), after putting back a missing CDI spec.
//!
//! A claim UID is checked ([`valid_uid`]) before it is used in a path.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use crds::dra::{CDI_KIND, DRIVER_NAME, PreparedClaim, PreparedDevice, cdi_device};
use device_plugin::allocate::{CDI_VERSION, container_device_nodes};
use k8s_openapi::api::resource::v1::ResourceClaim;
use serde_json::{Value, json};

use crate::devices::DraDevice;

/// Prefix of the CDI spec files of prepared claims.
const CDI_PREFIX: &str = "smartnic.io-claim-";

/// A claim that cannot be prepared or unprepared.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The UID is not one (it would be used in a file name).
    #[error("claim {namespace}/{name}: {uid:?} is not a claim UID")]
    BadUid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The UID given.
        uid: String,
    },
    /// The claim in the API has another UID (deleted and recreated).
    #[error("claim {namespace}/{name} has UID {found}, not {wanted}")]
    UidMismatch {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID asked for.
        wanted: String,
        /// UID in the API.
        found: String,
    },
    /// The claim is not allocated.
    #[error("claim {namespace}/{name} is not allocated")]
    NotAllocated {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A device allocated to the claim on this node is not one of ours (gone, or unhealthy and
    /// dropped from the configuration).
    #[error(
        "claim {namespace}/{name}: device {device} of request {request} is not a device of this node"
    )]
    UnknownDevice {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Request.
        request: String,
        /// Device name.
        device: String,
    },
    /// In an `allocation: both` pool, the device plugin handed the device to a container
    /// (the kubelet's checkpoint says so) after the scheduler allocated it to the claim.
    #[error(
        "claim {namespace}/{name}: device {device} is in use by a pod of the device plugin; \
         delete the claim's pod to have the claim allocated again"
    )]
    HeldByDevicePlugin {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Device name.
        device: String,
    },
    /// A vfio-pci device has no IOMMU group.
    #[error("claim {namespace}/{name}: device {device} is on vfio-pci but in no IOMMU group")]
    NoIommuGroup {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Device name.
        device: String,
    },
    /// A file could not be written, read or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A Kubernetes UID: 1 to 64 lowercase hex digits and `-` (a UUID in practice). Nothing else may
/// become part of a file name.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
}

/// What the kubelet names: a claim by namespace, name and UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl ClaimRef {
    /// The UID, checked.
    pub fn checked_uid(&self) -> Result<&str, ClaimError> {
        if valid_uid(&self.uid) {
            Ok(&self.uid)
        } else {
            Err(ClaimError::BadUid {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                uid: self.uid.clone(),
            })
        }
    }
}

/// The record for `claim` as read from the API: its results of this driver in this node's pool,
/// mapped to known devices.
pub fn plan(
    want: &ClaimRef,
    claim: &ResourceClaim,
    node: &str,
    known: &BTreeMap<String, DraDevice>,
) -> Result<PreparedClaim, ClaimError> {
    let found = claim.metadata.uid.clone().unwrap_or_default();
    if found != want.uid {
        return Err(ClaimError::UidMismatch {
            namespace: want.namespace.clone(),
            name: want.name.clone(),
            wanted: want.uid.clone(),
            found,
        });
    }
    let status = claim.status.as_ref();
    let results = status
        .and_then(|s| s.allocation.as_ref())
        .and_then(|a| a.devices.as_ref())
        .and_then(|d| d.results.as_ref())
        .ok_or_else(|| ClaimError::NotAllocated {
            namespace: want.namespace.clone(),
            name: want.name.clone(),
        })?;
    let mut devices = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.driver == DRIVER_NAME && r.pool == node)
    {
        let d = known
            .get(&r.device)
            .ok_or_else(|| ClaimError::UnknownDevice {
                namespace: want.namespace.clone(),
                name: want.name.clone(),
                request: r.request.clone(),
                device: r.device.clone(),
            })?;
        let pci = d.pci_address();
        devices.push(PreparedDevice {
            request: r.request.clone(),
            pool: r.pool.clone(),
            device: r.device.clone(),
            cdi_device: cdi_device(&pci),
            pci_address: pci,
            resource_name: d.pool.name.clone(),
        });
    }
    let pod_uids = status
        .and_then(|s| s.reserved_for.as_ref())
        .map(|r| {
            r.iter()
                .filter(|c| c.resource == "pods" && c.api_group.as_deref().unwrap_or("").is_empty())
                .map(|c| c.uid.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(PreparedClaim {
        claim_uid: want.uid.clone(),
        namespace: want.namespace.clone(),
        name: want.name.clone(),
        pod_uids,
        devices,
    })
}

/// Refuses a claim whose device of an `allocation: both` pool the device plugin holds (`held`:
/// PCI addresses from the kubelet's device-plugin checkpoint).
pub fn check_not_held(
    rec: &PreparedClaim,
    known: &BTreeMap<String, DraDevice>,
    held: &BTreeSet<String>,
) -> Result<(), ClaimError> {
    for p in &rec.devices {
        let both = known
            .get(&p.device)
            .is_some_and(|d| d.pool.allocation.device_plugin());
        if both && held.contains(&p.pci_address) {
            return Err(ClaimError::HeldByDevicePlugin {
                namespace: rec.namespace.clone(),
                name: rec.name.clone(),
                device: p.device.clone(),
            });
        }
    }
    Ok(())
}

/// An env variable name from `s`: upper-case, anything not alphanumeric becomes `_`.
fn env_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The CDI spec of a prepared claim. Every device gets the env variable
/// `SMARTNIC_DRA_<request>_<PCI address>=<PCI address>` (a CDI device needs at least one edit,
/// and a kernel-netdev VF has no device node) and its device nodes (vfio, RDMA) as the device
/// plugin hands them out. `known` supplies the nodes; a device no longer known gets the env
/// variable only.
pub fn cdi_spec(
    prepared: &PreparedClaim,
    known: &BTreeMap<String, DraDevice>,
) -> Result<Value, ClaimError> {
    let mut devs = Vec::new();
    for p in &prepared.devices {
        let mut edits = serde_json::Map::new();
        let env = format!(
            "SMARTNIC_DRA_{}_{}={}",
            env_part(&p.request),
            env_part(&p.pci_address),
            p.pci_address
        );
        edits.insert("env".into(), json!([env]));
        if let Some(d) = known.get(&p.device) {
            let nodes = container_device_nodes(&d.pool, &d.device).ok_or_else(|| {
                ClaimError::NoIommuGroup {
                    namespace: prepared.namespace.clone(),
                    name: prepared.name.clone(),
                    device: p.device.clone(),
                }
            })?;
            if !nodes.is_empty() {
                let nodes: Vec<Value> = nodes
                    .iter()
                    .map(|n| json!({ "path": n, "permissions": "rw" }))
                    .collect();
                edits.insert("deviceNodes".into(), Value::Array(nodes));
            }
        }
        devs.push(json!({ "name": p.pci_address, "containerEdits": edits }));
    }
    Ok(json!({ "cdiVersion": CDI_VERSION, "kind": CDI_KIND, "devices": devs }))
}

/// The claim's devices as the kubelet wants them: (requests, pool, device, CDI device IDs).
pub fn answer(prepared: &PreparedClaim) -> Vec<(Vec<String>, String, String, Vec<String>)> {
    prepared
        .devices
        .iter()
        .map(|d| {
            (
                vec![d.request.clone()],
                d.pool.clone(),
                d.device.clone(),
                vec![d.cdi_device.clone()],
            )
        })
        .collect()
}

/// Writes `data` to `path` atomically: a temporary file next to it, fsync, rename, fsync of the
/// directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ClaimError> {
    let io = |source| ClaimError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_dir(dir).map_err(io)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes `path`; a missing file is success.
fn remove(path: &Path) -> Result<bool, ClaimError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = sync_dir(dir);
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ClaimError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The two directories.
#[derive(Clone, Debug)]
pub struct Store {
    /// Prepared-claim records.
    pub prepared_dir: PathBuf,
    /// CDI specs.
    pub cdi_dir: PathBuf,
}

/// What [`Store::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// CDI specs removed (no record).
    pub removed_specs: Vec<String>,
    /// CDI specs written again from their record.
    pub restored_specs: Vec<String>,
    /// Leftover temporary files removed.
    pub removed_temporaries: usize,
    /// Claims prepared (records kept).
    pub prepared: usize,
}

impl Store {
    /// The record file of a claim (`uid` checked by the caller).
    pub fn record_path(&self, uid: &str) -> PathBuf {
        self.prepared_dir.join(format!("{uid}.json"))
    }

    /// The CDI spec file of a claim.
    pub fn cdi_path(&self, uid: &str) -> PathBuf {
        self.cdi_dir.join(format!("{CDI_PREFIX}{uid}.json"))
    }

    /// The record of a prepared claim; `None` when there is none (or it is unreadable, which a
    /// new prepare overwrites).
    pub fn record(&self, uid: &str) -> Option<PreparedClaim> {
        let text = std::fs::read(self.record_path(uid)).ok()?;
        serde_json::from_slice::<PreparedClaim>(&text)
            .ok()
            .filter(|r| r.claim_uid == uid)
    }

    /// Prepares `want`: the existing record's answer when there is one (CDI spec restored if
    /// missing), else `fetch()`'s claim planned and checked against `held` ([`check_not_held`]),
    /// CDI spec written, then the record.
    pub fn prepare<E>(
        &self,
        want: &ClaimRef,
        node: &str,
        known: &BTreeMap<String, DraDevice>,
        held: &BTreeSet<String>,
        fetch: impl FnOnce() -> Result<ResourceClaim, E>,
    ) -> Result<PreparedClaim, PrepareError<E>> {
        let uid = want.checked_uid()?;
        if let Some(rec) = self.record(uid) {
            let spec = self.cdi_path(uid);
            if !spec.exists() {
                self.write_spec(&rec, known)?;
            }
            return Ok(rec);
        }
        let claim = fetch().map_err(PrepareError::Fetch)?;
        let rec = plan(want, &claim, node, known)?;
        check_not_held(&rec, known, held)?;
        self.write_spec(&rec, known)?;
        let json = serde_json::to_vec_pretty(&rec).unwrap_or_default();
        write_atomic(&self.record_path(uid), &json)?;
        Ok(rec)
    }

    fn write_spec(
        &self,
        rec: &PreparedClaim,
        known: &BTreeMap<String, DraDevice>,
    ) -> Result<(), ClaimError> {
        let spec = cdi_spec(rec, known)?;
        let text = serde_json::to_vec_pretty(&spec).unwrap_or_default();
        write_atomic(&self.cdi_path(&rec.claim_uid), &text)
    }

    /// Unprepares `want`: the record, then the CDI spec. An unknown claim is success.
    pub fn unprepare(&self, want: &ClaimRef) -> Result<(), ClaimError> {
        let uid = want.checked_uid()?;
        remove(&self.record_path(uid))?;
        remove(&self.cdi_path(uid))?;
        Ok(())
    }

    /// At start: CDI specs without a record are removed, records without a CDI spec get it
    /// back, temporaries of an interrupted write are removed.
    pub fn reconcile(&self, known: &BTreeMap<String, DraDevice>) -> Reconciled {
        let mut out = Reconciled::default();
        let list = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut records = BTreeSet::new();
        for name in list(&self.prepared_dir) {
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = remove(&self.prepared_dir.join(&name));
                out.removed_temporaries += 1;
            } else if let Some(uid) = name.strip_suffix(".json").filter(|u| valid_uid(u)) {
                records.insert(uid.to_owned());
            }
        }
        for name in list(&self.cdi_dir) {
            if name.starts_with(&format!(".{CDI_PREFIX}")) && name.ends_with(".tmp") {
                let _ = remove(&self.cdi_dir.join(&name));
                out.removed_temporaries += 1;
                continue;
            }
            let Some(uid) = name
                .strip_prefix(CDI_PREFIX)
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if !records.contains(uid) && remove(&self.cdi_dir.join(&name)).is_ok() {
                out.removed_specs.push(uid.to_owned());
            }
        }
        for uid in &records {
            let Some(rec) = self.record(uid) else {
                continue;
            };
            out.prepared += 1;
            if !self.cdi_path(uid).exists() && self.write_spec(&rec, known).is_ok() {
                out.restored_specs.push(uid.clone());
            }
        }
        out
    }
}

/// Preparing failed: reading the claim, or the claim itself.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError<E> {
    /// The claim could not be read from the API.
    #[error("cannot read the claim: {0}")]
    Fetch(E),
    /// The claim cannot be prepared.
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

#[cfg(test)]
mod tests {
    use crds::inventory::EswitchMode;
    use device_plugin::host::scan;
    use k8s_openapi::api::resource::v1::{
        AllocationResult, DeviceAllocationResult, DeviceRequestAllocationResult,
        ResourceClaimConsumerReference, ResourceClaimStatus,
    };
    use nic::fixtures::HostBuilder;

    use super::*;
    use crate::devices::{Facts, by_name, devices, tests::config};

    const UID: &str = "0b9f2a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";

    fn known() -> BTreeMap<String, DraDevice> {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        by_name(&devices(&config("dra"), &state, &Facts::default()))
    }

    fn want() -> ClaimRef {
        ClaimRef {
            namespace: "ns".into(),
            name: "vf".into(),
            uid: UID.into(),
        }
    }

    fn claim(results: &[(&str, &str, &str)]) -> ResourceClaim {
        let mut c = ResourceClaim::default();
        c.metadata.uid = Some(UID.into());
        c.status = Some(ResourceClaimStatus {
            allocation: Some(AllocationResult {
                devices: Some(DeviceAllocationResult {
                    results: Some(
                        results
                            .iter()
                            .map(|(driver, pool, device)| DeviceRequestAllocationResult {
                                driver: (*driver).into(),
                                pool: (*pool).into(),
                                device: (*device).into(),
                                request: "nic".into(),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            reserved_for: Some(vec![ResourceClaimConsumerReference {
                resource: "pods".into(),
                name: "p".into(),
                uid: "pod-uid-1".into(),
                api_group: None,
            }]),
            ..Default::default()
        });
        c
    }

    fn store(dir: &Path) -> Store {
        Store {
            prepared_dir: dir.join("claims"),
            cdi_dir: dir.join("cdi"),
        }
    }

    #[test]
    fn uids_are_checked_before_they_reach_a_path() {
        assert!(valid_uid(UID));
        for bad in ["", "../x", "a/b", "ABC", "x.json", &"a".repeat(65)] {
            assert!(!valid_uid(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let bad = ClaimRef {
            uid: "../../etc/passwd".into(),
            ..want()
        };
        let e = s
            .prepare(
                &bad,
                "n1",
                &known(),
                &BTreeSet::new(),
                || -> Result<_, String> { panic!("no API call for a bad uid") },
            )
            .unwrap_err();
        assert!(e.to_string().contains("not a claim UID"), "{e}");
        assert!(s.unprepare(&bad).is_err());
    }

    #[test]
    fn plan_takes_this_drivers_results_in_this_nodes_pool() {
        let c = claim(&[
            ("smartnic.io", "n1", "pci-0000-3b-00-3"),
            ("gpu.example.com", "n1", "gpu-0"),
            ("smartnic.io", "n2", "pci-0000-3b-00-4"),
        ]);
        let rec = plan(&want(), &c, "n1", &known()).unwrap();
        assert_eq!(rec.pod_uids, ["pod-uid-1"]);
        assert_eq!(rec.devices.len(), 1);
        let d = &rec.devices[0];
        assert_eq!(d.pci_address, "0000:3b:00.3");
        assert_eq!(d.cdi_device, "smartnic.io/vf=0000:3b:00.3");
        assert_eq!(d.resource_name, "cx6_vf");
        // an unknown device is an error naming it; another uid is refused
        let e = plan(
            &want(),
            &claim(&[("smartnic.io", "n1", "pci-0000-99-00-1")]),
            "n1",
            &known(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pci-0000-99-00-1"), "{e}");
        let mut other = c.clone();
        other.metadata.uid = Some("ffff".into());
        assert!(matches!(
            plan(&want(), &other, "n1", &known()),
            Err(ClaimError::UidMismatch { .. })
        ));
        let mut unallocated = c;
        unallocated.status = None;
        assert!(matches!(
            plan(&want(), &unallocated, "n1", &known()),
            Err(ClaimError::NotAllocated { .. })
        ));
    }

    #[test]
    fn prepare_is_idempotent_and_unprepare_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let k = known();
        let c = claim(&[("smartnic.io", "n1", "pci-0000-3b-00-3")]);
        let first = s
            .prepare(&want(), "n1", &k, &BTreeSet::new(), || {
                Ok::<_, String>(c.clone())
            })
            .unwrap();
        // the CNI's view: the record names the pod and the VF
        let on_disk: PreparedClaim =
            serde_json::from_slice(&std::fs::read(s.record_path(UID)).unwrap()).unwrap();
        assert_eq!(on_disk, first);
        let spec: Value = serde_json::from_slice(&std::fs::read(s.cdi_path(UID)).unwrap()).unwrap();
        assert_eq!(spec["kind"], "smartnic.io/vf");
        assert_eq!(spec["devices"][0]["name"], "0000:3b:00.3");
        assert_eq!(
            spec["devices"][0]["containerEdits"]["env"][0],
            "SMARTNIC_DRA_NIC_0000_3B_00_3=0000:3b:00.3"
        );
        // again: the same answer, without asking the API
        let again = s
            .prepare(
                &want(),
                "n1",
                &k,
                &BTreeSet::new(),
                || -> Result<ResourceClaim, String> {
                    panic!("a prepared claim is answered from its record")
                },
            )
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(
            answer(&again),
            [(
                vec!["nic".to_owned()],
                "n1".to_owned(),
                "pci-0000-3b-00-3".to_owned(),
                vec!["smartnic.io/vf=0000:3b:00.3".to_owned()]
            )]
        );
        s.unprepare(&want()).unwrap();
        assert!(!s.record_path(UID).exists() && !s.cdi_path(UID).exists());
        // unknown claim: success
        s.unprepare(&want()).unwrap();
        // an API error reaches the caller and writes nothing
        let e = s
            .prepare(&want(), "n1", &k, &BTreeSet::new(), || {
                Err::<ResourceClaim, _>("forbidden")
            })
            .unwrap_err();
        assert!(matches!(e, PrepareError::Fetch("forbidden")));
        assert!(!s.cdi_path(UID).exists());
    }

    /// `allocation: both`: a device the device plugin handed out after the scheduler allocated
    /// it is refused, naming it; a `dra` pool's device is not checked against the checkpoint.
    #[test]
    fn a_device_held_by_the_device_plugin_is_refused_in_both_pools() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut k = known();
        let c = claim(&[("smartnic.io", "n1", "pci-0000-3b-00-3")]);
        let held = BTreeSet::from(["0000:3b:00.3".to_owned()]);
        s.prepare(&want(), "n1", &k, &held, || Ok::<_, String>(c.clone()))
            .unwrap();
        s.unprepare(&want()).unwrap();
        for d in k.values_mut() {
            d.pool.allocation = crds::dra::Allocation::Both;
        }
        let e = s
            .prepare(&want(), "n1", &k, &held, || Ok::<_, String>(c.clone()))
            .unwrap_err();
        assert!(e.to_string().contains("pci-0000-3b-00-3 is in use"), "{e}");
        assert!(!s.record_path(UID).exists() && !s.cdi_path(UID).exists());
    }

    /// Every crash point of prepare and unprepare leaves a state that start-up reconciliation
    /// or the repeated call repairs.
    #[test]
    fn crash_points_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let k = known();
        let c = claim(&[("smartnic.io", "n1", "pci-0000-3b-00-3")]);
        // prepare crashed after the CDI spec, before the record: the spec goes at start
        let rec = plan(&want(), &c, "n1", &k).unwrap();
        s.write_spec(&rec, &k).unwrap();
        // and a temporary of an interrupted record write
        std::fs::create_dir_all(&s.prepared_dir).unwrap();
        std::fs::write(s.prepared_dir.join(format!(".{UID}.json.tmp")), "{").unwrap();
        let r = s.reconcile(&k);
        assert_eq!(r.removed_specs, [UID]);
        assert_eq!(r.removed_temporaries, 1);
        assert!(!s.cdi_path(UID).exists());
        // ... or the kubelet calls again first: both written
        s.write_spec(&rec, &k).unwrap();
        s.prepare(&want(), "n1", &k, &BTreeSet::new(), || {
            Ok::<_, String>(c.clone())
        })
        .unwrap();
        assert!(s.record_path(UID).exists() && s.cdi_path(UID).exists());
        // a record whose spec is gone (deleted by hand, tmpfs /var/run after a reboot): restored
        std::fs::remove_file(s.cdi_path(UID)).unwrap();
        let r = s.reconcile(&k);
        assert_eq!(r.restored_specs, [UID]);
        assert_eq!(r.prepared, 1);
        assert!(s.cdi_path(UID).exists());
        // unprepare crashed after the record: the spec goes, by a repeated call or at start
        std::fs::remove_file(s.record_path(UID)).unwrap();
        assert_eq!(s.reconcile(&k).removed_specs, [UID]);
        s.unprepare(&want()).unwrap();
        // other files in the CDI directory are not ours to touch
        std::fs::write(s.cdi_dir.join("vendor.json"), "{}").unwrap();
        assert!(s.reconcile(&k).removed_specs.is_empty());
        assert!(s.cdi_dir.join("vendor.json").exists());
    }
}
