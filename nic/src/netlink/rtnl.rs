//! [`Netlink`] on the kernel: rtnetlink 0.24 / netlink-packet-route 0.34.
//!
//! Messages are built with netlink-packet-route's types and sent through
//! `rtnetlink::Handle::request`, not rtnetlink's request builders, because the builders reduce
//! an `NLMSG_ERROR` to its errno and we want the extack text as well.

use std::os::fd::AsRawFd;

use futures::{StreamExt, future::BoxFuture};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::AddressMessage,
    link::{
        InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, LinkVfInfo,
        State, VfInfo as RawVfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate, VfInfoSpoofCheck,
        VfInfoTrust, VfInfoVlan, VfLinkState as RawVfLinkState, VfVlan, VfVlanInfo, VlanProtocol,
    },
    route::RouteMessage,
};
use netlink_sys::AsyncSocket;
use nix::libc::{ENODEV, EOPNOTSUPP};
use rtnetlink::{Handle, LinkUnspec};

use super::{
    Address, IpFamily, IpPrefix, KernelError, Link, LinkChange, LinkId, LinkKind, MacAddr, Netlink,
    NetlinkError, NetlinkEvents, NewLink, OperState, Result, Route, RouteSpec, VfInfo, VfLinkState,
    VfSetting, VfStats, VlanProto, events,
    rtnl_msg::{
        Resolved, address_from_message, address_message, details_from_info, new_link_message,
        route_from_message, route_message,
    },
    socket, vf_stats,
};
use crate::netns::NetnsRef;

/// What an `RTM_GETLINK` asks for besides the link itself.
#[derive(Clone, Copy)]
enum Read {
    Link,
    Vfs,
    VfStats,
}

/// The kernel's rtnetlink, in the network namespace of the thread that called
/// [`RtNetlink::connect`].
#[derive(Clone, Debug)]
pub struct RtNetlink {
    handle: Handle,
}

/// Why one request failed, before it is given the link's name.
enum Failure {
    Kernel(KernelError),
    Other(String),
}

