//! The decisions of the agent's loop ([`crate::run`]), pure: what a pass does next given the
//! plan and the drain annotations, how long it waits between tries, when the agent is ready,
//! which watch events start a pass, and what the `Synced` condition says after a pass.
//!
//! The loop only gathers the inputs (the live host, the `NicNodeState`) and carries out what
//! these functions say.

use std::time::Duration;

use crds::{DrainGrant, DrainRequest, node_state::SyncStatus};
use planner::{ChangeClass, apply::HostPlan};

use crate::cluster::{DrainDecision, drain_decision};
use crate::executor::ApplyReport;
use crate::state::Startup;

/// Exponential backoff: `base`, `2·base`, `4·base`, ... capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before try `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What a pass does with a plan, given the drain annotations on the `NicNodeState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The host shows the spec: report it; a drain request left set is released.
    InSync,
    /// Nothing can be applied: every PF that differs has a problem (a PF not on the host,
    /// more VFs than it has, an externally managed PF that does not match). Reported as
    /// failed without an apply, an event or a drain.
    Unplannable,
    /// Apply now (no drain needed, or the operator said `drained`).
    Apply,
    /// Set `drain-request` to this value (with `drain-requested-at` when none was set), then wait.
    RequestDrain(DrainRequest),
    /// The request is set: wait for the grant (ask again after the backoff delay).
    WaitDrain,
    /// Waited longer than the agent's drain wait: end the pass with a condition that says so,
    /// keep the request set (the operator grants later), try again at the next pass.
    DrainTimedOut,
}

/// The next action of a pass: `plan` against the annotations `request`/`grant`, having waited
/// `waited` for a grant so far (`limit` is the most a pass waits).
pub fn next(
    plan: &HostPlan,
    request: DrainRequest,
    grant: DrainGrant,
    waited: Duration,
    limit: Duration,
) -> Next {
    if plan.in_sync() {
        return Next::InSync;
    }
    if plan.step_count() == 0 {
        return Next::Unplannable;
    }
    match drain_decision(plan.class, request, grant) {
        DrainDecision::Proceed => Next::Apply,
        DrainDecision::Request(r) => Next::RequestDrain(r),
        DrainDecision::Wait if waited >= limit => Next::DrainTimedOut,
        DrainDecision::Wait => Next::WaitDrain,
    }
}

/// The next action of a plan applied without the cluster (the post-boot re-apply, or
/// `smartnic-agent --spec-file`): nobody grants a drain, so a disruptive plan is applied only
/// when `allow_disruption` says the pods may lose their VFs; otherwise [`Next::RequestDrain`]
/// stands for "refused" ([`local_refusal`]).
pub fn local_next(plan: &HostPlan, allow_disruption: bool) -> Next {
    let grant = if allow_disruption {
        DrainGrant::Drained
    } else {
        DrainGrant::None
    };
    next(
        plan,
        DrainRequest::Reboot,
        grant,
        Duration::ZERO,
        Duration::MAX,
    )
}

/// The outcome of a local plan that [`local_next`] did not apply: its problems, or the drain
/// it needs.
pub fn local_refusal(plan: &HostPlan) -> PassOutcome {
    if plan.step_count() == 0 {
        return PassOutcome::of_apply(plan, &ApplyReport::default());
    }
    PassOutcome::Failed(vec![format!(
        "the plan needs drain-request={} and there is no cluster to drain the node; nothing was changed (--allow-disruption applies it anyway)",
        class_name(plan.class)
    )])
}

/// Whether, after a pass, the agent sets `drain-request` back to `none`: a request is set and
/// the pass ended in sync or failed (the operator uncordons; a later pass asks again). A drain
/// not granted yet stays requested, and so does one kept for a firmware change's reboot.
pub fn release_drain(request: DrainRequest, outcome: &PassOutcome) -> bool {
    request != DrainRequest::None && matches!(outcome, PassOutcome::InSync | PassOutcome::Failed(_))
}

/// How a pass ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassOutcome {
    /// The host shows the spec (nothing to do, or the apply completed).
    InSync,
    /// A PF's step, a node step or the plan failed; the messages name the PF and the step.
    Failed(Vec<String>),
    /// The drain was not granted within the agent's wait.
    DrainTimedOut,
    /// A firmware change waits for a reboot of the host.
    RebootRequired,
    /// A new spec arrived while the pass waited for a drain: the next pass plans it at once.
    Superseded,
}

