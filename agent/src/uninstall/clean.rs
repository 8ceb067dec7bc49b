//! The uninstall itself, once [`super::decide::decide`] said so: a thin shell over the host.
//!
//! 1. The holders: every CNI attachment on record (`/run/smartnic/cni/attachments`, with the
//!    VFs its owner records name) and every DRA prepared claim (`/var/lib/smartnic/dra/claims`).
//!    Any holder stops everything: no PF is reset (that would pull VFs out of running pods) and
//!    no file is removed (the CNI binary is what tears those pods' attachments down). The log
//!    names each holder.
//! 2. The marker [`crds::host_paths::CNI_UNINSTALL_MARKER`] in the CNI binary directory: the CNI
//!    installer's keep-running loop does not put the binary back while it exists.
//! 3. Each PF back as it was ([`super::restore::plan_restore`]), through the ordinary
//!    [`Executor`] (PFs in parallel, the hand-off file emptied first). A failed step is reported
//!    and the rest goes on.
//! 4. The CNI binary, then the contents of every directory of [`crds::host_paths::OWNED`] the
//!    agent removes (state file, hand-off file, allow-list, CNI records and logs), then the
//!    marker.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crds::{
    cni_state::{AttachmentBegin, journal_path},
    dra::PreparedClaim,
    host_paths::{self, Removal, Remover},
    node_state::NicNodeStateSpec,
};

use super::decide::holders_block;
use super::restore::plan_restore;
use crate::executor::{ApplyReport, Executor};
use crate::handoff::DevicePluginFile;
use crate::run::host::NodeHost;
use crate::state::StateFile;

/// Where the host paths are, as the agent sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanPaths {
    /// The directories whose contents are removed (the agent's [`Removal::Contents`] entries).
    pub dirs: Vec<PathBuf>,
    /// The host's CNI binary directory (`/opt/cni/bin`, mounted into the agent).
    pub cni_bin_dir: PathBuf,
    /// The CNI plugin's state directory (its attachment records).
    pub cni_state_dir: PathBuf,
    /// The DRA driver's prepared-claim records.
    pub dra_claims_dir: PathBuf,
}

impl CleanPaths {
    /// The paths of [`host_paths::OWNED`] under `root` (`/` in the agent, whose mounts put the
    /// host directories at the same paths; a temporary directory in tests), with the host's CNI
    /// binary directory at `cni_bin_dir`.
    pub fn under(root: &Path, cni_bin_dir: &Path) -> Self {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        Self {
            dirs: host_paths::OWNED
                .iter()
                .filter(|o| o.remover == Remover::Agent && o.removal == Removal::Contents)
                .map(|o| at(o.path))
                .collect(),
            cni_bin_dir: cni_bin_dir.to_owned(),
            cni_state_dir: at(crds::cni_state::STATE_DIR),
            dra_claims_dir: at(crds::dra::PREPARED_DIR),
        }
    }

    fn cni_binary(&self) -> PathBuf {
        self.cni_bin_dir.join(file_name(host_paths::CNI_BINARY))
    }

