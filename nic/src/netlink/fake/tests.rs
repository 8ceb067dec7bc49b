//! Tests of the fake through the public builders.

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

mod create_and_ip {
    use nix::libc::{EADDRNOTAVAIL, ENETDOWN, ENETUNREACH, ERANGE, ESRCH};

    use super::*;
    use crate::netlink::{
        IpFamily, Ipvlan, IpvlanFlag, IpvlanMode, LinkDetails, Macvlan, MacvlanMode, Scope, Veth,
        Vlan,
    };

    fn host_with_eth0() -> (FakeNetlink, NetlinkHandle) {
        let fake = FakeNetlink::new();
        fake.add_pf("eth0", 2);
        let nl = NetlinkHandle::new(fake.clone());
        (fake, nl)
    }

    #[test]
    fn every_kind_is_created_with_its_settings() {
        let (fake, nl) = host_with_eth0();
        let macs: Vec<MacAddr> = vec!["02:00:00:00:aa:01".parse().unwrap()];
        block_on(async {
            for mode in MacvlanMode::ALL {
                let kind = if mode == MacvlanMode::Source {
                    Macvlan::source("eth0", macs.clone())
                } else {
                    Macvlan::new("eth0", mode)
                };
                nl.link()
                    .add(kind)
                    .name(format!("mv-{mode}"))
                    .execute()
                    .await
                    .unwrap();
            }
            nl.link()
                .add(Ipvlan::new("eth0", IpvlanMode::L3s).flag(IpvlanFlag::Vepa))
                .name("ipv0")
                .mtu(1400)
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Vlan::new("eth0", 100).proto(VlanProto::Dot1Ad))
                .name("eth0.100")
                .up()
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Veth::new("v1"))
                .name("v0")
                .mac("02:00:00:00:bb:01".parse().unwrap())
                .execute()
                .await
                .unwrap();
        });
        let eth0 = fake.link("eth0").unwrap();
        let src = fake.link("mv-source").unwrap();
        assert_eq!(src.kind.as_deref(), Some("macvlan"));
        assert_eq!(src.parent, Some(eth0.index));
        assert_eq!(
            src.details,
            Some(LinkDetails::Macvlan {
                mode: MacvlanMode::Source,
                source_macs: macs
            })
        );
        assert!(fake.link("mv-passthru").is_some());
        let ipv = fake.link("ipv0").unwrap();
        assert_eq!(ipv.mtu, 1400);
        assert_eq!(
            ipv.details,
            Some(LinkDetails::Ipvlan {
                mode: IpvlanMode::L3s,
                flag: IpvlanFlag::Vepa
            })
        );
        let vlan = fake.link("eth0.100").unwrap();
        assert!(vlan.up);
        assert_eq!(
            vlan.details,
            Some(LinkDetails::Vlan {
                id: 100,
                proto: VlanProto::Dot1Ad
            })
        );
        let (v0, v1) = (fake.link("v0").unwrap(), fake.link("v1").unwrap());
        assert_eq!((v0.parent, v1.parent), (Some(v1.index), Some(v0.index)));
        assert_eq!(v0.mac.unwrap().to_string(), "02:00:00:00:bb:01");
        assert_eq!(
            fake.calls()
                .iter()
                .filter(|c| c.op() == NetlinkOp::AddLink)
                .count(),
            8
        );
    }

    #[test]
    fn creation_errors_name_the_link_the_parent_and_the_kind() {
        let (fake, nl) = host_with_eth0();
        fake.without_kind("ipvlan");
        block_on(async {
            let e = nl
                .link()
                .add(Macvlan::new("eth9", MacvlanMode::Bridge))
                .name("mv0")
                .execute()
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "create macvlan mv0 on eth9: parent eth9 not found (ENODEV)"
            );
            assert!(e.is_not_found());
            let e = nl
                .link()
                .add(Ipvlan::new("eth0", IpvlanMode::L2))
                .name("ipv0")
                .execute()
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "create ipvlan ipv0 on eth0: the kernel has no ipvlan support (module ipvlan not available)"
            );
            assert!(e.is_not_supported());
            let e = nl
                .link()
                .add(Vlan::new("eth0", 4095))
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(ERANGE));
            nl.link()
                .add(Veth::new("b"))
                .name("a")
                .execute()
                .await
                .unwrap();
            let e = nl
                .link()
                .add(Veth::new("c"))
                .name("a")
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_exists(), "{e}");
            let e = nl
                .link()
                .add(Veth::new("a"))
                .name("d")
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_exists(), "the peer name is taken too: {e}");
            // No name: the kernel picks one.
            nl.link()
                .add(Macvlan::new("eth0", MacvlanMode::Private))
                .execute()
                .await
                .unwrap();
            assert!(fake.link("macvlan0").is_some());
        });
        fake.fail_with_message(NetlinkOp::AddLink, EBUSY, "busy");
        let e = block_on(nl.link().add(Veth::new("y")).name("x").execute()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "create veth x (peer y): busy: Device or resource busy (os error 16)"
        );
    }

    #[test]
    fn veth_peer_and_macvlan_go_straight_into_another_namespace() {
        let (host, nl) = host_with_eth0();
        let pod_ns = NetnsRef::path("/var/run/netns/pod1");
        block_on(async {
            nl.link()
                .add(Veth::new("eth0").peer_netns(pod_ns.clone()))
                .name("veth1234")
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Macvlan::new("eth0", MacvlanMode::Bridge))
                .name("net1")
                .netns(pod_ns.clone())
                .execute()
                .await
                .unwrap();
        });
        let pod = host.netns(&pod_ns);
        let names: Vec<_> = pod.links().into_iter().map(|l| l.name).collect();
        assert_eq!(names, vec!["eth0", "net1"]);
        assert!(host.link("net1").is_none() && host.link("veth1234").is_some());
        // Deleting the host end takes the pod end with it; deleting the parent its macvlans.
        block_on(nl.link().del("veth1234").execute()).unwrap();
        assert!(pod.link("eth0").is_none());
        block_on(nl.link().del("eth0").execute()).unwrap();
        assert!(pod.links().is_empty());
    }

    #[test]
    fn move_and_rename_is_one_call_and_leaves_addresses_behind() {
        let (host, nl) = host_with_eth0();
        let vf = host.add_link("eth0v1");
        let pod_ns = NetnsRef::path("/proc/42/ns/net");
        let pod = host.netns(&pod_ns);
        pod.add_link("eth0");
        block_on(async {
            nl.address()
                .add("eth0v1", "192.0.2.1/24".parse().unwrap())
                .execute()
                .await
                .unwrap();
            // The pod has an eth0: moving under the old name would collide, renaming first
            // would need the link down; one request does both.
            nl.link()
                .set("eth0v1")
                .up()
                .netns_rename(pod_ns.clone(), "net1")
                .execute()
                .await
                .unwrap();
        });
        assert_eq!(pod.link("net1").map(|l| l.index), Some(vf));
        assert!(host.addresses().is_empty() && pod.addresses().is_empty());
        assert_eq!(
            host.calls().last().map(NetlinkCall::op),
            Some(NetlinkOp::SetNetnsRename)
        );
        let e = block_on(
            NetlinkHandle::new(pod.clone())
                .link()
                .set("net1")
                .netns_rename(NetnsRef::path("/proc/1/ns/net"), "bad/name")
                .execute(),
        )
        .unwrap_err();
        assert_eq!(e.errno(), Some(EINVAL));
        host.add_link("taken");
        let e = block_on(
            NetlinkHandle::new(pod.clone())
                .link()
                .set("net1")
                .netns_rename(NetnsRef::path(HOST_NETNS), "taken")
                .execute(),
        )
        .unwrap_err();
        assert!(e.is_exists(), "{e}");
        assert!(pod.link("net1").is_some(), "a failed move leaves the link");
    }

    #[test]
    fn master_and_nomaster() {
        let (fake, nl) = host_with_eth0();
        block_on(async {
            nl.link()
                .add(LinkKind::Bridge)
                .name("br0")
                .execute()
                .await
                .unwrap();
            nl.link()
                .add(Veth::new("b"))
                .name("a")
                .execute()
                .await
                .unwrap();
            nl.link().set("a").master("br0").execute().await.unwrap();
            let br = fake.link("br0").unwrap();
            assert_eq!(fake.link("a").unwrap().master, Some(br.index));
            let e = nl.link().set("b").master("a").execute().await.unwrap_err();
            assert!(e.is_not_supported(), "a veth is no master: {e}");
            let e = nl
                .link()
                .set("b")
                .master("br9")
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_not_found(), "{e}");
            assert_eq!(
                e.to_string(),
                "set master br9 on b: No such device (os error 19)"
            );
            nl.link().set("a").nomaster().execute().await.unwrap();
            assert_eq!(fake.link("a").unwrap().master, None);
            nl.link().set("a").master("br0").execute().await.unwrap();
            nl.link().del("br0").execute().await.unwrap();
            assert_eq!(fake.link("a").unwrap().master, None);
        });
    }

    #[test]
    fn addresses_v4_and_v6() {
        let (fake, nl) = host_with_eth0();
        let v4: IpPrefix = "10.0.0.2/24".parse().unwrap();
        let v6: IpPrefix = "2001:db8::2/64".parse().unwrap();
        let ll: IpPrefix = "fe80::1/64".parse().unwrap();
        fake.add_link("eth1");
        block_on(async {
            for a in [v4, v6, ll] {
                nl.address().add("eth0", a).execute().await.unwrap();
            }
            nl.address()
                .add("eth1", "10.0.1.2/24".parse().unwrap())
                .execute()
                .await
                .unwrap();
            let e = nl.address().add("eth0", v4).execute().await.unwrap_err();
            assert!(e.is_exists());
            assert_eq!(
                e.to_string(),
                "add address 10.0.0.2/24 on eth0: File exists (os error 17)"
            );
            let on_eth0 = nl.address().list().dev("eth0").execute().await.unwrap();
            assert_eq!(on_eth0.len(), 3);
            assert_eq!(
                on_eth0.iter().find(|a| a.address == ll).map(|a| a.scope),
                Some(Scope::Link)
            );
            let only6 = nl
                .address()
                .list()
                .family(IpFamily::V6)
                .execute()
                .await
                .unwrap();
            assert_eq!(only6.len(), 2);
            assert_eq!(nl.address().list().execute().await.unwrap().len(), 4);
            nl.address().del("eth0", v6).execute().await.unwrap();
            let e = nl.address().del("eth0", v6).execute().await.unwrap_err();
            assert_eq!(e.errno(), Some(EADDRNOTAVAIL));
            let e = nl.address().add("eth9", v4).execute().await.unwrap_err();
            assert!(e.is_not_found());
            assert!(
                e.to_string()
                    .starts_with("add address 10.0.0.2/24 on eth9: "),
                "{e}"
            );
            let e = nl.address().list().dev("eth9").execute().await.unwrap_err();
            assert!(e.is_not_found());
        });
    }

    #[test]
    fn routes_v4_and_v6_with_the_kernels_checks() {
        let (fake, nl) = host_with_eth0();
        block_on(async {
            nl.address()
                .add("eth0", "10.0.0.2/24".parse().unwrap())
                .execute()
                .await
                .unwrap();
            nl.address()
                .add("eth0", "2001:db8::2/64".parse().unwrap())
                .execute()
                .await
                .unwrap();
            let e = nl
                .route()
                .add("10.1.0.0/16".parse().unwrap())
                .dev("eth0")
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(ENETDOWN), "the link is down: {e}");
            nl.link().set("eth0").up().execute().await.unwrap();
            nl.route()
                .add("10.1.0.0/16".parse().unwrap())
                .gateway("10.0.0.1".parse().unwrap())
                .metric(100)
                .execute()
                .await
                .unwrap();
            nl.route()
                .add(IpPrefix::default_route(IpFamily::V6))
                .gateway("2001:db8::1".parse().unwrap())
                .dev("eth0")
                .execute()
                .await
                .unwrap();
            nl.route()
                .add("10.2.0.0/16".parse().unwrap())
                .dev("eth0")
                .table(100)
                .execute()
                .await
                .unwrap();
            let e = nl
                .route()
                .add("10.3.0.0/16".parse().unwrap())
                .gateway("10.9.9.1".parse().unwrap())
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(ENETUNREACH));
            assert_eq!(
                e.to_string(),
                "add route 10.3.0.0/16 via 10.9.9.1: Network is unreachable (os error 101)"
            );
            let e = nl
                .route()
                .add("10.1.0.1/16".parse().unwrap())
                .dev("eth0")
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(EINVAL), "host bits set: {e}");
            let e = nl
                .route()
                .add("10.1.0.0/16".parse().unwrap())
                .gateway("10.0.0.1".parse().unwrap())
                .metric(100)
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_exists());

            let main4 = nl.route().list(IpFamily::V4).execute().await.unwrap();
            assert_eq!(main4.len(), 1);
            let r = &main4[0];
            let eth0 = fake.link("eth0").unwrap().index;
            assert_eq!(
                (r.destination.to_string(), r.oif, r.metric, r.scope),
                ("10.1.0.0/16".into(), Some(eth0), Some(100), Scope::Global)
            );
            let t100 = nl
                .route()
                .list(IpFamily::V4)
                .table(100)
                .execute()
                .await
                .unwrap();
            assert_eq!(t100[0].scope, Scope::Link);
            let all = nl
                .route()
                .list(IpFamily::V4)
                .all_tables()
                .execute()
                .await
                .unwrap();
            assert_eq!(all.len(), 2);
            let v6 = nl
                .route()
                .list(IpFamily::V6)
                .dev("eth0")
                .execute()
                .await
                .unwrap();
            assert_eq!(v6[0].destination.to_string(), "::/0");

            nl.route()
                .del("10.1.0.0/16".parse().unwrap())
                .execute()
                .await
                .unwrap();
            let e = nl
                .route()
                .del("10.1.0.0/16".parse().unwrap())
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(ESRCH));
            let e = nl
                .route()
                .add("10.4.0.0/16".parse().unwrap())
                .dev("eth9")
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_not_found());
            assert!(
                e.to_string()
                    .starts_with("add route 10.4.0.0/16 dev eth9: "),
                "{e}"
            );
        });
        fake.fail(NetlinkOp::ListRoutes, EINVAL);
        let e = block_on(nl.route().list(IpFamily::V4).execute()).unwrap_err();
        assert_eq!(e.to_string(), "list routes: Invalid argument (os error 22)");
    }

    #[test]
    fn veth_carrier_follows_both_ends() {
        let fake = FakeNetlink::new();
        let nl = NetlinkHandle::new(fake.clone());
        block_on(async {
            nl.link()
                .add(Veth::new("b"))
                .name("a")
                .execute()
                .await
                .unwrap();
            nl.link().set("a").up().execute().await.unwrap();
            assert_eq!(
                fake.link("a").unwrap().oper_state,
                OperState::LowerLayerDown
            );
            nl.link().set("b").up().execute().await.unwrap();
            let a = fake.link("a").unwrap();
            assert_eq!((a.oper_state, a.carrier), (OperState::Up, Some(true)));
            nl.link().set("b").down().execute().await.unwrap();
            assert_eq!(fake.link("a").unwrap().carrier, Some(false));
        });
    }
}

