//! What the `smartnic` CNI plugin keeps on the node that other node components read: the layout
//! of its state directory and the pod an attachment belongs to. The plugin writes it; the node
//! agent reads it (read-only) to name the pod holding each VF in the per-VF metrics.
//!
//! ```text
//!   <STATE_DIR>/vf/<bdf>.owner                  "<containerID>:<ifname>" of the VF's holder
//!   <STATE_DIR>/attachments/<containerID>:<ifname>
//!                                               that attachment's step journal (JSON lines);
//!                                               its first line is the `begin` step
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The plugin's state directory on the node (a tmpfs: it describes this boot's pods).
pub const STATE_DIR: &str = "/run/smartnic/cni";

/// The file naming the attachment that holds the VF (or whole PF) `bdf`.
pub fn vf_owner_path(state_dir: &Path, bdf: &str) -> PathBuf {
    state_dir.join("vf").join(format!("{bdf}.owner"))
}

/// The step journal of the attachment `key` (`<containerID>:<ifname>`, an owner file's
/// content).
pub fn journal_path(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join("attachments").join(key)
}

/// The pod of an attachment, from the runtime's `CNI_ARGS` (`K8S_POD_NAMESPACE`,
/// `K8S_POD_NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentPod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
}

/// What other components read of a journal's `begin` line (the plugin writes more; the rest is
/// its own).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AttachmentBegin {
    /// The pod, when the runtime named it (a runtime outside Kubernetes may not).
    #[serde(default)]
    pub pod: Option<AttachmentPod>,
}
