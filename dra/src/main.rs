//! `smartnic-dra`: the kubelet DRA plugin of driver `smartnic.io`.
//!
//! ```text
//! smartnic-dra --node-name NODE [--config FILE] [--sysfs-root DIR] [--registry-dir DIR]
//!              [--plugin-dir DIR] [--cdi-dir DIR] [--prepared-dir DIR] [--device-plugin-dir DIR]
//!              [--kubeconfig FILE] [--log-format text|json]
//! ```
//!
//! On the host's own root (`--sysfs-root /`) the host state follows link events and uevents
//! (re-read every 5 s as a safety net); on a fixture tree it is polled every
//! `--poll-interval-ms`.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use device_plugin::source::{Events, Polling};
use dra::app::{Args, Settings, run};

/// Safety-net re-read interval when following kernel events.
const REPOLL: Duration = Duration::from_secs(5);

/// `error: ...` with the causes joined once, exit status 1.
fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crds::report::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// A client from `--kubeconfig`, else in-cluster or `KUBECONFIG` ([`kube::Config::infer`]).
async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn start() -> anyhow::Result<()> {
    let args = Args::parse();
    device_plugin::telemetry::init(args.log_format, &args.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let kube = client(args.kubeconfig.as_deref()).await?;
        let settings = Settings::from_args(&args);
        tracing::info!(node = %settings.node, config = %settings.config.display(),
            root = %settings.sysfs.root().display(), "starting");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            }
        };
        let poll = Duration::from_millis(args.poll_interval_ms);
        if args.sysfs_root == Path::new("/") {
            run(settings, Events::host(REPOLL, poll), kube, shutdown).await?;
        } else {
            run(settings, Polling { interval: poll }, kube, shutdown).await?;
        }
        anyhow::Ok(())
    })
}
