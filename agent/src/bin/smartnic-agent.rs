//! `smartnic-agent`: the node agent (a privileged DaemonSet, host network, host sysfs).
//!
//! ```text
//! smartnic-agent --node-name $NODE_NAME [--host-root /host] [--state-file FILE]
//!                [--device-plugin-file FILE] [--metrics-addr ADDR] [--log-level FILTER]
//!                [--log-format text|json] [--once]
//!                [--tunnel-uplink IFACE [--ovs-rundir DIR] [--ovs-datapath auto|system|netdev]]
//! smartnic-agent --spec-file FILE [--allow-disruption] [--host-root DIR] [--state-file FILE]
//!                [--device-plugin-file FILE]
//! smartnic-agent --metrics-only [--metrics-addr ADDR] [--host-root DIR] [--cni-state-dir DIR]
//! ```
//!
//! See `agent::run` for the loop. `--once` runs the start-up and one pass, then exits 0 when the
//! host shows the spec and 1 otherwise.
//!
//! `--spec-file` is the standalone mode (bare metal, the lab): no cluster; the start-up (the
//! post-boot re-apply) and one pass that applies the `NicNodeStateSpec` in FILE (JSON or YAML,
//! the spec itself or a whole `NicNodeState`; `smartnicctl plan -o json` prints one as `.spec`).
//! Nobody drains the node, so a disruptive plan is refused unless `--allow-disruption`.
//!
//! `--metrics-only` serves `/metrics` (with the per-VF counters, `agent::vf_metrics`) and
//! `/healthz` without a cluster and without applying anything, until stopped: for
//! a host outside a cluster, and the lab.
//!
//! `--tunnel-uplink IFACE` turns the Geneve overlay on (`agent::run::overlay`): each pass does
//! the OVS node setup (`br-int` with `fail_mode=secure`; with a PF in switchdev
//! `hw-offload=true` and `hw-tc-offload` on it and its representors; an ovs-vswitchd restart it
//! needs is an `OvsRestartRequired` event, never done) and publishes IFACE's address as
//! `status.tunnelEndpoint`; after the first setup a task learns the other nodes' endpoints and
//! keeps `br-int`'s tunnel ports to them, through the OVS in `--ovs-rundir`.
//! Without it the agent does no overlay work and needs no Open vSwitch.
//!
//! `--daemonset-name NAME --pod-namespace NS` (the deploy sets both): at start the agent reads
//! its own DaemonSet; at SIGTERM it reads it again, and when it is gone, being deleted or no
//! longer readable with our token, the node is uninstalled: each PF back as it was, the CNI
//! binary and our files removed (`agent::uninstall`). Otherwise a SIGTERM changes nothing.
//!
//! `SMARTNIC_AGENT_FAILPOINT=<point>` (tests only; unset in every deployment) stops the agent at
//! one step boundary of the executor for a test to kill it there (`agent::failpoint`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kube::Client;

