//! A recording, in-memory [`Netlink`] for tests (feature `test-util`).
//!
//! It keeps links and VF tables per network namespace, records every call, and fails the
//! operations it is told to fail with the errno (and extack text) it is given. Views on other
//! namespaces ([`FakeNetlink::netns`]) share one state, so a link moved by the host view shows
//! up in the pod view, the way a CNI ADD sees it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use nic::netlink::{FakeNetlink, NetlinkHandle, NetlinkOp};
//! let fake = FakeNetlink::new();
//! fake.add_pf("eth0", 4);
//! // igb refuses a minimum TX rate
//! fake.fail(NetlinkOp::SetVfMinTxRate, 22 /* EINVAL */);
//! let nl = NetlinkHandle::new(fake.clone());
//! let err = nl.vf("eth0").set(1).min_tx_rate(10).execute().await.unwrap_err();
//! assert_eq!(err.to_string(), "set vf 1 min-tx-rate on eth0: Invalid argument (os error 22)");
//! assert_eq!(fake.calls().len(), 1);
//! # });
//! ```

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::future::BoxFuture;
use nix::libc::{EBUSY, EEXIST, EINVAL, ENODEV, EOPNOTSUPP};

use super::{
    KernelError, Link, LinkChange, LinkId, MacAddr, Netlink, NetlinkError, OperState, Result,
    VfInfo, VfSetting,
};
use crate::netns::NetnsRef;

/// The namespace key of the view made by [`FakeNetlink::new`].
pub const HOST_NETNS: &str = "host";

/// One call made to the fake, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetlinkCall {
    /// [`Netlink::get_link`].
    GetLink(LinkId),
    /// [`Netlink::list_links`].
    ListLinks,
    /// [`Netlink::set_link`].
    SetLink {
        /// The link.
        link: LinkId,
        /// The change.
        change: LinkChange,
    },
    /// [`Netlink::delete_link`].
    DeleteLink(LinkId),
    /// [`Netlink::set_vf`].
    SetVf {
        /// The PF.
        pf: LinkId,
        /// VF index.
        vf: u32,
        /// The setting.
        setting: VfSetting,
    },
    /// [`Netlink::list_vfs`].
    ListVfs(LinkId),
}

/// The kind of a call, for failure rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetlinkOp {
    /// Get one link.
    GetLink,
    /// Dump links.
    ListLinks,
    /// Admin up.
    SetUp,
    /// Admin down.
    SetDown,
    /// MTU.
    SetMtu,
    /// Rename.
    SetName,
    /// MAC.
    SetMac,
    /// Move to another namespace.
    SetNetns,
    /// Delete.
    DeleteLink,
    /// VF MAC.
    SetVfMac,
    /// VF VLAN.
    SetVfVlan,
    /// VF spoof check.
    SetVfSpoofCheck,
    /// VF trust.
    SetVfTrust,
    /// VF min TX rate.
    SetVfMinTxRate,
    /// VF max TX rate.
    SetVfMaxTxRate,
    /// VF link state.
    SetVfLinkState,
    /// Read the VF table.
    ListVfs,
}

impl NetlinkCall {
    /// The kind of this call.
    pub fn op(&self) -> NetlinkOp {
        match self {
            Self::GetLink(_) => NetlinkOp::GetLink,
            Self::ListLinks => NetlinkOp::ListLinks,
            Self::SetLink { change, .. } => match change {
                LinkChange::Up => NetlinkOp::SetUp,
                LinkChange::Down => NetlinkOp::SetDown,
                LinkChange::Mtu(_) => NetlinkOp::SetMtu,
                LinkChange::Name(_) => NetlinkOp::SetName,
                LinkChange::Mac(_) => NetlinkOp::SetMac,
                LinkChange::Netns(_) => NetlinkOp::SetNetns,
            },
            Self::DeleteLink(_) => NetlinkOp::DeleteLink,
            Self::SetVf { setting, .. } => match setting {
                VfSetting::Mac(_) => NetlinkOp::SetVfMac,
                VfSetting::Vlan { .. } => NetlinkOp::SetVfVlan,
                VfSetting::SpoofCheck(_) => NetlinkOp::SetVfSpoofCheck,
                VfSetting::Trust(_) => NetlinkOp::SetVfTrust,
                VfSetting::MinTxRate(_) => NetlinkOp::SetVfMinTxRate,
                VfSetting::MaxTxRate(_) => NetlinkOp::SetVfMaxTxRate,
                VfSetting::LinkState(_) => NetlinkOp::SetVfLinkState,
            },
            Self::ListVfs(_) => NetlinkOp::ListVfs,
        }
    }
}

