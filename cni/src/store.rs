//! What the plugin keeps on disk between ADD and DEL, under one state directory
//! (default [`DEFAULT_STATE_DIR`]):
//!
//! ```text
//!   attachments/<containerID>:<ifname>   the step journal of one attachment (JSON lines)
//!   vf/<bdf>.lock                        flock: one ADD/DEL/GC at a time per VF
//!   vf/<bdf>.owner                       "<containerID>:<ifname>" of the attachment holding it
//! ```
//!
//! `:` appears in neither a container id nor an interface name, so the key is unambiguous.
//!
//! The journal is written ahead: every ADD step is appended before it is done, so a DEL after a
//! crash at any point knows what may have happened and undoes it (each undo tolerates "was never
//! done"). Lines are appended with one `write(2)` each and not fsynced: a killed process loses
//! nothing that was written, and after a host crash the pods and VF settings are gone too.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use nic::pci::PciAddress;
use serde::{Deserialize, Serialize};

use crate::{
    error::{CniError, code},
    lock::FileLock,
    result::AddResult,
};

/// Default state directory. Under `/run` (a tmpfs on a node): everything in it describes this
/// boot's pods and VF settings, which a reboot ends; kept on disk, it would outlive them and make
/// a DEL after the reboot "restore" VFs from a stale record. The IPAM leases stay where the
/// reference `host-local` keeps them.
pub const DEFAULT_STATE_DIR: &str = crds::cni_state::STATE_DIR;

/// A VF's state before we touched it: the PF-side row and the netdev's host name, MAC and MTU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedVf {
    /// Admin MAC through the PF (`None`: not reported).
    pub mac: Option<String>,
    /// Port VLAN.
    pub vlan: Option<u16>,
    /// VLAN priority.
    pub qos: Option<u8>,
    /// VLAN protocol, `802.1Q` or `802.1ad`.
    pub vlan_proto: Option<String>,
    /// Spoof check.
    pub spoofchk: Option<bool>,
    /// Trust.
    pub trust: Option<bool>,
    /// Min TX rate.
    pub min_tx_rate: Option<u32>,
    /// Max TX rate.
    pub max_tx_rate: Option<u32>,
    /// Link state (`auto`, `enable`, `disable`).
    pub link_state: Option<String>,
    /// The VF netdev's name in the host (`None` for vfio-pci VFs).
    pub netdev: Option<String>,
    /// The netdev's MAC.
    pub netdev_mac: Option<String>,
    /// The netdev's MTU.
    pub netdev_mtu: Option<u32>,
    /// InfiniBand node GUID through the PF (`None`: not reported, or zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_guid: Option<String>,
    /// InfiniBand port GUID through the PF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_guid: Option<String>,
}

