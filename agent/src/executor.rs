//! The executor: a thin shell that carries out a [`HostPlan`] through [`HostOps`], each PF on its
//! own thread (node time ≈ the slowest PF, not the sum), recording progress in the state file
//! before every step and keeping the device-plugin hand-off honest:
//!
//! 1. the plan is recorded as in progress;
//! 2. the hand-off file is rewritten without the pools of every PF whose steps destroy, unbind
//!    or rebind VFs ([`planner::apply::PfPlan::disturbs_vfs`]);
//! 3. each PF runs its steps in order; a failure stops that PF only (the others finish) and is
//!    recorded with the step; a firmware step that needs a reboot stops the PF too;
//! 4. a PF that finished gets its pools back in the hand-off file;
//! 5. the node-wide steps ([`planner::apply::NodeStep`], the RDMA netns mode) run; a failure
//!    is reported naming the setting and fails no PF;
//! 6. when every PF finished, the spec is recorded as applied.
//!
//! After a crash or a failure, planning again from the live host gives the remaining steps.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crds::node_state::NicNodeStateSpec;
use crds::pool::RdmaMode;
use planner::apply::{HostPlan, NodeFacts, NodeStep, PfAction, PfPlan, Step};

use crate::files::FileError;
use crate::firmware::{Firmware, FirmwareOutcome, apply_firmware};
use crate::handoff::DevicePluginFile;
use crate::state::{AgentState, InProgress, PfProgress, StateFile};

/// What a step left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDone {
    /// Done.
    Done,
    /// Done, and it takes effect only after a reboot: the PF's later steps wait for it.
    RebootNeeded,
}

/// A failed step, naming the PF and the operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("PF {pf}: {step}: {message}")]
pub struct StepError {
    /// PCI address (and name) of the PF.
    pub pf: String,
    /// The step, as the plan prints it.
    pub step: String,
    /// What went wrong.
    pub message: String,
}

impl StepError {
    /// An error of `step` on `pf`.
    pub fn new(pf: &PfPlan, step: &Step, message: impl Into<String>) -> Self {
        Self {
            pf: match &pf.name {
                Some(n) => format!("{n} ({})", pf.pci_address),
                None => pf.pci_address.clone(),
            },
            step: step.to_string(),
            message: message.into(),
        }
    }
}

/// The host operations behind the steps (sysfs, devlink, ethtool, rtnetlink on the host; a
/// recording fake in tests). Each call carries out one step and may block.
pub trait HostOps: Sync {
    /// Carries out `step` on `pf`.
    fn apply(&self, pf: &PfPlan, step: &Step) -> Result<StepDone, StepError>;

    /// The node's RDMA network-namespace mode (`rdma system show netns`); the error names
    /// `rdmaMode` and why it cannot be read.
    fn rdma_netns_mode(&self) -> Result<RdmaMode, String>;

    /// Sets the node's RDMA network-namespace mode (`rdma system set netns MODE`).
    fn set_rdma_netns_mode(&self, mode: RdmaMode) -> Result<(), String>;

    /// What the host shows of the node-wide settings, for [`planner::apply::plan_node`] (an
    /// unreadable setting is `None`: its step is planned and fails with the reason).
    fn node_facts(&self) -> NodeFacts {
        NodeFacts {
            rdma_mode: self.rdma_netns_mode().ok(),
        }
    }
}

/// One step as it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// Kind (`set-num-vfs`), for metrics.
    pub kind: &'static str,
    /// The step as printed.
    pub text: String,
    /// How long it took.
    pub duration: Duration,
    /// Its error.
    pub error: Option<String>,
}

/// One PF as it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfReport {
    /// PCI address.
    pub pci_address: String,
    /// The steps run (up to and including a failed one).
    pub steps: Vec<StepReport>,
    /// Wall time of the PF.
    pub duration: Duration,
    /// The error that stopped it.
    pub error: Option<String>,
    /// A firmware change waits for a reboot.
    pub reboot_needed: bool,
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// PFs with steps, by PCI address.
    pub pfs: Vec<PfReport>,
    /// The node-wide steps run (each reports its own error; they stop nothing).
    pub node: Vec<StepReport>,
    /// Wall time of the plan.
    pub duration: Duration,
}

