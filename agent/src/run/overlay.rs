//! The overlay in the agent (opt-in: `smartnic-agent --tunnel-uplink IFACE`; without it the
//! agent does no overlay work and needs no Open vSwitch). A thin shell around
//! [`crate::run::overlay_decide`] and the offload crate:
//!
//! ```text
//!  node setup (Agent::pass, each pass)       offload::node::setup through NodeSetupApplier:
//!   node_setup(inventory) → NodeSetup          br-int, hw-offload / hw-tc-offload with a
//!   └► events OvsSetup / OvsRestartRequired    switchdev PF; only the difference is written;
//!                                              the peer loop starts after the first success
//!  publish (Agent::pass, each pass)          learn (run_peers, its own task)
//!  node::tunnel_endpoint(uplink)             watch every NicNodeState (name, tunnelEndpoint)
//!   └► status.tunnelEndpoint {ip, interface}   └► EndpointView: did an endpoint change?
//!      + condition TunnelEndpoint,                └► PeerSync::apply(own ip, endpoints)
//!      in the agent's one status apply               (tunnel ports + flows on br-int; OVS
//!                                                     unreachable: retried with backoff)
//! ```
//!
//! A node that goes away (its NicNodeState deleted, or its endpoint withdrawn because its uplink
//! lost its address) leaves the view; every other node's next apply removes its tunnel port and
//! the MACs learned behind it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crds::NicNodeState;
use futures::{Stream, StreamExt, future::BoxFuture};
use kube::{ResourceExt, runtime::watcher};
use offload::decision::Datapath;
use offload::node::{NodeSetup, SetupOutcome};
use offload::overlay::{GENEVE_PORT, NodeEndpoint, Overlay, PeerSync, PeerSyncOutcome, Skipped};
use offload::{Ovs, Remote};

use crate::run::decide::Backoff;
use crate::run::overlay_decide::EndpointView;

/// Default Open vSwitch run directory (`$OVS_RUNDIR`): `db.sock`, `BRIDGE.mgmt` and the
/// overlay lock shared with the CNI.
pub const DEFAULT_OVS_RUNDIR: &str = "/run/openvswitch";
/// The integration bridge.
pub const DEFAULT_BRIDGE: &str = "br-int";

/// Reads the tunnel endpoint of an uplink (a seam: tests answer without netlink).
pub trait EndpointReader: Send + Sync {
    /// The endpoint of `uplink`; the error names the uplink.
    fn read<'a>(&'a self, uplink: &'a str) -> BoxFuture<'a, Result<IpAddr, String>>;
}

/// The uplink's first global IPv4 address, else IPv6 ([`offload::node::tunnel_endpoint`], in
/// the agent's network namespace: the host's).
#[derive(Clone, Copy, Debug, Default)]
pub struct UplinkAddress;

