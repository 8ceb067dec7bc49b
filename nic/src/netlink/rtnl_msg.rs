//! Pure message work for [`super::RtNetlink`]: the `RTM_NEWLINK` that creates a link, address and
//! route messages, and reading them back into our types. No I/O here, so all of it is tested
//! through encode/decode round trips.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::RawFd,
};

use netlink_packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressMessage},
    link::{
        InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, InfoVlan, IpVlanFlags, IpVlanMode,
        LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMacAddressMode, MacVlanMode,
        VlanProtocol,
    },
    route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
};

use super::{
    Address, IpFamily, IpPrefix, IpvlanFlag, IpvlanMode, LinkDetails, LinkKind, MacAddr,
    MacvlanMode, NewLink, Route, RouteSpec, Scope, VlanProto,
};

/// Descriptors and indexes resolved before a create request is built.
pub(crate) struct Resolved {
    /// The parent's ifindex (macvlan, ipvlan, vlan).
    pub parent: Option<u32>,
    /// Namespace for the link itself.
    pub netns: Option<RawFd>,
    /// Namespace for a veth peer.
    pub peer_netns: Option<RawFd>,
}

/// The `RTM_NEWLINK` (with `NLM_F_CREATE | NLM_F_EXCL`) that creates `link`.
pub(crate) fn new_link_message(link: &NewLink, r: &Resolved) -> LinkMessage {
    let mut msg = LinkMessage::default();
    if link.up {
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
    }
    let attrs = &mut msg.attributes;
    if let Some(name) = &link.name {
        attrs.push(LinkAttribute::IfName(name.clone()));
    }
    if let Some(mtu) = link.mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = link.mac {
        attrs.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(parent) = r.parent {
        attrs.push(LinkAttribute::Link(parent));
    }
    if let Some(fd) = r.netns {
        attrs.push(LinkAttribute::NetNsFd(fd));
    }
    let (kind, data) = match &link.kind {
        LinkKind::Veth(v) => {
            let mut peer = LinkMessage::default();
            peer.attributes.push(LinkAttribute::IfName(v.peer.clone()));
            if let Some(fd) = r.peer_netns {
                peer.attributes.push(LinkAttribute::NetNsFd(fd));
            }
            (InfoKind::Veth, Some(InfoData::Veth(InfoVeth::Peer(peer))))
        }
        LinkKind::Macvlan(m) => {
            let mut data = vec![InfoMacVlan::Mode(raw_macvlan_mode(m.mode))];
            if m.mode == MacvlanMode::Source && !m.source_macs.is_empty() {
                data.push(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set));
                data.push(InfoMacVlan::MacAddrData(
                    m.source_macs
                        .iter()
                        .map(|mac| InfoMacVlan::MacAddr(mac.0))
                        .collect(),
                ));
            }
            (InfoKind::MacVlan, Some(InfoData::MacVlan(data)))
        }
        LinkKind::Ipvlan(i) => {
            let mode = match i.mode {
                IpvlanMode::L2 => IpVlanMode::L2,
                IpvlanMode::L3 => IpVlanMode::L3,
                IpvlanMode::L3s => IpVlanMode::L3S,
            };
            let flags = match i.flag {
                IpvlanFlag::Bridge => IpVlanFlags::empty(),
                IpvlanFlag::Private => IpVlanFlags::Private,
                IpvlanFlag::Vepa => IpVlanFlags::Vepa,
            };
            let data = vec![InfoIpVlan::Mode(mode), InfoIpVlan::Flags(flags)];
            (InfoKind::IpVlan, Some(InfoData::IpVlan(data)))
        }
        LinkKind::Vlan(v) => {
            let proto = match v.proto {
                VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
                VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
            };
            let data = vec![InfoVlan::Id(v.id), InfoVlan::Protocol(proto)];
            (InfoKind::Vlan, Some(InfoData::Vlan(data)))
        }
        LinkKind::Bridge => (InfoKind::Bridge, None),
    };
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    attrs.push(LinkAttribute::LinkInfo(info));
    msg
}

fn raw_macvlan_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