impl PassOutcome {
    /// The outcome of an apply whose plan had `plan.problems`, as `report` says.
    pub fn of_apply(plan: &HostPlan, report: &ApplyReport) -> Self {
        let mut errors: Vec<String> = plan.problems.iter().map(|p| p.message.clone()).collect();
        errors.extend(report.errors());
        if !errors.is_empty() {
            Self::Failed(errors)
        } else if report.reboot_needed() {
            Self::RebootRequired
        } else {
            Self::InSync
        }
    }
}

/// What the agent writes into `status` about the spec at `generation`: sync status, the
/// `Synced` condition's reason and message, the error and the applied generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// `syncStatus`.
    pub status: SyncStatus,
    /// Reason of the `Synced` condition (`Applied`, `Applying`, `WaitingForDrain`,
    /// `DrainTimedOut`, `RebootRequired`, `Failed`).
    pub reason: &'static str,
    /// Its message.
    pub message: String,
    /// `lastSyncError`.
    pub error: Option<String>,
    /// `appliedGeneration`.
    pub applied_generation: Option<i64>,
}

impl SyncReport {
    /// The host shows the spec of `generation`.
    pub fn applied(generation: Option<i64>) -> Self {
        Self {
            status: SyncStatus::Succeeded,
            reason: "Applied",
            message: "the host shows the spec".into(),
            error: None,
            applied_generation: generation,
        }
    }

    /// A plan of `steps` steps is being applied (`applied`: the generation applied before).
    pub fn applying(steps: usize, class: ChangeClass, applied: Option<i64>) -> Self {
        Self {
            status: SyncStatus::InProgress,
            reason: "Applying",
            message: format!("applying {steps} step(s), disruption {}", class_name(class)),
            error: None,
            applied_generation: applied,
        }
    }

    /// Waiting for the operator to grant the drain `request`.
    pub fn waiting_for_drain(request: DrainRequest, applied: Option<i64>) -> Self {
        Self {
            status: SyncStatus::InProgress,
            reason: "WaitingForDrain",
            message: format!(
                "waiting for the operator to grant drain-request={}",
                request.as_str()
            ),
            error: None,
            applied_generation: applied,
        }
    }

    /// The status after a pass that ended with `outcome` (`applied`: the generation applied
    /// before, kept when this one was not).
    pub fn after(
        outcome: &PassOutcome,
        request: DrainRequest,
        waited: Duration,
        generation: Option<i64>,
        applied: Option<i64>,
    ) -> Self {
        match outcome {
            PassOutcome::InSync => Self::applied(generation),
            PassOutcome::Failed(errors) => {
                let e = errors.join("; ");
                Self {
                    status: SyncStatus::Failed,
                    reason: "Failed",
                    message: e.clone(),
                    error: Some(e),
                    applied_generation: applied,
                }
            }
            PassOutcome::DrainTimedOut => {
                let e = format!(
                    "drain-request={} not granted within {} s; the change is pending and is tried again",
                    request.as_str(),
                    waited.as_secs()
                );
                Self {
                    status: SyncStatus::InProgress,
                    reason: "DrainTimedOut",
                    message: e.clone(),
                    error: Some(e),
                    applied_generation: applied,
                }
            }
            PassOutcome::Superseded => Self::applying(0, ChangeClass::NonDisruptive, applied),
            PassOutcome::RebootRequired => Self {
                status: SyncStatus::InProgress,
                reason: "RebootRequired",
                message: "a firmware change takes effect after a reboot of the host; the drain for it is kept"
                    .into(),
                error: None,
                applied_generation: applied,
            },
        }
    }
}

/// `none`, `evict-vf-pods` or `reboot`, for messages.
pub fn class_name(class: ChangeClass) -> &'static str {
    class.drain_request().as_str()
}

/// The readiness of the agent (`/readyz`): after a host reboot the VFs are gone, and the node
/// is not ready for pods that want them until the agent re-applied the last spec; after a
/// restart in the middle of a plan, until the plan was finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pending: bool,
}

impl Readiness {
    /// At start, from what the state file says.
    pub fn at_start(startup: &Startup) -> Self {
        Self {
            pending: matches!(startup, Startup::Reapply(_) | Startup::Resume(_)),
        }
    }

    /// A pass (or the start-up re-apply) ended with `outcome`: the host shows a spec once, the
    /// agent is ready from then on.
    pub fn record(&mut self, outcome: &PassOutcome) {
        if *outcome == PassOutcome::InSync {
            self.pending = false;
        }
    }

    /// Ready.
    pub fn ready(&self) -> bool {
        !self.pending
    }
}