impl RtNetlink {
    /// Opens the socket (with `NETLINK_EXT_ACK` and `NETLINK_CAP_ACK`, so errors carry the
    /// kernel's message) and spawns its connection task on the current tokio runtime.
    pub fn connect() -> Result<Self> {
        let (mut conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        socket::want_extack(conn.socket_mut().socket_mut()).map_err(NetlinkError::Connect)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Sends one request with `flags` (`NLM_F_REQUEST` is added) and collects the replies.
    async fn send(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags | NLM_F_REQUEST;
        let mut handle = self.handle.clone();
        let mut replies = handle
            .request(req)
            .map_err(|e| Failure::Other(format!("netlink connection is gone ({e})")))?;
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            let reply_flags = reply.header.flags;
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(err) => {
                    if let Some(kernel) = KernelError::from_error_message(reply_flags, &err) {
                        return Err(Failure::Kernel(kernel));
                    }
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(Failure::Other("netlink receive buffer overrun".into()));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// [`Self::send`], keeping only the `RTM_NEWLINK` replies.
    async fn send_link(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<LinkMessage>, Failure> {
        Ok(self
            .send(msg, flags)
            .await?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// `RTM_GETLINK` for one link, optionally with `RTEXT_FILTER_VF`.
    async fn get_message(&self, link: &LinkId, with_vfs: bool) -> Result<LinkMessage> {
        let read = if with_vfs { Read::Vfs } else { Read::Link };
        self.read_message(link, read).await
    }

    async fn read_message(&self, link: &LinkId, read: Read) -> Result<LinkMessage> {
        let mut msg = LinkMessage::default();
        match link {
            LinkId::Index(i) => msg.header.index = *i,
            LinkId::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.clone())),
        }
        match read {
            Read::Link => {}
            // RTEXT_FILTER_SKIP_STATS drops IFLA_VF_STATS, which would grow the reply by about
            // a hundred bytes per VF for counters the VF table does not need.
            Read::Vfs => msg.attributes.push(LinkAttribute::ExtMask(vec![
                LinkExtentMask::Vf,
                LinkExtentMask::SkipStats,
            ])),
            Read::VfStats => msg
                .attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf])),
        }
        let op = match read {
            Read::Link => format!("get link {link}"),
            Read::Vfs => format!("read the VF table of {link}"),
            Read::VfStats => format!("read the VF counters of {link}"),
        };
        let mut replies = self
            .send_link(RouteNetlinkMessage::GetLink(msg), 0)
            .await
            .map_err(|f| link_error(op.clone(), link, f))?;
        replies.pop().ok_or_else(|| NetlinkError::Unexpected {
            op,
            link: link.to_string(),
            detail: "no RTM_NEWLINK in the reply".into(),
        })
    }

    async fn index_of(&self, link: &LinkId) -> Result<u32> {
        match link {
            LinkId::Index(i) => Ok(*i),
            LinkId::Name(_) => Ok(self.get_message(link, false).await?.header.index),
        }
    }

    async fn set_link_impl(&self, link: LinkId, change: LinkChange) -> Result<()> {
        let name = link.to_string();
        let op = change.describe(&name);
        let index = self.index_of(&link).await.map_err(|e| relabel(e, &op))?;
        let builder = LinkUnspec::new_with_index(index);
        // Keep an opened namespace file alive until the request is answered.
        let mut _netns_fd = None;
        let msg = match &change {
            LinkChange::Up => builder.up().build(),
            LinkChange::Down => builder.down().build(),
            LinkChange::Mtu(mtu) => builder.mtu(*mtu).build(),
            LinkChange::Name(new) => builder.name(new.clone()).build(),
            LinkChange::Mac(mac) => builder.address(mac.0.to_vec()).build(),
            LinkChange::Netns(ns) => {
                let fd = ns.open().map_err(|error| NetlinkError::Netns {
                    link: name.clone(),
                    error,
                })?;
                let msg = builder.setns_by_fd(fd.as_raw_fd()).build();
                _netns_fd = Some(fd);
                msg
            }
            // One RTM_NEWLINK with IFLA_NET_NS_FD and IFLA_IFNAME: the kernel renames the link
            // as it moves it (dev_change_net_namespace), so the old name never shows up there.
            LinkChange::NetnsRename { netns, name: new } => {
                let fd = netns.open().map_err(|error| NetlinkError::Netns {
                    link: name.clone(),
                    error,
                })?;
                let msg = builder
                    .setns_by_fd(fd.as_raw_fd())
                    .name(new.clone())
                    .build();
                _netns_fd = Some(fd);
                msg
            }
            LinkChange::Master(master) => {
                let m = self.index_of(master).await.map_err(|e| relabel(e, &op))?;
                builder.controller(m).build()
            }
            LinkChange::NoMaster => builder.nocontroller().build(),
        };
        self.send(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .await
            .map_err(|f| link_error(op, &link, f))?;
        Ok(())
    }

    async fn add_link_impl(&self, link: NewLink) -> Result<()> {
        let op = link.describe();
        let name = link.name.clone().unwrap_or_default();
        let parent = match link.kind.parent() {
            Some(p) => match self.index_of(p).await {
                Ok(i) => Some(i),
                Err(e) if e.is_not_found() => {
                    return Err(NetlinkError::NoParent {
                        op,
                        parent: p.to_string(),
                    });
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let open = |ns: &Option<NetnsRef>| {
            ns.as_ref()
                .map(|ns| ns.open())
                .transpose()
                .map_err(|error| NetlinkError::Netns {
                    link: name.clone(),
                    error,
                })
        };
        // Keep the namespace descriptors open until the kernel has answered.
        let netns_fd = open(&link.netns)?;
        let peer_fd = match &link.kind {
            LinkKind::Veth(v) => open(&v.peer_netns)?,
            _ => None,
        };
        let resolved = Resolved {
            parent,
            netns: netns_fd.as_ref().map(|fd| fd.as_raw_fd()),
            peer_netns: peer_fd.as_ref().map(|fd| fd.as_raw_fd()),
        };
        let msg = new_link_message(&link, &resolved);
        let result = self
            .send(
                RouteNetlinkMessage::NewLink(msg),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            // rtnl_newlink: no rtnl_link_ops for the kind even after request_module.
            Err(Failure::Kernel(k))
                if k.errno == EOPNOTSUPP
                    && k.message
                        .as_deref()
                        .is_none_or(|m| m.contains("Unknown device type")) =>
            {
                Err(NetlinkError::KindUnsupported {
                    op,
                    kind: link.kind.name(),
                    module: link.kind.module(),
                })
            }
            Err(Failure::Kernel(k)) if k.errno == ENODEV && parent.is_some() => {
                Err(NetlinkError::NoParent {
                    op,
                    parent: link
                        .kind
                        .parent()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                })
            }
            Err(f) => Err(link_error(op, &LinkId::Name(name), f)),
        }
    }

    async fn address_impl(&self, link: LinkId, address: IpPrefix, add: bool) -> Result<()> {
        let (verb, msg, flags) = if add {
            ("add", true, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        } else {
            ("delete", false, NLM_F_ACK)
        };
        let op = format!("{verb} address {address} on {link}");
        let index = self.index_of(&link).await.map_err(|e| relabel(e, &op))?;
        let body = address_message(index, &address);
        let msg = if msg {
            RouteNetlinkMessage::NewAddress(body)
        } else {
            RouteNetlinkMessage::DelAddress(body)
        };
        self.send(msg, flags)
            .await
            .map_err(|f| link_error(op, &link, f))?;
        Ok(())
    }

    async fn route_impl(&self, spec: RouteSpec, add: bool) -> Result<()> {
        let op = format!(
            "{} route {}",
            if add { "add" } else { "delete" },
            spec.describe()
        );
        let dev = match &spec.dev {
            Some(d) => Some(self.index_of(d).await.map_err(|e| relabel(e, &op))?),
            None => None,
        };
        let body = route_message(&spec, dev, !add);
        let (msg, flags) = if add {
            (
                RouteNetlinkMessage::NewRoute(body),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
        } else {
            (RouteNetlinkMessage::DelRoute(body), NLM_F_ACK)
        };
        self.send(msg, flags).await.map_err(|f| match f {
            Failure::Kernel(kernel) => NetlinkError::Route { op, kernel },
            Failure::Other(detail) => NetlinkError::Unexpected {
                op,
                link: spec.dev.map(|d| d.to_string()).unwrap_or_default(),
                detail,
            },
        })?;
        Ok(())
    }

    async fn dump(
        &self,
        msg: RouteNetlinkMessage,
        what: &'static str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.send(msg, NLM_F_DUMP).await.map_err(|f| match f {
            Failure::Kernel(kernel) => NetlinkError::Dump { what, kernel },
            Failure::Other(detail) => NetlinkError::Unexpected {
                op: format!("list {what}"),
                link: String::new(),
                detail,
            },
        })
    }

    async fn set_vf_impl(&self, pf: LinkId, vf: u32, setting: VfSetting) -> Result<()> {
        let index = self.index_of(&pf).await?;
        let attr = match setting {
            VfSetting::Mac(mac) => RawVfInfo::Mac(VfInfoMac::new(vf, &mac.0)),
            VfSetting::Vlan {
                vlan,
                qos,
                proto: VlanProto::Dot1Q,
            } => RawVfInfo::Vlan(VfInfoVlan::new(vf, vlan.into(), qos.into())),
            // IFLA_VF_VLAN has no protocol field; only the IFLA_VF_VLAN_LIST form carries one.
            VfSetting::Vlan {
                vlan,
                qos,
                proto: VlanProto::Dot1Ad,
            } => RawVfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                vf,
                vlan.into(),
                qos.into(),
                VlanProtocol::Ieee8021Ad,
            ))]),
            VfSetting::SpoofCheck(on) => RawVfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            VfSetting::Trust(on) => RawVfInfo::Trust(VfInfoTrust::new(vf, on)),
            // IFLA_VF_RATE sets both rates at once: keep the one not asked for.
            VfSetting::MinTxRate(min) => {
                let max = self.current_rates(&pf, index, vf, setting.name()).await?.1;
                RawVfInfo::Rate(VfInfoRate::new(vf, min, max))
            }
            VfSetting::MaxTxRate(max) => {
                let min = self.current_rates(&pf, index, vf, setting.name()).await?.0;
                RawVfInfo::Rate(VfInfoRate::new(vf, min, max))
            }
            VfSetting::LinkState(state) => {
                RawVfInfo::LinkState(VfInfoLinkState::new(vf, raw_link_state(state)))
            }
        };
        let msg = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![attr])]))
            .build();
        self.send(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .await
            .map_err(|f| match f {
                Failure::Kernel(kernel) => NetlinkError::Vf {
                    pf: pf.to_string(),
                    vf,
                    setting: setting.name(),
                    kernel,
                },
                Failure::Other(detail) => NetlinkError::Unexpected {
                    op: format!("set vf {vf} {} on {pf}", setting.name()),
                    link: pf.to_string(),
                    detail,
                },
            })?;
        Ok(())
    }

    /// (min, max) TX rate of one VF; 0 when the PF does not report them.
    async fn current_rates(
        &self,
        pf: &LinkId,
        index: u32,
        vf: u32,
        setting: &'static str,
    ) -> Result<(u32, u32)> {
        let msg = self
            .get_message(&LinkId::Index(index), true)
            .await
            .map_err(|e| match e {
                NetlinkError::Link { kernel, .. } => NetlinkError::Vf {
                    pf: pf.to_string(),
                    vf,
                    setting,
                    kernel,
                },
                other => other,
            })?;
        let row = vf_table_from_message(&msg).into_iter().find(|r| r.vf == vf);
        match row {
            Some(r) => Ok((r.min_tx_rate.unwrap_or(0), r.max_tx_rate.unwrap_or(0))),
            None => Ok((0, 0)),
        }
    }
}