    fn marker(&self) -> PathBuf {
        self.cni_bin_dir
            .join(file_name(host_paths::CNI_UNINSTALL_MARKER))
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How the uninstall ended.
#[derive(Debug)]
pub enum CleanReport {
    /// Devices are still held: nothing was changed. The message names the holders.
    Blocked(String),
    /// Done: the PFs' run, what was removed, and every error on the way.
    Done {
        /// The restore plan's run (empty when no PF needed a step).
        restore: ApplyReport,
        /// The files and directories removed.
        removed: Vec<PathBuf>,
        /// What failed (a step, a removal, the state file), one line each.
        errors: Vec<String>,
    },
}

/// The uninstall on one host. See the module documentation.
pub struct Cleanup<'a> {
    /// Discovery and the step operations.
    pub host: &'a (dyn NodeHost + Sync),
    /// The agent's state file (the applied spec, the originals).
    pub state: &'a StateFile,
    /// The device-plugin hand-off file.
    pub handoff: &'a DevicePluginFile,
    /// The host's boot id.
    pub boot_id: String,
    /// The host paths.
    pub paths: &'a CleanPaths,
}

impl Cleanup<'_> {
    /// Runs it (blocking). See the module documentation.
    pub fn run(&self) -> CleanReport {
        if let Some(why) = holders_block(&holders(self.paths)) {
            return CleanReport::Blocked(why);
        }
        let mut errors = Vec::new();
        let marker = self.paths.marker();
        if self.paths.cni_bin_dir.is_dir()
            && let Err(e) = std::fs::write(&marker, b"")
        {
            errors.push(format!("cannot write {}: {e}", marker.display()));
        }
        let restore = match self.restore() {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                ApplyReport::default()
            }
        };
        errors.extend(restore.errors());
        let mut removed = Vec::new();
        let binary = self.paths.cni_binary();
        match remove(&binary) {
            Ok(true) => removed.push(binary),
            Ok(false) => {}
            Err(e) => errors.push(format!("cannot remove {}: {e}", binary.display())),
        }
        for dir in &self.paths.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match remove(&path) {
                    Ok(true) => removed.push(path),
                    Ok(false) => {}
                    Err(e) => errors.push(format!("cannot remove {}: {e}", path.display())),
                }
            }
        }
        if let Err(e) = remove(&marker) {
            errors.push(format!("cannot remove {}: {e}", marker.display()));
        }
        CleanReport::Done {
            restore,
            removed,
            errors,
        }
    }

    fn restore(&self) -> Result<ApplyReport, String> {
        let state = self.state.load().map_err(|e| e.to_string())?;
        let mut configured = state.applied.clone().unwrap_or_default();
        if let Some(p) = &state.in_progress {
            for i in &p.spec.interfaces {
                if !configured
                    .interfaces
                    .iter()
                    .any(|c| c.pci_address == i.pci_address)
                {
                    configured.interfaces.push(i.clone());
                }
            }
        }
        let inventory = self.host.discover()?;
        let plan = plan_restore(&configured, &state.originals, &inventory);
        if plan.pfs.is_empty() {
            return Ok(ApplyReport::default());
        }
        Executor {
            host: self.host,
            firmware: None,
            state: self.state,
            handoff: self.handoff,
            boot_id: self.boot_id.clone(),
        }
        .execute(None, &NicNodeStateSpec::default(), &plan)
        .map_err(|e| e.to_string())
    }
}

/// Removes a file or a whole directory; `Ok(false)` when it was not there.
fn remove(path: &Path) -> io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let r = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Who holds devices on this node, one line each: the CNI plugin's attachments (with their pod
/// and VFs) and the DRA prepared claims. Unreadable records count as holders too.
pub fn holders(paths: &CleanPaths) -> Vec<String> {
    let mut out = Vec::new();
    // VF owner records: `<bdf>.owner` holding the attachment's key
    let mut vfs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, path) in records(&paths.cni_state_dir.join("vf")) {
        let Some(bdf) = name.strip_suffix(".owner") else {
            continue;
        };
        let key = std::fs::read_to_string(&path).unwrap_or_default();
        vfs.entry(key.trim().to_owned())
            .or_default()
            .push(bdf.to_owned());
    }
    for (key, path) in records(&paths.cni_state_dir.join("attachments")) {
        let pod = std::fs::read(&path)
            .ok()
            .and_then(|j| {
                let first = j.split(|b| *b == b'\n').next().map(<[u8]>::to_vec)?;
                serde_json::from_slice::<AttachmentBegin>(&first).ok()
            })
            .and_then(|b| b.pod)
            .map_or_else(
                || "pod unknown".to_owned(),
                |p| format!("pod {}/{}", p.namespace, p.name),
            );
        let held = vfs.remove(&key).unwrap_or_default();
        out.push(if held.is_empty() {
            format!("{pod} (attachment {key})")
        } else {
            format!("{pod} (attachment {key}, VF {})", held.join(", "))
        });
    }
    for (key, bdfs) in vfs {
        out.push(format!(
            "VF {} (owner record {key}, its journal {} is gone)",
            bdfs.join(", "),
            journal_path(&paths.cni_state_dir, &key).display()
        ));
    }
    for (_, path) in records(&paths.dra_claims_dir) {
        let claim = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<PreparedClaim>(&b).ok());
        out.push(match claim {
            Some(c) => format!(
                "claim {}/{} (devices {})",
                c.namespace,
                c.name,
                c.devices
                    .iter()
                    .map(|d| d.pci_address.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("claim record {}", path.display()),
        });
    }
    out
}

/// The entries of `dir` (none when it is absent), by name, without hidden (temporary) files.
fn records(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect();
    out.sort();
    out
}
