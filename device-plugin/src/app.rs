//! The `smartnic-device-plugin` process: arguments and wiring.
//!
//! ```text
//!   config file ──(inotify on its directory, debounced)──┐
//!   sysfs ──(HostSource: polling / events)───────────────┼─► Index ──► one task per pool:
//!   plugin dir ──(inotify)─► dir events ─────────────────┼────────────► socket, Register, gRPC
//!                                                        └─► metrics  :--metrics-addr
//! ```
//!
//! A bad configuration file at start stops the process with a message naming the field; a bad
//! file later is refused and logged, and the pools keep serving. A missing file means no pools
//! yet. SIGTERM stops every pool (sockets, device-info files and CDI specs removed).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nic::sysfs::SysFs;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{self, ConfigError};
use crate::dirwatch::watch_dir;
use crate::index::Index;
use crate::metrics::{self, Metrics};
use crate::plugin::{PoolContext, run_pool};
use crate::preferred::Strategy;
use crate::server::Shared;
use crate::source::{HostSource, rescan};
use crate::telemetry::{self, LogFormat};

/// Quiet time after the last change in the config directory before the file is read.
const CONFIG_DEBOUNCE: Duration = Duration::from_millis(100);
/// The config file is re-read this often even without events (lost events, bind mounts).
const CONFIG_RECHECK: Duration = Duration::from_secs(10);
/// How long stopping pools may take at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The default `--metrics-addr`: host port 9831 on every address, as in deploy/device-plugin.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9831";

/// Where /metrics and /healthz are served; `None`: not served (`--metrics-addr off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

fn metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s == "off" {
        return Ok(MetricsAddr(None));
    }
    s.parse()
        .map(|a| MetricsAddr(Some(a)))
        .map_err(|e| format!("{e}: an address such as 0.0.0.0:9831, or off"))
}

/// Command-line arguments of `smartnic-device-plugin`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "smartnic-device-plugin",
    version,
    about = "Kubelet device plugin (v1beta1) advertising smartnic.io VF pools"
)]
pub struct Args {
    /// The device-plugin configuration (JSON or YAML `DevicePluginConfig`), as the agent writes it.
    #[arg(long, default_value = crds::device_plugin::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Root of the host filesystem to read sysfs from (a fixture tree in tests).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The kubelet's device-plugin directory (kubelet.sock and the plugin sockets).
    #[arg(long, default_value = "/var/lib/kubelet/device-plugins")]
    pub plugin_dir: PathBuf,
    /// Where device-info files for CNI plugins are written.
    #[arg(long, default_value = crds::devinfo::DP_DIR)]
    pub devinfo_dir: PathBuf,
    /// Where CDI specs are written when --cdi is on.
    #[arg(long, default_value = "/var/run/cdi")]
    pub cdi_dir: PathBuf,
    /// Answer Allocate with CDI device annotations (and write CDI specs) instead of device specs.
    #[arg(long)]
    pub cdi: bool,
    /// The DRA driver's prepared-claim records: their devices in `allocation: both` pools are
    /// reported unhealthy, so that a device is never handed out by both interfaces.
    #[arg(long, default_value = crds::dra::PREPARED_DIR)]
    pub dra_prepared_dir: PathBuf,
    /// How GetPreferredAllocation places multi-device requests over PFs.
    #[arg(long, value_enum, default_value_t = Strategy::Pack)]
    pub preferred_allocation: Strategy,
    /// Interval of the sysfs re-read on a fixture tree (`--root` other than `/`), and on the
    /// host while link events and uevents cannot be followed, in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_interval_ms: u64,
    /// Address of the /metrics and /healthz endpoints, or `off` (the agent's port is 9830, the
    /// operator's 8080).
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR, value_parser = metrics_addr)]
    pub metrics_addr: MetricsAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

/// What the plugin runs with (the arguments, resolved).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The configuration file.
    pub config: PathBuf,
    /// The host's sysfs.
    pub sysfs: SysFs,
    /// The kubelet's device-plugin directory.
    pub plugin_dir: PathBuf,
    /// The device-info directory.
    pub devinfo_dir: PathBuf,
    /// The CDI spec directory, when CDI is on.
    pub cdi_dir: Option<PathBuf>,
    /// Preferred-allocation placement.
    pub strategy: Strategy,
    /// How often each pool re-checks its socket and the kubelet's without a directory event
    /// ([`crate::plugin::SAFETY_CHECK`]; a test sets it far out to prove that inotify alone
    /// re-registers after a kubelet restart).
    pub safety_check: Duration,
    /// The DRA driver's prepared-claim records (`None`: not read).
    pub dra_prepared_dir: Option<PathBuf>,
}