use agent::{
    allow_list::AllowListFile,
    cluster::NodeApi,
    firmware::{NvidiaFirmware, SystemRunner},
    handoff::{DEFAULT_DEVICE_PLUGIN_FILE, DevicePluginFile},
    metrics::AgentMetrics,
    run::{
        Agent, Health, HostSide, LoopConfig,
        decide::PassOutcome,
        host::LiveHost,
        overlay::{
            DEFAULT_BRIDGE, DEFAULT_OVS_RUNDIR, OvsNodeSetup, OvsPeers, OvsSetup, PeerLoopConfig,
            TunnelConfig, kernel_datapath_loaded, node_states, run_peers,
        },
        overlay_decide::host_datapath,
    },
    state::{DEFAULT_STATE_FILE, StateFile, boot_id},
    uninstall::{LOOKUP_TIMEOUT, OwnDaemonSet, clean::CleanPaths, decide::arms, on_stop},
    vf_metrics::{DEFAULT_READ_TIMEOUT, LiveVfCounters, VfScraper},
};
use crds::node_state::NicNodeStateSpec;
use nic::sysfs::SysFs;
use offload::decision::Datapath;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "smartnic-agent",
    version,
    about = "Node agent: discover, report and apply the node's NIC state"
)]
struct Args {
    /// This node's name (the `NicNodeState` is named after it); the downward API's
    /// `spec.nodeName`.
    #[arg(
        long,
        env = "NODE_NAME",
        required_unless_present_any = ["spec_file", "metrics_only"]
    )]
    node_name: Option<String>,
    /// Where the host's root is mounted: sysfs is read under `<host-root>/sys`.
    #[arg(long, env = "HOST_ROOT", default_value = "/")]
    host_root: PathBuf,
    /// The crash-safety record (on the host, so that it survives the pod).
    #[arg(long, env = "STATE_FILE", default_value = DEFAULT_STATE_FILE)]
    state_file: PathBuf,
    /// The device-plugin hand-off file (read by the node's device plugin).
    #[arg(long, env = "DEVICE_PLUGIN_FILE", default_value = DEFAULT_DEVICE_PLUGIN_FILE)]
    device_plugin_file: PathBuf,
    /// The node's allow-list for tenant network configurations, kept equal to
    /// `NicNodeState.spec.cniAllowList` (read by the CNI plugin).
    #[arg(long, env = "CNI_ALLOW_LIST_FILE", default_value = crds::cni::NODE_ALLOW_LIST_FILE)]
    cni_allow_list_file: PathBuf,
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    metrics_addr: SocketAddr,
    /// The CNI plugin's state directory on the host (read-only: which pod holds which VF, for
    /// the per-VF metrics' `namespace` and `pod` labels).
    #[arg(long, env = "CNI_STATE_DIR", default_value = crds::cni_state::STATE_DIR)]
    cni_state_dir: PathBuf,
    /// Serve /metrics (per-VF counters included) and /healthz only: no cluster, no changes to
    /// the host.
    #[arg(long, conflicts_with_all = ["node_name", "spec_file", "once"])]
    metrics_only: bool,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,kube_runtime=warn")]
    log_level: String,
    /// Log line format: text (coloured only on a terminal, never with NO_COLOR) or one JSON
    /// object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Start, run one pass, exit (0: the host shows the spec).
    #[arg(long)]
    once: bool,
    /// Standalone: apply the `NicNodeStateSpec` in FILE once, without a cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["node_name", "once"])]
    spec_file: Option<PathBuf>,
    /// With --spec-file: apply a plan that needs pods evicted or the node rebooted.
    #[arg(long, requires = "spec_file")]
    allow_disruption: bool,
    /// The longest a pass waits for the operator's drain grant, in seconds.
    #[arg(long, env = "DRAIN_WAIT_SECONDS", default_value_t = 900)]
    drain_wait_seconds: u64,
    /// A pass at least this often, in seconds.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// The agent's own DaemonSet, read at start and at SIGTERM: gone, being deleted or no longer
    /// readable with our token means an uninstall, which puts the PFs back and removes our files
    /// from the host (`agent::uninstall`). Unset (or without --pod-namespace): a SIGTERM never
    /// changes the host.
    /// (Ignored by --spec-file and --metrics-only.)
    #[arg(long, env = "DAEMONSET_NAME")]
    daemonset_name: Option<String>,
    /// The agent's namespace (the downward API's `metadata.namespace`), where its DaemonSet is.
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// The host's CNI binary directory as mounted into the agent: the uninstall removes the
    /// `smartnic` binary from it.
    #[arg(long, env = "CNI_BIN_DIR", default_value = "/host/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// Where the uninstall finds the host paths it empties (`crds::host_paths`): `/` in the
    /// DaemonSet, whose mounts put them at their own paths; a directory of its own in tests.
    #[arg(long, env = "UNINSTALL_ROOT", default_value = "/")]
    uninstall_root: PathBuf,
    /// The overlay: publish this interface's address as the node's Geneve tunnel endpoint and
    /// keep tunnel ports to the other nodes' endpoints (unset: no overlay, no OVS needed).
    #[arg(
        long,
        env = "TUNNEL_UPLINK",
        value_name = "IFACE",
        conflicts_with = "spec_file"
    )]
    tunnel_uplink: Option<String>,
    /// Open vSwitch's run directory (db.sock, br-int.mgmt; the overlay lock shared with the
    /// CNI), used with --tunnel-uplink.
    #[arg(long, env = "OVS_RUNDIR", default_value = DEFAULT_OVS_RUNDIR)]
    ovs_rundir: PathBuf,
    /// The datapath of `br-int` when the agent creates it (auto: the kernel's when the host has
    /// the openvswitch module loaded, else the userspace one). An existing bridge keeps its own.
    #[arg(long, env = "OVS_DATAPATH", value_enum, default_value = "auto")]
    ovs_datapath: DatapathArg,
}

