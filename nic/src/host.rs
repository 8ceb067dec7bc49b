//! One way to reach the kernel interfaces of a network namespace, the same for the kernel and
//! for tests.
//!
//! ```text
//!   dyn Host ──netlink(&NetnsRef)──► NetlinkHandle ──► RealHost: a worker thread per namespace
//!            ──host_netlink()─────► NetlinkHandle       (setns once, own current-thread runtime
//!            ──ethtool(&NetnsRef)─► EthtoolHandle        and rtnetlink socket, ethtool and
//!            ──host_ethtool()─────► EthtoolHandle        devlink sockets on first use;
//!            ──devlink()──────────► DevlinkHandle        requests proxied)
//!                                                   ──► FakeHost: views of one shared FakeNetlink,
//!                                                       a FakeEthtool per namespace, a FakeDevlink
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

mod genl;
mod worker;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, Weak},
};

use futures::future::BoxFuture;

use self::genl::{ProxyDevlink, ProxyEthtool};
use self::worker::{KeepAlive, NsKey, ProxyNetlink, Worker, key_of, own_netns};
use crate::{
    devlink::DevlinkHandle,
    ethtool::EthtoolHandle,
    netlink::{NetlinkError, NetlinkHandle},
    netns::{NetnsError, NetnsRef},
    uevent::{KernelUevents, UeventError, UeventStream, Uevents},
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
    /// pid or descriptor) share one connection. The first call for a namespace starts its
    /// thread and waits for it to enter the namespace and open its socket: a thread spawn,
    /// `setns` and `socket`, no network round trip.
    fn netlink(&self, netns: &NetnsRef) -> Result<NetlinkHandle, HostError>;

    /// rtnetlink in the namespace this host was made in (for the agent and the CNI plugin: the
    /// host's own).
    fn host_netlink(&self) -> Result<NetlinkHandle, HostError>;

    /// Kernel uevents (PCI add/remove/bind/unbind, net add/remove) as seen from the host
    /// namespace, from now on.
    fn uevents(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>>;

    /// ethtool inside `netns` (`ip netns exec NS ethtool ...`): the features of a VF moved into
    /// a pod are set there. Handles on one namespace share its worker with netlink.
    fn ethtool(&self, netns: &NetnsRef) -> Result<EthtoolHandle, HostError>;

    /// ethtool in this host's namespace (PFs, representors).
    fn host_ethtool(&self) -> Result<EthtoolHandle, HostError>;

    /// devlink, from this host's namespace (`devlink ...`). One per host: devlink instances stay
    /// in the host namespace for our purposes. A kernel without devlink answers every request
    /// with `DevlinkError::Unavailable`.
    fn devlink(&self) -> Result<DevlinkHandle, HostError>;
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
        let worker = self.worker(netns, key)?;
        Ok(NetlinkHandle::new(ProxyNetlink { worker }))
    }

    fn worker(&self, netns: &NetnsRef, key: Option<NsKey>) -> Result<Arc<Worker>, HostError> {
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
        Ok(worker)
    }
}

impl Host for RealHost {
    fn netlink(&self, netns: &NetnsRef) -> Result<NetlinkHandle, HostError> {
        self.handle(netns, None)
    }

    fn host_netlink(&self) -> Result<NetlinkHandle, HostError> {
        self.handle(&self.home, Some(self.home_key))
    }

    fn ethtool(&self, netns: &NetnsRef) -> Result<EthtoolHandle, HostError> {
        let worker = self.worker(netns, None)?;
        Ok(EthtoolHandle::new(ProxyEthtool { worker }))
    }

    fn host_ethtool(&self) -> Result<EthtoolHandle, HostError> {
        let worker = self.worker(&self.home, Some(self.home_key))?;
        Ok(EthtoolHandle::new(ProxyEthtool { worker }))
    }

    fn devlink(&self) -> Result<DevlinkHandle, HostError> {
        let worker = self.worker(&self.home, Some(self.home_key))?;
        Ok(DevlinkHandle::new(ProxyDevlink { worker }))
    }

