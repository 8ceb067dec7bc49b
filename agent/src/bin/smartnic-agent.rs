//! `smartnic-agent`: the node agent (a privileged DaemonSet, host network, host sysfs).
//!
//! ```text
//! smartnic-agent --node-name $NODE_NAME [--host-root /host] [--state-file FILE]
//!                [--device-plugin-file FILE] [--metrics-addr ADDR] [--log-level FILTER] [--once]
//! ```
//!
//! See `agent::run` for the loop. `--once` runs the start-up and one pass, then exits 0 when the
//! host shows the spec and 1 otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kube::Client;

use agent::{
    cluster::NodeApi,
    firmware::{NvidiaFirmware, SystemRunner},
    handoff::{DEFAULT_DEVICE_PLUGIN_FILE, DevicePluginFile},
    metrics::AgentMetrics,
    run::{Agent, Health, HostSide, LoopConfig},
    run_decide::PassOutcome,
    run_host::LiveHost,
    state::{DEFAULT_STATE_FILE, StateFile, boot_id},
};
use nic::sysfs::SysFs;

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
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Where the host's root is mounted: sysfs is read under `<host-root>/sys`.
    #[arg(long, env = "HOST_ROOT", default_value = "/")]
    host_root: PathBuf,
    /// The crash-safety record (on the host, so that it survives the pod).
    #[arg(long, env = "STATE_FILE", default_value = DEFAULT_STATE_FILE)]
    state_file: PathBuf,
    /// The device-plugin hand-off file (read by the node's device plugin).
    #[arg(long, env = "DEVICE_PLUGIN_FILE", default_value = DEFAULT_DEVICE_PLUGIN_FILE)]
    device_plugin_file: PathBuf,
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9110")]
    metrics_addr: SocketAddr,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,kube_runtime=warn")]
    log_level: String,
    /// Start, run one pass, exit (0: the host shows the spec).
    #[arg(long)]
    once: bool,
    /// The longest a pass waits for the operator's drain grant, in seconds.
    #[arg(long, env = "DRAIN_WAIT_SECONDS", default_value_t = 900)]
    drain_wait_seconds: u64,
    /// A pass at least this often, in seconds.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a log filter", args.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let ok = rt.block_on(run(args))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client from the in-cluster config or kubeconfig")?;
    let sysfs = SysFs::new(&args.host_root);
    let host = HostSide {
        host: Arc::new(LiveHost::new(sysfs.clone())),
        firmware: Some(Arc::new(NvidiaFirmware::new(
            SystemRunner,
            sysfs.path("sys"),
        ))),
        state: Arc::new(StateFile::new(&args.state_file)),
        handoff: Arc::new(DevicePluginFile::new(&args.device_plugin_file)),
        // the boot id is not namespaced: the container's /proc shows the host's
        boot_id: boot_id(std::path::Path::new("/proc")),
    };
    tracing::info!(
        node = %args.node_name,
        host_root = %args.host_root.display(),
        state_file = %args.state_file.display(),
        device_plugin_file = %args.device_plugin_file.display(),
        boot_id = %host.boot_id,
        "starting"
    );
    let metrics = Arc::new(AgentMetrics::new());
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let server = tokio::spawn(agent::run_serve::serve(
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
    let config = LoopConfig {
        drain_wait: std::time::Duration::from_secs(args.drain_wait_seconds),
        resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
        ..LoopConfig::default()
    };
    let agent = Agent::new(
        NodeApi::new(client.clone(), args.node_name.clone()),
        host,
        metrics,
        health,
        config,
    );
    let outcome = tokio::select! {
        r = agent.run(client, &args.node_name, args.once, stopped()) => r?,
        r = server => {
            r.context("the metrics server task")??;
            None
        }
    };
    if let Some(o) = &outcome {
        tracing::info!(outcome = ?o, "one pass done");
    }
    Ok(!matches!(outcome, Some(ref o) if *o != PassOutcome::InSync))
}