/// The default of `--metrics-addr`: the host port the DaemonSet in `deploy/agent/` opens.
const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9830";

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// `--ovs-datapath`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DatapathArg {
    Auto,
    System,
    Netdev,
}

/// `error: ...` with the causes joined once, exit status 1 (no `Caused by:` dump).
fn main() -> std::process::ExitCode {
    match main_inner() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", crds::report::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a log filter", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .init(),
        LogFormat::Json => builder.with_ansi(false).json().flatten_event(true).init(),
    }
    Ok(())
}

fn main_inner() -> anyhow::Result<bool> {
    let args = Args::parse();
    init_logging(&args)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if args.metrics_only {
        return rt.block_on(metrics_only(&args));
    }
    match &args.spec_file {
        Some(file) => rt.block_on(standalone(&args, file)),
        None => rt.block_on(run(args)),
    }
}

fn host_side(args: &Args) -> HostSide {
    let sysfs = SysFs::new(&args.host_root);
    HostSide {
        host: Arc::new(LiveHost::new(sysfs.clone())),
        firmware: Some(Arc::new(NvidiaFirmware::new(
            SystemRunner,
            sysfs.path("sys"),
        ))),
        state: Arc::new(StateFile::new(&args.state_file)),
        handoff: Arc::new(DevicePluginFile::new(&args.device_plugin_file)),
        // the boot id is not namespaced: the container's /proc shows the host's
        boot_id: boot_id(std::path::Path::new("/proc")),
        applying: Default::default(),
    }
}

/// The metrics with the per-VF counters of this host.
fn agent_metrics(args: &Args) -> Arc<AgentMetrics> {
    let metrics = Arc::new(AgentMetrics::new());
    let source = LiveVfCounters::new(SysFs::new(&args.host_root), &args.cni_state_dir);
    metrics.set_vf_scraper(VfScraper::new(Arc::new(source), DEFAULT_READ_TIMEOUT));
    metrics
}

/// `--metrics-only`: serves until SIGTERM or Ctrl-C.
async fn metrics_only(args: &Args) -> anyhow::Result<bool> {
    // nothing is applied, so nothing makes it ready: /readyz stays 503
    let health = Arc::new(Health::default());
    let stop = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    agent::run::serve::serve(args.metrics_addr, agent_metrics(args), health, stop).await?;
    Ok(true)
}

