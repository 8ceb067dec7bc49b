//! The namespace worker of [`super::RealHost`]: a thread inside one network namespace with its
//! own current-thread runtime and rtnetlink socket (and the ethtool and devlink sockets, opened
//! there on first use), serving requests sent over a channel.

use std::{
    fs::File,
    os::fd::{AsFd, OwnedFd},
    path::Path,
    pin::Pin,
    sync::{Arc, mpsc as std_mpsc},
    task::{Context, Poll},
    thread,
};

use futures::{Stream, future::BoxFuture};
use nix::sched::{CloneFlags, setns};
use tokio::sync::{mpsc, oneshot};

use super::HostError;
use crate::{
    devlink::GenlDevlink,
    ethtool::GenlEthtool,
    netlink::{
        Address, IpFamily, IpPrefix, Link, LinkChange, LinkId, Netlink, NetlinkError,
        NetlinkEvents, NewLink, Result as NlResult, Route, RouteSpec, RtNetlink, VfInfo, VfSetting,
        VfStats,
    },
    netns::{NetnsError, NetnsRef},
};

/// A namespace's identity: the device and inode of its nsfs file.
pub(super) type NsKey = (u64, u64);

pub(super) fn key_of(fd: &OwnedFd, netns: &NetnsRef) -> Result<NsKey, NetnsError> {
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|error| NetnsError::Enter {
        netns: netns.to_string(),
        error,
    })?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

pub(super) fn own_netns() -> Result<(OwnedFd, NsKey), NetnsError> {
    let path = Path::new("/proc/thread-self/ns/net");
    let fd = File::open(path)
        .map(OwnedFd::from)
        .map_err(|error| NetnsError::Open {
            path: path.to_path_buf(),
            error,
        })?;
    let key = key_of(&fd, &NetnsRef::path(path))?;
    Ok((fd, key))
}

/// The sockets of a namespace's worker: rtnetlink from the start, the generic netlink clients
/// connected on first use (inside the namespace, since a socket belongs to the namespace of the
/// thread that opens it).
#[derive(Clone)]
pub(super) struct Sockets {
    pub(super) nl: RtNetlink,
    pub(super) ethtool: Arc<tokio::sync::OnceCell<GenlEthtool>>,
    pub(super) devlink: Arc<tokio::sync::OnceCell<GenlDevlink>>,
}

type Job = Box<dyn FnOnce(Sockets) -> BoxFuture<'static, ()> + Send>;

/// The thread that serves one namespace.
pub(super) struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    netns: String,
}

impl Worker {
    /// Starts the thread, enters the namespace (unless the thread is already in it), opens the
    /// socket there, and waits until that worked.
    pub(super) fn start(
        netns: &NetnsRef,
        fd: Arc<OwnedFd>,
        key: NsKey,
    ) -> Result<Arc<Self>, HostError> {
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), HostError>>();
        let (jobs, mut jobs_rx) = mpsc::unbounded_channel::<Job>();
        let name = netns.to_string();
        let thread_netns = netns.clone();
        thread::Builder::new()
            .name("netns-netlink".into())
            .spawn(move || {
                let setup = || -> Result<tokio::runtime::Runtime, HostError> {
                    let here = own_netns().map(|(_, k)| k).ok();
                    if here != Some(key) {
                        setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|error| {
                            NetnsError::Enter {
                                netns: thread_netns.to_string(),
                                error,
                            }
                        })?;
                    }
                    drop(fd);
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|error| {
                            HostError::Netns(NetnsError::Thread {
                                netns: thread_netns.to_string(),
                                error,
                            })
                        })
                };
                let rt = match setup() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let nl = match RtNetlink::connect() {
                        Ok(nl) => nl,
                        Err(error) => {
                            let _ = ready_tx.send(Err(HostError::Connect {
                                netns: thread_netns.to_string(),
                                error,
                            }));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let sockets = Sockets {
                        nl,
                        ethtool: Arc::default(),
                        devlink: Arc::default(),
                    };
                    // Ends when the last handle (sender) is gone; the thread then leaves the
                    // namespace by exiting.
                    while let Some(job) = jobs_rx.recv().await {
                        tokio::spawn(job(sockets.clone()));
                    }
                });
            })
            .map_err(|error| {
                HostError::Netns(NetnsError::Thread {
                    netns: name.clone(),
                    error,
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Arc::new(Self { jobs, netns: name })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(HostError::Netns(NetnsError::Thread {
                netns: name,
                error: std::io::Error::other("the namespace thread ended before it was ready"),
            })),
        }
    }
}

/// [`Netlink`] served by a namespace's worker thread.
pub(super) struct ProxyNetlink {
    pub(super) worker: Arc<Worker>,
}

impl Worker {
    /// Runs `f` on the worker's runtime, inside its namespace; `None` when the worker is gone.
    pub(super) fn run<T, F>(&self, f: F) -> BoxFuture<'static, Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(RtNetlink) -> BoxFuture<'static, T> + Send + 'static,
    {
        self.run_with(move |sockets| f(sockets.nl))
    }

    /// [`Worker::run`] with every socket of the namespace.
    pub(super) fn run_with<T, F>(&self, f: F) -> BoxFuture<'static, Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(Sockets) -> BoxFuture<'static, T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |sockets| {
            Box::pin(async move {
                let _ = tx.send(f(sockets).await);
            })
        });
        let sent = self.jobs.send(job).is_ok();
        Box::pin(async move { if sent { rx.await.ok() } else { None } })
    }

    /// The namespace, for errors.
    pub(super) fn netns(&self) -> &str {
        &self.netns
    }
}