/// The kind-specific settings in `IFLA_INFO_DATA`, for the kinds we create.
pub(crate) fn details_from_info(data: &InfoData) -> Option<LinkDetails> {
    match data {
        InfoData::MacVlan(attrs) => {
            let mut mode = None;
            let mut source_macs = Vec::new();
            for a in attrs {
                match a {
                    InfoMacVlan::Mode(m) => {
                        mode = match m {
                            MacVlanMode::Bridge => Some(MacvlanMode::Bridge),
                            MacVlanMode::Private => Some(MacvlanMode::Private),
                            MacVlanMode::Vepa => Some(MacvlanMode::Vepa),
                            MacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
                            MacVlanMode::Source => Some(MacvlanMode::Source),
                            _ => None,
                        }
                    }
                    InfoMacVlan::MacAddrData(list) => {
                        source_macs.extend(list.iter().filter_map(|m| match m {
                            InfoMacVlan::MacAddr(mac) => Some(MacAddr(*mac)),
                            _ => None,
                        }))
                    }
                    _ => {}
                }
            }
            // The kernel keeps source MACs in a hash table: report them as a sorted set.
            source_macs.sort();
            source_macs.dedup();
            mode.map(|mode| LinkDetails::Macvlan { mode, source_macs })
        }
        InfoData::IpVlan(attrs) => {
            let mut mode = None;
            let mut flag = IpvlanFlag::Bridge;
            for a in attrs {
                match a {
                    InfoIpVlan::Mode(IpVlanMode::L2) => mode = Some(IpvlanMode::L2),
                    InfoIpVlan::Mode(IpVlanMode::L3) => mode = Some(IpvlanMode::L3),
                    InfoIpVlan::Mode(IpVlanMode::L3S) => mode = Some(IpvlanMode::L3s),
                    InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Private) => {
                        flag = IpvlanFlag::Private
                    }
                    InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Vepa) => {
                        flag = IpvlanFlag::Vepa
                    }
                    _ => {}
                }
            }
            mode.map(|mode| LinkDetails::Ipvlan { mode, flag })
        }
        InfoData::Vlan(attrs) => {
            let mut id = None;
            let mut proto = VlanProto::Dot1Q;
            for a in attrs {
                match a {
                    InfoVlan::Id(i) => id = Some(*i),
                    InfoVlan::Protocol(VlanProtocol::Ieee8021Ad) => proto = VlanProto::Dot1Ad,
                    _ => {}
                }
            }
            id.map(|id| LinkDetails::Vlan { id, proto })
        }
        _ => None,
    }
}

fn family(f: IpFamily) -> AddressFamily {
    match f {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

/// `RTM_NEWADDR` / `RTM_DELADDR` body for `address` on link `index` (what `ip addr add|del
/// ADDR/LEN dev DEV` sends: `IFA_LOCAL` and `IFA_ADDRESS` both set to the address).
pub(crate) fn address_message(index: u32, address: &IpPrefix) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(address.family());
    msg.header.prefix_len = address.prefix_len;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(address.addr));
    msg.attributes.push(AddressAttribute::Address(address.addr));
    msg
}

/// Our [`Address`] from an `RTM_NEWADDR`; `None` for families other than IPv4/IPv6.
pub(crate) fn address_from_message(msg: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links, and the only one IPv6 sends.
    let mut local = None;
    let mut addr = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => addr = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(addr)?;
    Some(Address {
        index: msg.header.index,
        address: IpPrefix::new(ip, msg.header.prefix_len)?,
        scope: Scope::from_u8(u8::from(msg.header.scope)),
    })
}