    // Opened on the host namespace's thread (a uevent socket sees its own namespace's net
    // devices), read there, and kept alive by the stream.
    fn uevents(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>> {
        let worker = self.worker(&self.home, Some(self.home_key));
        Box::pin(async move {
            let worker = worker.map_err(|e| UeventError::Socket(std::io::Error::other(e)))?;
            let opened = worker
                .run(|_| Box::pin(async { KernelUevents.subscribe().await }))
                .await
                .ok_or_else(|| {
                    UeventError::Socket(std::io::Error::other(format!(
                        "the thread of network namespace {} is gone",
                        worker.netns()
                    )))
                })??;
            let kept: UeventStream = Box::pin(KeepAlive {
                stream: opened,
                _worker: worker,
            });
            Ok(kept)
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
mod fake;
#[cfg(any(test, feature = "test-util"))]
pub use fake::FakeHost;

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::netlink::{
        FakeNetlink, HOST_NETNS, LinkChange, Macvlan, MacvlanMode, NetlinkCall, Veth,
    };

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
    fn fake_uevents_reach_host_subscribers() {
        use futures::StreamExt;

        use crate::uevent::{DeviceEvent, Uevent, UeventAction, UeventNotice};
        let host = FakeHost::new();
        let hosts: Arc<dyn Host> = Arc::new(host.clone());
        block_on(async {
            let mut events = hosts.uevents().await.unwrap();
            host.uevents_fake().push(Uevent::new(
                UeventAction::Add,
                "/devices/pci0000:00/0000:00:02.0/0000:01:10.0",
                "pci",
                [("PCI_SLOT_NAME", "0000:01:10.0".to_string())],
            ));
            let Some(Ok(UeventNotice::Uevent(u))) = events.next().await else {
                panic!("no uevent")
            };
            assert_eq!(
                u.device_event(),
                Some(DeviceEvent::PciAdded {
                    slot: "0000:01:10.0".into()
                })
            );
        });
    }

    #[test]
    fn one_host_object_gives_every_handle_of_a_namespace() {
        use crate::devlink::{DevlinkDev, EswitchMode};
        let host = FakeHost::new();
        let pod = NetnsRef::path("/var/run/netns/pod3");
        host.ethtool_fake_in(&pod)
            .set_feature("net1", "rx-gro", true, false);
        host.host_ethtool_fake()
            .set_feature("eth0_0", "hw-tc-offload", false, false);
        let dev = DevlinkDev::pci("0000:3b:00.0");
        host.devlink_fake().add_dev(&dev, EswitchMode::Switchdev);
        let hosts: Arc<dyn Host> = Arc::new(host.clone());
        block_on(async {
            let in_pod = hosts.ethtool(&pod).unwrap();
            in_pod
                .features()
                .set("net1")
                .feature("gro", false)
                .execute()
                .await
                .unwrap();
            // the pod's interfaces are not the host's
            let e = hosts
                .host_ethtool()
                .unwrap()
                .features()
                .get("net1")
                .execute()
                .await
                .unwrap_err();
            assert!(e.to_string().starts_with("get features of net1"), "{e}");
            hosts
                .host_ethtool()
                .unwrap()
                .features()
                .set("eth0_0")
                .feature("hw-tc-offload", true)
                .execute()
                .await
                .unwrap();
            let mode = hosts
                .devlink()
                .unwrap()
                .eswitch(&dev)
                .get()
                .await
                .unwrap()
                .mode;
            assert_eq!(mode, Some(EswitchMode::Switchdev));
        });
        assert!(!host.ethtool_fake_in(&pod).features("net1").unwrap()["rx-gro"].active);
        assert!(host.host_ethtool_fake().features("eth0_0").unwrap()["hw-tc-offload"].active);
        host.delete_netns(&pod);
        assert!(hosts.ethtool(&pod).is_err());
    }

    #[test]
    fn real_host_ethtool_and_devlink_in_its_own_namespace() {
        let host = RealHost::new().unwrap();
        let et = host.host_ethtool().unwrap();
        match block_on(et.features().get("lo").execute()) {
            Ok(f) => assert!(f.features.contains_key("tx-scatter-gather"), "{f:?}"),
            // a kernel without ethtool netlink
            Err(e) => assert!(
                matches!(e, crate::ethtool::EthtoolError::Unavailable),
                "{e}"
            ),
        }
        let dl = host.devlink().unwrap();
        if let Err(e) = block_on(dl.dev().list()) {
            assert!(e.is_unavailable(), "{e}");
        }
        // one worker serves rtnetlink, ethtool and devlink of the namespace
        assert_eq!(host.workers.lock().unwrap().len(), 1);
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
