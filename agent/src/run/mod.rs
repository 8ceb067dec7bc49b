//! The agent's cluster loop, a thin shell around [`crate::run::decide`]:
//!
//! 1. at start, the state file says what happened: after a host reboot the last spec is
//!    re-applied at once, without the cluster ([`Agent::start`]); the agent is ready
//!    ([`Health`]) only once the host showed a spec again;
//! 2. each pass ([`Agent::pass`]): the spec's CNI allow-list to the node's file when it
//!    differs ([`crate::allow_list`]) → discover → plan the `NicNodeState.spec` from the live host
//!    (PF steps and node steps) → with `--tunnel-uplink`, the OVS node setup the inventory asks
//!    for ([`crate::run::overlay::OvsSetup`]; again after an apply that changed what it asks
//!    for) → if disruptive, the drain handshake (request, wait for the
//!    grant with backoff, at most [`LoopConfig::drain_wait`]), the host discovered and planned
//!    again right before applying → execute (each PF on its own thread; the hand-off file
//!    without a PF's pools before a step that disturbs its VFs) → one event per plan → status by
//!    server-side apply, only when it changed (with `--tunnel-uplink`, the uplink's address as
//!    `status.tunnelEndpoint` in the same apply: [`crate::run::overlay`]) → drain released;
//! 3. between passes ([`Agent::run`]): a watch of its own `NicNodeState` (field selector on
//!    `metadata.name`) starts a pass when the spec or the drain annotations change, and a
//!    periodic resync starts one anyway.
//!
//! A failure of one PF's step ends the pass with `Synced=False` naming the PF and the step; an
//! API error ends the pass and the next one comes after a backoff. Nothing here exits the agent
//! but a state file it cannot write (it changes nothing without a record).

pub mod decide;
pub mod host;
pub mod overlay;
pub mod overlay_decide;
pub mod serve;

#[cfg(test)]
mod overlay_tests;
#[cfg(test)]
mod setup_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crds::{
    DrainRequest, NicNodeState,
    inventory::NicInventory,
    k8s::jiff::Timestamp,
    node_state::{NicNodeStateSpec, NicNodeStateStatus},
};
use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use planner::apply::{HostPlan, Vendor, plan_host};

use crate::allow_list::AllowListFile;
use crate::cluster::{
    ClusterError, NodeApi, agent_owns_tunnel_endpoint, agent_part, drain_annotations, status_of,
};
use crate::executor::{ApplyReport, ExecError, Executor};
use crate::files::FileError;
use crate::firmware::Firmware;
use crate::handoff::DevicePluginFile;
use crate::metrics::AgentMetrics;
use crate::run::decide::{
    Backoff, Next, PassOutcome, Readiness, StartAction, SyncReport, Trigger, class_name,
    local_next, local_refusal, next, release_drain, start_action, starts_pass,
};
use crate::run::host::NodeHost;
use crate::run::overlay::{OvsSetup, TunnelConfig};
use crate::run::overlay_decide::{TunnelReport, node_setup, setup_events, tunnel_report};
use crate::state::{Startup, StateFile};
use crate::uninstall::restore::record_originals;

/// Why a pass ended early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An API call failed (the next pass comes after a backoff).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The state or hand-off file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The host could not be discovered.
    #[error("{0}")]
    Discover(String),
    /// A blocking task did not finish (it panicked).
    #[error("the {0} task did not finish: {1}")]
    Task(&'static str, String),
}

impl From<ExecError> for RunError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::File(f) => Self::File(f),
        }
    }
}

/// Timing of the loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// The longest a pass waits for the operator's drain grant before it ends with
    /// `Synced=False, reason DrainTimedOut` (the request stays; the next pass waits again).
    pub drain_wait: Duration,
    /// Delays between reads of the grant while waiting.
    pub drain_poll: Backoff,
    /// A pass at least this often, watch events or not.
    pub resync: Duration,
    /// Delays before the next pass after a pass that failed on the API or a file.
    pub retry: Backoff,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            drain_wait: Duration::from_secs(15 * 60),
            drain_poll: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(30),
            },
            resync: Duration::from_secs(5 * 60),
            retry: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }
}