/// One journal line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The attachment starts: what it is and where.
    #[serde(rename_all = "camelCase")]
    Begin {
        /// Network name.
        network: String,
        /// `sriov`, `macvlan`, `ipvlan`, `ovs`.
        mode: String,
        /// `CNI_NETNS`.
        netns: String,
        /// The configuration as received (DEL and GC undo with it).
        conf: serde_json::Value,
        /// The pod, from `CNI_ARGS` (the agent labels the VF's metrics with it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<crds::cni_state::AttachmentPod>,
    },
    /// The VF is claimed (owner file written).
    #[serde(rename_all = "camelCase")]
    VfClaimed {
        /// VF PCI address.
        bdf: String,
        /// PF netdev.
        pf: String,
        /// VF index.
        vf: u32,
    },
    /// A whole PF is claimed (owner file written); its netdev's state follows in `vf-saved`.
    #[serde(rename_all = "camelCase")]
    PfClaimed {
        /// PF PCI address.
        bdf: String,
    },
    /// The VF's original state.
    VfSaved {
        /// The saved state.
        saved: SavedVf,
    },
    /// VF settings are about to be applied through the PF.
    VfConfigure,
    /// The VF's RDMA device is about to move into the pod (the node's rdmaMode is exclusive).
    #[serde(rename_all = "camelCase")]
    RdmaMove {
        /// The RDMA device (`mlx5_2`).
        device: String,
    },
    /// Mode ib: the VF is about to be unbound from `driver` and bound again, so that the driver
    /// reads the GUID just set through the PF as it probes. DEL puts the VF's own GUID back and
    /// rebinds it again.
    VfRebind {
        /// The VF's kernel driver (`mlx5_core`).
        driver: String,
    },
    /// Mode ib: the VF is unbound and about to be bound to its driver again.
    VfBind,
    /// The VF netdev is about to move into the pod and be renamed.
    VfMove,
    /// A port is about to be put on an OVS bridge (mode ovs): the host end of a veth pair
    /// named `port` (made first, its peer moved into the pod) or the VF's representor `port`.
    #[serde(rename_all = "camelCase")]
    OvsPort {
        /// The bridge.
        bridge: String,
        /// The port (host veth end or representor).
        port: String,
        /// A veth pair (deleted on undo) rather than a representor (left on the host).
        veth: bool,
    },
    /// An interface is about to be created in the pod (macvlan, ipvlan).
    LinkCreate {
        /// Its name in the pod.
        name: String,
    },
    /// The interface name was taken in the pod: the create or move failed, nothing of ours is
    /// there to remove.
    NameTaken,
    /// Addresses are about to be allocated.
    Ipam {
        /// IPAM type.
        kind: String,
    },
    /// Addresses and routes are about to be configured in the pod.
    Addresses,
    /// The attachment's device-info file is about to be written (a VF claimed by DRA); DEL
    /// removes it again.
    #[serde(rename_all = "camelCase")]
    DeviceInfo {
        /// The file (`runtimeConfig.CNIDeviceInfoFile`, checked).
        path: String,
    },
    /// The ADD finished with this result.
    Done {
        /// The result.
        result: AddResult,
    },
}

impl Step {
    /// The failpoint name of this step (`SMARTNIC_CNI_FAILPOINT`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Begin { .. } => "begin",
            Self::VfClaimed { .. } => "vf-claimed",
            Self::PfClaimed { .. } => "pf-claimed",
            Self::VfSaved { .. } => "vf-saved",
            Self::VfConfigure => "vf-configure",
            Self::RdmaMove { .. } => "rdma-move",
            Self::VfRebind { .. } => "vf-rebind",
            Self::VfBind => "vf-bind",
            Self::VfMove => "vf-move",
            Self::OvsPort { .. } => "ovs-port",
            Self::LinkCreate { .. } => "link-create",
            Self::NameTaken => "name-taken",
            Self::Ipam { .. } => "ipam",
            Self::Addresses => "addresses",
            Self::DeviceInfo { .. } => "device-info",
            Self::Done { .. } => "done",
        }
    }
}

/// Every failpoint name, in ADD order.
pub const STEP_NAMES: [&str; 15] = [
    "begin",
    "vf-claimed",
    "pf-claimed",
    "vf-saved",
    "vf-configure",
    "vf-rebind",
    "vf-bind",
    "rdma-move",
    "vf-move",
    "ovs-port",
    "link-create",
    "ipam",
    "addresses",
    "device-info",
    "done",
];

/// The state directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::new(code::IO, format!("cannot {what} {}: {e}", path.display()))
}

/// An open journal that ADD appends to.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Appends one step (one `write(2)`), then passes its failpoint.
    pub fn record(&mut self, step: &Step) -> Result<(), CniError> {
        let mut line = serde_json::to_vec(step).unwrap_or_default();
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| io_err("write", &self.path, e))?;
        crate::failpoint::hit(step.name());
        Ok(())
    }
}

