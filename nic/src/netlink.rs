//! rtnetlink behind a trait we own: links (create, change, move, delete), VF settings through
//! the PF, addresses and routes.
//!
//! ```text
//!   NetlinkHandle ──link()────► LinkHandle    ──add/get/list/set/del──► Link*Request  ──execute()──┐
//!        │        ──vf(pf)────► VfHandle      ──set/get/list──────────► Vf*Request    ──execute()──┤
//!        │        ──address()─► AddressHandle ──add/del/list──────────► Address*Request ─execute()─┤
//!        │        ──route()───► RouteHandle   ──add/del/list──────────► Route*Request ──execute()──┤
//!        │        ──subscribe()─► Stream<NetlinkEvent> (ip monitor link address)                 │
//!        │                                                                                        ▼
//!        └── Arc<dyn Netlink> ◄── RtNetlink   (rtnetlink 0.24 socket, this thread's netns)
//!                             ◄── FakeNetlink (in memory, records calls; feature test-util)
//! ```
//!
//! The trait is async (its methods return boxed futures, so it can live behind `Arc<dyn _>`)
//! because its callers, the agent and the CNI plugin, are tokio code. A socket belongs to the
//! network namespace of the thread that opened it: get handles for a namespace from a
//! [`crate::host::Host`], which does that the same way for the kernel and for the fake.
//!
//! Every request is one kernel round trip per change: `do_setlink`/`do_setvfinfo` stop at the
//! first attribute that fails without saying which one, so sending one change per request is
//! what lets errors name the setting that the kernel refused.

#[cfg(test)]
mod decode_fuzz;
mod error;
mod events;
mod ip;
mod ip_requests;
mod kinds;
mod rtnl;
mod rtnl_msg;
mod socket;
mod types;
mod vf_stats;

#[cfg(any(test, feature = "test-util"))]
mod fake;

pub(crate) mod genl;

use std::sync::Arc;

use futures::future::BoxFuture;

#[cfg(any(test, feature = "test-util"))]
pub use self::fake::{FakeNetlink, HOST_NETNS, NetlinkCall, NetlinkOp, RecordedCall};
pub use self::{
    error::{KernelError, NetlinkError},
    events::{NetlinkEvent, NetlinkEvents},
    ip::{
        Address, IpFamily, IpPrefix, IpPrefixError, Route, RouteSpec, Scope, ScopeError,
        TABLE_LOCAL, TABLE_MAIN,
    },
    ip_requests::{
        AddressAddRequest, AddressDelRequest, AddressHandle, AddressListRequest, RouteAddRequest,
        RouteDelRequest, RouteHandle, RouteListRequest,
    },
    kinds::{
        Ipvlan, IpvlanFlag, IpvlanMode, LinkDetails, LinkKind, Macvlan, MacvlanMode, ModeError,
        NewLink, Veth, Vlan,
    },
    rtnl::RtNetlink,
    types::{
        Link, LinkChange, LinkId, MacAddr, MacAddrError, OperState, VfInfo, VfLinkState,
        VfLinkStateError, VfSetting, VlanProto, VlanProtoError,
    },
    vf_stats::VfStats,
};

/// Result of every netlink operation.
pub type Result<T, E = NetlinkError> = std::result::Result<T, E>;