/// Liveness and readiness, as `/healthz` and `/readyz` serve them.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Ready: no post-boot re-apply or interrupted plan is pending.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// The host side of the agent: the host, its files and the firmware tool, shared with the
/// blocking tasks that plan and apply.
#[derive(Clone)]
pub struct HostSide {
    /// Discovery and the step operations.
    pub host: Arc<dyn NodeHost + Sync>,
    /// The NV-config tool for firmware steps (none: firmware steps fail).
    pub firmware: Option<Arc<dyn Firmware>>,
    /// The crash-safety record.
    pub state: Arc<StateFile>,
    /// The device-plugin hand-off file.
    pub handoff: Arc<DevicePluginFile>,
    /// The host's boot id.
    pub boot_id: String,
    /// Held while a plan is carried out: the uninstall waits for a plan in flight (its blocking
    /// thread runs on after the loop is stopped) before it changes the host.
    pub applying: Arc<std::sync::Mutex<()>>,
}

/// A discovery and the plan made from it.
struct Planned {
    inventory: NicInventory,
    plan: HostPlan,
}

impl HostSide {
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(HostSide) -> T + Send + 'static,
    ) -> Result<T, RunError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| RunError::Task(what, e.to_string()))
    }

    /// Discovers the host and plans `spec` from it (the applied spec from the state file).
    async fn plan(&self, spec: &NicNodeStateSpec) -> Result<Planned, RunError> {
        let spec = spec.clone();
        self.blocking("plan", move |h| {
            let applied = h.state.load()?.applied.unwrap_or_default();
            let inventory = h.host.discover().map_err(RunError::Discover)?;
            let mut facts = h.host.pf_facts(&inventory, &spec);
            let mut plan = plan_host(&applied, &spec, &inventory, &facts);
            // the pods with a macvlan/ipvlan on a PF count as its users when the PF is reset:
            // looked up (every pod namespace) only for a plan that resets one
            if plan.pfs.iter().any(|p| p.disturbs_vfs()) {
                let users = h.host.upper_users(&inventory);
                if !users.is_empty() {
                    for (pci, u) in users {
                        facts.entry(pci).or_default().upper_users = u;
                    }
                    plan = plan_host(&applied, &spec, &inventory, &facts);
                }
            }
            let plan = plan.with_node(&spec, &h.host.node_facts());
            Ok(Planned { inventory, plan })
        })
        .await?
    }

    async fn discover(&self) -> Result<NicInventory, RunError> {
        self.blocking("discover", |h| {
            h.host.discover().map_err(RunError::Discover)
        })
        .await?
    }

    /// Carries out `plan` (made from `inventory`), after recording the original of each PF it
    /// changes for the first time ([`record_originals`]).
    async fn execute(
        &self,
        generation: Option<i64>,
        spec: &NicNodeStateSpec,
        plan: &HostPlan,
        inventory: &NicInventory,
    ) -> Result<ApplyReport, RunError> {
        let (spec, plan, inventory) = (spec.clone(), plan.clone(), inventory.clone());
        self.blocking("apply", move |h| {
            let _applying = h.applying.lock().unwrap_or_else(|e| e.into_inner());
            let mut st = h.state.load()?;
            if record_originals(&mut st, &plan, &inventory) {
                h.state.store(&st)?;
            }
            Executor {
                host: h.host.as_ref(),
                firmware: h.firmware.as_deref(),
                state: &h.state,
                handoff: &h.handoff,
                boot_id: h.boot_id.clone(),
            }
            .execute(generation, &spec, &plan)
            .map_err(RunError::from)
        })
        .await?
    }

    /// What the state file says about this start, and after a host reboot the re-apply of the
    /// last spec (see [`Agent::start`]).
    pub async fn start(&self) -> Result<(Startup, Option<Local>), RunError> {
        let state = self.state.load()?;
        let startup = state.startup(&self.boot_id);
        let StartAction::Reapply(spec) = start_action(&startup) else {
            tracing::info!(?startup, "start");
            return Ok((startup, None));
        };
        let generation = state
            .in_progress
            .as_ref()
            .and_then(|p| p.generation)
            .or(state.applied_generation);
        tracing::info!(
            ?generation,
            "the host rebooted: re-applying the last spec before reporting ready"
        );
        let local = self.apply_local(&spec, generation, true).await?;
        tracing::info!(outcome = ?local.outcome, "post-boot re-apply");
        Ok((startup, Some(local)))
    }

    /// Plans `spec` from the live host and applies it without the cluster (the post-boot
    /// re-apply; `smartnic-agent --spec-file`): there is no drain handshake, so a plan that
    /// needs one is refused unless `allow_disruption`.
    pub async fn apply_local(
        &self,
        spec: &NicNodeStateSpec,
        generation: Option<i64>,
        allow_disruption: bool,
    ) -> Result<Local, RunError> {
        let planned = self.plan(spec).await?;
        let plan = planned.plan;
        let (report, outcome) = match local_next(&plan, allow_disruption) {
            Next::InSync => {
                self.record_applied(spec, generation).await?;
                self.publish_ready(spec, &plan).await?;
                (None, PassOutcome::InSync)
            }
            Next::Apply => {
                let report = self
                    .execute(generation, spec, &plan, &planned.inventory)
                    .await?;
                let outcome = PassOutcome::of_apply(&plan, &report);
                (Some(report), outcome)
            }
            _ => {
                self.publish_ready(spec, &plan).await?;
                (None, local_refusal(&plan))
            }
        };
        Ok(Local {
            plan,
            report,
            outcome,
        })
    }

    /// Records `spec` at `generation` as applied when the host shows it without a step (a
    /// spec whose change the host already shows, e.g. only its device-plugin pools): the
    /// post-boot re-apply then uses it.
    async fn record_applied(
        &self,
        spec: &NicNodeStateSpec,
        generation: Option<i64>,
    ) -> Result<(), RunError> {
        let spec = spec.clone();
        self.blocking("state", move |h| {
            let mut st = h.state.load()?;
            if st.applied.as_ref() == Some(&spec)
                && st.applied_generation == generation
                && st.in_progress.is_none()
                && st.boot_id.as_deref() == Some(h.boot_id.as_str())
            {
                return Ok(());
            }
            st.applied = Some(spec);
            st.applied_generation = generation;
            st.in_progress = None;
            st.boot_id = Some(h.boot_id.clone());
            h.state.store(&st).map_err(RunError::from)
        })
        .await?
    }

    /// Writes the hand-off file for a plan that is not applied: only the PFs that show their
    /// spec (no step, no problem).
    async fn publish_ready(
        &self,
        spec: &NicNodeStateSpec,
        plan: &HostPlan,
    ) -> Result<(), RunError> {
        let ready: Vec<String> = plan.ready_pfs().map(str::to_owned).collect();
        let desired = crate::handoff::node_config(spec);
        self.blocking("hand-off", move |h| {
            h.handoff
                .publish(&desired, |pf| ready.iter().any(|r| r == pf))
                .map(|_| ())
                .map_err(RunError::from)
        })
        .await?
    }
}

