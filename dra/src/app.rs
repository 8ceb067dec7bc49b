//! The `smartnic-dra` process: arguments and wiring.
//!
//! ```text
//!   applied file ─(inotify, debounced)─┐
//!   sysfs ─(HostSource: events/polling)┼─► Index ─► facts loop (full discovery when the set of
//!                                      │            functions changes) ─┐
//!                                      └──────────► publish loop ◄──────┘ ◄─ device-plugin
//!                                                   (debounced 50 ms)        checkpoint (inotify)
//!                                                   ├─► known devices ─► DRAPlugin service
//!                                                   └─► ResourceSlices (API)
//!   registry dir: smartnic.io-reg.sock (Registration, behind crate::authority)
//!                                    ─► plugin dir: dra.sock (v1.DRAPlugin)
//! ```
//!
//! At start the prepared-claim records and the CDI specs are reconciled ([`Store::reconcile`])
//! before the sockets exist. The sockets are re-created when someone deletes them (a kubelet
//! that wipes its plugin directories). SIGTERM removes the sockets; the slices stay (the next
//! run adopts them; the kubelet removes a driver's slices when it stays unregistered).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use device_plugin::dirwatch::watch_dir;
use device_plugin::index::Index;
use device_plugin::metrics::Metrics;
use device_plugin::source::{HostSource, rescan};
use device_plugin::telemetry::LogFormat;
use nic::sysfs::SysFs;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::claims::Store;
use crate::devices::{Facts, by_name, devices, held_in_checkpoint, offered};
use crate::dra_api::dra_plugin_server::DraPluginServer;
use crate::publish::Publisher;
use crate::registration_api::registration_server::RegistrationServer;
use crate::render::render;
use crate::server::{ClaimReader, DraService, Driver, RegistrationService};

/// Quiet time before a change is published: a burst (a PF's link taking all its VFs with it)
/// becomes one new generation. Health reaches the API within this plus the host source's own
/// debounce (20 ms) and the API calls.
const PUBLISH_DEBOUNCE: Duration = Duration::from_millis(50);
/// The slices are compared with the API this often even without a change (deleted by hand).
const RESYNC: Duration = Duration::from_secs(30);
/// The slow facts are re-read this often even when the functions did not change (link speed).
const FACTS_REFRESH: Duration = Duration::from_secs(60);
/// How often the sockets are checked for having been deleted.
const SOCKET_CHECK: Duration = Duration::from_secs(1);
/// Retry of a failed publish: from 1 s, doubling to 30 s.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The registration socket's name in `--registry-dir`.
pub const REGISTRATION_SOCKET: &str = "smartnic.io-reg.sock";
/// The DRA service socket's name in `--plugin-dir`.
pub const PLUGIN_SOCKET: &str = "dra.sock";