/// What the agent does before its first pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAction {
    /// Nothing first: the first pass plans from the spec in the cluster.
    None,
    /// The host rebooted: re-apply this spec (the last one applied or in progress) from the state
    /// file right away, without the cluster and without a drain (after a reboot no pod holds the
    /// VFs it had), so that VFs exist before pods are started.
    Reapply(crds::node_state::NicNodeStateSpec),
}

/// The start-up action. A restart in the middle of a plan on the same boot needs none of its
/// own: the first pass plans the cluster's spec from the live host, which rolls the interrupted
/// plan forward (its drain, if granted, is still granted).
pub fn start_action(startup: &Startup) -> StartAction {
    match startup {
        Startup::Reapply(spec) => StartAction::Reapply(spec.clone()),
        Startup::Fresh | Startup::Steady | Startup::Resume(_) => StartAction::None,
    }
}

/// What of the `NicNodeState` starts a pass when a watch event shows it changed: its
/// generation (the spec) and the drain annotations (the grant). The agent's own status writes
/// change neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trigger {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `drain-request`.
    pub request: DrainRequest,
    /// `drain-grant`.
    pub grant: DrainGrant,
}

/// Whether a watch event that shows `now` after `before` starts a pass.
pub fn starts_pass(before: Option<&Trigger>, now: &Trigger) -> bool {
    before != Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::node_state::NicNodeStateSpec;
    use planner::apply::{PfAction, PfPlan, PlanProblem, Step, Vendor};

    fn plan(class: ChangeClass, steps: usize) -> HostPlan {
        HostPlan {
            pfs: vec![PfPlan {
                pci_address: "0000:01:00.0".into(),
                name: Some("ens1f0".into()),
                vendor: Vendor::Igb,
                action: PfAction::Configure,
                steps: vec![Step::SetNumVfs { count: 4 }; steps],
                class,
                reasons: vec![],
                desired: None,
            }],
            class,
            ..Default::default()
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        let d: Vec<u64> = (0..7).map(|i| b.delay(i).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn a_pass_in_sync_does_nothing_and_an_mtu_change_applies_without_a_drain() {
        use DrainGrant as G;
        use DrainRequest as R;
        assert_eq!(
            next(
                &plan(ChangeClass::NonDisruptive, 0),
                R::None,
                G::None,
                Duration::ZERO,
                MIN
            ),
            Next::InSync
        );
        assert_eq!(
            next(
                &plan(ChangeClass::NonDisruptive, 2),
                R::None,
                G::None,
                Duration::ZERO,
                MIN
            ),
            Next::Apply
        );
    }

    #[test]
    fn a_disruptive_plan_asks_waits_and_applies_once_drained() {
        use DrainGrant as G;
        use DrainRequest as R;
        let p = plan(ChangeClass::EvictVfPods, 3);
        let z = Duration::ZERO;
        assert_eq!(
            next(&p, R::None, G::None, z, MIN),
            Next::RequestDrain(R::EvictVfPods)
        );
        assert_eq!(next(&p, R::EvictVfPods, G::None, z, MIN), Next::WaitDrain);
        assert_eq!(
            next(&p, R::EvictVfPods, G::Draining, z, MIN),
            Next::WaitDrain
        );
        assert_eq!(next(&p, R::EvictVfPods, G::Drained, z, MIN), Next::Apply);
        // never forever: the pass ends into a condition, the request stays
        assert_eq!(
            next(&p, R::EvictVfPods, G::Draining, MIN, MIN),
            Next::DrainTimedOut
        );
        // a firmware change raises an eviction already granted to a reboot
        let fw = plan(ChangeClass::Reboot, 1);
        assert_eq!(
            next(&fw, R::EvictVfPods, G::Drained, z, MIN),
            Next::RequestDrain(R::Reboot)
        );
    }

    #[test]
    fn without_a_cluster_a_disruptive_plan_is_refused_unless_allowed() {
        let quiet = plan(ChangeClass::NonDisruptive, 2);
        assert_eq!(local_next(&quiet, false), Next::Apply);
        let evict = plan(ChangeClass::EvictVfPods, 2);
        assert_eq!(local_next(&evict, true), Next::Apply);
        assert_eq!(local_next(&evict, false), Next::WaitDrain);
        let PassOutcome::Failed(e) = local_refusal(&evict) else {
            panic!("refused");
        };
        assert!(e[0].contains("drain-request=evict-vf-pods"), "{e:?}");
        assert_eq!(
            local_next(&plan(ChangeClass::NonDisruptive, 0), false),
            Next::InSync
        );
    }

    #[test]
    fn the_drain_is_released_after_the_apply_unless_a_reboot_waits() {
        use DrainRequest as R;
        assert!(release_drain(R::EvictVfPods, &PassOutcome::InSync));
        assert!(release_drain(
            R::EvictVfPods,
            &PassOutcome::Failed(vec!["x".into()])
        ));
        assert!(!release_drain(R::Reboot, &PassOutcome::RebootRequired));
        assert!(!release_drain(R::None, &PassOutcome::InSync));
        assert!(!release_drain(R::EvictVfPods, &PassOutcome::DrainTimedOut));
        assert!(!release_drain(R::EvictVfPods, &PassOutcome::Superseded));
    }

    #[test]
    fn an_apply_outcome_names_every_failed_pf_and_step() {
        use crate::executor::PfReport;
        let mut p = plan(ChangeClass::EvictVfPods, 1);
        let failed = ApplyReport {
            pfs: vec![PfReport {
                pci_address: "0000:01:00.0".into(),
                steps: vec![],
                duration: Duration::ZERO,
                error: Some("PF ens1f0 (0000:01:00.0): sriov_numvfs 4: EBUSY".into()),
                reboot_needed: false,
            }],
            ..Default::default()
        };
        let o = PassOutcome::of_apply(&p, &failed);
        assert_eq!(
            o,
            PassOutcome::Failed(vec![
                "PF ens1f0 (0000:01:00.0): sriov_numvfs 4: EBUSY".into()
            ])
        );
        let s = SyncReport::after(&o, DrainRequest::None, Duration::ZERO, Some(5), Some(4));
        assert_eq!(
            (s.status, s.reason, s.applied_generation),
            (SyncStatus::Failed, "Failed", Some(4))
        );
        assert!(s.message.contains("sriov_numvfs 4"), "{}", s.message);
        p.problems.push(PlanProblem {
            pci_address: "0000:02:00.0".into(),
            message: "PF 0000:02:00.0 is not on this host".into(),
        });
        let ok = ApplyReport::default();
        assert!(matches!(PassOutcome::of_apply(&p, &ok), PassOutcome::Failed(e) if e.len() == 1));
        let mut only_problems = p.clone();
        only_problems.pfs[0].steps.clear();
        assert_eq!(
            next(
                &only_problems,
                DrainRequest::None,
                DrainGrant::None,
                Duration::ZERO,
                MIN
            ),
            Next::Unplannable
        );
        p.problems.clear();
        assert_eq!(PassOutcome::of_apply(&p, &ok), PassOutcome::InSync);
        let s = SyncReport::after(
            &PassOutcome::InSync,
            DrainRequest::None,
            Duration::ZERO,
            Some(5),
            Some(4),
        );
        assert_eq!(
            (s.status, s.applied_generation),
            (SyncStatus::Succeeded, Some(5))
        );
        let t = SyncReport::after(
            &PassOutcome::DrainTimedOut,
            DrainRequest::EvictVfPods,
            Duration::from_secs(900),
            Some(5),
            Some(4),
        );
        assert_eq!(t.reason, "DrainTimedOut");
        assert!(t.message.contains("evict-vf-pods not granted within 900 s"));
    }

    #[test]
    fn after_a_reboot_the_agent_reapplies_and_is_ready_only_then() {
        let spec = NicNodeStateSpec::default();
        let reboot = Startup::Reapply(spec.clone());
        assert_eq!(start_action(&reboot), StartAction::Reapply(spec.clone()));
        let mut r = Readiness::at_start(&reboot);
        assert!(!r.ready());
        r.record(&PassOutcome::Failed(vec!["x".into()]));
        assert!(!r.ready(), "a failed re-apply keeps the node unready");
        r.record(&PassOutcome::InSync);
        assert!(r.ready());
        // a restart mid-plan rolls forward in the first pass, ready when it is done
        let resume = Startup::Resume(spec);
        assert_eq!(start_action(&resume), StartAction::None);
        assert!(!Readiness::at_start(&resume).ready());
        for s in [Startup::Fresh, Startup::Steady] {
            assert_eq!(start_action(&s), StartAction::None);
            assert!(Readiness::at_start(&s).ready());
        }
    }

    #[test]
    fn only_spec_and_drain_changes_start_a_pass() {
        let t = Trigger {
            generation: Some(3),
            ..Default::default()
        };
        assert!(starts_pass(None, &t));
        assert!(!starts_pass(Some(&t), &t.clone()));
        let granted = Trigger {
            grant: DrainGrant::Drained,
            ..t.clone()
        };
        assert!(starts_pass(Some(&t), &granted));
        let newer = Trigger {
            generation: Some(4),
            ..t.clone()
        };
        assert!(starts_pass(Some(&t), &newer));
    }
}
