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
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use futures::{channel::mpsc, future::BoxFuture};
use nix::libc::{EBUSY, EEXIST, EINVAL, ENODEV, EOPNOTSUPP, ERANGE};

use super::{
    Address, IpFamily, IpPrefix, KernelError, Link, LinkChange, LinkDetails, LinkId, LinkKind,
    MacAddr, Netlink, NetlinkError, NetlinkEvent, NetlinkEvents, NewLink, OperState, Result, Route,
    RouteSpec, VfInfo, VfSetting, VfStats,
};
use crate::netns::NetnsRef;

mod ip;

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
    /// [`Netlink::list_vf_stats`].
    ListVfStats(LinkId),
    /// [`Netlink::add_link`].
    AddLink(NewLink),
    /// [`Netlink::add_address`].
    AddAddress {
        /// The link.
        link: LinkId,
        /// The address.
        address: IpPrefix,
    },
    /// [`Netlink::delete_address`].
    DeleteAddress {
        /// The link.
        link: LinkId,
        /// The address.
        address: IpPrefix,
    },
    /// [`Netlink::list_addresses`].
    ListAddresses,
    /// [`Netlink::add_route`].
    AddRoute(RouteSpec),
    /// [`Netlink::delete_route`].
    DeleteRoute(RouteSpec),
    /// [`Netlink::list_routes`].
    ListRoutes(IpFamily),
    /// [`Netlink::subscribe`].
    Subscribe,
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
    /// Read the VFs' counters.
    ListVfStats,
    /// Create a link.
    AddLink,
    /// Move to another namespace and rename there.
    SetNetnsRename,
    /// Enslave to a master.
    SetMaster,
    /// Release from the master.
    SetNoMaster,
    /// Add an address.
    AddAddress,
    /// Delete an address.
    DeleteAddress,
    /// Dump addresses.
    ListAddresses,
    /// Add a route.
    AddRoute,
    /// Delete a route.
    DeleteRoute,
    /// Dump routes.
    ListRoutes,
    /// Subscribe to events.
    Subscribe,
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
                LinkChange::NetnsRename { .. } => NetlinkOp::SetNetnsRename,
                LinkChange::Master(_) => NetlinkOp::SetMaster,
                LinkChange::NoMaster => NetlinkOp::SetNoMaster,
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
            Self::ListVfStats(_) => NetlinkOp::ListVfStats,
            Self::AddLink(_) => NetlinkOp::AddLink,
            Self::AddAddress { .. } => NetlinkOp::AddAddress,
            Self::DeleteAddress { .. } => NetlinkOp::DeleteAddress,
            Self::ListAddresses => NetlinkOp::ListAddresses,
            Self::AddRoute(_) => NetlinkOp::AddRoute,
            Self::DeleteRoute(_) => NetlinkOp::DeleteRoute,
            Self::ListRoutes(_) => NetlinkOp::ListRoutes,
            Self::Subscribe => NetlinkOp::Subscribe,
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
    /// The other end of a veth (indexes are unique across namespaces in the fake).
    peer: Option<u32>,
}

/// One namespace: its links, addresses and routes.
#[derive(Default)]
struct Ns {
    links: Vec<FakeLink>,
    addresses: Vec<Address>,
    routes: Vec<Route>,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<String, Ns>,
    next_index: u32,
    calls: Vec<RecordedCall>,
    failures: Vec<FailureRule>,
    /// Link kinds this "kernel" has no driver for.
    missing_kinds: BTreeSet<&'static str>,
    /// Event subscribers and the namespace each listens in.
    subscribers: Vec<(String, mpsc::UnboundedSender<Result<NetlinkEvent>>)>,
    /// VF counters by (PF ifindex, VF index); a VF not here reads all zeros.
    vf_stats: BTreeMap<(u32, u32), VfStats>,
}

impl State {
    fn ns(&mut self, key: &str) -> &mut Ns {
        self.namespaces.entry(key.to_string()).or_default()
    }

    /// Sends `event` to the subscribers of namespace `ns` (dropping those that went away).
    fn emit(&mut self, ns: &str, event: NetlinkEvent) {
        self.subscribers
            .retain(|(key, tx)| key != ns || tx.unbounded_send(Ok(event.clone())).is_ok());
    }