mod events {
    use futures::{FutureExt, StreamExt};

    use super::*;
    use crate::netlink::{IpPrefix, NetlinkEvent, NetlinkEvents, Veth};

    /// Everything already queued on `events`, without waiting for more.
    fn drain(events: &mut NetlinkEvents) -> Vec<NetlinkEvent> {
        let mut out = Vec::new();
        while let Some(Some(e)) = events.next().now_or_never() {
            out.push(e.unwrap());
        }
        out
    }

    #[test]
    fn changes_are_announced_in_their_namespace() {
        let host = FakeNetlink::new();
        host.add_pf("eth0", 1);
        let vf = host.add_link("eth0v0");
        let pod_ns = NetnsRef::path("/var/run/netns/pod1");
        let pod = host.netns(&pod_ns);
        let nl = NetlinkHandle::new(host.clone());
        let (mut on_host, mut in_pod) = block_on(async {
            (
                nl.subscribe().await.unwrap(),
                NetlinkHandle::new(pod.clone()).subscribe().await.unwrap(),
            )
        });
        block_on(async {
            nl.link().set("eth0v0").up().execute().await.unwrap();
            nl.link()
                .set("eth0v0")
                .netns_rename(pod_ns.clone(), "net1")
                .execute()
                .await
                .unwrap();
            let in_pod_nl = NetlinkHandle::new(pod.clone());
            in_pod_nl
                .address()
                .add("net1", "10.0.0.2/24".parse().unwrap())
                .execute()
                .await
                .unwrap();
        });
        let host_events = drain(&mut on_host);
        assert!(
            matches!(&host_events[0], NetlinkEvent::Link { link } if link.index == vf && link.up)
        );
        assert!(
            matches!(&host_events[1], NetlinkEvent::LinkRemoved { link } if link.name == "eth0v0")
        );
        assert_eq!(host_events.len(), 2, "{host_events:?}");
        let pod_events = drain(&mut in_pod);
        assert!(
            matches!(&pod_events[0], NetlinkEvent::Link { link } if link.name == "net1" && link.index == vf)
        );
        let want: IpPrefix = "10.0.0.2/24".parse().unwrap();
        assert!(
            matches!(&pod_events[1], NetlinkEvent::AddressAdded { address } if address.address == want)
        );

        // Tests push what the fake cannot know: a carrier loss, an overrun.
        let down = fake_link_down(&host, "eth0");
        host.push_event(NetlinkEvent::Link { link: down.clone() });
        host.push_event(NetlinkEvent::Lost);
        let pushed = drain(&mut on_host);
        assert_eq!(
            pushed,
            vec![NetlinkEvent::Link { link: down }, NetlinkEvent::Lost]
        );
        assert!(
            drain(&mut in_pod).is_empty(),
            "other namespaces hear nothing"
        );
    }