impl EndpointReader for UplinkAddress {
    fn read<'a>(&'a self, uplink: &'a str) -> BoxFuture<'a, Result<IpAddr, String>> {
        Box::pin(async move {
            offload::node::tunnel_endpoint(uplink)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The overlay part of the agent's pass: which uplink, read how.
pub struct TunnelConfig {
    /// The uplink whose address is the tunnel endpoint.
    pub uplink: String,
    /// How it is read.
    pub reader: Box<dyn EndpointReader>,
}

impl TunnelConfig {
    /// `uplink`, read from the host.
    pub fn uplink(uplink: impl Into<String>) -> Self {
        Self {
            uplink: uplink.into(),
            reader: Box::new(UplinkAddress),
        }
    }
}

/// Carries out the OVS node setup (a seam: tests record the setup instead of touching OVS).
pub trait NodeSetupApplier: Send + Sync {
    /// [`offload::node::setup`] of `cfg`; the error names what failed.
    fn setup<'a>(&'a self, cfg: &'a NodeSetup) -> BoxFuture<'a, Result<SetupOutcome, String>>;
}

/// The real setup: [`offload::node::setup`] through the OVS whose run directory is `rundir`
/// (one connection per setup: it runs once per pass).
#[derive(Clone, Debug)]
pub struct OvsNodeSetup {
    rundir: PathBuf,
}

impl OvsNodeSetup {
    /// Through `rundir/db.sock`.
    pub fn new(rundir: impl Into<PathBuf>) -> Self {
        Self {
            rundir: rundir.into(),
        }
    }
}

impl NodeSetupApplier for OvsNodeSetup {
    fn setup<'a>(&'a self, cfg: &'a NodeSetup) -> BoxFuture<'a, Result<SetupOutcome, String>> {
        Box::pin(async move {
            let sock = self.rundir.join("db.sock");
            let ovs = Ovs::connect(&Remote::unix(&sock))
                .await
                .map_err(|e| format!("cannot connect to OVSDB at {}: {e}", sock.display()))?;
            offload::node::setup(&ovs, cfg)
                .await
                .map_err(|e| format!("OVS node setup of {} failed: {e}", cfg.bridge))
        })
    }
}

/// The agent's OVS node setup (with `--tunnel-uplink`): which bridge, which datapath for a
/// bridge it creates, done how; and whether a setup succeeded yet (the peer loop waits for it:
/// its tunnel ports need the bridge).
pub struct OvsSetup {
    /// The integration bridge.
    pub bridge: String,
    /// The datapath of the bridge when the agent creates it.
    pub datapath: Datapath,
    /// How the setup is carried out.
    pub applier: Box<dyn NodeSetupApplier>,
    done: tokio::sync::watch::Sender<bool>,
}

impl OvsSetup {
    /// Setup of `bridge` (created with `datapath`) through `applier`.
    pub fn new(bridge: &str, datapath: Datapath, applier: Box<dyn NodeSetupApplier>) -> Self {
        Self {
            bridge: bridge.to_owned(),
            datapath,
            applier,
            done: tokio::sync::watch::channel(false).0,
        }
    }

    /// Becomes `true` after the first successful setup.
    pub fn done(&self) -> tokio::sync::watch::Receiver<bool> {
        self.done.subscribe()
    }

    pub(crate) fn mark_done(&self) {
        self.done.send_replace(true);
    }
}

/// Whether the host has Open vSwitch's kernel datapath: the `openvswitch` module under
/// `sys` (the host's `/sys`, `<host-root>/sys` in the pod).
pub fn kernel_datapath_loaded(sys: &std::path::Path) -> bool {
    sys.join("module/openvswitch").exists()
}

/// Applies the peer set (a seam: tests record the endpoints instead of touching OVS).
pub trait PeerApplier: Send {
    /// [`PeerSync::apply`]: `self_ip` is this node's published endpoint, `nodes` every node's.
    fn apply<'a>(
        &'a mut self,
        self_ip: Option<IpAddr>,
        nodes: &'a [NodeEndpoint],
    ) -> BoxFuture<'a, Result<PeerSyncOutcome, String>>;
    /// Forgets what was applied: the next apply programs OVS again.
    fn reset(&mut self);
}

/// The real applier: [`PeerSync`] on the integration bridge of the OVS in `rundir`, connected
/// on first use and again after an error (ovsdb-server restarted).
#[derive(Debug)]
pub struct OvsPeers {
    rundir: PathBuf,
    bridge: String,
    node: String,
    sync: Option<PeerSync>,
}

impl OvsPeers {
    /// The peers of `node` on `bridge` of the OVS whose run directory is `rundir`.
    pub fn new(rundir: impl Into<PathBuf>, bridge: &str, node: &str) -> Self {
        Self {
            rundir: rundir.into(),
            bridge: bridge.to_owned(),
            node: node.to_owned(),
            sync: None,
        }
    }
}

impl PeerApplier for OvsPeers {
    fn apply<'a>(
        &'a mut self,
        self_ip: Option<IpAddr>,
        nodes: &'a [NodeEndpoint],
    ) -> BoxFuture<'a, Result<PeerSyncOutcome, String>> {
        Box::pin(async move {
            if self.sync.is_none() {
                let sock = self.rundir.join("db.sock");
                let ovs = Ovs::connect(&Remote::unix(&sock))
                    .await
                    .map_err(|e| format!("cannot connect to OVSDB at {}: {e}", sock.display()))?;
                let overlay = Overlay::in_rundir(ovs, &self.rundir, &self.bridge);
                self.sync = Some(PeerSync::new(overlay, &self.node, GENEVE_PORT));
            }
            let Some(sync) = self.sync.as_mut() else {
                return Err("no OVSDB connection".to_owned());
            };
            let out = sync.apply(self_ip, nodes).await;
            out.map_err(|e| {
                // a fresh connection next time (ovsdb-server or ovs-vswitchd may have restarted)
                self.sync = None;
                format!("cannot apply the overlay peers on {}: {e}", self.bridge)
            })
        })
    }

    fn reset(&mut self) {
        if let Some(s) = self.sync.as_mut() {
            s.reset();
        }
    }
}

/// Timing of the peer loop.
#[derive(Clone, Copy, Debug)]
pub struct PeerLoopConfig {
    /// After an endpoint change, wait this long for more before applying (nodes come up in
    /// bursts).
    pub settle: Duration,
    /// Delays before the next try after a failed apply.
    pub retry: Backoff,
    /// Apply again this often even without a change: the flows are replaced, which restores
    /// them after ovs-vswitchd restarted.
    pub resync: Duration,
}

impl Default for PeerLoopConfig {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(1),
            retry: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            resync: Duration::from_secs(5 * 60),
        }
    }
}

