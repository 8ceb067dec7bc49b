//! The `smartnic-operator` process: arguments and wiring.
//!
//! ```text
//!   watches (every replica) ──► Stores ──┬──► webhook  :9443 HTTPS (every replica)
//!                                        ├──► metrics  :8080 /metrics /healthz /readyz
//!   Lease smartnic-operator-leader ──────┴──► controllers (leader only)
//! ```
//!
//! SIGTERM (or Ctrl-C) stops the controllers, releases the lease so another replica takes over
//! at once, and drains the HTTP servers. A server that cannot start stops the process.
//!
//! Outside the cluster (kubeconfig from `KUBECONFIG` or `~/.kube/config`, CRDs applied with
//! `kubectl apply -k deploy/crds`, namespace `smartnic-system` present):
//!
//! ```text
//! cargo run -p operator --bin smartnic-operator -- --no-webhook --leader-elect=false \
//!     --namespace smartnic-system --metrics-addr 127.0.0.1:8080
//! ```

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{ArgAction, Parser};
use tokio::sync::watch;

use crate::{
    context::{Context, Stores},
    controller::{self, triggers::Triggers, watches},
    leader::{LeaderElector, LeaseConfig, while_leader},
    metrics::{self, Health, Metrics},
    telemetry::{self, LogFormat},
    webhook,
};