/// A plan applied without the cluster.
#[derive(Debug)]
pub struct Local {
    /// The plan.
    pub plan: HostPlan,
    /// The run, when there was one.
    pub report: Option<ApplyReport>,
    /// How it ended.
    pub outcome: PassOutcome,
}

/// The agent.
pub struct Agent {
    api: NodeApi,
    host: HostSide,
    metrics: Arc<AgentMetrics>,
    health: Arc<Health>,
    config: LoopConfig,
    clock: fn() -> Timestamp,
    readiness: Readiness,
    /// What the last pass saw of the spec and the drain annotations.
    seen: Option<Trigger>,
    /// The overlay's uplink (`--tunnel-uplink`); `None`: no overlay work.
    tunnel: Option<TunnelConfig>,
    /// What the last pass found on the uplink: the tunnel endpoint and its condition, published
    /// in the same status apply as the inventory (the agent owns `status` under one field
    /// manager: a field left out of an apply is removed).
    tunnel_report: Option<TunnelReport>,
    /// The OVS node setup (with `--tunnel-uplink`); `None`: no OVS work.
    ovs_setup: Option<OvsSetup>,
    /// Whether the last pass's OVS node setup failed (the next pass comes after a backoff).
    ovs_setup_failed: bool,
    /// The node's copy of the tenant allow-list for the CNI plugin; `None`: not kept.
    cni_allow_list: Option<Arc<AllowListFile>>,
}