impl Store {
    /// A store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn attachments_dir(&self) -> PathBuf {
        self.root.join("attachments")
    }

    fn vf_dir(&self) -> PathBuf {
        self.root.join("vf")
    }

    /// The journal of `id`/`ifname`.
    pub fn journal_path(&self, id: &str, ifname: &str) -> PathBuf {
        crds::cni_state::journal_path(&self.root, &format!("{id}:{ifname}"))
    }

    /// Starts a fresh journal for `id`/`ifname` (an old one is replaced).
    pub fn begin(&self, id: &str, ifname: &str) -> Result<Journal, CniError> {
        let path = self.journal_path(id, ifname);
        let open = || {
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
        };
        // The directory is there on every call but the first: make it only when missing.
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = self.attachments_dir();
                fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
                open()
            }
            other => other,
        }
        .map_err(|e| io_err("create", &path, e))?;
        Ok(Journal { file, path })
    }

    /// Reopens an existing journal for appending (CHECK does not; ADD after a crash does not).
    pub fn read(&self, id: &str, ifname: &str) -> Result<Option<Vec<Step>>, CniError> {
        read_journal(&self.journal_path(id, ifname))
    }

    /// Removes the journal of `id`/`ifname` (missing is fine).
    pub fn forget(&self, id: &str, ifname: &str) -> Result<(), CniError> {
        let path = self.journal_path(id, ifname);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every attachment with a journal: (container id, ifname, steps).
    pub fn attachments(&self) -> Result<Vec<(String, String, Vec<Step>)>, CniError> {
        let dir = self.attachments_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((id, ifname)) = name.split_once(':') else {
                continue;
            };
            // One journal that cannot be read must not stop the GC of every other one.
            match read_journal(&entry.path()) {
                Ok(Some(steps)) => out.push((id.to_string(), ifname.to_string(), steps)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e.msg, "skipping a journal"),
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }

    /// Takes the per-VF lock (waits for another ADD/DEL on the same VF).
    pub fn lock_vf(&self, bdf: &PciAddress) -> Result<FileLock, CniError> {
        let dir = self.vf_dir();
        fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let path = dir.join(format!("{bdf}.lock"));
        FileLock::exclusive(&path, 0o600).map_err(|e| io_err("lock", &path, e))
    }

    /// Every VF with a lock file.
    pub fn vf_locks(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.vf_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".lock")
                    .map(String::from)
            })
            .collect();
        out.sort();
        out
    }

    fn owner_path(&self, bdf: &PciAddress) -> PathBuf {
        crds::cni_state::vf_owner_path(&self.root, &bdf.to_string())
    }

    /// Who holds the VF: (container id, ifname). Call with the VF lock held.
    ///
    /// A record that does not read as `<id>:<ifname>` is reported and counts as no holder: it
    /// is rewritten by the next claim instead of blocking the VF for ever.
    pub fn vf_owner(&self, bdf: &PciAddress) -> Result<Option<(String, String)>, CniError> {
        let path = self.owner_path(bdf);
        match fs::read(&path) {
            Ok(bytes) => {
                let owner = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().split_once(':'))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .map(|(a, b)| (a.to_string(), b.to_string()));
                if owner.is_none() {
                    tracing::warn!(record = %path.display(), "VF owner record cannot be read; treated as free");
                }
                Ok(owner)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    /// Records `id`/`ifname` as the VF's holder. Call with the VF lock held.
    pub fn set_vf_owner(&self, bdf: &PciAddress, id: &str, ifname: &str) -> Result<(), CniError> {
        let path = self.owner_path(bdf);
        write_atomic(&path, format!("{id}:{ifname}").as_bytes(), 0o600)
            .map_err(|e| io_err("write", &path, e))
    }

    /// Releases the VF. Call with the VF lock held.
    pub fn clear_vf_owner(&self, bdf: &PciAddress) -> Result<(), CniError> {
        let path = self.owner_path(bdf);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every VF with an owner file: (bdf, owner).
    pub fn vf_owners(&self) -> Result<Vec<(String, String)>, CniError> {
        let dir = self.vf_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(bdf) = name.strip_suffix(".owner") {
                let owner = fs::read(entry.path()).unwrap_or_default();
                out.push((
                    bdf.to_string(),
                    String::from_utf8_lossy(&owner).trim().to_string(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads a journal line by line from its bytes: a line that is not a step (cut short by a crash
/// mid-write, or damaged) is skipped and reported, so one bad line never stops a DEL or a GC.
fn read_journal(path: &Path) -> Result<Option<Vec<Step>>, CniError> {
    let bytes = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path, e)),
    };
    let (steps, bad) = parse_journal(&bytes);
    if bad > 0 {
        tracing::warn!(journal = %path.display(), lines = bad, "skipped journal lines that cannot be read");
    }
    Ok(Some(steps))
}

/// The steps of a journal's bytes and how many non-empty lines were not steps.
pub fn parse_journal(bytes: &[u8]) -> (Vec<Step>, usize) {
    let mut bad = 0;
    let steps = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter_map(|l| serde_json::from_slice(l).inspect_err(|_| bad += 1).ok())
        .collect();
    (steps, bad)
}

/// Writes `bytes` to `path` so that a reader sees the old contents or the new, never a part:
/// a temporary file next to it, fsynced, renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trip_and_torn_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut j = store.begin("c1", "net1").unwrap();
        j.record(&Step::Begin {
            network: "n".into(),
            mode: "sriov".into(),
            netns: "/var/run/netns/p".into(),
            conf: serde_json::json!({}),
            pod: None,
        })
        .unwrap();
        j.record(&Step::VfMove).unwrap();
        let path = store.journal_path("c1", "net1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"step\":\"ipa").unwrap();
        let steps = store.read("c1", "net1").unwrap().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1], Step::VfMove);
        assert_eq!(store.attachments().unwrap().len(), 1);
        store.forget("c1", "net1").unwrap();
        store.forget("c1", "net1").unwrap();
        assert!(store.read("c1", "net1").unwrap().is_none());
    }

    #[test]
    fn a_damaged_journal_gives_what_can_be_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut j = store.begin("c1", "net1").unwrap();
        j.record(&Step::VfMove).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.journal_path("c1", "net1"))
            .unwrap();
        f.write_all(
            b"\xff\xfe not json\n{\"step\":\"no-such-step\"}\n\n{\"step\":\"addresses\"}\n",
        )
        .unwrap();
        let steps = store.read("c1", "net1").unwrap().unwrap();
        assert_eq!(steps, vec![Step::VfMove, Step::Addresses]);
        assert_eq!(parse_journal(b"\xff\n{}\n").1, 2);
        // a journal that is not even a file stops neither the listing nor the others
        fs::create_dir(store.journal_path("c2", "net1")).unwrap();
        assert!(store.read("c2", "net1").is_err());
        assert_eq!(store.attachments().unwrap().len(), 1);
    }

    #[test]
    fn a_damaged_owner_record_frees_the_vf_and_writes_are_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let bdf: PciAddress = "0000:3b:02.1".parse().unwrap();
        let _l = store.lock_vf(&bdf).unwrap();
        fs::write(store.owner_path(&bdf), b"\xff\xfe").unwrap();
        assert_eq!(store.vf_owner(&bdf).unwrap(), None);
        store.set_vf_owner(&bdf, "c1", "net1").unwrap();
        assert_eq!(fs::read(store.owner_path(&bdf)).unwrap(), b"c1:net1");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.owner_path(&bdf))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // no temporary file left behind
        let names: Vec<_> = fs::read_dir(tmp.path().join("vf"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn vf_owner_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let bdf: PciAddress = "0000:3b:02.1".parse().unwrap();
        let _l = store.lock_vf(&bdf).unwrap();
        assert_eq!(store.vf_owner(&bdf).unwrap(), None);
        store.set_vf_owner(&bdf, "c1", "net1").unwrap();
        assert_eq!(
            store.vf_owner(&bdf).unwrap(),
            Some(("c1".into(), "net1".into()))
        );
        assert_eq!(store.vf_owners().unwrap().len(), 1);
        store.clear_vf_owner(&bdf).unwrap();
        assert!(store.vf_owners().unwrap().is_empty());
    }
}