/// A failed link lookup made on behalf of `op`, said in `op`'s words: "add address 10.0.0.2/24
/// on eth9: No such device".
fn relabel(e: NetlinkError, op: &str) -> NetlinkError {
    match e {
        NetlinkError::Link { link, kernel, .. } => NetlinkError::Link {
            op: op.to_string(),
            link,
            kernel,
        },
        other => other,
    }
}

fn link_error(op: String, link: &LinkId, failure: Failure) -> NetlinkError {
    match failure {
        Failure::Kernel(kernel) => NetlinkError::Link {
            op,
            link: link.to_string(),
            kernel,
        },
        Failure::Other(detail) => NetlinkError::Unexpected {
            op,
            link: link.to_string(),
            detail,
        },
    }
}

impl Netlink for RtNetlink {
    fn get_link(&self, link: LinkId) -> BoxFuture<'_, Result<Link>> {
        Box::pin(async move { Ok(link_from_message(&self.get_message(&link, false).await?)) })
    }

    fn list_links(&self) -> BoxFuture<'_, Result<Vec<Link>>> {
        Box::pin(async move {
            let replies = self
                .send_link(
                    RouteNetlinkMessage::GetLink(LinkMessage::default()),
                    NLM_F_DUMP,
                )
                .await
                .map_err(|f| match f {
                    Failure::Kernel(kernel) => NetlinkError::List { kernel },
                    Failure::Other(detail) => NetlinkError::Unexpected {
                        op: "list links".into(),
                        link: String::new(),
                        detail,
                    },
                })?;
            Ok(replies.iter().map(link_from_message).collect())
        })
    }

    fn set_link(&self, link: LinkId, change: LinkChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.set_link_impl(link, change))
    }

    fn delete_link(&self, link: LinkId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let op = format!("delete link {link}");
            let index = self.index_of(&link).await.map_err(|e| relabel(e, &op))?;
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            self.send(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
                .await
                .map_err(|f| link_error(op, &link, f))?;
            Ok(())
        })
    }

    fn set_vf(&self, pf: LinkId, vf: u32, setting: VfSetting) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.set_vf_impl(pf, vf, setting))
    }

    fn list_vfs(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfInfo>>> {
        Box::pin(async move { Ok(vf_table_from_message(&self.get_message(&pf, true).await?)) })
    }

    fn list_vf_stats(&self, pf: LinkId) -> BoxFuture<'_, Result<Vec<VfStats>>> {
        Box::pin(async move {
            let msg = self.read_message(&pf, Read::VfStats).await?;
            Ok(vf_stats::from_message(&msg))
        })
    }

    fn add_link(&self, link: NewLink) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.add_link_impl(link))
    }

    fn add_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.address_impl(link, address, true))
    }

    fn delete_address(&self, link: LinkId, address: IpPrefix) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.address_impl(link, address, false))
    }

    fn list_addresses(&self) -> BoxFuture<'_, Result<Vec<Address>>> {
        Box::pin(async move {
            let msg = RouteNetlinkMessage::GetAddress(AddressMessage::default());
            Ok(self
                .dump(msg, "addresses")
                .await?
                .iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewAddress(a) => address_from_message(a),
                    _ => None,
                })
                .collect())
        })
    }

    fn add_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.route_impl(route, true))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<NetlinkEvents>> {
        Box::pin(async { events::subscribe() })
    }

    fn delete_route(&self, route: RouteSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.route_impl(route, false))
    }

    fn list_routes(&self, family: IpFamily) -> BoxFuture<'_, Result<Vec<Route>>> {
        Box::pin(async move {
            let mut req = RouteMessage::default();
            req.header.address_family = match family {
                IpFamily::V4 => AddressFamily::Inet,
                IpFamily::V6 => AddressFamily::Inet6,
            };
            Ok(self
                .dump(RouteNetlinkMessage::GetRoute(req), "routes")
                .await?
                .iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewRoute(r) => route_from_message(r),
                    _ => None,
                })
                .collect())
        })
    }
}