impl Agent {
    /// An agent for the node of `api`.
    pub fn new(
        api: NodeApi,
        host: HostSide,
        metrics: Arc<AgentMetrics>,
        health: Arc<Health>,
        config: LoopConfig,
    ) -> Self {
        Self {
            api,
            host,
            metrics,
            health,
            config,
            clock: Timestamp::now,
            readiness: Readiness::at_start(&Startup::Fresh),
            seen: None,
            tunnel: None,
            tunnel_report: None,
            ovs_setup: None,
            ovs_setup_failed: false,
            cni_allow_list: None,
        }
    }

    /// The same keeping `file` equal to `spec.cniAllowList` in each pass
    /// ([`AllowListFile::publish`]).
    pub fn with_cni_allow_list(mut self, file: AllowListFile) -> Self {
        self.cni_allow_list = Some(Arc::new(file));
        self
    }

    /// Writes the spec's allow-list to the node's file when it differs. A failure is logged
    /// and tried again on the next pass: the rest of the pass does not depend on it.
    async fn publish_allow_list(&self, spec: &NicNodeStateSpec) {
        let Some(file) = self.cni_allow_list.clone() else {
            return;
        };
        let list = spec.cni_allow_list.clone();
        let written =
            tokio::task::spawn_blocking(move || file.publish(list.as_ref()).map(|w| (w, file)))
                .await;
        match written {
            Ok(Ok((true, file))) => {
                tracing::info!(path = %file.path().display(), "CNI allow-list written")
            }
            Ok(Ok((false, _))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the CNI allow-list"),
            Err(e) => tracing::warn!(error = %e, "the CNI allow-list task did not finish"),
        }
    }

    /// The same doing the OVS node setup of `setup` in each pass, before the peers are applied.
    pub fn with_ovs_setup(mut self, setup: OvsSetup) -> Self {
        self.ovs_setup = Some(setup);
        self
    }

    /// The same publishing the tunnel endpoint of `tunnel`'s uplink in each pass.
    pub fn with_tunnel(mut self, tunnel: TunnelConfig) -> Self {
        self.tunnel = Some(tunnel);
        self
    }

    /// The same with a fixed clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.clock = clock;
        self
    }

    /// Whether the agent is ready.
    pub fn ready(&self) -> bool {
        self.readiness.ready()
    }

    fn record_readiness(&mut self, outcome: &PassOutcome) {
        self.readiness.record(outcome);
        self.health.set_ready(self.readiness.ready());
    }

    /// Start-up, before any API call: reads the state file; after a host reboot re-applies the
    /// last spec (no cluster, no drain: no pod holds VFs that do not exist). Returns the outcome
    /// of that re-apply, if there was one.
    pub async fn start(&mut self) -> Result<Option<PassOutcome>, RunError> {
        let (startup, local) = self.host.start().await?;
        self.readiness = Readiness::at_start(&startup);
        self.health.set_ready(self.readiness.ready());
        let Some(local) = local else {
            return Ok(None);
        };
        if let Some(report) = &local.report {
            self.record_metrics(&local.plan, report);
        }
        self.record_readiness(&local.outcome);
        Ok(Some(local.outcome))
    }