/// A call and the namespace view it was made on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCall {
    /// Namespace key of the view ([`HOST_NETNS`] or the `NetnsRef` as text).
    pub netns: String,
    /// The call.
    pub call: NetlinkCall,
}

type Predicate = Box<dyn Fn(&NetlinkCall) -> bool + Send>;

struct FailureRule {
    when: Predicate,
    error: KernelError,
}

#[derive(Clone)]
struct FakeLink {
    link: Link,
    /// `None`: the device has no VF support (setting a VF fails with EOPNOTSUPP, like a veth).
    vfs: Option<Vec<VfInfo>>,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<String, Vec<FakeLink>>,
    next_index: u32,
    calls: Vec<RecordedCall>,
    failures: Vec<FailureRule>,
}

/// The in-memory [`Netlink`]. Cloning gives another handle on the same state and view.
#[derive(Clone)]
pub struct FakeNetlink {
    state: Arc<Mutex<State>>,
    netns: String,
}

impl Default for FakeNetlink {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNetlink")
            .field("netns", &self.netns)
            .finish_non_exhaustive()
    }
}

impl FakeNetlink {
    /// An empty host namespace.
    pub fn new() -> Self {
        let state = State {
            next_index: 1,
            ..Default::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            netns: HOST_NETNS.to_string(),
        }
    }

    /// A view on another namespace, sharing state and call log with this one. The key is the
    /// reference as text (`/var/run/netns/pod1`, `/proc/42/ns/net`), the same key a
    /// [`LinkChange::Netns`] move with that reference files the link under.
    pub fn netns(&self, netns: &NetnsRef) -> Self {
        Self {
            state: Arc::clone(&self.state),
            netns: netns.to_string(),
        }
    }