/// `--spec-file`: the start-up and one local pass; prints what was done.
async fn standalone(args: &Args, file: &std::path::Path) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    // as strict as the API server: a misspelt field is an error naming its line, never dropped
    let doc = crds::strict::decode_spec(&text, "NicNodeState")
        .with_context(|| format!("{} is refused", file.display()))?;
    let spec: NicNodeStateSpec = serde_json::from_value(doc)
        .with_context(|| format!("{} is not a NicNodeStateSpec", file.display()))?;
    let host = host_side(args);
    let (_, reapplied) = host.start().await?;
    if let Some(r) = &reapplied {
        println!(
            "after the reboot, re-applied the last spec: {}",
            outcome_text(&r.outcome)
        );
    }
    let local = host.apply_local(&spec, None, args.allow_disruption).await?;
    println!(
        "plan: {} step(s), disruption {}",
        local.plan.step_count(),
        agent::run::decide::class_name(local.plan.class)
    );
    if let Some(report) = &local.report {
        for line in report.lines() {
            println!("{line}");
        }
    }
    match &local.outcome {
        PassOutcome::InSync => println!("in sync"),
        PassOutcome::Failed(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
        }
        other => eprintln!("not in sync: {}", outcome_text(other)),
    }
    Ok(local.outcome == PassOutcome::InSync)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client from the in-cluster config or kubeconfig")?;
    let node = args.node_name.clone().unwrap_or_default();
    let host = host_side(&args);
    tracing::info!(
        node = %node,
        host_root = %args.host_root.display(),
        state_file = %args.state_file.display(),
        device_plugin_file = %args.device_plugin_file.display(),
        boot_id = %host.boot_id,
        tunnel_uplink = args.tunnel_uplink.as_deref().unwrap_or("-"),
        "starting"
    );
    let metrics = agent_metrics(&args);
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = stop_tx.subscribe();
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let server = tokio::spawn(agent::run::serve::serve(
        args.metrics_addr,
        metrics.clone(),
        health.clone(),
        stopped(),
    ));
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install the SIGTERM handler");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("stopping");
        stop_tx.send_replace(true);
    });
    let own = match (&args.daemonset_name, &args.pod_namespace) {
        (Some(name), Some(ns)) if !args.once => Some(OwnDaemonSet::new(client.clone(), ns, name)),
        _ => {
            tracing::info!(
                "DAEMONSET_NAME or POD_NAMESPACE unset (or --once): a SIGTERM never changes the host"
            );
            None
        }
    };
    let armed = Arc::new(std::sync::OnceLock::<String>::new());
    if let Some(own) = own.clone() {
        tokio::spawn(arm(own, armed.clone(), stopped()));
    }
    let host_at_stop = host.clone();
    let config = LoopConfig {
        drain_wait: std::time::Duration::from_secs(args.drain_wait_seconds),
        resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
        ..LoopConfig::default()
    };
    let mut agent = Agent::new(
        NodeApi::new(client.clone(), node.clone()),
        host,
        metrics,
        health,
        config,
    )
    .with_cni_allow_list(AllowListFile::new(&args.cni_allow_list_file));
    if let Some(uplink) = &args.tunnel_uplink {
        let configured = match args.ovs_datapath {
            DatapathArg::Auto => None,
            DatapathArg::System => Some(Datapath::System),
            DatapathArg::Netdev => Some(Datapath::Netdev),
        };
        let kernel = kernel_datapath_loaded(&args.host_root.join("sys"));
        let setup = OvsSetup::new(
            DEFAULT_BRIDGE,
            host_datapath(configured, kernel),
            Box::new(OvsNodeSetup::new(&args.ovs_rundir)),
        );
        let mut set_up = setup.done();
        agent = agent
            .with_tunnel(TunnelConfig::uplink(uplink))
            .with_ovs_setup(setup);
        if !args.once {
            let (client, node, rundir) = (client.clone(), node.clone(), args.ovs_rundir.clone());
            let stop = stopped();
            tokio::spawn(async move {
                // the tunnel ports go on br-int: after the first node setup
                if set_up.wait_for(|d| *d).await.is_err() {
                    return;
                }
                let applier = OvsPeers::new(rundir, DEFAULT_BRIDGE, &node);
                run_peers(
                    &node,
                    node_states(client),
                    applier,
                    PeerLoopConfig::default(),
                    stop,
                )
                .await;
            });
        }
    }
    let outcome = tokio::select! {
        r = agent.run(client, &node, args.once, stopped()) => r?,
        r = server => {
            r.context("the metrics server task")??;
            None
        }
        // a pass in progress is dropped at once (a plan's blocking thread finishes its step and
        // records it): the uninstall needs the grace period
        () = stopped(), if own.is_some() => None,
    };
    if *stopping.borrow()
        && let Some(own) = &own
    {
        let mut paths = CleanPaths::under(&args.uninstall_root, &args.cni_bin_dir);
        paths.cni_state_dir = args.cni_state_dir.clone();
        on_stop(own, armed.get().map(String::as_str), &host_at_stop, paths).await;
    }
    if let Some(o) = &outcome {
        tracing::info!(outcome = ?o, "one pass done");
    }
    Ok(!matches!(outcome, Some(ref o) if *o != PassOutcome::InSync))
}

/// Reads the agent's own DaemonSet until it is seen live (every 30 s, until `stop`): only then
/// can a later SIGTERM be told apart as an uninstall (`agent::uninstall::decide`).
async fn arm(
    own: OwnDaemonSet,
    armed: Arc<std::sync::OnceLock<String>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut warned = false;
    loop {
        let now = own.lookup(LOOKUP_TIMEOUT).await;
        if let Some(uid) = arms(&now) {
            tracing::info!(daemonset = own.name(), %uid, "own DaemonSet seen: an uninstall resets this node");
            let _ = armed.set(uid.to_owned());
            return;
        }
        if !warned {
            tracing::warn!(
                daemonset = own.name(), answer = ?now,
                "cannot read the agent's own DaemonSet: until it can, an uninstall leaves this node as it is (retrying every 30 s)"
            );
            warned = true;
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
        }
    }
}

/// A pass's outcome in words, for the standalone mode's output.
fn outcome_text(o: &PassOutcome) -> String {
    match o {
        PassOutcome::InSync => "in sync".into(),
        PassOutcome::Failed(errors) => format!("failed: {}", errors.join("; ")),
        PassOutcome::DrainTimedOut => "the drain was not granted in time".into(),
        PassOutcome::RebootRequired => "a firmware change waits for a reboot of this host".into(),
        PassOutcome::Superseded => "a newer spec arrived; it is planned next".into(),
    }
}