    fn record_metrics(&self, plan: &HostPlan, report: &ApplyReport) {
        self.metrics.record(report, |pci| {
            plan.pfs
                .iter()
                .find(|p| p.pci_address == pci)
                .map_or("generic", |p| vendor_name(p.vendor))
                .to_owned()
        });
    }

    async fn write_status(
        &self,
        last: &mut Option<NicNodeStateStatus>,
        inventory: &NicInventory,
        report: &SyncReport,
        generation: Option<i64>,
    ) -> Result<(), RunError> {
        let status = status_of(
            last.as_ref(),
            inventory.nics.clone(),
            report,
            self.tunnel_report.as_ref(),
            generation,
            (self.clock)(),
        );
        self.metrics.set_sync(report.status);
        if self.api.report_status(&status, last.as_ref()).await? {
            *last = Some(status);
        }
        Ok(())
    }

    /// With `--tunnel-uplink`: reads the uplink's address into the report the status applies
    /// of this pass carry. A missing uplink or address withdraws the endpoint and says why in the
    /// `TunnelEndpoint` condition (logged when it changes); the pass goes on.
    async fn read_tunnel_endpoint(&mut self) {
        let Some(t) = &self.tunnel else {
            return;
        };
        let report = tunnel_report(&t.uplink, t.reader.read(&t.uplink).await);
        if self.tunnel_report.as_ref() != Some(&report) {
            match &report.endpoint {
                Some(e) => tracing::info!(ip = %e.ip, uplink = %e.interface, "tunnel endpoint"),
                None => tracing::warn!(
                    uplink = %t.uplink,
                    "{}", report.condition.message
                ),
            }
        }
        self.tunnel_report = Some(report);
    }