/// Command-line arguments of `smartnic-operator`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "smartnic-operator",
    version,
    about = "SR-IOV and SmartNIC cluster controller"
)]
pub struct Args {
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the HTTPS admission webhook.
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// PEM certificate (chain) of the webhook, e.g. `tls.crt` of a cert-manager Secret.
    #[arg(
        long,
        env = "WEBHOOK_CERT",
        default_value = "/etc/smartnic/webhook/tls.crt"
    )]
    pub webhook_cert: PathBuf,
    /// PEM private key of the webhook.
    #[arg(
        long,
        env = "WEBHOOK_KEY",
        default_value = "/etc/smartnic/webhook/tls.key"
    )]
    pub webhook_key: PathBuf,
    /// Do not serve the admission webhook (the controllers still report invalid objects in
    /// their status).
    #[arg(long)]
    pub no_webhook: bool,
    /// Namespace of the operator: the leader Lease lives here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "smartnic-system")]
    pub namespace: String,
    /// Identity in the leader election and in events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Run the controllers only while holding the leader Lease (`--leader-elect=false` for a
    /// single replica).
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,kube_runtime=warn")]
    pub log_level: String,
}

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::Error),
    /// No Kubernetes client configuration (in-cluster service account or kubeconfig).
    #[error("cannot build a Kubernetes client from the in-cluster config or kubeconfig: {0}")]
    Client(#[source] kube::Error),
    /// The metrics server failed.
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    /// The webhook server failed.
    #[error(transparent)]
    Webhook(#[from] webhook::Error),
    /// Installing the signal handler failed.
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Runs the operator until SIGTERM/Ctrl-C or a fatal error.
pub async fn run(args: Args) -> Result<(), Error> {
    let log = telemetry::init(args.log_format, &args.log_level)?;
    let client = crate::client::client().await.map_err(Error::Client)?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "smartnic-operator".to_owned());
    tracing::info!(%identity, namespace = %args.namespace, leader_elect = args.leader_elect, "starting");

    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    let (stores, writers) = Stores::new();
    let triggers = Triggers::new();
    let ctx = Arc::new(Context::new(
        client.clone(),
        stores.clone(),
        metrics.clone(),
        args.namespace.clone(),
        Some(identity.clone()),
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // a failing server stops everything else too
    let fatal = |tx: Arc<watch::Sender<bool>>| {
        move |r: &Result<(), Error>| {
            if r.is_err() {
                tx.send_replace(true);
            }
        }
    };

    // the watches, the lease and the controllers each in their own task: a whole-cluster pass
    // or a slow API call never delays a watch event or a lease renewal
    let watch_caches = {
        let stopped = stopped();
        let (client, stores, triggers) = (client.clone(), stores.clone(), triggers.clone());
        let ready = health.ready.clone();
        let on_config = move |c: Option<&crds::NicOperatorConfig>| {
            let level = c.map(|c| c.spec.log_level);
            match log.set_level(level) {
                Ok(()) => tracing::info!(?level, "log level from NicOperatorConfig"),
                Err(error) => tracing::warn!(%error, "cannot apply NicOperatorConfig logLevel"),
            }
        };
        join_task(tokio::spawn(async move {
            let w = watches::run(client, stores, writers, triggers, ready, on_config);
            tokio::select! {
                () = w => {}
                () = stopped => {}
            }
        }))
    };

    let metrics_server = {
        let on_exit = fatal(stop_tx.clone());
        let serve = metrics::serve(args.metrics_addr, health, stopped());
        async move {
            let r = serve.await.map_err(Error::from);
            on_exit(&r);
            r
        }
    };

    let webhook_server = {
        let on_exit = fatal(stop_tx.clone());
        let stopped = stopped();
        let args = args.clone();
        let stores = stores.clone();
        async move {
            if args.no_webhook {
                tracing::info!("admission webhook disabled");
                return Ok(());
            }
            let r = serve_webhook(&args, stores, stopped).await;
            on_exit(&r);
            r
        }
    };

    let controllers = {
        let stopped = stopped();
        async move {
            if args.leader_elect {
                let (leader_tx, leader_rx) = watch::channel(false);
                let elector =
                    LeaderElector::new(client, LeaseConfig::new(args.namespace.clone(), identity));
                let campaign = tokio::spawn(async move { elector.run(leader_tx, stopped).await });
                let work = || {
                    let ctx = ctx.clone();
                    let triggers = triggers.clone();
                    async move {
                        let _leading = LeaderGauge::set(&ctx.metrics);
                        controller::run(ctx.clone(), triggers).await;
                    }
                };
                // ends when the campaign drops its sender (after releasing the lease)
                while_leader(leader_rx, work).await;
                join_task(campaign).await;
            } else {
                let _leading = LeaderGauge::set(&metrics);
                tokio::select! {
                    () = controller::run(ctx, triggers) => {}
                    () = stopped => {}
                }
            }
        }
    };

    let signals = {
        let tx = stop_tx.clone();
        let stopped = stopped();
        async move {
            let r = wait_for_signal(stopped).await;
            tx.send_replace(true);
            r
        }
    };

    let ((), m, w, (), s) = tokio::join!(
        watch_caches,
        metrics_server,
        webhook_server,
        controllers,
        signals
    );
    tracing::info!("stopped");
    m.and(w).and(s)
}

async fn serve_webhook(
    args: &Args,
    stores: Stores,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let tls = webhook::load_tls(&args.webhook_cert, &args.webhook_key).await?;
    let listener = webhook::bind(args.webhook_addr)?;
    let reload = webhook::reload_tls_every(
        tls.clone(),
        &args.webhook_cert,
        &args.webhook_key,
        Duration::from_secs(300),
    );
    tokio::select! {
        r = webhook::serve(listener, tls, stores, stopped) => r.map_err(Error::from),
        () = reload => Ok(()),
    }
}

async fn wait_for_signal(stopped: impl Future<Output = ()>) -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        () = stopped => {}
    }
    Ok(())
}

/// Awaits a task, logging a panic instead of propagating it (the other tasks keep running until
/// the stop signal).
async fn join_task(t: tokio::task::JoinHandle<()>) {
    if let Err(error) = t.await {
        tracing::error!(%error, "task failed");
    }
}

/// Sets the `leader` gauge to 1 for as long as it lives.
struct LeaderGauge<'a>(&'a Metrics);

impl<'a> LeaderGauge<'a> {
    fn set(m: &'a Metrics) -> Self {
        m.leader.set(1);
        Self(m)
    }
}

impl Drop for LeaderGauge<'_> {
    fn drop(&mut self) {
        self.0.leader.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_leader_elect_false() {
        let a = Args::try_parse_from([
            "smartnic-operator",
            "--leader-elect=false",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(!a.leader_elect);
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(a.webhook_addr, "0.0.0.0:9443".parse().unwrap());
        let b = Args::try_parse_from(["smartnic-operator"]).unwrap();
        assert!(b.leader_elect);
    }
}
