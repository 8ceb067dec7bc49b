//! Link and address events (`ip monitor link address`): a socket bound to `RTNLGRP_LINK`,
//! `RTNLGRP_IPV4_IFADDR` and `RTNLGRP_IPV6_IFADDR`, read as a stream of typed events.
//!
//! The kernel drops notifications when a listener's socket buffer is full and says so once
//! with `ENOBUFS`; the stream then yields [`NetlinkEvent::Lost`], and a consumer that keeps
//! state (VF presence, carrier) must list links and addresses again.

use std::pin::Pin;

use futures::{
    SinkExt, Stream,
    channel::mpsc::{self, Sender},
};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use serde::Serialize;

use super::{
    Address, Link, NetlinkError, Result, rtnl::link_from_message, rtnl_msg::address_from_message,
    socket,
};

/// `RTNLGRP_LINK`.
const RTNLGRP_LINK: u32 = 1;
/// `RTNLGRP_IPV4_IFADDR`.
const RTNLGRP_IPV4_IFADDR: u32 = 5;
/// `RTNLGRP_IPV6_IFADDR`.
const RTNLGRP_IPV6_IFADDR: u32 = 9;
/// Events buffered between the socket and a slow consumer before the kernel's buffer fills.
const QUEUE: usize = 1024;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max` without CAP_NET_ADMIN).
const RCVBUF: usize = 4 << 20;

/// One link or address event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum NetlinkEvent {
    /// `RTM_NEWLINK`: a link appeared or changed (admin state, operstate, carrier, name, MTU,
    /// master...). The kernel does not say which; compare with what you knew.
    Link {
        /// The link as it is now.
        link: Link,
    },
    /// `RTM_DELLINK`: a link went away (deleted, or moved to another namespace).
    LinkRemoved {
        /// The link as it was.
        link: Link,
    },
    /// `RTM_NEWADDR`.
    AddressAdded {
        /// The address.
        address: Address,
    },
    /// `RTM_DELADDR`.
    AddressRemoved {
        /// The address.
        address: Address,
    },
    /// The kernel dropped notifications (`ENOBUFS`): list again to resynchronise.
    Lost,
}

/// A stream of events. It ends only if the socket fails (the last item is then the error).
pub type NetlinkEvents = Pin<Box<dyn Stream<Item = Result<NetlinkEvent>> + Send>>;

/// The events in one datagram from the socket (several messages may share one).
pub(crate) fn events_from_datagram(mut buf: &[u8]) -> Vec<NetlinkEvent> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            out.extend(event_of(msg.payload));
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

fn event_of(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<NetlinkEvent> {
    let NetlinkPayload::InnerMessage(msg) = payload else {
        return None;
    };
    match msg {
        RouteNetlinkMessage::NewLink(l) => Some(NetlinkEvent::Link {
            link: link_from_message(&l),
        }),
        RouteNetlinkMessage::DelLink(l) => Some(NetlinkEvent::LinkRemoved {
            link: link_from_message(&l),
        }),
        RouteNetlinkMessage::NewAddress(a) => {
            address_from_message(&a).map(|address| NetlinkEvent::AddressAdded { address })
        }
        RouteNetlinkMessage::DelAddress(a) => {
            address_from_message(&a).map(|address| NetlinkEvent::AddressRemoved { address })
        }
        _ => None,
    }
}

/// Opens the event socket in the calling thread's namespace and spawns its reader on the
/// current tokio runtime. The reader ends when the stream is dropped (at the next event).
pub(crate) fn subscribe() -> Result<NetlinkEvents> {
    let connect = |e: std::io::Error| NetlinkError::Events(e);
    let mut sock = TokioSocket::new(NETLINK_ROUTE).map_err(connect)?;
    {
        let s = sock.socket_mut();
        socket::want_extack(s).map_err(connect)?;
        s.bind(&SocketAddr::new(0, 0)).map_err(connect)?;
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] {
            s.add_membership(group).map_err(connect)?;
        }
        // Best effort: a bigger buffer loses fewer events in a burst (VF creation).
        let _ = s.set_rx_buf_sz(RCVBUF);
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(read_events(sock, tx));
    Ok(Box::pin(rx))
}

async fn read_events(sock: TokioSocket, mut tx: Sender<Result<NetlinkEvent>>) {
    loop {
        let batch = match sock.recv_from_full().await {
            // Only the kernel (port 0) sends notifications; anything else is ignored.
            Ok((buf, from)) if from.port_number() == 0 => {
                events_from_datagram(&buf).into_iter().map(Ok).collect()
            }
            Ok(_) => Vec::new(),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => vec![Ok(NetlinkEvent::Lost)],
            Err(e) => {
                let _ = tx.send(Err(NetlinkError::Events(e))).await;
                return;
            }
        };
        for event in batch {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

impl NetlinkEvent {
    /// The link this event is about (its index), for filtering.
    pub fn index(&self) -> Option<u32> {
        match self {
            Self::Link { link } | Self::LinkRemoved { link } => Some(link.index),
            Self::AddressAdded { address } | Self::AddressRemoved { address } => {
                Some(address.index)
            }
            Self::Lost => None,
        }
    }
}

/// Builds a datagram as the kernel would send it (for tests of the parser).
#[cfg(test)]
pub(crate) fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
    use netlink_packet_core::Emitable;
    let mut out = Vec::new();
    for m in msgs {
        let mut nl = NetlinkMessage::from(m);
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.emit(&mut buf);
        out.extend_from_slice(&buf);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::{
        address::AddressMessage,
        link::{LinkAttribute, LinkMessage, State},
    };

    use super::*;
    use crate::netlink::{IpPrefix, OperState, rtnl_msg::address_message};

    #[test]
    fn one_datagram_can_carry_several_events() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.attributes = vec![
            LinkAttribute::IfName("eth1".into()),
            LinkAttribute::OperState(State::Down),
            LinkAttribute::Carrier(0),
        ];
        let prefix: IpPrefix = "2001:db8::5/64".parse().unwrap();
        let addr: AddressMessage = address_message(7, &prefix);
        let buf = datagram(vec![
            RouteNetlinkMessage::NewLink(link.clone()),
            RouteNetlinkMessage::DelAddress(addr),
            RouteNetlinkMessage::DelLink(link),
        ]);
        let events = events_from_datagram(&buf);
        assert_eq!(events.len(), 3, "{events:?}");
        let NetlinkEvent::Link { link } = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (link.name.as_str(), link.oper_state, link.carrier),
            ("eth1", OperState::Down, Some(false))
        );
        assert!(
            matches!(&events[1], NetlinkEvent::AddressRemoved { address } if address.address == prefix)
        );
        assert!(matches!(&events[2], NetlinkEvent::LinkRemoved { link } if link.index == 7));
        assert_eq!(events[2].index(), Some(7));
        // Truncated or garbage input stops the parse without panicking.
        for cut in 0..buf.len() {
            let _ = events_from_datagram(&buf[..cut]);
        }
        assert!(events_from_datagram(&[0xff; 40]).is_empty());
    }

    #[test]
    fn events_serialize_with_their_kind() {
        let e = NetlinkEvent::Lost;
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"event":"lost"})
        );
    }
}