    /// Announces the current state of link `index` (and of its veth peer) as
    /// [`NetlinkEvent::Link`] in their namespaces.
    fn announce(&mut self, index: u32) {
        let mut at = Vec::new();
        if let Some(here) = self.locate(index) {
            let peer = self.link_at(&here).and_then(|l| l.peer);
            at.push(here);
            at.extend(peer.and_then(|p| self.locate(p)));
        }
        for (key, pos) in at {
            if let Some(link) = self.link_at(&(key.clone(), pos)).map(|l| l.link.clone()) {
                self.emit(&key, NetlinkEvent::Link { link });
            }
        }
    }

    fn take_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// The namespace and position of the link with this index, wherever it is.
    fn locate(&self, index: u32) -> Option<(String, usize)> {
        self.namespaces.iter().find_map(|(key, ns)| {
            ns.links
                .iter()
                .position(|l| l.link.index == index)
                .map(|pos| (key.clone(), pos))
        })
    }

    /// Forgets a link's addresses and routes (it left the namespace or went away).
    fn forget_ip_state(ns: &mut Ns, index: u32) {
        ns.addresses.retain(|a| a.index != index);
        ns.routes.retain(|r| r.oif != Some(index));
    }

    /// A veth's carrier: up when both ends are up; other links follow their admin state.
    fn refresh_oper_state(&mut self, index: u32) {
        let Some(here) = self.locate(index) else {
            return;
        };
        let peer = self.link_at(&here).and_then(|l| l.peer);
        let mut ends = vec![here];
        ends.extend(peer.and_then(|p| self.locate(p)));
        let carrier = ends
            .iter()
            .all(|at| self.link_at(at).is_some_and(|l| l.link.up));
        for at in ends {
            if let Some(l) = self
                .namespaces
                .get_mut(&at.0)
                .and_then(|ns| ns.links.get_mut(at.1))
            {
                l.link.oper_state = match (l.link.up, carrier) {
                    (true, true) => OperState::Up,
                    (true, false) => OperState::LowerLayerDown,
                    (false, _) => OperState::Down,
                };
                l.link.carrier = Some(carrier);
            }
        }
    }