    /// This view's namespace key.
    pub fn netns_key(&self) -> &str {
        &self.netns
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves usable data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a down, 1500-MTU link without VF support (a veth-like device); returns its index.
    pub fn add_link(&self, name: &str) -> u32 {
        self.insert(name, None)
    }

    /// Adds a PF with `num_vfs` VFs in their default state; returns its index.
    pub fn add_pf(&self, name: &str, num_vfs: u32) -> u32 {
        self.insert(name, Some((0..num_vfs).map(VfInfo::new_default).collect()))
    }

    fn insert(&self, name: &str, vfs: Option<Vec<VfInfo>>) -> u32 {
        let mut st = self.lock();
        let index = st.next_index;
        st.next_index += 1;
        let [a, b] = u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes();
        let link = Link {
            index,
            name: name.to_string(),
            mtu: 1500,
            mac: Some(MacAddr([0x02, 0, 0, 0, a, b])),
            up: false,
            oper_state: OperState::Down,
            kind: None,
        };
        st.namespaces
            .entry(self.netns.clone())
            .or_default()
            .push(FakeLink { link, vfs });
        index
    }

    /// Replaces (or adds) a link with exactly these fields, keeping its VF table if it had one.
    pub fn put_link(&self, link: Link) {
        let mut st = self.lock();
        st.next_index = st.next_index.max(link.index + 1);
        let links = st.namespaces.entry(self.netns.clone()).or_default();
        match links.iter_mut().find(|l| l.link.index == link.index) {
            Some(existing) => existing.link = link,
            None => links.push(FakeLink { link, vfs: None }),
        }
    }

    /// The links of this view's namespace.
    pub fn links(&self) -> Vec<Link> {
        let st = self.lock();
        st.namespaces
            .get(&self.netns)
            .map(|links| links.iter().map(|l| l.link.clone()).collect())
            .unwrap_or_default()
    }

    /// One link of this view's namespace.
    pub fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.name == name)
    }

    /// The VF table of a PF in this view's namespace (`None`: no such link, or no VFs).
    pub fn vfs(&self, pf: &str) -> Option<Vec<VfInfo>> {
        let st = self.lock();
        st.namespaces
            .get(&self.netns)?
            .iter()
            .find(|l| l.link.name == pf)?
            .vfs
            .clone()
    }

    /// Every call so far, on every view, in order.
    pub fn all_calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// The calls made on this view.
    pub fn calls(&self) -> Vec<NetlinkCall> {
        let st = self.lock();
        st.calls
            .iter()
            .filter(|c| c.netns == self.netns)
            .map(|c| c.call.clone())
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Fails every later call of kind `op` (on any view) with `errno`.
    pub fn fail(&self, op: NetlinkOp, errno: i32) {
        self.fail_when(move |c| c.op() == op, KernelError::new(errno));
    }

    /// Fails every later call of kind `op` with `errno` and an extack message.
    pub fn fail_with_message(&self, op: NetlinkOp, errno: i32, message: &str) {
        self.fail_when(
            move |c| c.op() == op,
            KernelError::with_message(errno, message),
        );
    }

    /// Fails every later call for which `when` is true with `error` (first matching rule wins).
    pub fn fail_when(
        &self,
        when: impl Fn(&NetlinkCall) -> bool + Send + 'static,
        error: KernelError,
    ) {
        self.lock().failures.push(FailureRule {
            when: Box::new(when),
            error,
        });
    }

    /// Removes every failure rule.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Records the call and returns the injected failure for it, if any.
    fn record(&self, st: &mut State, call: &NetlinkCall) -> Option<KernelError> {
        st.calls.push(RecordedCall {
            netns: self.netns.clone(),
            call: call.clone(),
        });
        st.failures
            .iter()
            .find(|r| (r.when)(call))
            .map(|r| r.error.clone())
    }

    fn find<'a>(links: &'a mut [FakeLink], id: &LinkId) -> Option<&'a mut FakeLink> {
        links.iter_mut().find(|l| match id {
            LinkId::Name(n) => &l.link.name == n,
            LinkId::Index(i) => l.link.index == *i,
        })
    }

    fn get_link_now(&self, link: LinkId) -> Result<Link> {
        let mut st = self.lock();
        let call = NetlinkCall::GetLink(link.clone());
        let op = format!("get link {link}");
        if let Some(kernel) = self.record(&mut st, &call) {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel,
            });
        }
        let links = st.namespaces.entry(self.netns.clone()).or_default();
        Self::find(links, &link)
            .map(|l| l.link.clone())
            .ok_or_else(|| NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel: KernelError::new(ENODEV),
            })
    }

    fn list_links_now(&self) -> Result<Vec<Link>> {
        let mut st = self.lock();
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::ListLinks) {
            return Err(NetlinkError::List { kernel });
        }
        Ok(st
            .namespaces
            .get(&self.netns)
            .map(|links| links.iter().map(|l| l.link.clone()).collect())
            .unwrap_or_default())
    }

    fn set_link_now(&self, link: LinkId, change: LinkChange) -> Result<()> {
        let mut st = self.lock();
        let call = NetlinkCall::SetLink {
            link: link.clone(),
            change: change.clone(),
        };
        let op = change.describe(&link.to_string());
        let err = |errno: i32| NetlinkError::Link {
            op: op.clone(),
            link: link.to_string(),
            kernel: KernelError::new(errno),
        };
        if let Some(kernel) = self.record(&mut st, &call) {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel,
            });
        }
        let here = self.netns.clone();
        let links = st.namespaces.entry(here.clone()).or_default();
        let taken = links
            .iter()
            .map(|l| l.link.name.clone())
            .collect::<Vec<_>>();
        let pos = links
            .iter()
            .position(|l| match &link {
                LinkId::Name(n) => &l.link.name == n,
                LinkId::Index(i) => l.link.index == *i,
            })
            .ok_or_else(|| err(ENODEV))?;
        let entry = &mut links[pos];
        match change {
            LinkChange::Up => {
                entry.link.up = true;
                entry.link.oper_state = OperState::Up;
            }
            LinkChange::Down => {
                entry.link.up = false;
                entry.link.oper_state = OperState::Down;
            }
            LinkChange::Mtu(0) => return Err(err(EINVAL)),
            LinkChange::Mtu(m) => entry.link.mtu = m,
            LinkChange::Name(new) => {
                if new.is_empty() || new.len() > 15 {
                    return Err(err(EINVAL));
                }
                if entry.link.name != new && taken.contains(&new) {
                    return Err(err(EEXIST));
                }
                if entry.link.up {
                    return Err(err(EBUSY));
                }
                entry.link.name = new;
            }
            LinkChange::Mac(mac) => entry.link.mac = Some(mac),
            LinkChange::Netns(ns) => {
                let target = ns.to_string();
                if target != here {
                    let moved = links.remove(pos);
                    let dest = st.namespaces.entry(target).or_default();
                    if dest.iter().any(|l| l.link.name == moved.link.name) {
                        st.namespaces.entry(here).or_default().insert(pos, moved);
                        return Err(err(EEXIST));
                    }
                    dest.push(moved);
                }
            }
        }
        Ok(())
    }

    fn delete_link_now(&self, link: LinkId) -> Result<()> {
        let mut st = self.lock();
        let op = format!("delete link {link}");
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::DeleteLink(link.clone())) {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel,
            });
        }
        let links = st.namespaces.entry(self.netns.clone()).or_default();
        let before = links.len();
        links.retain(|l| match &link {
            LinkId::Name(n) => &l.link.name != n,
            LinkId::Index(i) => l.link.index != *i,
        });
        if links.len() == before {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel: KernelError::new(ENODEV),
            });
        }
        Ok(())
    }

    fn set_vf_now(&self, pf: LinkId, vf: u32, setting: VfSetting) -> Result<()> {
        let mut st = self.lock();
        let call = NetlinkCall::SetVf {
            pf: pf.clone(),
            vf,
            setting: setting.clone(),
        };
        let err = |kernel: KernelError| NetlinkError::Vf {
            pf: pf.to_string(),
            vf,
            setting: setting.name(),
            kernel,
        };
        if let Some(kernel) = self.record(&mut st, &call) {
            return Err(err(kernel));
        }
        let links = st.namespaces.entry(self.netns.clone()).or_default();
        let Some(entry) = Self::find(links, &pf) else {
            return Err(NetlinkError::Link {
                op: format!("get link {pf}"),
                link: pf.to_string(),
                kernel: KernelError::new(ENODEV),
            });
        };
        let Some(table) = entry.vfs.as_mut() else {
            return Err(err(KernelError::new(EOPNOTSUPP)));
        };
        let Some(row) = table.iter_mut().find(|r| r.vf == vf) else {
            return Err(err(KernelError::new(EINVAL)));
        };
        if let VfSetting::Vlan { vlan, qos, .. } = setting
            && (vlan > 4095 || qos > 7)
        {
            return Err(err(KernelError::new(EINVAL)));
        }
        setting.apply_to(row);
        Ok(())
    }

    fn list_vfs_now(&self, pf: LinkId) -> Result<Vec<VfInfo>> {
        let mut st = self.lock();
        let op = format!("read the VF table of {pf}");
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::ListVfs(pf.clone())) {
            return Err(NetlinkError::Link {
                op,
                link: pf.to_string(),
                kernel,
            });
        }
        let links = st.namespaces.entry(self.netns.clone()).or_default();
        match Self::find(links, &pf) {
            Some(entry) => Ok(entry.vfs.clone().unwrap_or_default()),
            None => Err(NetlinkError::Link {
                op,
                link: pf.to_string(),
                kernel: KernelError::new(ENODEV),
            }),
        }
    }
}

