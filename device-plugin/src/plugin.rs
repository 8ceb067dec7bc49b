//! One pool's life: serve its socket, register with the kubelet, and do both again when the
//! kubelet restarts or the socket is deleted, until the pool is removed or the plugin stops.
//!
//! ```text
//!   bind <plugin-dir>/<prefix>_<name>.sock ─► serve ─► Register(kubelet.sock)
//!        ▲                                      │
//!        └── our socket's inode changed ◄───────┤ (on every plugin-dir event, and every 5 s)
//!            kubelet.sock's inode changed ──────┴─► Register again
//! ```
//!
//! The kubelet must find the plugin serving before it registers. A kubelet that is absent or
//! refuses is retried (0.1 s doubling to 30 s, and at once when `kubelet.sock` is recreated). A
//! removed pool's socket, device-info files and CDI spec are removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::allocate::{cdi_file_name, cdi_spec};
use crate::api::device_plugin_server::DevicePluginServer;
use crate::config::PoolSpec;
use crate::index::{Index, PoolState};
use crate::kubelet::{self, KUBELET_SOCKET};
use crate::server::{PoolService, Shared};

/// Re-check sockets this often even without directory events (inotify overflow).
pub const SAFETY_CHECK: Duration = Duration::from_secs(5);
/// First and largest delay between registration attempts. The first is short: a socket file
/// appears at bind(2), a moment before listen(2), and a connect in between is refused.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a stopping server may take to finish its calls.
const SERVER_GRACE: Duration = Duration::from_secs(2);

/// What every pool task shares.
#[derive(Debug)]
pub struct PoolContext {
    /// The kubelet's device-plugin directory.
    pub plugin_dir: PathBuf,
    /// Where CDI specs go, when CDI is on.
    pub cdi_dir: Option<PathBuf>,
    /// What the gRPC services share.
    pub shared: Arc<Shared>,
    /// Bumped on every change in the plugin directory.
    pub dir_events: watch::Receiver<u64>,
    /// Re-check interval without directory events ([`SAFETY_CHECK`] in production).
    pub safety_check: Duration,
}

/// Runs the pool `resource` until it is removed from `index` or `stop` becomes true.
pub async fn run_pool(
    resource: String,
    index: Arc<Index>,
    ctx: Arc<PoolContext>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut pool) = index.subscribe(&resource) else {
        return;
    };
    let spec = pool.borrow().spec.clone();
    let socket_name = spec.socket_name();
    let socket = ctx.plugin_dir.join(&socket_name);
    let kubelet_sock = ctx.plugin_dir.join(KUBELET_SOCKET);
    let mut dir_events = ctx.dir_events.clone();
    write_cdi(&ctx, &pool.borrow_and_update());
    let metrics = ctx.shared.metrics.clone();

    loop {
        let (listener, ino) = match bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%resource, "cannot serve: {e}; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_FIRST) => continue,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        let (srv_stop, srv_stopped) = watch::channel(false);
        let service = PoolService::new(
            resource.clone(),
            pool.clone(),
            srv_stopped.clone(),
            ctx.shared.clone(),
        );
        let server = tokio::spawn(serve(listener, service, srv_stopped));
        tracing::info!(%resource, socket = %socket.display(), "serving");

        let mut registered: Option<u64> = None;
        let mut attempted: Option<u64> = None;
        let mut retry = RETRY_FIRST;
        let mut retry_at: Option<Instant> = None;
        let outcome = loop {
            if kubelet::inode(&socket) != Some(ino) {
                tracing::info!(%resource, "socket {} was deleted (kubelet restart?); serving again", socket.display());
                break Outcome::Rebind;
            }
            let k = kubelet::inode(&kubelet_sock);
            let due = k != attempted || retry_at.is_some_and(|t| t <= Instant::now());
            if k.is_some() && k != registered && due {
                attempted = k;
                match kubelet::register(&ctx.plugin_dir, &resource, &socket_name).await {
                    Ok(()) => {
                        tracing::info!(%resource, endpoint = %socket_name, "registered with the kubelet");
                        metrics.registered(&resource, true);
                        registered = k;
                        retry = RETRY_FIRST;
                        retry_at = None;
                    }
                    Err(e) => {
                        tracing::warn!(%resource, "{e}; retrying in {retry:?}");
                        metrics.registered(&resource, false);
                        retry_at = Some(Instant::now() + retry);
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
                continue;
            }
            let wake = retry_at
                .filter(|_| k.is_some() && k != registered)
                .unwrap_or_else(|| Instant::now() + ctx.safety_check);
            tokio::select! {
                r = dir_events.changed() => if r.is_err() { break Outcome::Stop },
                r = pool.changed() => match r {
                    Ok(()) => write_cdi(&ctx, &pool.borrow_and_update()),
                    Err(_) => break Outcome::Removed,
                },
                _ = stop.wait_for(|s| *s) => break Outcome::Stop,
                () = tokio::time::sleep_until(wake) => {}
            }
        };
        // The socket goes first: to the kubelet, its disappearance is the deregistration.
        // Only our own: a new file under the name is not ours to delete.
        if !matches!(outcome, Outcome::Rebind) && kubelet::inode(&socket) == Some(ino) {
            let _ = std::fs::remove_file(&socket);
        }
        srv_stop.send_replace(true);
        let abort = server.abort_handle();
        if tokio::time::timeout(SERVER_GRACE, server).await.is_err() {
            tracing::warn!(%resource, "server did not stop within {SERVER_GRACE:?}; aborted");
            abort.abort();
        }
        if !matches!(outcome, Outcome::Rebind) {
            break;
        }
    }
    cleanup(&ctx, &spec);
    tracing::info!(%resource, "stopped serving");
}

enum Outcome {
    Rebind,
    Removed,
    Stop,
}

/// Binds the socket, replacing a stale file of the same name; returns the new inode.
fn bind(socket: &Path) -> std::io::Result<(UnixListener, u64)> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(socket)?;
    let ino = kubelet::inode(socket).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} vanished right after bind", socket.display()),
        )
    })?;
    Ok((listener, ino))
}

async fn serve(listener: UnixListener, service: PoolService, mut stop: watch::Receiver<bool>) {
    let r = Server::builder()
        .add_service(DevicePluginServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!("device plugin server failed: {e}");
    }
}

fn write_cdi(ctx: &PoolContext, state: &PoolState) {
    let Some(dir) = &ctx.cdi_dir else { return };
    let path = dir.join(cdi_file_name(&state.spec));
    let tmp = dir.join(format!(".{}.tmp", cdi_file_name(&state.spec)));
    let text = cdi_spec(&state.spec, &state.devices).to_string();
    let r = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        tracing::error!("cannot write CDI spec {}: {e}", path.display());
    }
}

/// Removes what the pool wrote: its CDI spec and device-info files.
fn cleanup(ctx: &PoolContext, spec: &PoolSpec) {
    if let Some(dir) = &ctx.cdi_dir {
        let _ = std::fs::remove_file(dir.join(cdi_file_name(spec)));
    }
    let prefix = format!("{}-{}-", spec.prefix, spec.name);
    let Ok(entries) = std::fs::read_dir(&ctx.shared.devinfo_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("-device.json"))
            .is_some_and(|id| id.parse::<nic::pci::PciAddress>().is_ok());
        if ours {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