    fn fake_link_down(fake: &FakeNetlink, name: &str) -> Link {
        let mut link = fake.link(name).unwrap();
        link.carrier = Some(false);
        link.oper_state = OperState::Down;
        link
    }

    #[test]
    fn veth_creation_and_deletion_are_announced_on_both_ends() {
        let fake = FakeNetlink::new();
        let nl = NetlinkHandle::new(fake.clone());
        let mut events = block_on(nl.subscribe()).unwrap();
        block_on(async {
            nl.link()
                .add(Veth::new("b"))
                .name("a")
                .execute()
                .await
                .unwrap();
            nl.link().del("b").execute().await.unwrap();
        });
        let mut names: Vec<_> = drain(&mut events)
            .into_iter()
            .map(|e| match e {
                NetlinkEvent::Link { link } => format!("+{}", link.name),
                NetlinkEvent::LinkRemoved { link } => format!("-{}", link.name),
                other => format!("{other:?}"),
            })
            .collect();
        // Both ends go; in which order is not promised.
        names[2..].sort();
        assert_eq!(names, vec!["+a", "+b", "-a", "-b"]);
        fake.fail(NetlinkOp::Subscribe, EINVAL);
        let err = block_on(nl.subscribe()).err().unwrap();
        assert!(
            err.to_string().starts_with("link and address events: "),
            "{err}"
        );
    }