impl Settings {
    /// Settings from the command line.
    pub fn from_args(args: &Args) -> Self {
        Settings {
            config: args.config.clone(),
            sysfs: SysFs::new(&args.root),
            plugin_dir: args.plugin_dir.clone(),
            devinfo_dir: args.devinfo_dir.clone(),
            cdi_dir: args.cdi.then(|| args.cdi_dir.clone()),
            strategy: args.preferred_allocation,
            safety_check: crate::plugin::SAFETY_CHECK,
            dra_prepared_dir: Some(args.dra_prepared_dir.clone()),
        }
    }
}

/// Why the plugin stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::Error),
    /// The configuration file at start is unusable.
    #[error("refusing to start: {0}")]
    Config(#[from] ConfigError),
    /// The host cannot be read at all.
    #[error("refusing to start: {0}")]
    Host(#[from] crate::host::ScanError),
    /// The metrics server failed.
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    /// Installing the signal handler failed.
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Runs the plugin until `shutdown` resolves. The configuration and the host are read before
/// anything is served; an unusable one is an error.
pub async fn run<S: HostSource>(
    settings: Settings,
    source: S,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let index = Arc::new(Index::new(metrics.clone()));
    match config::load(&settings.config)? {
        Some(cfg) => {
            tracing::info!(config = %settings.config.display(), pools = cfg.pools.len(), "configuration loaded");
            index.set_config(cfg);
        }
        None => {
            tracing::info!(config = %settings.config.display(), "no configuration file yet; waiting for it")
        }
    }
    rescan(&settings.sysfs, &index).await?;

    let (stop_tx, stop) = watch::channel(false);
    let (dir_tx, dir_events) = watch::channel(0u64);
    let mut tasks: Vec<JoinHandle<()>> = vec![
        tokio::spawn(watch_dir(settings.plugin_dir.clone(), dir_tx, stop.clone())),
        tokio::spawn(source.run(settings.sysfs.clone(), index.clone(), stop.clone())),
        tokio::spawn(watch_config(
            settings.config.clone(),
            index.clone(),
            metrics.clone(),
            stop.clone(),
        )),
    ];
    if let Some(dir) = settings.dra_prepared_dir.clone() {
        tasks.push(tokio::spawn(watch_dra_prepared(
            dir,
            index.clone(),
            stop.clone(),
        )));
    }
    let ctx = Arc::new(PoolContext {
        plugin_dir: settings.plugin_dir.clone(),
        cdi_dir: settings.cdi_dir.clone(),
        shared: Arc::new(Shared {
            devinfo_dir: settings.devinfo_dir.clone(),
            cdi: settings.cdi_dir.is_some(),
            strategy: settings.strategy,
            metrics: metrics.clone(),
        }),
        dir_events,
        safety_check: settings.safety_check,
    });
    let supervisor = tokio::spawn(supervise(index.clone(), ctx, stop.clone()));

    shutdown.await;
    tracing::info!("stopping");
    stop_tx.send_replace(true);
    if tokio::time::timeout(STOP_GRACE, supervisor).await.is_err() {
        tracing::warn!("pools did not stop within {STOP_GRACE:?}");
    }
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout(STOP_GRACE, t).await.is_err() {
            abort.abort();
        }
    }
    Ok(())
}

/// The pools this process serves: those whose `allocation` includes the device plugin (a
/// `dra` pool is published by `smartnic-dra` alone).
pub fn served(pools: &crate::index::PoolSet) -> Vec<String> {
    pools
        .iter()
        .filter(|(_, spec)| spec.allocation.device_plugin())
        .map(|(resource, _)| resource.clone())
        .collect()
}

/// Starts a task per pool and stops the tasks of removed pools, until `stop`.
async fn supervise(index: Arc<Index>, ctx: Arc<PoolContext>, mut stop: watch::Receiver<bool>) {
    let mut pools = index.pools();
    let mut running: std::collections::BTreeMap<String, (watch::Sender<bool>, JoinHandle<()>)> =
        Default::default();
    loop {
        let wanted = served(&pools.borrow_and_update());
        let gone: Vec<String> = running
            .keys()
            .filter(|r| !wanted.contains(r))
            .cloned()
            .collect();
        for r in gone {
            if let Some((tx, task)) = running.remove(&r) {
                tx.send_replace(true);
                let _ = task.await;
            }
        }
        for r in wanted {
            let finished = running.get(&r).is_some_and(|(_, t)| t.is_finished());
            if finished || !running.contains_key(&r) {
                let (tx, rx) = watch::channel(false);
                let task = tokio::spawn(run_pool(r.clone(), index.clone(), ctx.clone(), rx));
                running.insert(r, (tx, task));
            }
        }
        tokio::select! {
            r = pools.changed() => if r.is_err() { break },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    for (_, (tx, _)) in running.iter() {
        tx.send_replace(true);
    }
    for (_, (_, task)) in running {
        let _ = task.await;
    }
}

/// Reloads the configuration when its directory changes (debounced) and every
/// [`CONFIG_RECHECK`]. A file that does not check is refused and the pools keep serving; a
/// deleted file means no pools.
pub async fn watch_config(
    path: PathBuf,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let (tx, mut events) = watch::channel(0u64);
    let watcher = tokio::spawn(watch_dir(dir, tx, stop.clone()));
    let mut last_error: Option<String> = None;
    loop {
        let event = tokio::select! {
            r = events.changed() => if r.is_err() { break } else { true },
            () = tokio::time::sleep(CONFIG_RECHECK) => false,
            _ = stop.wait_for(|s| *s) => break,
        };
        if event {
            // debounce: wait until the directory is quiet
            loop {
                tokio::select! {
                    () = tokio::time::sleep(CONFIG_DEBOUNCE) => break,
                    r = events.changed() => if r.is_err() { break },
                }
            }
        }
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&p))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        match loaded {
            Ok(cfg) => {
                last_error = None;
                let cfg = cfg.unwrap_or_default();
                if cfg != index.config() {
                    tracing::info!(config = %path.display(), pools = cfg.pools.len(), "configuration changed");
                    metrics.config_reloaded(true);
                    index.set_config(cfg);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                // once per distinct error, not every recheck
                if last_error.as_ref() != Some(&msg) {
                    tracing::error!("configuration refused, previous pools keep serving: {msg}");
                    metrics.config_reloaded(false);
                    last_error = Some(msg);
                }
            }
        }
    }
    let _ = watcher.await;
}

/// The PCI addresses of the devices in the DRA driver's prepared-claim records in `dir`
/// (unreadable records are skipped: the driver writes them atomically).
pub fn dra_prepared(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"))
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<crds::dra::PreparedClaim>(&b).ok())
        .flat_map(|c| c.devices.into_iter().map(|d| d.pci_address))
        .collect()
}

/// Follows the DRA driver's prepared-claim records (inotify on the directory, and every
/// [`CONFIG_RECHECK`]) into the index.
async fn watch_dra_prepared(dir: PathBuf, index: Arc<Index>, mut stop: watch::Receiver<bool>) {
    let (tx, mut events) = watch::channel(0u64);
    let watcher = tokio::spawn(watch_dir(dir.clone(), tx, stop.clone()));
    loop {
        let d = dir.clone();
        let held = tokio::task::spawn_blocking(move || dra_prepared(&d))
            .await
            .unwrap_or_default();
        if index.set_dra_prepared(held) {
            tracing::info!(dir = %dir.display(), "devices prepared for DRA claims changed");
        }
        tokio::select! {
            r = events.changed() => if r.is_err() { break },
            () = tokio::time::sleep(CONFIG_RECHECK) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = watcher.await;
}

/// The whole process: logs, metrics, the plugin with the host source, SIGTERM.
pub async fn main_with<S: HostSource>(args: Args, source: S) -> Result<(), Error> {
    telemetry::init(args.log_format, &args.log_level)?;
    let settings = Settings::from_args(&args);
    tracing::info!(
        config = %settings.config.display(),
        root = %settings.sysfs.root().display(),
        plugin_dir = %settings.plugin_dir.display(),
        devinfo_dir = %settings.devinfo_dir.display(),
        cdi = settings.cdi_dir.is_some(),
        "starting"
    );
    let metrics = Arc::new(Metrics::new());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    let (done_tx, done) = watch::channel(false);
    let metrics_server = match args.metrics_addr.0 {
        Some(addr) => {
            let mut done = done.clone();
            let serve = metrics::serve(addr, metrics.clone(), async move {
                let _ = done.wait_for(|d| *d).await;
            });
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        }
    };
    let result = run(settings, source, metrics, shutdown).await;
    done_tx.send_replace(true);
    if let Some(m) = metrics_server {
        match m.await {
            Ok(r) => r?,
            Err(e) => tracing::error!("metrics server: {e}"),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary's default is what deploy/device-plugin passes, exposes and advertises to
    /// Prometheus, so that running it without `--metrics-addr` (or dropping the argument from
    /// the manifest) changes nothing.
    #[test]
    fn the_default_metrics_address_is_the_manifests() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/device-plugin/daemonset.yaml"
        );
        let yaml = std::fs::read_to_string(path).unwrap();
        let default: SocketAddr = DEFAULT_METRICS_ADDR.parse().unwrap();
        let port = default.port().to_string();
        let value = |key: &str| -> Vec<String> {
            yaml.lines()
                .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_owned())
                .collect()
        };
        assert_eq!(value("--metrics-addr="), [DEFAULT_METRICS_ADDR]);
        for key in ["containerPort:", "hostPort:", "prometheus.io/port:"] {
            assert_eq!(value(key), std::slice::from_ref(&port), "{key}");
        }
        let a = Args::parse_from(["smartnic-device-plugin"]);
        assert_eq!(a.metrics_addr, MetricsAddr(Some(default)));
    }

    /// `allocation: dra` pools are left to the DRA driver; `both` and the default are served.
    #[test]
    fn only_device_plugin_pools_are_served() {
        let cfg = config::parse_and_check(
            r#"{"resourceList": [
                {"resourceName": "a", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                 "selectors": [{"vendors": ["8086"]}]},
                {"resourceName": "b", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                 "allocation": "dra", "selectors": [{"vendors": ["15b3"]}]},
                {"resourceName": "c", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                 "allocation": "both", "selectors": [{"vendors": ["1077"]}]}]}"#,
            config::Format::Json,
        )
        .unwrap();
        let set: crate::index::PoolSet = cfg
            .pools
            .iter()
            .map(|p| (p.resource(), p.clone()))
            .collect();
        assert_eq!(served(&set), ["smartnic.io/a", "smartnic.io/c"]);
    }

    /// A VF the DRA driver prepared for a claim turns unhealthy in a `both` pool (the kubelet
    /// then hands it to no pod) and healthy again once the record is gone.
    #[test]
    fn dra_prepared_devices_are_held_from_both_pools() {
        use crds::inventory::EswitchMode;
        use nic::fixtures::HostBuilder;
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let index = Index::new(Arc::new(Metrics::new()));
        index.set_config(
            config::parse_and_check(
                r#"{"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io",
                    "deviceType": "netdevice", "allocation": "both",
                    "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0"}]}]}]}"#,
                config::Format::Json,
            )
            .unwrap(),
        );
        index.set_host(crate::host::scan(&host.sysfs()).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let rec = crds::dra::PreparedClaim {
            claim_uid: "u1".into(),
            devices: vec![crds::dra::PreparedDevice {
                pci_address: "0000:3b:00.3".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        std::fs::write(
            dir.path().join("u1.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join(".u2.json.tmp"), "{").unwrap();
        let held = dra_prepared(dir.path());
        assert_eq!(held.iter().collect::<Vec<_>>(), ["0000:3b:00.3"]);
        assert!(index.set_dra_prepared(held));
        let pool = index.subscribe("smartnic.io/vf").unwrap();
        let unhealthy: Vec<String> = pool
            .borrow()
            .devices
            .iter()
            .filter(|d| !d.health.is_healthy())
            .map(|d| d.id())
            .collect();
        assert_eq!(unhealthy, ["0000:3b:00.3"]);
        std::fs::remove_file(dir.path().join("u1.json")).unwrap();
        assert!(index.set_dra_prepared(dra_prepared(dir.path())));
        assert!(pool.borrow().devices.iter().all(|d| d.health.is_healthy()));
    }

    #[test]
    fn defaults_are_the_documented_paths() {
        let a = Args::parse_from(["smartnic-device-plugin"]);
        assert_eq!(
            a.config,
            PathBuf::from("/var/lib/smartnic/device-plugin.json")
        );
        assert_eq!(a.root, PathBuf::from("/"));
        assert_eq!(
            a.plugin_dir,
            PathBuf::from("/var/lib/kubelet/device-plugins")
        );
        assert_eq!(
            a.devinfo_dir,
            PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/dp")
        );
        assert_eq!(a.cdi_dir, PathBuf::from("/var/run/cdi"));
        assert_eq!(
            a.dra_prepared_dir,
            PathBuf::from("/var/lib/smartnic/dra/claims")
        );
        assert!(!a.cdi);
        assert_eq!(
            a.metrics_addr,
            MetricsAddr(Some(([0, 0, 0, 0], 9831).into()))
        );
        let off = Args::parse_from(["smartnic-device-plugin", "--metrics-addr", "off"]);
        assert_eq!(off.metrics_addr, MetricsAddr(None));
        assert!(
            Args::try_parse_from(["smartnic-device-plugin", "--metrics-addr", "9831"]).is_err()
        );
        let s = Settings::from_args(&a);
        assert!(s.cdi_dir.is_none());
        let a = Args::parse_from([
            "smartnic-device-plugin",
            "--config",
            "/x.yaml",
            "--root",
            "/fixture",
            "--cdi",
            "--preferred-allocation",
            "spread",
            "--log-format",
            "json",
        ]);
        let s = Settings::from_args(&a);
        assert_eq!(s.cdi_dir, Some(PathBuf::from("/var/run/cdi")));
        assert_eq!(s.strategy, Strategy::Spread);
        assert_eq!(s.sysfs.root(), std::path::Path::new("/fixture"));
        assert_eq!(a.log_format, LogFormat::Json);
        assert!(
            Args::try_parse_from(["smartnic-device-plugin", "--poll-interval-ms", "1"]).is_err()
        );
    }
}
