//! Link and address events, and kernel uevents, as the kernel sends them.

use std::time::Duration;

use futures::{Stream, StreamExt};
use nic::{
    host::{Host, RealHost},
    netlink::{NetlinkEvent, OperState, Veth},
    netns::block_on_in_netns,
    uevent::{DeviceEvent, UeventNotice},
};

use super::{block_on, setup};

/// The next item that `want` accepts, within two seconds.
async fn next_matching<S, T, E>(events: &mut S, what: &str, mut want: impl FnMut(&T) -> bool) -> T
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    let wait = async {
        while let Some(item) = events.next().await {
            match item {
                Ok(e) if want(&e) => return e,
                Ok(_) => {}
                Err(e) => panic!("{what}: the stream failed: {e}"),
            }
        }
        panic!("{what}: the stream ended")
    };
    tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: no such event within 2 s"))
}

#[test]
fn link_down_and_up_and_addresses_are_seen() {
    let Some((_ns, nl)) = setup("link_down_and_up_and_addresses_are_seen") else {
        return;
    };
    block_on(async {
        let mut events = nl.subscribe().await.unwrap();
        nl.link()
            .add(Veth::new("nlt-ev-b"))
            .name("nlt-ev-a")
            .execute()
            .await
            .unwrap();
        let index = next_matching(
            &mut events,
            "veth created",
            |e| matches!(e, NetlinkEvent::Link { link } if link.name == "nlt-ev-a"),
        )
        .await
        .index()
        .unwrap();

        nl.link().set("nlt-ev-a").up().execute().await.unwrap();
        nl.link().set("nlt-ev-b").up().execute().await.unwrap();
        next_matching(&mut events, "nlt-ev-a up with carrier", |e| {
            matches!(e, NetlinkEvent::Link { link }
                if link.index == index && link.up && link.carrier == Some(true)
                    && link.oper_state == OperState::Up)
        })
        .await;

        // The peer going down takes this end's carrier.
        nl.link().set("nlt-ev-b").down().execute().await.unwrap();
        next_matching(&mut events, "nlt-ev-a loses carrier", |e| {
            matches!(e, NetlinkEvent::Link { link }
                if link.index == index && link.carrier == Some(false)
                    && link.oper_state != OperState::Up)
        })
        .await;
        nl.link().set("nlt-ev-a").down().execute().await.unwrap();
        next_matching(
            &mut events,
            "nlt-ev-a admin down",
            |e| matches!(e, NetlinkEvent::Link { link } if link.index == index && !link.up),
        )
        .await;

        let v4 = "10.252.0.2/24".parse().unwrap();
        nl.address().add("nlt-ev-a", v4).execute().await.unwrap();
        next_matching(
            &mut events,
            "address added",
            |e| matches!(e, NetlinkEvent::AddressAdded { address } if address.address == v4),
        )
        .await;
        let v6 = "2001:db8:252::2/64".parse().unwrap();
        nl.address().add("nlt-ev-a", v6).execute().await.unwrap();
        next_matching(
            &mut events,
            "IPv6 address added",
            |e| matches!(e, NetlinkEvent::AddressAdded { address } if address.address == v6),
        )
        .await;
        nl.address().del("nlt-ev-a", v4).execute().await.unwrap();
        next_matching(
            &mut events,
            "address removed",
            |e| matches!(e, NetlinkEvent::AddressRemoved { address } if address.address == v4),
        )
        .await;

        // The stream outlives the handle it came from.
        let deleter = nl.clone();
        drop(nl);
        deleter.link().del("nlt-ev-a").execute().await.unwrap();
        drop(deleter);
        next_matching(
            &mut events,
            "link removed",
            |e| matches!(e, NetlinkEvent::LinkRemoved { link } if link.index == index),
        )
        .await;
    });
}

#[test]
fn net_device_uevents_in_a_namespace() {
    let Some((ns, _nl)) = setup("net_device_uevents_in_a_namespace") else {
        return;
    };
    // A uevent socket hears the net devices of its own namespace: make the host there.
    block_on_in_netns(&ns, || async {
        let host = RealHost::new().unwrap();
        let mut uevents = host.uevents().await.unwrap();
        let nl = host.host_netlink().unwrap();
        nl.link()
            .add(Veth::new("nlt-ue-b"))
            .name("nlt-ue-a")
            .execute()
            .await
            .unwrap();
        let added = next_matching(&mut uevents, "net add uevent", |n| {
            matches!(n, UeventNotice::Uevent(u) if u.var("INTERFACE") == Some("nlt-ue-a"))
        })
        .await;
        let UeventNotice::Uevent(u) = added else {
            unreachable!()
        };
        assert!(
            matches!(u.device_event(), Some(DeviceEvent::NetAdded { interface, ifindex: Some(_), pci: None }) if interface == "nlt-ue-a"),
            "{u:?}"
        );
        nl.link().del("nlt-ue-a").execute().await.unwrap();
        next_matching(&mut uevents, "net remove uevent", |n| {
            matches!(n, UeventNotice::Uevent(u)
                if matches!(u.device_event(), Some(DeviceEvent::NetRemoved { ref interface, .. }) if interface == "nlt-ue-a"))
        })
        .await;
    })
    .expect("enter the test namespace");
}