fn raw_link_state(state: VfLinkState) -> RawVfLinkState {
    match state {
        VfLinkState::Auto => RawVfLinkState::Auto,
        VfLinkState::Enable => RawVfLinkState::Enable,
        VfLinkState::Disable => RawVfLinkState::Disable,
    }
}

/// Our [`Link`] from an `RTM_NEWLINK`.
pub(crate) fn link_from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        up: msg.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) => link.mac = MacAddr::from_slice(a),
            LinkAttribute::OperState(s) => link.oper_state = oper_state(*s),
            LinkAttribute::Carrier(c) => link.carrier = Some(*c != 0),
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::Link(p) if *p != 0 && *p != msg.header.index => link.parent = Some(*p),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind_name(kind)),
                        LinkInfo::Data(data) => link.details = details_from_info(data),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Other(s) => s.clone(),
        k => k.to_string(),
    }
}

fn oper_state(s: State) -> OperState {
    match s {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

/// The VF table from an `RTM_NEWLINK` read with `RTEXT_FILTER_VF`.
pub(crate) fn vf_table_from_message(msg: &LinkMessage) -> Vec<VfInfo> {
    let mut table = Vec::new();
    for attr in &msg.attributes {
        let LinkAttribute::VfInfoList(list) = attr else {
            continue;
        };
        for LinkVfInfo(fields) in list {
            let mut row = VfInfo::default();
            let mut vf = None;
            for field in fields {
                match field {
                    RawVfInfo::Mac(m) => {
                        vf = Some(m.vf_id);
                        row.mac = m.mac.get(..6).and_then(MacAddr::from_slice);
                    }
                    RawVfInfo::Vlan(v) => {
                        vf = Some(v.vf_id);
                        row.vlan = u16::try_from(v.vlan_id).ok();
                        row.qos = u8::try_from(v.qos).ok();
                    }
                    RawVfInfo::VlanList(list) => {
                        for entry in list {
                            if let VfVlan::Info(info) = entry {
                                vf = Some(info.vf_id);
                                row.vlan_proto = Some(match info.protocol {
                                    VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
                                    _ => VlanProto::Dot1Q,
                                });
                            }
                        }
                    }
                    RawVfInfo::Rate(r) => {
                        vf = Some(r.vf_id);
                        row.min_tx_rate = Some(r.min_tx_rate);
                        row.max_tx_rate = Some(r.max_tx_rate);
                    }
                    RawVfInfo::SpoofCheck(s) => {
                        vf = Some(s.vf_id);
                        row.spoofchk = Some(s.enabled);
                    }
                    RawVfInfo::Trust(t) => {
                        vf = Some(t.vf_id);
                        row.trust = Some(t.enabled);
                    }
                    RawVfInfo::LinkState(l) => {
                        vf = Some(l.vf_id);
                        row.link_state = match l.state {
                            RawVfLinkState::Auto => Some(VfLinkState::Auto),
                            RawVfLinkState::Enable => Some(VfLinkState::Enable),
                            RawVfLinkState::Disable => Some(VfLinkState::Disable),
                            _ => None,
                        };
                    }
                    _ => {}
                }
            }
            if let Some(vf) = vf {
                row.vf = vf;
                table.push(row);
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NLA_F_NESTED, Parseable};
    use netlink_packet_route::link::{LinkHeader, VfInfoTxRate};

    use super::*;

    fn pf_message() -> LinkMessage {
        let header = LinkHeader {
            index: 4,
            flags: LinkFlags::Up | LinkFlags::Broadcast,
            ..Default::default()
        };
        let mut msg = LinkMessage::default();
        msg.header = header;
        msg.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::VfInfoList(vec![
                LinkVfInfo(vec![
                    RawVfInfo::Mac(VfInfoMac::new(0, &[2, 0, 0, 0, 0, 1])),
                    RawVfInfo::Vlan(VfInfoVlan::new(0, 10, 2)),
                    RawVfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                        0,
                        10,
                        2,
                        VlanProtocol::Ieee8021Ad,
                    ))]),
                    RawVfInfo::TxRate(VfInfoTxRate::new(0, 100)),
                    RawVfInfo::Rate(VfInfoRate::new(0, 0, 100)),
                    RawVfInfo::SpoofCheck(VfInfoSpoofCheck::new(0, false)),
                    RawVfInfo::LinkState(VfInfoLinkState::new(0, RawVfLinkState::Auto)),
                    RawVfInfo::Trust(VfInfoTrust::new(0, true)),
                ]),
                LinkVfInfo(vec![
                    RawVfInfo::Mac(VfInfoMac::new(1, &[0; 6])),
                    RawVfInfo::Vlan(VfInfoVlan::new(1, 0, 0)),
                ]),
            ]),
        ];
        msg
    }

    #[test]
    fn link_fields_come_from_the_message() {
        let link = link_from_message(&pf_message());
        assert_eq!(link.index, 4);
        assert_eq!(link.name, "eth0");
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.mac.unwrap().to_string(), "52:54:00:12:34:56");
        assert!(link.up);
        assert_eq!(link.oper_state, OperState::Up);
        assert_eq!(link.kind, None);
    }

    #[test]
    fn vf_table_survives_an_encode_decode_round_trip() {
        let msg = pf_message();
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let parsed = LinkMessage::parse(buf.as_slice()).unwrap();
        let table = vf_table_from_message(&parsed);
        assert_eq!(table.len(), 2);
        let vf0 = &table[0];
        assert_eq!(vf0.vf, 0);
        assert_eq!(vf0.mac.unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(
            (vf0.vlan, vf0.qos, vf0.vlan_proto),
            (Some(10), Some(2), Some(VlanProto::Dot1Ad))
        );
        assert_eq!((vf0.min_tx_rate, vf0.max_tx_rate), (Some(0), Some(100)));
        assert_eq!((vf0.spoofchk, vf0.trust), (Some(false), Some(true)));
        assert_eq!(vf0.link_state, Some(VfLinkState::Auto));
        let vf1 = &table[1];
        assert_eq!((vf1.vf, vf1.vlan, vf1.spoofchk), (1, Some(0), None));
    }

    /// The SETLINK for `vf 3 vlan 10 qos 2 proto 802.1ad` nests
    /// IFLA_VFINFO_LIST(22) > IFLA_VF_INFO(1) > IFLA_VF_VLAN_LIST(12) > IFLA_VF_VLAN_INFO(1).
    #[test]
    fn dot1ad_vlan_goes_out_as_a_vlan_list() {
        let attr = LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![RawVfInfo::VlanList(vec![
            VfVlan::Info(VfVlanInfo::new(3, 10, 2, VlanProtocol::Ieee8021Ad)),
        ])])]);
        let mut buf = vec![0; attr.buffer_len()];
        attr.emit(&mut buf);
        let u16_at = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        assert_eq!(u16_at(2) & !NLA_F_NESTED, 22);
        assert_eq!(u16_at(6) & !NLA_F_NESTED, 1);
        assert_eq!(u16_at(10) & !NLA_F_NESTED, 12);
        assert_eq!(u16_at(14), 1);
        // struct ifla_vf_vlan_info { vf, vlan, qos, __be16 vlan_proto }
        assert_eq!((u32_at(16), u32_at(20), u32_at(24)), (3, 10, 2));
        assert_eq!([buf[28], buf[29]], [0x88, 0xa8]);
    }
}