impl Netlink for FakeNetlink {
    fn get_link(&self, link: LinkId) -> BoxFuture<'_, Result<Link>> {
        Box::pin(std::future::ready(self.get_link_now(link)))
    }

    fn list_links(&self) -> BoxFuture<'_, Result<Vec<Link>>> {
        Box::pin(std::future::ready(self.list_links_now()))
    }

    fn set_link(&self, link: LinkId, change: LinkChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.set_link_now(link, change)))
    }

    fn delete_link(&self, link: LinkId) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.delete_link_now(link)))
    }

    fn set_vf(&self, pf: LinkId, vf: u32, setting: VfSetting) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.set_vf_now(pf, vf, setting)))
    }

    fn list_vfs(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfInfo>>> {
        Box::pin(std::future::ready(self.list_vfs_now(pf)))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::netlink::{NetlinkHandle, VfLinkState, VlanProto};

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn link_changes_apply_in_order_and_are_recorded() {
        let fake = FakeNetlink::new();
        let idx = fake.add_link("veth0");
        let nl = NetlinkHandle::new(fake.clone());
        block_on(nl.link().set("veth0").name("eth1").mtu(9000).up().execute()).unwrap();
        let link = fake.link("eth1").unwrap();
        assert_eq!((link.index, link.mtu, link.up), (idx, 9000, true));
        assert_eq!(
            fake.calls(),
            vec![
                NetlinkCall::SetLink {
                    link: "veth0".into(),
                    change: LinkChange::Name("eth1".into())
                },
                NetlinkCall::SetLink {
                    link: "eth1".into(),
                    change: LinkChange::Mtu(9000)
                },
                NetlinkCall::SetLink {
                    link: "eth1".into(),
                    change: LinkChange::Up
                },
            ]
        );
    }

    #[test]
    fn kernel_rules_are_mimicked() {
        let fake = FakeNetlink::new();
        fake.add_link("a");
        fake.add_link("b");
        let nl = NetlinkHandle::new(fake.clone());
        let e = block_on(nl.link().set("a").name("b").execute()).unwrap_err();
        assert!(e.is_exists(), "{e}");
        block_on(nl.link().set("a").up().execute()).unwrap();
        let e = block_on(nl.link().set("a").name("c").execute()).unwrap_err();
        assert_eq!(e.errno(), Some(EBUSY));
        let e = block_on(nl.link().get("nope").execute()).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            block_on(nl.link().get("nope").execute_optional()).unwrap(),
            None
        );
        let e = block_on(nl.vf("a").set(0).trust(true).execute()).unwrap_err();
        assert!(e.is_not_supported());
        block_on(nl.link().del("b").execute()).unwrap();
        assert_eq!(block_on(nl.link().list().execute()).unwrap().len(), 1);
    }

    #[test]
    fn vf_settings_land_in_the_table_and_failures_name_the_setting() {
        let fake = FakeNetlink::new();
        fake.add_pf("eth0", 2);
        fake.fail_with_message(NetlinkOp::SetVfLinkState, EOPNOTSUPP, "no link state here");
        let nl = NetlinkHandle::new(fake.clone());
        let mac: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        let err = block_on(
            nl.vf("eth0")
                .set(1)
                .mac(mac)
                .vlan(10, 3, VlanProto::Dot1Ad)
                .max_tx_rate(100)
                .link_state(VfLinkState::Enable)
                .trust(true)
                .execute(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "set vf 1 link-state on eth0: no link state here: Operation not supported (os error 95)"
        );
        let vf1 = block_on(nl.vf("eth0").get(1).execute()).unwrap();
        assert_eq!(vf1.mac, Some(mac));
        assert_eq!(
            (vf1.vlan, vf1.qos, vf1.vlan_proto),
            (Some(10), Some(3), Some(VlanProto::Dot1Ad))
        );
        assert_eq!(vf1.max_tx_rate, Some(100));
        assert_eq!(
            vf1.trust,
            Some(false),
            "settings after the failure are not sent"
        );
        let e = block_on(nl.vf("eth0").get(7).execute()).unwrap_err();
        assert!(e.is_not_found());
        let e = block_on(nl.vf("eth0").set(7).spoofchk(false).execute()).unwrap_err();
        assert_eq!(e.errno(), Some(EINVAL));
    }

    #[test]
    fn moving_a_link_files_it_under_the_target_namespace() {
        let host = FakeNetlink::new();
        host.add_pf("eth0", 1);
        let vf_idx = host.add_link("eth0v0");
        let pod_ns = NetnsRef::path("/var/run/netns/pod1");
        let pod = host.netns(&pod_ns);
        let nl = NetlinkHandle::new(host.clone());
        block_on(nl.link().set("eth0v0").netns(pod_ns.clone()).execute()).unwrap();
        assert!(host.link("eth0v0").is_none());
        let in_pod = NetlinkHandle::new(pod.clone());
        block_on(in_pod.link().set(vf_idx).name("net1").up().execute()).unwrap();
        assert_eq!(pod.link("net1").map(|l| l.up), Some(true));
        assert_eq!(pod.calls().len(), 2);
        // one move on the host view (a single change needs no name lookup), two in the pod
        assert_eq!(host.all_calls().len(), 3);
        assert_eq!(host.all_calls()[0].netns, HOST_NETNS);
        assert_eq!(host.all_calls()[1].netns, "/var/run/netns/pod1");
    }

    #[test]
    fn predicate_rules_can_look_at_arguments() {
        let fake = FakeNetlink::new();
        fake.add_pf("eth0", 1);
        fake.fail_when(
            |c| matches!(c, NetlinkCall::SetVf { setting: VfSetting::MinTxRate(r), .. } if *r > 0),
            KernelError::new(EINVAL),
        );
        let nl = NetlinkHandle::new(fake.clone());
        block_on(nl.vf("eth0").set(0).min_tx_rate(0).execute()).unwrap();
        assert!(block_on(nl.vf("eth0").set(0).min_tx_rate(5).execute()).is_err());
        fake.clear_failures();
        block_on(nl.vf("eth0").set(0).min_tx_rate(5).execute()).unwrap();
    }
}