/// The rtnetlink operations the project needs. Implemented by [`RtNetlink`] (the kernel) and
/// `FakeNetlink` (memory, for tests). Use it through [`NetlinkHandle`].
pub trait Netlink: Send + Sync + 'static {
    /// One link by name or index (`ip link show DEV`). A missing link is `ENODEV`.
    fn get_link(&self, link: LinkId) -> BoxFuture<'_, Result<Link>>;

    /// All links of this namespace (`ip link show`).
    fn list_links(&self) -> BoxFuture<'_, Result<Vec<Link>>>;

    /// One change to a link (`ip link set DEV ...`).
    fn set_link(&self, link: LinkId, change: LinkChange) -> BoxFuture<'_, Result<()>>;

    /// Deletes a link (`ip link del DEV`); deleting one end of a veth deletes both.
    fn delete_link(&self, link: LinkId) -> BoxFuture<'_, Result<()>>;

    /// One VF setting through its PF (`ip link set $PF vf N ...`).
    fn set_vf(&self, pf: LinkId, vf: u32, setting: VfSetting) -> BoxFuture<'_, Result<()>>;

    /// The PF's VF table (`ip link show $PF`, `IFLA_VFINFO_LIST` with `RTEXT_FILTER_VF`); empty
    /// for a link without VFs.
    fn list_vfs(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfInfo>>>;

    /// The traffic counters of the PF's VFs (`ip -s link show $PF`, `IFLA_VF_STATS`), in one
    /// request for all of them; empty for a link without VFs.
    fn list_vf_stats(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfStats>>>;

    /// Creates a link (`ip link add ...`). A missing parent is [`NetlinkError::NoParent`], a
    /// kind the kernel lacks [`NetlinkError::KindUnsupported`], a taken name `EEXIST`.
    fn add_link(&self, link: NewLink) -> BoxFuture<'_, Result<()>>;

    /// Adds an address (`ip addr add ADDR/LEN dev DEV`); an existing one is `EEXIST`.
    fn add_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>>;

    /// Removes an address (`ip addr del ADDR/LEN dev DEV`); a missing one is `EADDRNOTAVAIL`.
    fn delete_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>>;

    /// Every address of every link of this namespace (`ip addr show`).
    fn list_addresses(&self) -> BoxFuture<'_, Result<Vec<Address>>>;

    /// Adds a route (`ip route add ...`); an existing one is `EEXIST`.
    fn add_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>>;

    /// Deletes a route (`ip route del ...`); a missing one is `ESRCH`.
    fn delete_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>>;

    /// Every route of one family in every table (`ip route show table all`), without cached
    /// clones.
    fn list_routes(&self, family: IpFamily) -> BoxFuture<'_, Result<Vec<Route>>>;

    /// Link and address events of this namespace (`ip monitor link address`), from now on.
    fn subscribe(&self) -> BoxFuture<'_, Result<NetlinkEvents>>;
}

/// Entry point: a cheap, cloneable handle over any [`Netlink`] implementation.
#[derive(Clone)]
pub struct NetlinkHandle {
    inner: Arc<dyn Netlink>,
}

impl std::fmt::Debug for NetlinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetlinkHandle")
    }
}

impl NetlinkHandle {
    /// Wraps an implementation (a [`RtNetlink`], a `FakeNetlink`, ...).
    pub fn new(inner: impl Netlink) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Wraps a shared implementation.
    pub fn from_arc(inner: Arc<dyn Netlink>) -> Self {
        Self { inner }
    }

    /// Opens an rtnetlink socket in the calling thread's network namespace. Must be called
    /// inside a tokio runtime (the socket's connection task is spawned on it).
    pub fn connect() -> Result<Self> {
        Ok(Self::new(RtNetlink::connect()?))
    }

    /// The implementation, for passing around as a trait object.
    pub fn inner(&self) -> &Arc<dyn Netlink> {
        &self.inner
    }

    /// Link requests (`ip link ...`).
    pub fn link(&self) -> LinkHandle {
        LinkHandle {
            nl: Arc::clone(&self.inner),
        }
    }

    /// VF requests through the PF `pf` (`ip link set $PF vf ...`).
    pub fn vf(&self, pf: impl Into<LinkId>) -> VfHandle {
        VfHandle {
            nl: Arc::clone(&self.inner),
            pf: pf.into(),
        }
    }

    /// Address requests (`ip addr ...`).
    pub fn address(&self) -> AddressHandle {
        AddressHandle::new(Arc::clone(&self.inner))
    }

    /// Route requests (`ip route ...`).
    pub fn route(&self) -> RouteHandle {
        RouteHandle::new(Arc::clone(&self.inner))
    }

    /// `ip monitor link address`: link and address events of this namespace from now on, as a
    /// stream. Read the current state after subscribing, so that nothing falls between the two;
    /// on [`NetlinkEvent::Lost`] read it again.
    ///
    /// ```no_run
    /// # async fn doc(nl: nic::netlink::NetlinkHandle) -> nic::netlink::Result<()> {
    /// use futures::StreamExt;
    /// use nic::netlink::NetlinkEvent;
    /// let mut events = nl.subscribe().await?;
    /// while let Some(event) = events.next().await {
    ///     if let NetlinkEvent::Link { link } = event? {
    ///         println!("{} carrier {:?}", link.name, link.carrier);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self) -> Result<NetlinkEvents> {
        self.inner.subscribe().await
    }
}