impl ApplyReport {
    /// The report as lines for a terminal: `applied PF ...: N step(s) in S s[, failed: E]` per
    /// PF, then `applied node: N PF(s) in S s`.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .pfs
            .iter()
            .map(|pf| {
                format!(
                    "applied PF {}: {} step(s) in {:.3} s{}",
                    pf.pci_address,
                    pf.steps.len(),
                    pf.duration.as_secs_f64(),
                    pf.error
                        .as_deref()
                        .map(|e| format!(", failed: {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push(format!(
            "applied node: {} PF(s) in {:.3} s",
            self.pfs.len(),
            self.duration.as_secs_f64()
        ));
        out
    }

    /// Every PF and node step finished without error and without a pending reboot.
    pub fn complete(&self) -> bool {
        self.pfs_complete() && self.node.iter().all(|s| s.error.is_none())
    }

    /// Every PF finished without error and without a pending reboot (node steps aside).
    pub fn pfs_complete(&self) -> bool {
        self.pfs
            .iter()
            .all(|p| p.error.is_none() && !p.reboot_needed)
    }

    /// A PF waits for a reboot.
    pub fn reboot_needed(&self) -> bool {
        self.pfs.iter().any(|p| p.reboot_needed)
    }

    /// The errors, one per failed PF, then one per failed node step.
    pub fn errors(&self) -> Vec<String> {
        self.pfs
            .iter()
            .filter_map(|p| p.error.clone())
            .chain(self.node.iter().filter_map(|s| s.error.clone()))
            .collect()
    }
}

/// Why the executor could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The state or hand-off file could not be written: nothing is changed without a record.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Carries out plans on one host.
pub struct Executor<'a> {
    /// The host operations.
    pub host: &'a dyn HostOps,
    /// The NV-config implementation for firmware steps (none: firmware steps fail).
    pub firmware: Option<&'a dyn Firmware>,
    /// The crash-safety record.
    pub state: &'a StateFile,
    /// The device-plugin hand-off.
    pub handoff: &'a DevicePluginFile,
    /// The current boot id.
    pub boot_id: String,
}

struct Shared<'a> {
    state: Mutex<AgentState>,
    ready: Mutex<BTreeSet<String>>,
    exec: &'a Executor<'a>,
    spec: &'a NicNodeStateSpec,
}

impl Shared<'_> {
    fn update(&self, f: impl FnOnce(&mut AgentState)) -> Result<(), FileError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut st);
        self.exec.state.store(&st)
    }

    fn progress(&self, pci: &str, f: impl FnOnce(&mut PfProgress)) -> Result<(), FileError> {
        self.update(|st| {
            if let Some(p) = st.in_progress.as_mut().and_then(|p| p.pfs.get_mut(pci)) {
                f(p);
            }
        })
    }

    fn publish(&self) -> Result<(), FileError> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        self.exec
            .handoff
            .publish(&crate::handoff::node_config(self.spec), |pf| {
                ready.contains(pf)
            })
            .map(|_| ())
    }
}