    /// With an [`OvsSetup`]: the OVS node setup `inventory` asks for
    /// ([`node_setup`]), carried out (only what differs is written). What changed is logged and
    /// published as events, an ovs-vswitchd restart it needs as a warning (the agent never
    /// restarts OVS); a failure is logged and the pass goes on (the next one comes after a
    /// backoff). Returns the setup it asked for.
    async fn setup_ovs(
        &mut self,
        obj: &NicNodeState,
        inventory: &NicInventory,
    ) -> Option<offload::node::NodeSetup> {
        let s = self.ovs_setup.as_ref()?;
        let cfg = node_setup(&s.bridge, s.datapath, inventory);
        match s.applier.setup(&cfg).await {
            Ok(out) => {
                for w in &out.warnings {
                    tracing::warn!(bridge = %cfg.bridge, "OVS node setup: {w}");
                }
                if out.changed() {
                    tracing::info!(
                        bridge = %cfg.bridge, bridge_created = out.bridge_created,
                        other_config = ?out.changed_other_config, hw_tc_offload = ?out.tc_offload_on,
                        "OVS node setup"
                    );
                }
                if out.restart_required {
                    tracing::warn!(
                        other_config = ?out.changed_other_config,
                        "ovs-vswitchd must be restarted for the OVS node setup to take effect; \
                         the agent does not restart it"
                    );
                }
                for ev in setup_events(&cfg.bridge, &out) {
                    self.api.event(obj, ev.warning, ev.reason, ev.note).await;
                }
                s.mark_done();
                self.ovs_setup_failed = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "OVS node setup failed; tried again on the next pass");
                self.ovs_setup_failed = true;
            }
        }
        Some(cfg)
    }

    /// One pass. See the module documentation.
    pub async fn pass(&mut self) -> Result<PassOutcome, RunError> {
        let mut obj = self.api.get().await?;
        let generation = obj.metadata.generation;
        let spec = obj.spec.clone();
        self.publish_allow_list(&spec).await;
        let (mut request, mut grant) = drain_annotations(&obj);
        let mut last = obj.status.as_ref().map(agent_part);
        if self.tunnel.is_none()
            && !agent_owns_tunnel_endpoint(&obj)
            && let Some(l) = last.as_mut()
        {
            // another manager's (or nobody's): an apply without the field leaves it alone, and
            // it does not make the status look changed. One an earlier run of this agent
            // published is compared, so that the apply removes it.
            l.tunnel_endpoint = None;
        }
        let applied_generation = self
            .host
            .state
            .load()?
            .applied_generation
            .or_else(|| last.as_ref().and_then(|s| s.applied_generation));

        self.read_tunnel_endpoint().await;

        let mut planned = self.host.plan(&spec).await?;
        let set_up = self.setup_ovs(&obj, &planned.inventory).await;
        let mut fresh = true;
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        let outcome = loop {
            let waited = started.elapsed();
            match next(
                &planned.plan,
                request,
                grant,
                waited,
                self.config.drain_wait,
            ) {
                Next::InSync => {
                    self.host.record_applied(&spec, generation).await?;
                    self.host.publish_ready(&spec, &planned.plan).await?;
                    break PassOutcome::InSync;
                }
                Next::Unplannable => {
                    self.host.publish_ready(&spec, &planned.plan).await?;
                    break PassOutcome::of_apply(&planned.plan, &ApplyReport::default());
                }
                Next::Apply if !fresh => {
                    // classified again from the live host right before applying
                    planned = self.host.plan(&spec).await?;
                    fresh = true;
                }
                Next::Apply => {
                    let plan = &planned.plan;
                    let applying =
                        SyncReport::applying(plan.step_count(), plan.class, applied_generation);
                    self.write_status(&mut last, &planned.inventory, &applying, generation)
                        .await?;
                    let report = self
                        .host
                        .execute(generation, &spec, plan, &planned.inventory)
                        .await?;
                    self.record_metrics(plan, &report);
                    let outcome = PassOutcome::of_apply(plan, &report);
                    self.api
                        .plan_event(&obj, outcome == PassOutcome::InSync, note(plan, &report))
                        .await;
                    planned.inventory = self.host.discover().await?;
                    break outcome;
                }
                Next::RequestDrain(r) => {
                    let at = (request == DrainRequest::None).then(self.clock);
                    tracing::info!(request = r.as_str(), "asking the operator for a drain");
                    self.api.request_drain(r, at).await?;
                    request = r;
                    let waiting = SyncReport::waiting_for_drain(r, applied_generation);
                    self.write_status(&mut last, &planned.inventory, &waiting, generation)
                        .await?;
                }
                Next::WaitDrain => {
                    let waiting = SyncReport::waiting_for_drain(request, applied_generation);
                    self.write_status(&mut last, &planned.inventory, &waiting, generation)
                        .await?;
                    tokio::time::sleep(
                        self.config
                            .drain_poll
                            .delay(attempt)
                            .min(self.config.drain_wait.saturating_sub(waited)),
                    )
                    .await;
                    attempt = attempt.saturating_add(1);
                    obj = self.api.get().await?;
                    (request, grant) = drain_annotations(&obj);
                    if obj.metadata.generation != generation {
                        // a new spec: the next pass plans it, at once
                        break PassOutcome::Superseded;
                    }
                    fresh = false;
                }
                Next::DrainTimedOut => break PassOutcome::DrainTimedOut,
            }
        };
        if outcome == PassOutcome::Superseded {
            return Ok(outcome);
        }
        if let Some(cfg) = &set_up
            && self
                .ovs_setup
                .as_ref()
                .is_some_and(|s| &node_setup(&s.bridge, s.datapath, &planned.inventory) != cfg)
        {
            // the plan changed the host (a PF put in switchdev): set up for what it is now
            self.setup_ovs(&obj, &planned.inventory).await;
        }
        let report = SyncReport::after(
            &outcome,
            request,
            started.elapsed(),
            generation,
            applied_generation,
        );
        self.write_status(&mut last, &planned.inventory, &report, generation)
            .await?;
        if release_drain(request, &outcome) {
            self.api.request_drain(DrainRequest::None, None).await?;
            request = DrainRequest::None;
        }
        self.record_readiness(&outcome);
        self.seen = Some(Trigger {
            generation,
            request,
            grant,
        });
        Ok(outcome)
    }

    /// Runs the loop: start-up, the node state created (or adopted), then passes on watch events
    /// and resyncs until `shutdown` resolves. With `once`, one pass and its outcome.
    pub async fn run(
        mut self,
        client: Client,
        node: &str,
        once: bool,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<PassOutcome>, RunError> {
        self.start().await?;
        let mut failures = 0u32;
        while let Err(e) = self.api.ensure_node_state().await {
            tracing::warn!(error = %e, "cannot create the node state; retrying");
            if once {
                return Err(e.into());
            }
            tokio::time::sleep(self.config.retry.delay(failures)).await;
            failures = failures.saturating_add(1);
        }
        if once {
            return self.pass().await.map(Some);
        }
        let api: Api<NicNodeState> = Api::all(client);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let mut events = Box::pin(watcher(api, cfg).default_backoff().applied_objects());
        tokio::pin!(shutdown);
        failures = 0;
        loop {
            let wait = match self.pass().await {
                Ok(PassOutcome::Superseded) => continue,
                Ok(outcome) if self.ovs_setup_failed => {
                    // OVS not (yet) reachable: the setup is tried again soon, the rest of the
                    // pass stands
                    tracing::info!(?outcome, "pass");
                    failures = failures.saturating_add(1);
                    self.config.retry.delay(failures - 1)
                }
                Ok(outcome) => {
                    tracing::info!(?outcome, "pass");
                    failures = 0;
                    self.config.resync
                }
                Err(RunError::File(e)) => return Err(RunError::File(e)),
                Err(RunError::Cluster(ClusterError::Get {
                    source: kube::Error::Api(status),
                    ..
                })) if status.is_not_found() => {
                    // the node state was deleted under the agent: created again
                    tracing::warn!("the node state is gone; creating it again");
                    if let Err(e) = self.api.ensure_node_state().await {
                        tracing::warn!(error = %e, "cannot create the node state");
                    }
                    failures = failures.saturating_add(1);
                    self.config.retry.delay(failures - 1)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pass failed");
                    failures = failures.saturating_add(1);
                    self.config.retry.delay(failures - 1)
                }
            };
            let deadline = tokio::time::sleep(wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut shutdown => return Ok(None),
                    () = &mut deadline => break,
                    ev = events.next() => match ev {
                        Some(Ok(obj)) => {
                            let (request, grant) = drain_annotations(&obj);
                            let t = Trigger { generation: obj.metadata.generation, request, grant };
                            if starts_pass(self.seen.as_ref(), &t) {
                                break;
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "watch of the node state"),
                        None => break,
                    },
                }
            }
        }
    }
}

/// The metrics label of a driver family.
fn vendor_name(v: Vendor) -> &'static str {
    match v {
        Vendor::Mlx5 => "mlx5",
        Vendor::Ice => "ice",
        Vendor::Igb => "igb",
        Vendor::Netdevsim => "netdevsim",
        Vendor::Generic => "generic",
    }
}

/// The note of a plan's event: steps, disruption, time, and the errors or `applied`.
fn note(plan: &HostPlan, report: &ApplyReport) -> String {
    let errors = report.errors();
    format!(
        "{} step(s), disruption {}, {:.1} s: {}",
        plan.step_count(),
        class_name(plan.class),
        report.duration.as_secs_f64(),
        if errors.is_empty() {
            if report.reboot_needed() {
                "applied; a firmware change waits for a reboot".to_owned()
            } else {
                "applied".to_owned()
            }
        } else {
            errors.join("; ")
        }
    )
}
