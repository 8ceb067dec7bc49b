//! A fake kubelet (Registration server on `kubelet.sock`, and a client of the plugin sockets)
//! and a harness running the plugin on temp-dir sockets over a fixture tree.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use device_plugin::api::{
    Empty, ListAndWatchResponse, RegisterRequest,
    device_plugin_client::DevicePluginClient,
    registration_server::{Registration, RegistrationServer},
};
use device_plugin::app::{Settings, run};
use device_plugin::kubelet::connect;
use device_plugin::metrics::Metrics;
use device_plugin::preferred::Strategy;
use device_plugin::source::Polling;
use nic::sysfs::SysFs;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

/// Generous bound for things that take milliseconds (the machine may be busy); the measured
/// times are printed, the bound only keeps a broken build from hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?}: {what}"),
    }
}

struct Reg(mpsc::UnboundedSender<RegisterRequest>);

#[tonic::async_trait]
impl Registration for Reg {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let _ = self.0.send(req.into_inner());
        Ok(Response::new(Empty {}))
    }
}

/// The kubelet's Registration service on `<dir>/kubelet.sock`.
pub struct FakeKubelet {
    pub dir: PathBuf,
    pub registrations: mpsc::UnboundedReceiver<RegisterRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeKubelet {
    /// Starts serving (a kubelet start: every socket in the directory is deleted first).
    pub async fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let listener = UnixListener::bind(dir.join("kubelet.sock")).unwrap();
        let (tx, registrations) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            Server::builder()
                .add_service(RegistrationServer::new(Reg(tx)))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        FakeKubelet {
            dir: dir.to_owned(),
            registrations,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and removes `kubelet.sock`.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(self.dir.join("kubelet.sock"));
    }

    /// The next registration.
    pub async fn next_registration(&mut self) -> RegisterRequest {
        within("a registration", self.registrations.recv())
            .await
            .expect("kubelet channel open")
    }

    /// A client of the plugin that registered with `endpoint`.
    pub async fn client(&self, endpoint: &str) -> DevicePluginClient<Channel> {
        let ch = within("connect to the plugin", connect(&self.dir.join(endpoint)))
            .await
            .unwrap();
        DevicePluginClient::new(ch)
    }

    /// Opens ListAndWatch on `endpoint`.
    pub async fn list_and_watch(&self, endpoint: &str) -> Streaming<ListAndWatchResponse> {
        let mut c = self.client(endpoint).await;
        c.list_and_watch(Empty {}).await.unwrap().into_inner()
    }
}

/// The next ListAndWatch message.
pub async fn next_list(s: &mut Streaming<ListAndWatchResponse>) -> ListAndWatchResponse {
    within("a ListAndWatch update", s.message())
        .await
        .unwrap()
        .expect("stream open")
}

/// `(id, health, numa)` of every device of a message.
pub fn devices(r: &ListAndWatchResponse) -> Vec<(String, String, Option<i64>)> {
    r.devices
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                d.health.clone(),
                d.topology
                    .as_ref()
                    .and_then(|t| t.nodes.first())
                    .map(|n| n.id),
            )
        })
        .collect()
}

/// The plugin running on temp-dir paths.
pub struct Plugin {
    pub dir: tempfile::TempDir,
    pub plugin_dir: PathBuf,
    pub config: PathBuf,
    pub devinfo_dir: PathBuf,
    pub cdi_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), device_plugin::app::Error>>>,
}

/// One netdevice-or-vfio pool over a PF's VFs, as the operator renders it.
pub fn pool_json(name: &str, device_type: &str, pfs: &[&str], extra: &str) -> String {
    let pfs: Vec<String> = pfs
        .iter()
        .map(|p| format!(r#"{{"pciAddress": "{p}"}}"#))
        .collect();
    format!(
        r#"{{"resourceName": "{name}", "resourcePrefix": "smartnic.io", "deviceType": "{device_type}"{extra},
            "selectors": [{{"pfs": [{}]}}]}}"#,
        pfs.join(",")
    )
}

pub fn config_json(pools: &[String]) -> String {
    format!(r#"{{"resourceList": [{}]}}"#, pools.join(","))
}

impl Plugin {
    /// Starts the plugin on `root` with `config` (`None`: no file yet), polling every 50 ms.
    pub async fn start(root: &Path, config: Option<&str>, cdi: bool) -> Self {
        Self::start_with(root, config, cdi, |_| {}).await
    }

    pub async fn start_with(
        root: &Path,
        config: Option<&str>,
        cdi: bool,
        edit: impl FnOnce(&mut Settings),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugin_dir = dir.path().join("device-plugins");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        let cfg_dir = dir.path().join("etc");
        std::fs::create_dir_all(&cfg_dir).unwrap();
        let config_path = cfg_dir.join("device-plugin.json");
        if let Some(c) = config {
            std::fs::write(&config_path, c).unwrap();
        }
        let mut settings = Settings {
            config: config_path.clone(),
            sysfs: SysFs::new(root),
            plugin_dir: plugin_dir.clone(),
            devinfo_dir: dir.path().join("devinfo"),
            cdi_dir: cdi.then(|| dir.path().join("cdi")),
            strategy: Strategy::Pack,
            safety_check: device_plugin::plugin::SAFETY_CHECK,
            dra_prepared_dir: None,
        };
        edit(&mut settings);
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(
            settings,
            Polling {
                interval: Duration::from_millis(50),
            },
            metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Plugin {
            plugin_dir,
            config: config_path,
            devinfo_dir: dir.path().join("devinfo"),
            cdi_dir: dir.path().join("cdi"),
            dir,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Replaces the configuration file atomically (as the agent does).
    pub fn write_config(&self, text: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// Stops the plugin (as SIGTERM does) and returns its result.
    pub async fn stop(mut self) -> Result<(), device_plugin::app::Error> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let t = self.task.take().expect("running");
        within("the plugin to stop", t).await.unwrap()
    }

    /// The result of a plugin that stopped on its own (a refused start).
    pub async fn result(mut self) -> Result<(), device_plugin::app::Error> {
        let t = self.task.take().expect("running");
        within("the plugin to stop", t).await.unwrap()
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