/// The watch of every `NicNodeState` the peer loop reads (list, then watch). The list is
/// `resourceVersion=0` without pages: the API server answers it from its watch cache instead
/// of etcd, which matters when every node's agent lists at once (a DaemonSet rollout).
pub fn node_states(
    client: kube::Client,
) -> impl Stream<Item = Result<watcher::Event<NicNodeState>, watcher::Error>> + Send {
    use kube::runtime::WatchStreamExt;
    let mut cfg = watcher::Config::default().any_semantic();
    // with a limit, resourceVersion=0 is not sent (kube-core) and the list goes to etcd
    cfg.page_size = None;
    watcher(kube::Api::<NicNodeState>::all(client), cfg).default_backoff()
}

/// The endpoint a node state publishes.
fn endpoint_of(s: &NicNodeState) -> Option<String> {
    s.status
        .as_ref()
        .and_then(|st| st.tunnel_endpoint.as_ref())
        .map(|e| e.ip.clone())
}

/// The peer loop of node `node`: folds `events` into an [`EndpointView`] and applies the peers
/// through `applier` whenever an endpoint changed (after [`PeerLoopConfig::settle`]), on every
/// resync, and again with backoff after a failure, until `shutdown` resolves or the events end.
/// Nodes left out of the peer set are logged with the reason when that list changes.
pub async fn run_peers(
    node: &str,
    events: impl Stream<Item = Result<watcher::Event<NicNodeState>, watcher::Error>>,
    mut applier: impl PeerApplier,
    cfg: PeerLoopConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut view = EndpointView::default();
    let mut events = std::pin::pin!(events);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut due: Option<tokio::time::Instant> = None;
    let mut failures = 0u32;
    let mut logged_skips: Option<Vec<Skipped>> = None;
    let mut resync = tokio::time::interval(cfg.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.reset();
    loop {
        let apply_at = due.unwrap_or_else(|| tokio::time::Instant::now() + cfg.resync);
        tokio::select! {
            () = &mut shutdown => return,
            ev = events.next() => {
                let changed = match ev {
                    None => return,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watch of the node states (overlay peers)");
                        false
                    }
                    Some(Ok(watcher::Event::Init)) => {
                        view.restart();
                        false
                    }
                    Some(Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s))) => {
                        view.seen(&s.name_any(), endpoint_of(&s))
                    }
                    Some(Ok(watcher::Event::Delete(s))) => view.gone(&s.name_any()),
                    Some(Ok(watcher::Event::InitDone)) => view.listed(),
                };
                if changed && due.is_none() {
                    due = Some(tokio::time::Instant::now() + cfg.settle);
                }
            }
            _ = resync.tick(), if view.ready() && due.is_none() => {
                applier.reset();
                due = Some(tokio::time::Instant::now());
            }
            () = tokio::time::sleep_until(apply_at), if due.is_some() => {
                let nodes = view.endpoints();
                match applier.apply(view.ip_of(node), &nodes).await {
                    Ok(out) => {
                        failures = 0;
                        due = None;
                        if let Some(change) = &out.change {
                            tracing::info!(
                                peers = out.set.peers.len(), added = ?change.added,
                                removed = ?change.removed, "overlay peers applied"
                            );
                        }
                        if logged_skips.as_ref() != Some(&out.set.skipped) {
                            for s in &out.set.skipped {
                                tracing::warn!(peer = %s.node, reason = %s.reason, "overlay peer left out");
                            }
                            logged_skips = Some(out.set.skipped);
                        }
                    }
                    Err(e) => {
                        let wait = cfg.retry.delay(failures);
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, retry_in = ?wait, "overlay peers not applied");
                        applier.reset();
                        due = Some(tokio::time::Instant::now() + wait);
                    }
                }
            }
        }
    }
}