/// `RTM_NEWROUTE` (`for_delete == false`) or `RTM_DELROUTE` body. `dev` is the output link's
/// resolved index.
pub(crate) fn route_message(spec: &RouteSpec, dev: Option<u32>, for_delete: bool) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = family(spec.destination.family());
    h.destination_prefix_length = spec.destination.prefix_len;
    h.table = u8::try_from(spec.table).unwrap_or(0);
    if for_delete {
        // Like `ip route del`: any protocol and type; scope "nowhere" matches any scope.
        h.scope = spec
            .scope
            .map(|s| RouteScope::from(s.as_u8()))
            .unwrap_or(RouteScope::NoWhere);
    } else {
        h.protocol = RouteProtocol::Boot;
        h.scope = RouteScope::from(spec.effective_scope().as_u8());
        h.kind = RouteType::Unicast;
    }
    let a = &mut msg.attributes;
    if spec.destination.prefix_len > 0 {
        a.push(RouteAttribute::Destination(spec.destination.addr.into()));
    }
    if let Some(gw) = spec.gateway {
        a.push(RouteAttribute::Gateway(gw.into()));
    }
    if let Some(oif) = dev {
        a.push(RouteAttribute::Oif(oif));
    }
    if let Some(m) = spec.metric {
        a.push(RouteAttribute::Priority(m));
    }
    a.push(RouteAttribute::Table(spec.table));
    msg
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Our [`Route`] from an `RTM_NEWROUTE`; `None` for cached clones and non-IP families.
pub(crate) fn route_from_message(msg: &RouteMessage) -> Option<Route> {
    let h = &msg.header;
    if h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let unspecified = match h.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut route = Route {
        destination: IpPrefix::new(unspecified, h.destination_prefix_length)?,
        gateway: None,
        oif: None,
        table: u32::from(h.table),
        metric: None,
        scope: Scope::from_u8(u8::from(h.scope)),
        protocol: u8::from(h.protocol),
    };
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                route.destination = IpPrefix::new(ip_of(d)?, h.destination_prefix_length)?;
            }
            RouteAttribute::Gateway(g) => route.gateway = ip_of(g),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Priority(p) => route.metric = Some(*p),
            RouteAttribute::Table(t) => route.table = *t,
            _ => {}
        }
    }
    Some(route)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};

    use super::*;
    use crate::netlink::{Ipvlan, Macvlan, Veth, Vlan};

    fn round_trip_link(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).unwrap()
    }

    fn details_of(msg: &LinkMessage) -> Option<LinkDetails> {
        msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(d) => details_from_info(d),
                _ => None,
            }),
            _ => None,
        })
    }

    fn resolved(parent: Option<u32>) -> Resolved {
        Resolved {
            parent,
            netns: None,
            peer_netns: None,
        }
    }

    #[test]
    fn every_kind_round_trips_its_settings() {
        let macs = ["02:00:00:00:00:01", "02:00:00:00:00:02"].map(|m| m.parse().unwrap());
        let cases: Vec<(LinkKind, Option<LinkDetails>)> = vec![
            (
                Macvlan::new("eth0", MacvlanMode::Passthru).into(),
                Some(LinkDetails::Macvlan {
                    mode: MacvlanMode::Passthru,
                    source_macs: vec![],
                }),
            ),
            (
                Macvlan::source("eth0", macs).into(),
                Some(LinkDetails::Macvlan {
                    mode: MacvlanMode::Source,
                    source_macs: macs.to_vec(),
                }),
            ),
            (
                Ipvlan::new("eth0", IpvlanMode::L3s)
                    .flag(IpvlanFlag::Private)
                    .into(),
                Some(LinkDetails::Ipvlan {
                    mode: IpvlanMode::L3s,
                    flag: IpvlanFlag::Private,
                }),
            ),
            (
                Vlan::new("eth0", 42).proto(VlanProto::Dot1Ad).into(),
                Some(LinkDetails::Vlan {
                    id: 42,
                    proto: VlanProto::Dot1Ad,
                }),
            ),
            (Veth::new("peer0").into(), None),
        ];
        for (kind, want) in cases {
            let mut link = NewLink::new(kind);
            link.name = Some("x0".into());
            link.mtu = Some(9000);
            link.up = true;
            let msg = round_trip_link(&new_link_message(&link, &resolved(Some(7))));
            assert_eq!(details_of(&msg), want, "{:?}", link.kind);
            assert!(msg.attributes.contains(&LinkAttribute::IfName("x0".into())));
            assert!(msg.attributes.contains(&LinkAttribute::Mtu(9000)));
            assert!(msg.attributes.contains(&LinkAttribute::Link(7)));
            assert!(msg.header.flags.contains(LinkFlags::Up));
        }
    }

    #[test]
    fn veth_peer_carries_its_name_and_namespace() {
        let link = NewLink::new(Veth::new("peer0"));
        let r = Resolved {
            parent: None,
            netns: None,
            peer_netns: Some(9),
        };
        let msg = round_trip_link(&new_link_message(&link, &r));
        let peer = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => i.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                _ => None,
            }),
            _ => None,
        });
        let peer = peer.expect("a peer message");
        assert!(
            peer.attributes
                .contains(&LinkAttribute::IfName("peer0".into()))
        );
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(9)));
    }

    #[test]
    fn addresses_round_trip_v4_and_v6() {
        for text in ["10.0.0.2/24", "2001:db8::2/64"] {
            let prefix: IpPrefix = text.parse().unwrap();
            let msg = address_message(5, &prefix);
            let mut buf = vec![0; msg.buffer_len()];
            msg.emit(&mut buf);
            let parsed = AddressMessage::parse(buf.as_slice()).unwrap();
            let a = address_from_message(&parsed).unwrap();
            assert_eq!((a.index, a.address, a.scope), (5, prefix, Scope::Global));
        }
    }

    #[test]
    fn routes_round_trip_and_deletes_match_any_scope() {
        let mut spec = RouteSpec::new("10.1.0.0/16".parse().unwrap());
        spec.gateway = Some("10.0.0.1".parse().unwrap());
        spec.metric = Some(100);
        spec.table = 1000;
        let msg = route_message(&spec, Some(3), false);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let parsed = RouteMessage::parse(buf.as_slice()).unwrap();
        let r = route_from_message(&parsed).unwrap();
        assert_eq!(r.destination.to_string(), "10.1.0.0/16");
        assert_eq!(r.gateway, spec.gateway);
        assert_eq!((r.oif, r.metric, r.table), (Some(3), Some(100), 1000));
        assert_eq!((r.scope, r.protocol), (Scope::Global, 3));
        assert!(spec.matches(&r, Some(3)));
        assert_eq!(parsed.header.table, 0, "tables above 255 only in RTA_TABLE");

        let del = route_message(&spec, None, true);
        assert_eq!(del.header.scope, RouteScope::NoWhere);
        assert_eq!(del.header.protocol, RouteProtocol::Unspec);

        let default = RouteSpec::new(IpPrefix::default_route(IpFamily::V6));
        let msg = route_message(&default, Some(1), false);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        let r = route_from_message(&msg).unwrap();
        assert_eq!(r.destination.to_string(), "::/0");
    }
}
