//! [`FakeHost`]: the host of tests.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;

use super::{Host, HostError};
use crate::uevent::{FakeUevents, UeventError, UeventStream, Uevents};
use crate::{
    devlink::{DevlinkHandle, FakeDevlink},
    ethtool::{EthtoolHandle, FakeEthtool},
    netlink::{FakeNetlink, HOST_NETNS, NetlinkHandle},
    netns::{NetnsError, NetnsRef},
};

/// Per-namespace views of one shared [`FakeNetlink`] (feature `test-util`): a link moved
/// from the host view into a pod namespace disappears from one and appears in the other,
/// and every call is recorded with the namespace it was made in. Next to it: a [`FakeEthtool`]
/// per namespace and one [`FakeDevlink`].
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
    uevents: FakeUevents,
    gone: Arc<Mutex<BTreeSet<String>>>,
    devlink: FakeDevlink,
    ethtool: Arc<Mutex<BTreeMap<String, FakeEthtool>>>,
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
            ..Self::default()
        }
    }

    /// The host's devlink: seed devices and ports, inject failures, read calls.
    pub fn devlink_fake(&self) -> &FakeDevlink {
        &self.devlink
    }

    /// The ethtool fake of `netns`, made on first use (the host's own is
    /// [`FakeHost::host_ethtool_fake`]).
    pub fn ethtool_fake_in(&self, netns: &NetnsRef) -> FakeEthtool {
        self.ethtool_for(&netns.to_string())
    }

    /// The ethtool fake of the host namespace.
    pub fn host_ethtool_fake(&self) -> FakeEthtool {
        self.ethtool_for(HOST_NETNS)
    }

    fn ethtool_for(&self, key: &str) -> FakeEthtool {
        let mut map = self
            .ethtool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    /// A namespace deleted by [`FakeHost::delete_netns`] cannot be opened any more.
    fn check_netns(&self, netns: &NetnsRef) -> Result<(), HostError> {
        if self.lock().contains(&netns.to_string()) {
            return Err(HostError::Netns(NetnsError::Open {
                path: PathBuf::from(netns.to_string()),
                error: io::Error::from(io::ErrorKind::NotFound),
            }));
        }
        Ok(())
    }

    /// The host namespace's view: add links, inject failures, read all calls.
    pub fn fake(&self) -> &FakeNetlink {
        &self.fake
    }

    /// The uevent source: push events that subscribers of [`Host::uevents`] receive.
    pub fn uevents_fake(&self) -> &FakeUevents {
        &self.uevents
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
        self.check_netns(netns)?;
        Ok(NetlinkHandle::new(self.fake.netns(netns)))
    }

    fn host_netlink(&self) -> Result<NetlinkHandle, HostError> {
        Ok(NetlinkHandle::new(self.fake.clone()))
    }

    fn uevents(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>> {
        self.uevents.subscribe()
    }

    fn ethtool(&self, netns: &NetnsRef) -> Result<EthtoolHandle, HostError> {
        self.check_netns(netns)?;
        Ok(EthtoolHandle::new(self.ethtool_fake_in(netns)))
    }

    fn host_ethtool(&self) -> Result<EthtoolHandle, HostError> {
        Ok(EthtoolHandle::new(self.host_ethtool_fake()))
    }

    fn devlink(&self) -> Result<DevlinkHandle, HostError> {
        Ok(DevlinkHandle::new(self.devlink.clone()))
    }
}
