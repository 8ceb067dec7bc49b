//! One way to reach the kernel interfaces of a network namespace, the same for the kernel and
//! for tests.
//!
//! ```text
//!   dyn Host ──netlink(&NetnsRef)──► NetlinkHandle ──► RealHost: a worker thread per namespace
//!            ──host_netlink()─────► NetlinkHandle       (setns once, own current-thread runtime
//!                                                        and rtnetlink socket; requests proxied)
//!                                                   ──► FakeHost: a view of one shared FakeNetlink
//! ```
//!
//! Callers (the agent, the CNI plugin, the device plugin) take an `Arc<dyn Host>` and never ask
//! which one they have: a CNI ADD gets the host namespace's handle to move a VF and the pod
//! namespace's handle to rename it and add addresses, in the same code for the kernel and for
//! the fake.
//!
//! A namespace's worker lives as long as a handle on it does. That matters: a thread inside a
//! namespace keeps it alive, so the last handle on a pod namespace must go for the pod's
//! namespace (and the veths in it) to be freed.

use std::{
    collections::HashMap,
    fmt,
    fs::File,
    os::fd::{AsFd, OwnedFd},
    path::Path,
    sync::{Arc, Mutex, Weak, mpsc as std_mpsc},
    thread,
};

use futures::future::BoxFuture;
use nix::sched::{CloneFlags, setns};
use tokio::sync::{mpsc, oneshot};

use crate::{
    netlink::{
        Address, IpFamily, IpPrefix, Link, LinkChange, LinkId, Netlink, NetlinkError,
        NetlinkHandle, NewLink, Result as NlResult, Route, RouteSpec, RtNetlink, VfInfo, VfSetting,
    },
    netns::{NetnsError, NetnsRef},
};

/// Errors of getting a handle for a namespace; each names the namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The namespace could not be opened or entered, or its thread not started.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The socket could not be opened inside the namespace.
    #[error("network namespace {netns}: {error}")]
    Connect {
        /// The namespace.
        netns: String,
        /// Why.
        error: NetlinkError,
    },
}

/// The host's kernel interfaces, per network namespace. Object-safe: pass it as
/// `Arc<dyn Host>`.
pub trait Host: Send + Sync {
    /// rtnetlink inside `netns` (`ip -n NS ...`). Handles on the same namespace (by any path,
    /// pid or descriptor) share one connection.
    fn netlink(&self, netns: &NetnsRef) -> Result<NetlinkHandle, HostError>;

    /// rtnetlink in the namespace this host was made in (for the agent and the CNI plugin: the
    /// host's own).
    fn host_netlink(&self) -> Result<NetlinkHandle, HostError>;

    // Other kernel interfaces join here as accessors of the same shape: devlink (one per host;
    // devlink is not per namespace for our purposes) and ethtool (per namespace, like netlink).
}

/// A namespace's identity: the device and inode of its nsfs file.
type NsKey = (u64, u64);

fn key_of(fd: &OwnedFd, netns: &NetnsRef) -> Result<NsKey, NetnsError> {
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|error| NetnsError::Enter {
        netns: netns.to_string(),
        error,
    })?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

fn own_netns() -> Result<(OwnedFd, NsKey), NetnsError> {
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

type Job = Box<dyn FnOnce(RtNetlink) -> BoxFuture<'static, ()> + Send>;

/// The thread that serves one namespace.
struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    netns: String,
}