    #[test]
    fn vf_counters_read_zero_until_set_and_fail_on_request() {
        let fake = FakeNetlink::new();
        fake.add_pf("eth0", 2);
        fake.add_link("veth0");
        let nl = NetlinkHandle::new(fake.clone());
        let zero = block_on(nl.vf("eth0").stats().execute()).unwrap();
        assert_eq!(
            zero.iter().map(|r| (r.vf, r.rx_bytes)).collect::<Vec<_>>(),
            [(0, 0), (1, 0)]
        );
        let counted = VfStats {
            vf: 1,
            rx_packets: 3,
            tx_bytes: 400,
            ..VfStats::default()
        };
        fake.set_vf_stats("eth0", counted);
        let rows = block_on(nl.vf("eth0").stats().execute()).unwrap();
        assert_eq!(rows[1], counted);
        assert!(
            block_on(nl.vf("veth0").stats().execute())
                .unwrap()
                .is_empty()
        );
        let err = block_on(nl.vf("eth9").stats().execute()).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        fake.fail(NetlinkOp::ListVfStats, EINVAL);
        let err = block_on(nl.vf("eth0").stats().execute()).unwrap_err();
        assert!(
            err.to_string().starts_with("read the VF counters of eth0"),
            "{err}"
        );
    }
}