    fn link_at(&self, (key, pos): &(String, usize)) -> Option<&FakeLink> {
        self.namespaces.get(key)?.links.get(*pos)
    }
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
        let index = st.take_index();
        let link = Link {
            name: name.to_string(),
            ..fresh_link(index)
        };
        st.ns(&self.netns).links.push(FakeLink {
            link,
            vfs,
            peer: None,
        });
        index
    }

    /// Makes link creation of `kind` (`"ipvlan"`, `"vlan"`, ...) fail the way a kernel without
    /// the module does ([`NetlinkError::KindUnsupported`]).
    pub fn without_kind(&self, kind: &'static str) {
        self.lock().missing_kinds.insert(kind);
    }

    /// Destroys namespace `key` like the kernel does when its last user goes: virtual links in
    /// it are deleted (with their veth peers and children elsewhere), physical ones (no kind:
    /// PFs, VFs) move to the host namespace, renamed `devN` if their name is taken there.
    pub fn destroy_netns(&self, key: &str) {
        let mut st = self.lock();
        let Some(ns) = st.namespaces.remove(key) else {
            return;
        };
        let mut doomed = Vec::new();
        for mut l in ns.links {
            if l.link.kind.is_some() {
                doomed.push(l.link.index);
                doomed.extend(l.peer);
                continue;
            }
            let host = st.ns(HOST_NETNS);
            if host.links.iter().any(|h| h.link.name == l.link.name) {
                l.link.name = format!("dev{}", l.link.index);
            }
            l.link.master = None;
            host.links.push(l);
        }
        for ns in st.namespaces.values_mut() {
            ns.links.retain(|l| {
                let child_of_doomed =
                    l.peer.is_none() && l.link.parent.is_some_and(|p| doomed.contains(&p));
                !doomed.contains(&l.link.index) && !child_of_doomed
            });
            for index in &doomed {
                State::forget_ip_state(ns, *index);
            }
        }
    }

    /// Sends an event to this view's subscribers, as if the kernel had (a carrier change, a
    /// VF netdev appearing, [`NetlinkEvent::Lost`]). The fake's own changes (links created,
    /// changed, moved, deleted; addresses) are announced without this.
    pub fn push_event(&self, event: NetlinkEvent) {
        self.lock().emit(&self.netns, event);
    }

    /// The addresses of this view's namespace.
    pub fn addresses(&self) -> Vec<Address> {
        self.lock().ns(&self.netns).addresses.clone()
    }

    /// The routes of this view's namespace.
    pub fn routes(&self) -> Vec<Route> {
        self.lock().ns(&self.netns).routes.clone()
    }

    /// Replaces (or adds) a link with exactly these fields, keeping its VF table if it had one.
    pub fn put_link(&self, link: Link) {
        let mut st = self.lock();
        st.next_index = st.next_index.max(link.index + 1);
        let links = &mut st.ns(&self.netns).links;
        match links.iter_mut().find(|l| l.link.index == link.index) {
            Some(existing) => existing.link = link,
            None => links.push(FakeLink {
                link,
                vfs: None,
                peer: None,
            }),
        }
    }

    /// The links of this view's namespace.
    pub fn links(&self) -> Vec<Link> {
        let st = self.lock();
        st.namespaces
            .get(&self.netns)
            .map(|ns| ns.links.iter().map(|l| l.link.clone()).collect())
            .unwrap_or_default()
    }

    /// One link of this view's namespace.
    pub fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.name == name)
    }

    /// Sets the counters the PF `pf` of this view's namespace reports for VF `stats.vf`, as
    /// traffic would. Panics if there is no such PF.
    pub fn set_vf_stats(&self, pf: &str, stats: VfStats) {
        let mut st = self.lock();
        let links = &mut st.ns(&self.netns).links;
        let index = Self::find(links, &LinkId::Name(pf.to_string()))
            .unwrap_or_else(|| panic!("no link {pf}"))
            .link
            .index;
        st.vf_stats.insert((index, stats.vf), stats);
    }

    /// The VF table of a PF in this view's namespace (`None`: no such link, or no VFs).
    pub fn vfs(&self, pf: &str) -> Option<Vec<VfInfo>> {
        let st = self.lock();
        st.namespaces
            .get(&self.netns)?
            .links
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
        let links = &mut st.ns(&self.netns).links;
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
            .map(|ns| ns.links.iter().map(|l| l.link.clone()).collect())
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
        let ns = st.ns(&here);
        let taken = ns
            .links
            .iter()
            .map(|l| l.link.name.clone())
            .collect::<Vec<_>>();
        let pos = ns
            .links
            .iter()
            .position(|l| match &link {
                LinkId::Name(n) => &l.link.name == n,
                LinkId::Index(i) => l.link.index == *i,
            })
            .ok_or_else(|| err(ENODEV))?;
        let index = ns.links[pos].link.index;
        let master_index = match &change {
            LinkChange::Master(m) => {
                let Some(master) = Self::find(&mut ns.links, m) else {
                    return Err(err(ENODEV));
                };
                // do_set_master: only devices with ndo_add_slave take ports.
                if master.link.kind.as_deref() != Some("bridge") || master.link.index == index {
                    return Err(err(EOPNOTSUPP));
                }
                Some(master.link.index)
            }
            _ => None,
        };
        let entry = &mut ns.links[pos];
        match change {
            LinkChange::Up => {
                entry.link.up = true;
                st.refresh_oper_state(index);
            }
            LinkChange::Down => {
                entry.link.up = false;
                st.refresh_oper_state(index);
            }
            LinkChange::Mtu(0) => return Err(err(EINVAL)),
            LinkChange::Mtu(m) => entry.link.mtu = m,
            LinkChange::Name(new) => {
                check_name(&new).map_err(err)?;
                if entry.link.name != new && taken.contains(&new) {
                    return Err(err(EEXIST));
                }
                if entry.link.up {
                    return Err(err(EBUSY));
                }
                entry.link.name = new;
            }
            LinkChange::Mac(mac) => entry.link.mac = Some(mac),
            LinkChange::Master(_) => entry.link.master = master_index,
            LinkChange::NoMaster => entry.link.master = None,
            LinkChange::Netns(ns) => {
                Self::move_link(&mut st, &here, pos, &ns.to_string(), None).map_err(err)?;
            }
            LinkChange::NetnsRename { netns, name } => {
                check_name(&name).map_err(err)?;
                Self::move_link(&mut st, &here, pos, &netns.to_string(), Some(name))
                    .map_err(err)?;
            }
        }
        st.announce(index);
        Ok(())
    }

    /// Moves the link at `pos` of namespace `from` to namespace `to`, renamed if `name` is
    /// given. Like the kernel, it leaves its master and its addresses and routes behind.
    fn move_link(
        st: &mut State,
        from: &str,
        pos: usize,
        to: &str,
        name: Option<String>,
    ) -> std::result::Result<(), i32> {
        let current = st.ns(from).links[pos].link.name.clone();
        let name = name.unwrap_or(current);
        if to == from {
            if st
                .ns(from)
                .links
                .iter()
                .enumerate()
                .any(|(i, l)| i != pos && l.link.name == name)
            {
                return Err(EEXIST);
            }
            st.ns(from).links[pos].link.name = name;
            return Ok(());
        }
        if st.ns(to).links.iter().any(|l| l.link.name == name) {
            return Err(EEXIST);
        }
        let source = st.ns(from);
        let mut moved = source.links.remove(pos);
        State::forget_ip_state(source, moved.link.index);
        st.emit(
            from,
            NetlinkEvent::LinkRemoved {
                link: moved.link.clone(),
            },
        );
        moved.link.name = name;
        moved.link.master = None;
        st.ns(to).links.push(moved);
        Ok(())
    }

    fn add_link_now(&self, new: NewLink) -> Result<()> {
        let mut st = self.lock();
        let op = new.describe();
        let name_for_errors = new.name.clone().unwrap_or_default();
        let err = |errno: i32| NetlinkError::Link {
            op: op.clone(),
            link: name_for_errors.clone(),
            kernel: KernelError::new(errno),
        };
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::AddLink(new.clone())) {
            return Err(NetlinkError::Link {
                op,
                link: name_for_errors,
                kernel,
            });
        }
        if st.missing_kinds.contains(new.kind.name()) {
            return Err(NetlinkError::KindUnsupported {
                op,
                kind: new.kind.name(),
                module: new.kind.module(),
            });
        }
        let here = self.netns.clone();
        let parent = match new.kind.parent() {
            Some(p) => match Self::find(&mut st.ns(&here).links, p) {
                Some(l) => Some(l.link.clone()),
                None => {
                    return Err(NetlinkError::NoParent {
                        op,
                        parent: p.to_string(),
                    });
                }
            },
            None => None,
        };
        if let LinkKind::Vlan(v) = &new.kind
            && v.id >= 4095
        {
            return Err(err(ERANGE));
        }
        let target = new.netns.as_ref().map_or(here.clone(), |n| n.to_string());
        let name = match &new.name {
            Some(n) => {
                check_name(n).map_err(err)?;
                n.clone()
            }
            None => {
                let taken: Vec<_> = st
                    .ns(&target)
                    .links
                    .iter()
                    .map(|l| l.link.name.clone())
                    .collect();
                (0..)
                    .map(|i| format!("{}{i}", new.kind.name()))
                    .find(|n| !taken.contains(n))
                    .unwrap_or_default()
            }
        };
        if st.ns(&target).links.iter().any(|l| l.link.name == name) {
            return Err(err(EEXIST));
        }
        let index = st.take_index();
        let mut link = Link {
            name,
            mtu: new.mtu.or(parent.as_ref().map(|p| p.mtu)).unwrap_or(1500),
            up: new.up,
            kind: Some(new.kind.name().to_string()),
            parent: parent.as_ref().map(|p| p.index),
            details: LinkDetails::of(&new.kind),
            ..fresh_link(index)
        };
        if let Some(mac) = new.mac {
            link.mac = Some(mac);
        }
        let mut peer = None;
        if let LinkKind::Veth(v) = &new.kind {
            check_name(&v.peer).map_err(err)?;
            let peer_ns = v
                .peer_netns
                .as_ref()
                .map_or(here.clone(), |n| n.to_string());
            if st.ns(&peer_ns).links.iter().any(|l| l.link.name == v.peer)
                || (peer_ns == target && v.peer == link.name)
            {
                return Err(err(EEXIST));
            }
            let peer_index = st.take_index();
            let peer_link = Link {
                name: v.peer.clone(),
                mtu: link.mtu,
                kind: Some("veth".into()),
                parent: Some(index),
                ..fresh_link(peer_index)
            };
            link.parent = Some(peer_index);
            st.ns(&peer_ns).links.push(FakeLink {
                link: peer_link,
                vfs: None,
                peer: Some(index),
            });
            peer = Some(peer_index);
        }
        st.ns(&target).links.push(FakeLink {
            link,
            vfs: None,
            peer,
        });
        st.refresh_oper_state(index);
        st.announce(index);
        Ok(())
    }

    fn subscribe_now(&self) -> Result<NetlinkEvents> {
        let mut st = self.lock();
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::Subscribe) {
            return Err(NetlinkError::Events(kernel.to_io()));
        }
        let (tx, rx) = mpsc::unbounded();
        st.subscribers.push((self.netns.clone(), tx));
        Ok(Box::pin(rx))
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
        let Some(gone) = Self::find(&mut st.ns(&self.netns).links, &link).map(|l| l.clone()) else {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel: KernelError::new(ENODEV),
            });
        };
        // The kernel takes a veth's peer and every macvlan/ipvlan/vlan on top of the link
        // with it, in whatever namespace they are.
        let mut doomed = vec![gone.link.index];
        doomed.extend(gone.peer);
        for ns in st.namespaces.values() {
            for l in &ns.links {
                if l.peer.is_none() && l.link.parent.is_some_and(|p| p == gone.link.index) {
                    doomed.push(l.link.index);
                }
            }
        }
        let removed: Vec<_> = st
            .namespaces
            .iter()
            .flat_map(|(key, ns)| {
                ns.links
                    .iter()
                    .filter(|l| doomed.contains(&l.link.index))
                    .map(|l| (key.clone(), l.link.clone()))
            })
            .collect();
        for (key, link) in removed {
            st.emit(&key, NetlinkEvent::LinkRemoved { link });
        }
        for ns in st.namespaces.values_mut() {
            ns.links.retain(|l| !doomed.contains(&l.link.index));
            for l in &mut ns.links {
                if l.link.master.is_some_and(|m| doomed.contains(&m)) {
                    l.link.master = None;
                }
            }
            for index in &doomed {
                State::forget_ip_state(ns, *index);
            }
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
        let links = &mut st.ns(&self.netns).links;
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
        let links = &mut st.ns(&self.netns).links;
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

impl FakeNetlink {
    fn list_vf_stats_now(&self, pf: LinkId) -> Result<Vec<VfStats>> {
        let mut st = self.lock();
        let op = format!("read the VF counters of {pf}");
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::ListVfStats(pf.clone())) {
            return Err(NetlinkError::Link {
                op,
                link: pf.to_string(),
                kernel,
            });
        }
        let links = &mut st.ns(&self.netns).links;
        let Some(entry) = Self::find(links, &pf) else {
            return Err(NetlinkError::Link {
                op,
                link: pf.to_string(),
                kernel: KernelError::new(ENODEV),
            });
        };
        let index = entry.link.index;
        let vfs: Vec<u32> = entry.vfs.iter().flatten().map(|v| v.vf).collect();
        Ok(vfs
            .into_iter()
            .map(|vf| {
                st.vf_stats.get(&(index, vf)).copied().unwrap_or(VfStats {
                    vf,
                    ..VfStats::default()
                })
            })
            .collect())
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

    fn list_vf_stats(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfStats>>> {
        Box::pin(std::future::ready(self.list_vf_stats_now(pf)))
    }

    fn add_link(&self, link: NewLink) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.add_link_now(link)))
    }

    fn add_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.address_now(link, address, true)))
    }

    fn delete_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.address_now(link, address, false)))
    }

    fn list_addresses(&self) -> BoxFuture<'_, Result<Vec<Address>>> {
        Box::pin(std::future::ready(self.list_addresses_now()))
    }

    fn add_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.route_now(route, true)))
    }

    fn delete_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.route_now(route, false)))
    }

    fn list_routes(&self, family: IpFamily) -> BoxFuture<'_, Result<Vec<Route>>> {
        Box::pin(std::future::ready(self.list_routes_now(family)))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<NetlinkEvents>> {
        Box::pin(std::future::ready(self.subscribe_now()))
    }
}

/// A link as the fake makes it: down, MTU 1500, a locally administered MAC from its index.
fn fresh_link(index: u32) -> Link {
    let [a, b] = u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes();
    Link {
        index,
        mtu: 1500,
        mac: Some(MacAddr([0x02, 0, 0, 0, a, b])),
        oper_state: OperState::Down,
        ..Default::default()
    }
}

/// `dev_valid_name`: 1-15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
fn check_name(name: &str) -> std::result::Result<(), i32> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace);
    if bad { Err(EINVAL) } else { Ok(()) }
}

#[cfg(test)]
mod tests;