impl Executor<'_> {
    /// Applies `plan` (computed for `spec` at `generation`). See the module documentation.
    pub fn execute(
        &self,
        generation: Option<i64>,
        spec: &NicNodeStateSpec,
        plan: &HostPlan,
    ) -> Result<ApplyReport, ExecError> {
        let started = Instant::now();
        let mut state = self.state.load()?;
        state.boot_id = Some(self.boot_id.clone());
        state.in_progress = Some(InProgress {
            generation,
            spec: spec.clone(),
            pfs: plan
                .pfs
                .iter()
                .filter(|p| !p.steps.is_empty())
                .map(|p| (p.pci_address.clone(), PfProgress::default()))
                .collect(),
        });
        self.state.store(&state)?;
        let problem = |pci: &str| plan.problems.iter().any(|x| x.pci_address == pci);
        let ready: BTreeSet<String> = plan
            .pfs
            .iter()
            .filter(|p| {
                p.action != PfAction::Reset && !p.disturbs_vfs() && !problem(&p.pci_address)
            })
            .map(|p| p.pci_address.clone())
            .collect();
        let shared = Shared {
            state: Mutex::new(state),
            ready: Mutex::new(ready),
            exec: self,
            spec,
        };
        shared.publish()?;

        let results: Vec<Result<PfReport, FileError>> = std::thread::scope(|s| {
            let handles: Vec<_> = plan
                .pfs
                .iter()
                .filter(|p| !p.steps.is_empty())
                .map(|pf| {
                    let shared = &shared;
                    s.spawn(move || run_pf(shared, pf))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut report = ApplyReport {
            pfs: results.into_iter().collect::<Result<_, _>>()?,
            node: plan.node_steps.iter().map(|s| run_node(self, s)).collect(),
            duration: Duration::ZERO,
        };
        // the applied spec names the PFs to reset later: a failed node step (planned again from
        // the live host next time) does not hold it back
        if report.pfs_complete() && plan.problems.is_empty() {
            shared.update(|st| {
                st.applied = Some(spec.clone());
                st.applied_generation = generation;
                st.in_progress = None;
                st.firmware_reboots.clear();
            })?;
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}

fn run_pf(shared: &Shared<'_>, pf: &PfPlan) -> Result<PfReport, FileError> {
    let started = Instant::now();
    let mut report = PfReport {
        pci_address: pf.pci_address.clone(),
        steps: Vec::new(),
        duration: Duration::ZERO,
        error: None,
        reboot_needed: false,
    };
    let pci = pf.pci_address.as_str();
    for (i, step) in pf.steps.iter().enumerate() {
        shared.progress(pci, |p| {
            p.step = i;
            p.kind = Some(step.kind().to_owned());
        })?;
        let t = Instant::now();
        let result = match step {
            Step::Firmware(target) => firmware_step(shared, pf, step, target),
            _ => shared.exec.host.apply(pf, step),
        };
        let error = result.as_ref().err().map(ToString::to_string);
        report.steps.push(StepReport {
            kind: step.kind(),
            text: step.to_string(),
            duration: t.elapsed(),
            error: error.clone(),
        });
        match result {
            Ok(StepDone::Done) => {}
            Ok(StepDone::RebootNeeded) => {
                report.reboot_needed = true;
                break;
            }
            Err(e) => {
                tracing::warn!(pf = pci, step = %step, error = %e, "step failed");
                report.error = error;
                shared.progress(pci, |p| p.error = Some(e.to_string()))?;
                break;
            }
        }
    }
    report.duration = started.elapsed();
    if report.error.is_none() && !report.reboot_needed {
        shared.progress(pci, |p| {
            p.step = pf.steps.len();
            p.kind = None;
            p.done = true;
        })?;
        if pf.action != PfAction::Reset {
            shared
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(pci.to_owned());
            shared.publish()?;
        }
    }
    Ok(report)
}

fn run_node(exec: &Executor<'_>, step: &NodeStep) -> StepReport {
    let t = Instant::now();
    let result = match step {
        NodeStep::RdmaNetnsMode { mode } => exec.host.set_rdma_netns_mode(*mode),
    };
    let error = result.err().map(|e| {
        // the host's message names the setting already; make sure it always does
        let e = if e.contains(step.setting()) {
            e
        } else {
            format!("{}: {e}", step.setting())
        };
        format!("node: {step}: {e}")
    });
    if let Some(e) = &error {
        tracing::warn!(step = %step, error = %e, "node step failed");
    }
    StepReport {
        kind: step.kind(),
        text: step.to_string(),
        duration: t.elapsed(),
        error,
    }
}

fn firmware_step(
    shared: &Shared<'_>,
    pf: &PfPlan,
    step: &Step,
    target: &planner::apply::FirmwareTarget,
) -> Result<StepDone, StepError> {
    let Some(fw) = shared.exec.firmware else {
        return Err(StepError::new(
            pf,
            step,
            "no firmware tool is configured for this vendor",
        ));
    };
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = apply_firmware(fw, &mut st, &shared.exec.boot_id, &pf.pci_address, target)
        .map_err(|e| StepError::new(pf, step, e.to_string()))?;
    shared
        .exec
        .state
        .store(&st)
        .map_err(|e| StepError::new(pf, step, e.to_string()))?;
    Ok(match outcome {
        FirmwareOutcome::InEffect => StepDone::Done,
        FirmwareOutcome::RebootNeeded => StepDone::RebootNeeded,
    })
}