impl Worker {
    /// Starts the thread, enters the namespace (unless the thread is already in it), opens the
    /// socket there, and waits until that worked.
    fn start(netns: &NetnsRef, fd: Arc<OwnedFd>, key: NsKey) -> Result<Arc<Self>, HostError> {
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
                    // Ends when the last handle (sender) is gone; the thread then leaves the
                    // namespace by exiting.
                    while let Some(job) = jobs_rx.recv().await {
                        tokio::spawn(job(nl.clone()));
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
struct ProxyNetlink {
    worker: Arc<Worker>,
}

impl ProxyNetlink {
    fn call<T, F>(&self, f: F) -> BoxFuture<'_, NlResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(RtNetlink) -> BoxFuture<'static, NlResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |nl| {
            Box::pin(async move {
                let _ = tx.send(f(nl).await);
            })
        });
        let sent = self.worker.jobs.send(job).is_ok();
        let netns = self.worker.netns.clone();
        let gone = move || NetlinkError::Worker {
            netns,
            detail: "its thread is gone".into(),
        };
        Box::pin(async move {
            if !sent {
                return Err(gone());
            }
            rx.await.unwrap_or_else(|_| Err(gone()))
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
}

/// The kernel. Each namespace asked for gets a dedicated thread that enters it once (`setns`
/// is per thread) and runs its own current-thread tokio runtime and rtnetlink socket; requests
/// reach it over a channel, so handles work from any runtime or thread. Cheap to clone.
#[derive(Clone)]
pub struct RealHost {
    home: NetnsRef,
    home_key: NsKey,
    workers: Arc<Mutex<HashMap<NsKey, Weak<Worker>>>>,
}

impl fmt::Debug for RealHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealHost").finish_non_exhaustive()
    }
}

impl RealHost {
    /// The host as seen from the calling thread's network namespace (its "host" namespace).
    pub fn new() -> Result<Self, HostError> {
        let (fd, home_key) = own_netns()?;
        Ok(Self {
            home: NetnsRef::fd(fd),
            home_key,
            workers: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn handle(&self, netns: &NetnsRef, key: Option<NsKey>) -> Result<NetlinkHandle, HostError> {
        let fd = netns.open()?;
        let key = match key {
            Some(k) => k,
            None => key_of(&fd, netns)?,
        };
        // A poisoned map only holds weak references; they are still good.
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let worker = match workers.get(&key).and_then(Weak::upgrade) {
            Some(w) => w,
            None => {
                let w = Worker::start(netns, fd, key)?;
                workers.retain(|_, w| w.strong_count() > 0);
                workers.insert(key, Arc::downgrade(&w));
                w
            }
        };
        Ok(NetlinkHandle::new(ProxyNetlink { worker }))
    }
}

impl Host for RealHost {
    fn netlink(&self, netns: &NetnsRef) -> Result<NetlinkHandle, HostError> {
        self.handle(netns, None)
    }

    fn host_netlink(&self) -> Result<NetlinkHandle, HostError> {
        self.handle(&self.home, Some(self.home_key))
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use fake::FakeHost;

#[cfg(any(test, feature = "test-util"))]
mod fake {
    use std::{
        collections::BTreeSet,
        io,
        path::PathBuf,
        sync::{Arc, Mutex},
    };

    use super::{Host, HostError};
    use crate::{
        netlink::{FakeNetlink, NetlinkHandle},
        netns::{NetnsError, NetnsRef},
    };

    /// Per-namespace views of one shared [`FakeNetlink`] (feature `test-util`): a link moved
    /// from the host view into a pod namespace disappears from one and appears in the other,
    /// and every call is recorded with the namespace it was made in.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nic::{host::{FakeHost, Host}, netns::NetnsRef};
    /// let host = FakeHost::new();
    /// host.fake().add_pf("eth0", 2);
    /// host.fake().add_link("eth0v1");
    /// let pod = NetnsRef::path("/var/run/netns/pod1");
    /// let nl = host.host_netlink().unwrap();
    /// nl.link().set("eth0v1").netns_rename(pod.clone(), "net1").execute().await.unwrap();
    /// let in_pod = host.netlink(&pod).unwrap();
    /// assert!(in_pod.link().get("net1").execute().await.is_ok());
    /// assert!(host.fake().link("eth0v1").is_none());
    /// # });
    /// ```
    #[derive(Clone, Debug, Default)]
    pub struct FakeHost {
        fake: FakeNetlink,
        gone: Arc<Mutex<BTreeSet<String>>>,
    }

    impl FakeHost {
        /// An empty host namespace.
        pub fn new() -> Self {
            Self::default()
        }

        /// A host over an existing fake (its view is the host namespace).
        pub fn with(fake: FakeNetlink) -> Self {
            Self {
                fake,
                gone: Arc::default(),
            }
        }

        /// The host namespace's view: add links, inject failures, read all calls.
        pub fn fake(&self) -> &FakeNetlink {
            &self.fake
        }

        /// The view of `netns`, to inspect what a test did there.
        pub fn fake_in(&self, netns: &NetnsRef) -> FakeNetlink {
            self.fake.netns(netns)
        }

        /// Deletes a namespace the way the kernel does when its last user goes: virtual links
        /// in it are destroyed (with their veth peers elsewhere), physical ones (VFs) return
        /// to the host namespace. Later `netlink(netns)` calls fail as for a missing file.
        pub fn delete_netns(&self, netns: &NetnsRef) {
            self.fake.destroy_netns(&netns.to_string());
            self.lock().insert(netns.to_string());
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
            self.gone
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    impl Host for FakeHost {
        fn netlink(&self, netns: &NetnsRef) -> Result<NetlinkHandle, HostError> {
            if self.lock().contains(&netns.to_string()) {
                return Err(HostError::Netns(NetnsError::Open {
                    path: PathBuf::from(netns.to_string()),
                    error: io::Error::from(io::ErrorKind::NotFound),
                }));
            }
            Ok(NetlinkHandle::new(self.fake.netns(netns)))
        }

        fn host_netlink(&self) -> Result<NetlinkHandle, HostError> {
            Ok(NetlinkHandle::new(self.fake.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::netlink::{FakeNetlink, HOST_NETNS, Macvlan, MacvlanMode, NetlinkCall, Veth};

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_vf_moved_into_a_pod_is_seen_there_and_not_on_the_host() {
        let host = FakeHost::new();
        host.fake().add_pf("eth0", 2);
        host.fake().add_link("eth0v0");
        let pod = NetnsRef::path("/var/run/netns/pod1");
        let hosts: Arc<dyn Host> = Arc::new(host.clone());
        block_on(async {
            let nl = hosts.host_netlink().unwrap();
            nl.link()
                .set("eth0v0")
                .netns_rename(pod.clone(), "net1")
                .execute()
                .await
                .unwrap();
            let in_pod = hosts.netlink(&pod).unwrap();
            in_pod.link().set("net1").up().execute().await.unwrap();
            in_pod
                .address()
                .add("net1", "10.0.0.2/24".parse().unwrap())
                .execute()
                .await
                .unwrap();
        });
        assert!(host.fake().link("eth0v0").is_none());
        let pod_view = host.fake_in(&pod);
        assert_eq!(pod_view.link("net1").map(|l| l.up), Some(true));
        assert_eq!(pod_view.addresses().len(), 1);
        let calls = host.fake().all_calls();
        assert_eq!(calls[0].netns, HOST_NETNS);
        assert!(matches!(
            &calls[0].call,
            NetlinkCall::SetLink { change: LinkChange::NetnsRename { name, .. }, .. } if name == "net1"
        ));
        assert!(calls[1..].iter().all(|c| c.netns == "/var/run/netns/pod1"));
    }

    #[test]
    fn deleting_a_pod_namespace_returns_the_vf_and_destroys_the_veth() {
        let host = FakeHost::with(FakeNetlink::new());
        host.fake().add_pf("eth0", 1);
        host.fake().add_link("eth0v0");
        let pod = NetnsRef::path("/var/run/netns/pod2");
        block_on(async {
            let nl = host.host_netlink().unwrap();
            nl.link()
                .set("eth0v0")
                .netns_rename(pod.clone(), "net1")
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Veth::new("eth0").peer_netns(pod.clone()))
                .name("vethpod2")
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Macvlan::new("eth0", MacvlanMode::Bridge))
                .name("mv0")
                .netns(pod.clone())
                .execute()
                .await
                .unwrap();
        });
        assert_eq!(host.fake_in(&pod).links().len(), 3);
        host.delete_netns(&pod);
        let names: Vec<_> = host.fake().links().into_iter().map(|l| l.name).collect();
        // The VF comes home under its pod name; the veth pair and the macvlan are gone.
        assert_eq!(names, vec!["eth0", "net1"]);
        let err = host.netlink(&pod).unwrap_err();
        assert!(err.to_string().contains("/var/run/netns/pod2"), "{err}");
    }

    #[test]
    fn real_host_serves_its_own_namespace_without_privileges() {
        // Entering a namespace needs CAP_SYS_ADMIN; the host's own does not need entering.
        let host = RealHost::new().unwrap();
        let nl = host.host_netlink().unwrap();
        let links = block_on(nl.link().list().execute()).unwrap();
        assert!(links.iter().any(|l| l.name == "lo"), "{links:?}");
        // The same namespace by another name shares the worker.
        let again = host.netlink(&NetnsRef::current().unwrap()).unwrap();
        let lo = block_on(again.link().get("lo").execute()).unwrap();
        assert_eq!(lo.index, 1);
        assert_eq!(host.workers.lock().unwrap().len(), 1);
        let err = host
            .netlink(&NetnsRef::path("/nonexistent/netns/x"))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/netns/x"), "{err}");
    }
}