/// A stream that keeps a namespace's worker alive: its reader task runs on the worker's
/// runtime, which ends with the last reference to the worker.
pub(super) struct KeepAlive<S> {
    pub(super) stream: S,
    pub(super) _worker: Arc<Worker>,
}

impl<S: Stream + Unpin> Stream for KeepAlive<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

impl ProxyNetlink {
    fn call<T, F>(&self, f: F) -> BoxFuture<'_, NlResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(RtNetlink) -> BoxFuture<'static, NlResult<T>> + Send + 'static,
    {
        let reply = self.worker.run(f);
        let netns = self.worker.netns.clone();
        Box::pin(async move {
            reply.await.unwrap_or_else(|| {
                Err(NetlinkError::Worker {
                    netns,
                    detail: "its thread is gone".into(),
                })
            })
        })
    }
}

macro_rules! proxy {
    ($self:ident, $method:ident ( $($arg:ident),* )) => {
        $self.call(move |nl| Box::pin(async move { nl.$method($($arg),*).await }))
    };
}

impl Netlink for ProxyNetlink {
    fn get_link(&self, link: LinkId) -> BoxFuture<'_, NlResult<Link>> {
        proxy!(self, get_link(link))
    }

    fn list_links(&self) -> BoxFuture<'_, NlResult<Vec<Link>>> {
        proxy!(self, list_links())
    }

    fn set_link(&self, link: LinkId, change: LinkChange) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, set_link(link, change))
    }

    fn delete_link(&self, link: LinkId) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, delete_link(link))
    }

    fn set_vf(&self, pf: LinkId, vf: u32, setting: VfSetting) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, set_vf(pf, vf, setting))
    }

    fn list_vfs(&self, pf: LinkId) -> BoxFuture<'_, NlResult<Vec<VfInfo>>> {
        proxy!(self, list_vfs(pf))
    }

    fn list_vf_stats(&self, pf: LinkId) -> BoxFuture<'_, NlResult<Vec<VfStats>>> {
        proxy!(self, list_vf_stats(pf))
    }

    fn add_link(&self, link: NewLink) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, add_link(link))
    }

    fn add_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, add_address(link, address))
    }

    fn delete_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, delete_address(link, address))
    }

    fn list_addresses(&self) -> BoxFuture<'_, NlResult<Vec<Address>>> {
        proxy!(self, list_addresses())
    }

    fn add_route(&self, route: RouteSpec) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, add_route(route))
    }

    fn delete_route(&self, route: RouteSpec) -> BoxFuture<'_, NlResult<()>> {
        proxy!(self, delete_route(route))
    }

    fn list_routes(&self, family: IpFamily) -> BoxFuture<'_, NlResult<Vec<Route>>> {
        proxy!(self, list_routes(family))
    }

    // The socket is opened and read on the namespace's thread; events cross over a channel,
    // and the stream keeps the thread alive.
    fn subscribe(&self) -> BoxFuture<'_, NlResult<NetlinkEvents>> {
        let worker = Arc::clone(&self.worker);
        let events = proxy!(self, subscribe());
        Box::pin(async move {
            let stream = events.await?;
            let kept: NetlinkEvents = Box::pin(KeepAlive {
                stream,
                _worker: worker,
            });
            Ok(kept)
        })
    }
}