/// Link requests.
pub struct LinkHandle {
    nl: Arc<dyn Netlink>,
}

impl LinkHandle {
    /// `ip link add [name NAME] ... type KIND ...`: set the common attributes on the request,
    /// then `execute()`.
    ///
    /// ```no_run
    /// # async fn doc(nl: nic::netlink::NetlinkHandle) -> nic::netlink::Result<()> {
    /// use nic::netlink::{Macvlan, MacvlanMode, Veth, Vlan, VlanProto};
    /// // ip link add mv0 link eth0 type macvlan mode bridge
    /// nl.link().add(Macvlan::new("eth0", MacvlanMode::Bridge)).name("mv0").execute().await?;
    /// // ip link add eth0.100 link eth0 type vlan id 100 protocol 802.1ad
    /// nl.link().add(Vlan::new("eth0", 100).proto(VlanProto::Dot1Ad)).name("eth0.100").execute().await?;
    /// // ip link add v0 type veth peer name v1
    /// nl.link().add(Veth::new("v1")).name("v0").mtu(9000).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn add(&self, kind: impl Into<LinkKind>) -> LinkAddRequest {
        LinkAddRequest {
            nl: Arc::clone(&self.nl),
            link: NewLink::new(kind),
        }
    }

    /// `ip link show DEV`.
    pub fn get(&self, link: impl Into<LinkId>) -> LinkGetRequest {
        LinkGetRequest {
            nl: Arc::clone(&self.nl),
            link: link.into(),
        }
    }

    /// `ip link show`.
    pub fn list(&self) -> LinkListRequest {
        LinkListRequest {
            nl: Arc::clone(&self.nl),
        }
    }

    /// `ip link set DEV ...`: add changes to the request, then `execute()`.
    pub fn set(&self, link: impl Into<LinkId>) -> LinkSetRequest {
        LinkSetRequest {
            nl: Arc::clone(&self.nl),
            link: link.into(),
            changes: Vec::new(),
        }
    }

    /// `ip link del DEV`.
    pub fn del(&self, link: impl Into<LinkId>) -> LinkDelRequest {
        LinkDelRequest {
            nl: Arc::clone(&self.nl),
            link: link.into(),
        }
    }
}

/// `ip link add [name NAME] [mtu N] [address MAC] [netns NS] [up] type ...`: one
/// `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct LinkAddRequest {
    nl: Arc<dyn Netlink>,
    link: NewLink,
}

impl LinkAddRequest {
    /// `name NAME` (else the kernel picks one).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.link.name = Some(name.into());
        self
    }

    /// `mtu N`.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.link.mtu = Some(mtu);
        self
    }

    /// `address MAC`.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.link.mac = Some(mac);
        self
    }

    /// `netns NS`: the link is created directly in that namespace (its parent stays here).
    pub fn netns(mut self, netns: crate::netns::NetnsRef) -> Self {
        self.link.netns = Some(netns);
        self
    }

    /// `up`: brought up as it is created.
    pub fn up(mut self) -> Self {
        self.link.up = true;
        self
    }

    /// The link this request would create.
    pub fn new_link(&self) -> &NewLink {
        &self.link
    }

    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.add_link(self.link).await
    }
}

/// `ip link show DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct LinkGetRequest {
    nl: Arc<dyn Netlink>,
    link: LinkId,
}

impl LinkGetRequest {
    /// Sends the request. A missing link is an error with `is_not_found()`.
    pub async fn execute(self) -> Result<Link> {
        self.nl.get_link(self.link).await
    }

