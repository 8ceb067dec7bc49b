//! The crash-safety record: what the agent applied last and what it is doing now, in one small
//! JSON file written atomically (default [`DEFAULT_STATE_FILE`]).
//!
//! - Before the first step of a plan the agent records it as in progress; before each step it
//!   records the PF and the step index; when a PF is done it records that. A restart that finds a
//!   plan in progress plans again from the live host (the plan is computed from what the host
//!   shows, so this resumes where the crash left it: roll forward, never back).
//! - The host's boot id (`/proc/sys/kernel/random/boot_id`) tells a restart of the agent from a
//!   reboot of the host. After a reboot the VFs are gone: the agent re-applies the last applied
//!   spec before it reports ready ([`Startup::Reapply`]).
//! - A firmware change is recorded with the boot it was made in; after the reboot, if the
//!   firmware still does not show the value, the agent refuses to reboot again for the same value
//!   ([`AgentState::firmware_reboot_refused`]): a reboot loop is the worst outcome.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crds::node_state::NicNodeStateSpec;
use planner::apply::FirmwareTarget;
use serde::{Deserialize, Serialize};

use crate::files::{FileError, read_json, write_json};

/// Default path of the state file.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/smartnic/agent-state.json";

/// Where one PF of a plan in progress stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PfProgress {
    /// Index of the step being run (or the number of steps once done).
    pub step: usize,
    /// Kind of that step (`set-num-vfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// All steps done.
    #[serde(default)]
    pub done: bool,
    /// The error that stopped the PF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A plan being applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InProgress {
    /// `metadata.generation` of the spec being applied (none in standalone mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The spec being applied.
    pub spec: NicNodeStateSpec,
    /// Per PF PCI address.
    pub pfs: BTreeMap<String, PfProgress>,
}

/// A firmware change that needed a reboot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareReboot {
    /// PCI address of the PF.
    pub pci_address: String,
    /// The settings written.
    pub target: FirmwareTarget,
    /// Boot id of the boot in which they were written.
    pub boot_id: String,
}

/// The content of the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// Boot id of the host when the file was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The spec applied last, completely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<NicNodeStateSpec>,
    /// Its generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// The plan being applied, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<InProgress>,
    /// Firmware changes waiting for (or done before) a reboot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware_reboots: Vec<FirmwareReboot>,
    /// Each PF as it was before the agent's first change, by PCI address: what the uninstall
    /// puts back ([`crate::uninstall::restore`]). Written before that change, never replaced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub originals: BTreeMap<String, crate::uninstall::restore::PfOriginal>,
}

/// What a starting agent does first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Startup {
    /// No record: discover, report, wait for a spec.
    Fresh,
    /// The agent restarted in the middle of a plan on the same boot: plan the recorded spec again
    /// from the live host and finish it.
    Resume(NicNodeStateSpec),
    /// The host rebooted: VFs and their settings are gone. Re-apply this spec (the one in
    /// progress, else the last applied) before reporting ready.
    Reapply(NicNodeStateSpec),
    /// Same boot, nothing in progress: the host should show the last applied spec.
    Steady,
}

impl AgentState {
    /// What to do at start on the boot `boot_id`.
    pub fn startup(&self, boot_id: &str) -> Startup {
        let rebooted = self.boot_id.as_deref().is_some_and(|b| b != boot_id);
        let wanted = self
            .in_progress
            .as_ref()
            .map(|p| p.spec.clone())
            .or_else(|| self.applied.clone());
        match (wanted, rebooted, self.in_progress.is_some()) {
            (None, _, _) => Startup::Fresh,
            (Some(spec), true, _) => Startup::Reapply(spec),
            (Some(spec), false, true) => Startup::Resume(spec),
            (Some(_), false, false) => Startup::Steady,
        }
    }

    /// Whether writing `target` to the firmware of `pci` and rebooting must be refused: the same
    /// target was written in an earlier boot, a reboot happened, and the firmware still does not
    /// show it (the caller only asks when it still differs). Rebooting again would loop.
    pub fn firmware_reboot_refused(
        &self,
        pci: &str,
        target: &FirmwareTarget,
        boot_id: &str,
    ) -> bool {
        self.firmware_reboots
            .iter()
            .any(|r| r.pci_address == pci && &r.target == target && r.boot_id != boot_id)
    }

    /// Records a firmware write in boot `boot_id` (replacing an older record for the PF).
    pub fn record_firmware(&mut self, pci: &str, target: FirmwareTarget, boot_id: &str) {
        self.firmware_reboots.retain(|r| r.pci_address != pci);
        self.firmware_reboots.push(FirmwareReboot {
            pci_address: pci.to_owned(),
            target,
            boot_id: boot_id.to_owned(),
        });
    }
}

/// The state file.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads it; an absent file is an empty state.
    pub fn load(&self) -> Result<AgentState, FileError> {
        Ok(read_json(&self.path)?.unwrap_or_default())
    }

    /// Replaces it atomically.
    pub fn store(&self, state: &AgentState) -> Result<(), FileError> {
        write_json(&self.path, state)
    }
}

/// The host's boot id, or `unknown` when it cannot be read (a restart then never looks like a
/// reboot).
pub fn boot_id(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u32) -> NicNodeStateSpec {
        NicNodeStateSpec {
            interfaces: vec![crds::node_state::InterfaceSpec {
                pci_address: "0000:01:00.0".into(),
                num_vfs: n,
                policy: "p".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn startup_tells_restart_from_reboot() {
        assert_eq!(AgentState::default().startup("b1"), Startup::Fresh);
        let mut s = AgentState {
            boot_id: Some("b1".into()),
            applied: Some(spec(4)),
            ..Default::default()
        };
        assert_eq!(s.startup("b1"), Startup::Steady);
        assert_eq!(s.startup("b2"), Startup::Reapply(spec(4)));
        s.in_progress = Some(InProgress {
            spec: spec(7),
            ..Default::default()
        });
        assert_eq!(s.startup("b1"), Startup::Resume(spec(7)));
        assert_eq!(s.startup("b2"), Startup::Reapply(spec(7)));
    }

    #[test]
    fn a_second_reboot_for_the_same_firmware_value_is_refused() {
        let t = FirmwareTarget {
            total_vfs: Some(32),
            link_type: None,
        };
        let mut s = AgentState::default();
        assert!(!s.firmware_reboot_refused("0000:3b:00.0", &t, "b1"));
        s.record_firmware("0000:3b:00.0", t.clone(), "b1");
        // same boot (the reboot has not happened yet): not a loop
        assert!(!s.firmware_reboot_refused("0000:3b:00.0", &t, "b1"));
        // rebooted and the firmware still differs: refused
        assert!(s.firmware_reboot_refused("0000:3b:00.0", &t, "b2"));
        // a different value is a new change
        let t64 = FirmwareTarget {
            total_vfs: Some(64),
            link_type: None,
        };
        assert!(!s.firmware_reboot_refused("0000:3b:00.0", &t64, "b2"));
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("state.json"));
        assert_eq!(f.load().unwrap(), AgentState::default());
        let s = AgentState {
            boot_id: Some("b1".into()),
            applied: Some(spec(2)),
            applied_generation: Some(3),
            ..Default::default()
        };
        f.store(&s).unwrap();
        assert_eq!(f.load().unwrap(), s);
    }
}