/// Command-line arguments of `smartnic-dra`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "smartnic-dra",
    version,
    about = "Kubelet DRA plugin (resource.k8s.io/v1, driver smartnic.io) for smartnic.io VF pools"
)]
pub struct Args {
    /// This node's name (the ResourceSlice pool and `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The applied device-plugin file the agent writes; pools with `allocation: dra` or `both`
    /// are published.
    #[arg(long, default_value = crds::device_plugin::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Root of the host filesystem to read sysfs from (a fixture tree in tests).
    #[arg(long, default_value = "/")]
    pub sysfs_root: PathBuf,
    /// The kubelet's plugin-registration directory.
    #[arg(long, default_value = "/var/lib/kubelet/plugins_registry")]
    pub registry_dir: PathBuf,
    /// Directory of the DRA service socket (`dra.sock`).
    #[arg(long, default_value = "/var/lib/kubelet/plugins/smartnic.io")]
    pub plugin_dir: PathBuf,
    /// Where the CDI specs of prepared claims are written.
    #[arg(long, default_value = "/var/run/cdi")]
    pub cdi_dir: PathBuf,
    /// Where the prepared-claim records are written (read by the CNI plugin).
    #[arg(long, default_value = crds::dra::PREPARED_DIR)]
    pub prepared_dir: PathBuf,
    /// The kubelet's device-plugin directory: its checkpoint says which devices of
    /// `allocation: both` pools the device plugin handed out (those are not published).
    #[arg(long, default_value = "/var/lib/kubelet/device-plugins")]
    pub device_plugin_dir: PathBuf,
    /// A kubeconfig file; without it the in-cluster service account (or `KUBECONFIG`).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Interval of the sysfs re-read on a fixture tree (`--sysfs-root` other than `/`), and on
    /// the host while link events and uevents cannot be followed, in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_interval_ms: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

/// Why the driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The applied file at start is unusable.
    #[error(transparent)]
    Config(#[from] device_plugin::config::ConfigError),
    /// The host cannot be read.
    #[error(transparent)]
    Scan(#[from] device_plugin::host::ScanError),
    /// A socket cannot be bound.
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the driver runs with.
pub struct Settings {
    /// The node.
    pub node: String,
    /// The applied file.
    pub config: PathBuf,
    /// sysfs.
    pub sysfs: SysFs,
    /// Registration directory.
    pub registry_dir: PathBuf,
    /// Service socket directory.
    pub plugin_dir: PathBuf,
    /// Records and CDI specs.
    pub store: Store,
    /// The kubelet's device-plugin directory.
    pub device_plugin_dir: PathBuf,
}

impl Settings {
    /// From the command line.
    pub fn from_args(a: &Args) -> Settings {
        Settings {
            node: a.node_name.clone(),
            config: a.config.clone(),
            sysfs: SysFs::new(&a.sysfs_root),
            registry_dir: a.registry_dir.clone(),
            plugin_dir: a.plugin_dir.clone(),
            store: Store {
                prepared_dir: a.prepared_dir.clone(),
                cdi_dir: a.cdi_dir.clone(),
            },
            device_plugin_dir: a.device_plugin_dir.clone(),
        }
    }
}

/// Runs the driver until `shutdown`.
pub async fn run<S: HostSource>(
    settings: Settings,
    source: S,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    let index = Arc::new(Index::new(metrics.clone()));
    if let Some(cfg) = device_plugin::config::load(&settings.config)? {
        index.set_config(cfg);
    } else {
        tracing::info!(config = %settings.config.display(), "no applied file yet; waiting for it");
    }
    rescan(&settings.sysfs, &index).await?;
    let (config, host) = index.snapshot();
    let initial = host
        .map(|h| devices(&config, &h, &Facts::default()))
        .unwrap_or_default();
    let driver = Arc::new(Driver {
        node: settings.node.clone(),
        store: settings.store.clone(),
        known: std::sync::RwLock::new(Arc::new(by_name(&initial))),
        claims: Box::new(client.clone()) as Box<dyn ClaimReader>,
        device_plugin_dir: Some(settings.device_plugin_dir.clone()),
        lock: tokio::sync::Mutex::new(()),
    });
    let store = settings.store.clone();
    let known = driver.known();
    let rec = tokio::task::spawn_blocking(move || store.reconcile(&known))
        .await
        .unwrap_or_default();
    tracing::info!(
        prepared = rec.prepared,
        removed_specs = rec.removed_specs.len(),
        restored_specs = rec.restored_specs.len(),
        "prepared claims reconciled"
    );

    // the slow facts before the first publish, so that it carries every attribute
    let s = settings.sysfs.clone();
    let facts = tokio::task::spawn_blocking(move || read_facts(&s))
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let (stop_tx, stop) = watch::channel(false);
    let (facts_tx, facts_rx) = watch::channel(Arc::new(facts));
    let mut tasks = vec![
        tokio::spawn(source.run(settings.sysfs.clone(), index.clone(), stop.clone())),
        tokio::spawn(device_plugin::app::watch_config(
            settings.config.clone(),
            index.clone(),
            metrics,
            stop.clone(),
        )),
        tokio::spawn(facts_loop(
            settings.sysfs.clone(),
            index.clone(),
            facts_tx,
            stop.clone(),
        )),
        tokio::spawn(publish_loop(
            Publisher::new(client, &settings.node),
            index,
            facts_rx,
            driver.clone(),
            settings.device_plugin_dir.clone(),
            stop.clone(),
        )),
    ];
    let sockets = Sockets {
        registration: settings.registry_dir.join(REGISTRATION_SOCKET),
        service: settings.plugin_dir.join(PLUGIN_SOCKET),
    };
    let (first_tx, first) = tokio::sync::oneshot::channel();
    tasks.push(tokio::spawn(serve_sockets(
        sockets,
        driver,
        first_tx,
        stop.clone(),
    )));
    if let Ok(Err(e)) = first.await {
        stop_tx.send_replace(true);
        return Err(e);
    }
    shutdown.await;
    tracing::info!("stopping");
    stop_tx.send_replace(true);
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    Ok(())
}

/// The two sockets.
#[derive(Clone, Debug)]
struct Sockets {
    registration: PathBuf,
    service: PathBuf,
}

fn bind(path: &Path) -> Result<(UnixListener, u64), Error> {
    let err = |source| Error::Bind {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let l = UnixListener::bind(path).map_err(err)?;
    let ino = device_plugin::kubelet::inode(path).ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "vanished right after bind",
        ))
    })?;
    Ok((l, ino))
}