    /// Sends the request; a missing link is `Ok(None)`.
    pub async fn execute_optional(self) -> Result<Option<Link>> {
        match self.nl.get_link(self.link).await {
            Ok(link) => Ok(Some(link)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `ip link show`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct LinkListRequest {
    nl: Arc<dyn Netlink>,
}

impl LinkListRequest {
    /// Sends the dump request; links come back sorted by index.
    pub async fn execute(self) -> Result<Vec<Link>> {
        let mut links = self.nl.list_links().await?;
        links.sort_by_key(|l| l.index);
        Ok(links)
    }
}

/// `ip link set DEV [down] [name NEW] [mtu N] [address MAC] [master M | nomaster]
/// [netns NS [name NEW]] [up]`.
///
/// Changes go out in the order they were added, one request each; the first failure stops the
/// rest. A link given by name is followed through a rename in the middle. Changes after a move
/// to another namespace fail (the link is no longer here).
#[must_use = "a request does nothing until execute() is awaited"]
pub struct LinkSetRequest {
    nl: Arc<dyn Netlink>,
    link: LinkId,
    changes: Vec<LinkChange>,
}

impl LinkSetRequest {
    /// `ip link set DEV up`.
    pub fn up(mut self) -> Self {
        self.changes.push(LinkChange::Up);
        self
    }

    /// `ip link set DEV down`.
    pub fn down(mut self) -> Self {
        self.changes.push(LinkChange::Down);
        self
    }

    /// `ip link set DEV mtu N`.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.changes.push(LinkChange::Mtu(mtu));
        self
    }

    /// `ip link set DEV name NEW` (the kernel wants the link down).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.changes.push(LinkChange::Name(name.into()));
        self
    }

    /// `ip link set DEV address MAC`.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.changes.push(LinkChange::Mac(mac));
        self
    }

    /// `ip link set DEV netns NS` (a path, a pid or an open descriptor).
    pub fn netns(mut self, netns: crate::netns::NetnsRef) -> Self {
        self.changes.push(LinkChange::Netns(netns));
        self
    }

    /// `ip link set DEV netns NS name NEW`: moves and renames in one request, so the link never
    /// exists in `NS` under its old name. The link need not be down.
    pub fn netns_rename(mut self, netns: crate::netns::NetnsRef, name: impl Into<String>) -> Self {
        self.changes.push(LinkChange::NetnsRename {
            netns,
            name: name.into(),
        });
        self
    }

    /// `ip link set DEV master MASTER` (a bridge, bond, VRF).
    pub fn master(mut self, master: impl Into<LinkId>) -> Self {
        self.changes.push(LinkChange::Master(master.into()));
        self
    }

    /// `ip link set DEV nomaster`.
    pub fn nomaster(mut self) -> Self {
        self.changes.push(LinkChange::NoMaster);
        self
    }

    /// Sends the changes, one request each, in order.
    pub async fn execute(self) -> Result<()> {
        let Self { nl, link, changes } = self;
        if changes.is_empty() {
            return Ok(());
        }
        let mut target = link;
        for change in changes {
            // A link named by name keeps being named by its current name, so errors say
            // "set mtu 9000 on eth1" rather than "on ifindex 7".
            let renamed = match (&target, &change) {
                (LinkId::Name(_), LinkChange::Name(new)) => Some(LinkId::Name(new.clone())),
                _ => None,
            };
            nl.set_link(target.clone(), change).await?;
            if let Some(new) = renamed {
                target = new;
            }
        }
        Ok(())
    }
}

/// `ip link del DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct LinkDelRequest {
    nl: Arc<dyn Netlink>,
    link: LinkId,
}

impl LinkDelRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.delete_link(self.link).await
    }
}

/// VF requests through one PF.
pub struct VfHandle {
    nl: Arc<dyn Netlink>,
    pf: LinkId,
}

impl VfHandle {
    /// `ip link set $PF vf N ...`: add settings, then `execute()`.
    pub fn set(&self, vf: u32) -> VfSetRequest {
        VfSetRequest {
            nl: Arc::clone(&self.nl),
            pf: self.pf.clone(),
            vf,
            settings: Vec::new(),
        }
    }

    /// `ip link show $PF`, the VF table.
    pub fn list(&self) -> VfListRequest {
        VfListRequest {
            nl: Arc::clone(&self.nl),
            pf: self.pf.clone(),
        }
    }

    /// `ip -s link show $PF`: every VF's traffic counters, in one request.
    pub fn stats(&self) -> VfStatsRequest {
        VfStatsRequest {
            nl: Arc::clone(&self.nl),
            pf: self.pf.clone(),
        }
    }

    /// `ip link show $PF`, one row of the VF table.
    pub fn get(&self, vf: u32) -> VfGetRequest {
        VfGetRequest {
            nl: Arc::clone(&self.nl),
            pf: self.pf.clone(),
            vf,
        }
    }
}

/// `ip link set $PF vf N [mac MAC] [vlan ID [qos Q] [proto P]] [spoofchk on|off] [trust on|off]
/// [min_tx_rate R] [max_tx_rate R] [state auto|enable|disable]`.
///
/// Settings go out in the order they were added, one request each; the first failure stops the
/// rest and names the setting (`set vf 3 min-tx-rate on eth0: Invalid argument`).
#[must_use = "a request does nothing until execute() is awaited"]
pub struct VfSetRequest {
    nl: Arc<dyn Netlink>,
    pf: LinkId,
    vf: u32,
    settings: Vec<VfSetting>,
}

impl VfSetRequest {
    /// `ip link set $PF vf N mac MAC`.
    pub fn mac(self, mac: MacAddr) -> Self {
        self.setting(VfSetting::Mac(mac))
    }

    /// `ip link set $PF vf N vlan ID qos Q proto 802.1Q|802.1ad` (VLAN 0 clears it).
    pub fn vlan(self, vlan: u16, qos: u8, proto: VlanProto) -> Self {
        self.setting(VfSetting::Vlan { vlan, qos, proto })
    }

    /// `ip link set $PF vf N spoofchk on|off`.
    pub fn spoofchk(self, on: bool) -> Self {
        self.setting(VfSetting::SpoofCheck(on))
    }

    /// `ip link set $PF vf N trust on|off`.
    pub fn trust(self, on: bool) -> Self {
        self.setting(VfSetting::Trust(on))
    }

    /// `ip link set $PF vf N min_tx_rate MBPS` (keeps the max rate).
    pub fn min_tx_rate(self, mbps: u32) -> Self {
        self.setting(VfSetting::MinTxRate(mbps))
    }

    /// `ip link set $PF vf N max_tx_rate MBPS` (keeps the min rate).
    pub fn max_tx_rate(self, mbps: u32) -> Self {
        self.setting(VfSetting::MaxTxRate(mbps))
    }

    /// `ip link set $PF vf N state auto|enable|disable`.
    pub fn link_state(self, state: VfLinkState) -> Self {
        self.setting(VfSetting::LinkState(state))
    }

    /// Adds any setting.
    pub fn setting(mut self, setting: VfSetting) -> Self {
        self.settings.push(setting);
        self
    }

    /// Sends the settings, one request each, in order.
    pub async fn execute(self) -> Result<()> {
        let Self {
            nl,
            pf,
            vf,
            settings,
        } = self;
        for setting in settings {
            nl.set_vf(pf.clone(), vf, setting).await?;
        }
        Ok(())
    }
}

/// `ip link show $PF` (the `vf N ...` lines).
#[must_use = "a request does nothing until execute() is awaited"]
pub struct VfListRequest {
    nl: Arc<dyn Netlink>,
    pf: LinkId,
}

impl VfListRequest {
    /// Sends the request; rows come back sorted by VF index.
    pub async fn execute(self) -> Result<Vec<VfInfo>> {
        let mut vfs = self.nl.list_vfs(self.pf).await?;
        vfs.sort_by_key(|v| v.vf);
        Ok(vfs)
    }
}

/// `ip link show $PF`, the `vf N` line.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct VfGetRequest {
    nl: Arc<dyn Netlink>,
    pf: LinkId,
    vf: u32,
}

impl VfGetRequest {
    /// Sends the request; a VF the PF does not report is [`NetlinkError::NoSuchVf`].
    pub async fn execute(self) -> Result<VfInfo> {
        let vfs = self.nl.list_vfs(self.pf.clone()).await?;
        let count = vfs.len();
        vfs.into_iter()
            .find(|v| v.vf == self.vf)
            .ok_or_else(|| NetlinkError::NoSuchVf {
                pf: self.pf.to_string(),
                vf: self.vf,
                count,
            })
    }
}

/// `ip -s link show $PF` (the VFs' counters).
#[must_use = "a request does nothing until execute() is awaited"]
pub struct VfStatsRequest {
    nl: Arc<dyn Netlink>,
    pf: LinkId,
}

impl VfStatsRequest {
    /// Sends the request; rows come back sorted by VF index.
    pub async fn execute(self) -> Result<Vec<VfStats>> {
        let mut rows = self.nl.list_vf_stats(self.pf).await?;
        rows.sort_by_key(|r| r.vf);
        Ok(rows)
    }
}