/// Serves the DRA service, then the registration socket (so that the kubelet, which connects
/// when the registration socket appears, finds the endpoint), and binds both again when either
/// file is deleted or replaced. `first` receives the outcome of the first binding.
async fn serve_sockets(
    s: Sockets,
    driver: Arc<Driver>,
    first: tokio::sync::oneshot::Sender<Result<(), Error>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = Some(first);
    loop {
        let bound = bind(&s.service).and_then(|svc| Ok((svc, bind(&s.registration)?)));
        let ((svc, svc_ino), (reg, reg_ino)) = match bound {
            Ok(b) => b,
            Err(e) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                tracing::error!("{e}; retrying");
                tokio::select! {
                    () = tokio::time::sleep(SOCKET_CHECK) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        if let Some(tx) = first.take() {
            let _ = tx.send(Ok(()));
        }
        tracing::info!(registration = %s.registration.display(), endpoint = %s.service.display(), "serving");
        let (srv_tx, srv_stop) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let svc_task = tokio::spawn(
            Server::builder()
                .add_service(DraPluginServer::new(DraService(driver.clone())))
                .serve_with_incoming_shutdown(
                    UnixListenerStream::new(svc),
                    until(srv_stop.clone()),
                ),
        );
        let reg_task = tokio::spawn(
            Server::builder()
                .add_service(RegistrationServer::new(RegistrationService {
                    endpoint: s.service.clone(),
                }))
                // the kubelet's plugin watcher sends the socket's path as :authority
                .serve_with_incoming_shutdown(crate::authority::incoming(reg), until(srv_stop)),
        );
        let stopping = loop {
            tokio::select! {
                () = tokio::time::sleep(SOCKET_CHECK) => {}
                _ = stop.wait_for(|s| *s) => break true,
            }
            let svc_now = device_plugin::kubelet::inode(&s.service);
            let reg_now = device_plugin::kubelet::inode(&s.registration);
            if svc_now != Some(svc_ino) || reg_now != Some(reg_ino) {
                tracing::warn!("a socket was deleted or replaced; serving again");
                break false;
            }
        };
        srv_tx.send_replace(true);
        for t in [svc_task, reg_task] {
            match t.await {
                Ok(Err(e)) => tracing::error!("gRPC server failed: {e}"),
                Err(e) => tracing::error!("gRPC server task: {e}"),
                Ok(Ok(())) => {}
            }
        }
        if stopping {
            // only our own files: a new one under the name belongs to someone else
            for (p, ino) in [(&s.registration, reg_ino), (&s.service, svc_ino)] {
                if device_plugin::kubelet::inode(p) == Some(ino) {
                    let _ = std::fs::remove_file(p);
                }
            }
            return;
        }
    }
}

/// What a full discovery sees changing: functions, their drivers and VF links.
fn shape(host: &device_plugin::host::HostState) -> Vec<(String, Option<String>, bool)> {
    host.functions
        .values()
        .map(|f| (f.addr.to_string(), f.driver.clone(), f.has_vfs))
        .collect()
}

/// A full discovery and each function's resolved sysfs path (blocking).
fn read_facts(sysfs: &SysFs) -> Option<Facts> {
    let inv = nic::discovery::discover(sysfs).ok()?;
    let bus = sysfs.pci_devices_dir();
    Some(Facts::from_inventory(&inv, |a| {
        std::fs::canonicalize(bus.join(a.to_string())).ok()
    }))
}

/// Keeps [`Facts`] current: a full discovery (off the runtime) when the set of functions or
/// their drivers change, and every [`FACTS_REFRESH`].
async fn facts_loop(
    sysfs: SysFs,
    index: Arc<Index>,
    tx: watch::Sender<Arc<Facts>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = index.changes();
    let mut last = None;
    let mut refresh = tokio::time::interval(FACTS_REFRESH);
    loop {
        let forced = tokio::select! {
            r = changes.changed() => { if r.is_err() { return } false }
            _ = refresh.tick() => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        let now = index.snapshot().1.map(|h| shape(&h));
        if !forced && now == last {
            continue;
        }
        last = now;
        let s = sysfs.clone();
        let facts = tokio::task::spawn_blocking(move || read_facts(&s))
            .await
            .ok()
            .flatten();
        if let Some(f) = facts {
            tx.send_if_modified(|cur| {
                if **cur == f {
                    return false;
                }
                *cur = Arc::new(f);
                true
            });
        }
    }
}

/// Renders and publishes on every change (debounced), every [`RESYNC`], and after a failure.
async fn publish_loop(
    mut publisher: Publisher,
    index: Arc<Index>,
    mut facts: watch::Receiver<Arc<Facts>>,
    driver: Arc<Driver>,
    dp_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = index.changes();
    let (ckpt_tx, mut ckpt) = watch::channel(0u64);
    let watcher = tokio::spawn(watch_dir(dp_dir.clone(), ckpt_tx, stop.clone()));
    let mut resync = tokio::time::interval(RESYNC);
    let mut retry: Option<Duration> = None;
    let mut last_generation = None;
    loop {
        let wait = retry.unwrap_or(Duration::MAX / 4);
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            r = facts.changed() => if r.is_err() { break },
            _ = ckpt.changed() => {}
            _ = resync.tick() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        tokio::time::sleep(PUBLISH_DEBOUNCE).await;
        let (config, host) = index.snapshot();
        let f = facts.borrow_and_update().clone();
        let _ = changes.borrow_and_update();
        let devs = host.map(|h| devices(&config, &h, &f)).unwrap_or_default();
        driver.set_known(by_name(&devs));
        let dp = dp_dir.clone();
        let cfg = config.clone();
        let held = tokio::task::spawn_blocking(move || held_in_checkpoint(&cfg.pools, &dp))
            .await
            .unwrap_or_default();
        let offer: Vec<_> = offered(&devs, &held).collect();
        let dra_pools = config.pools.iter().any(|p| p.allocation.dra());
        let slices = render(&driver.node, &offer, dra_pools, 0);
        match publisher.publish(slices).await {
            Ok(p) => {
                retry = None;
                if last_generation != Some(p.generation) || p.created + p.updated + p.deleted > 0 {
                    tracing::info!(
                        generation = p.generation,
                        devices = offer.len(),
                        known = devs.len(),
                        created = p.created,
                        updated = p.updated,
                        deleted = p.deleted,
                        "ResourceSlices published"
                    );
                    last_generation = Some(p.generation);
                }
            }
            Err(e) => {
                let next = retry.map_or(RETRY_MIN, |r| (r * 2).min(RETRY_MAX));
                tracing::warn!("cannot publish ResourceSlices ({e}); retrying in {next:?}");
                retry = Some(next);
            }
        }
    }
    let _ = watcher.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoClaims;

    impl ClaimReader for NoClaims {
        fn get(
            &self,
            _: &str,
            name: &str,
        ) -> futures::future::BoxFuture<
            'static,
            Result<k8s_openapi::api::resource::v1::ResourceClaim, String>,
        > {
            let e = format!("resourceclaims \"{name}\" not found");
            Box::pin(async move { Err(e) })
        }
    }

    #[tokio::test]
    async fn the_registration_socket_answers_the_kubelets_plugin_watcher() {
        let dir = tempfile::tempdir().expect("tempdir");
        let driver = Arc::new(Driver {
            node: "node-1".into(),
            store: Store {
                prepared_dir: dir.path().join("claims"),
                cdi_dir: dir.path().join("cdi"),
            },
            known: std::sync::RwLock::new(Arc::default()),
            claims: Box::new(NoClaims),
            device_plugin_dir: None,
            lock: tokio::sync::Mutex::new(()),
        });
        let sockets = Sockets {
            registration: dir
                .path()
                .join("plugins_registry")
                .join(REGISTRATION_SOCKET),
            service: dir.path().join("plugins/smartnic.io").join(PLUGIN_SOCKET),
        };
        let (first_tx, first) = tokio::sync::oneshot::channel();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(serve_sockets(sockets.clone(), driver, first_tx, stop));
        first.await.expect("bound").expect("bound");
        // the request as the kubelet's plugin watcher sends it: the socket's path as :authority
        let a = crate::authority::tests::kubelet_get_info(
            &sockets.registration,
            crate::authority::tests::SOCKET_PATH_ESCAPED,
        )
        .await;
        assert_eq!(a.reset, None, "{a:?}");
        assert!(a.headers[1].contains(&("grpc-status".to_owned(), "0".to_owned())));
        assert!(a.data.windows(11).any(|w| w == b"smartnic.io"));
        stop_tx.send_replace(true);
        task.await.expect("stops");
        assert!(!sockets.registration.exists());
    }

    #[test]
    fn defaults_are_the_documented_paths() {
        let a = Args::parse_from(["smartnic-dra", "--node-name", "n1"]);
        assert_eq!(a.config, Path::new("/var/lib/smartnic/device-plugin.json"));
        assert_eq!(
            a.registry_dir,
            Path::new("/var/lib/kubelet/plugins_registry")
        );
        assert_eq!(
            a.plugin_dir,
            Path::new("/var/lib/kubelet/plugins/smartnic.io")
        );
        assert_eq!(a.cdi_dir, Path::new("/var/run/cdi"));
        assert_eq!(a.prepared_dir, Path::new("/var/lib/smartnic/dra/claims"));
        assert_eq!(a.sysfs_root, Path::new("/"));
        assert!(
            Args::try_parse_from(["smartnic-dra"]).is_err() || std::env::var("NODE_NAME").is_ok()
        );
    }
}
