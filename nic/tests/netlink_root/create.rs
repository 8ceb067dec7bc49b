//! Creating links of every kind this kernel has, moving and renaming in one request, masters.

use nic::netlink::{
    Ipvlan, IpvlanFlag, IpvlanMode, LinkDetails, LinkKind, MacAddr, Macvlan, MacvlanMode,
    NetlinkError, Veth, Vlan, VlanProto,
};

use super::{add_veth, block_on, netlink_in, private_netns, setup, skip};

#[test]
fn veth_with_mtu_mac_up_and_its_peer_in_another_namespace() {
    let Some((_ns, nl)) = setup("veth_with_mtu_mac_up_and_its_peer_in_another_namespace") else {
        return;
    };
    let pod = private_netns();
    let in_pod = netlink_in(&pod);
    block_on(async {
        let mac: MacAddr = "02:5a:00:00:01:01".parse().unwrap();
        nl.link()
            .add(Veth::new("nlt-v-pod").peer_netns(pod.clone()))
            .name("nlt-v-host")
            .mtu(9000)
            .mac(mac)
            .up()
            .execute()
            .await
            .unwrap();
        let host_end = nl.link().get("nlt-v-host").execute().await.unwrap();
        assert_eq!(host_end.kind.as_deref(), Some("veth"));
        assert_eq!(
            (host_end.mtu, host_end.mac, host_end.up),
            (9000, Some(mac), true)
        );
        assert!(
            nl.link()
                .get("nlt-v-pod")
                .execute_optional()
                .await
                .unwrap()
                .is_none(),
            "the peer never existed here"
        );
        let pod_end = in_pod.link().get("nlt-v-pod").execute().await.unwrap();
        assert_eq!(pod_end.kind.as_deref(), Some("veth"));
        assert_eq!(pod_end.carrier, Some(false), "the peer is down");
        in_pod.link().set("nlt-v-pod").up().execute().await.unwrap();
        let host_end = nl.link().get("nlt-v-host").execute().await.unwrap();
        assert_eq!(host_end.carrier, Some(true));

        let err = nl
            .link()
            .add(Veth::new("nlt-v-x"))
            .name("nlt-v-host")
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert!(
            err.to_string()
                .starts_with("create veth nlt-v-host (peer nlt-v-x): "),
            "{err}"
        );
        nl.link().del("nlt-v-host").execute().await.unwrap();
        assert!(
            in_pod
                .link()
                .get("nlt-v-pod")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn macvlan_in_every_mode() {
    let Some((_ns, nl)) = setup("macvlan_in_every_mode") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-mvp", "nlt-mvp-b").await;
        let parent = nl.link().get("nlt-mvp").execute().await.unwrap();
        let sources: Vec<MacAddr> = ["02:5a:00:00:02:01", "02:5a:00:00:02:02"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        for mode in [
            MacvlanMode::Bridge,
            MacvlanMode::Private,
            MacvlanMode::Vepa,
            MacvlanMode::Source,
        ] {
            let name = format!("nlt-mv-{mode}");
            let kind = match mode {
                MacvlanMode::Source => Macvlan::source("nlt-mvp", sources.clone()),
                m => Macvlan::new("nlt-mvp", m),
            };
            nl.link().add(kind).name(&name).execute().await.unwrap();
            let link = nl.link().get(name.as_str()).execute().await.unwrap();
            assert_eq!(link.kind.as_deref(), Some("macvlan"));
            assert_eq!(link.parent, Some(parent.index), "{name}");
            let want_macs = if mode == MacvlanMode::Source {
                sources.clone()
            } else {
                vec![]
            };
            assert_eq!(
                link.details,
                Some(LinkDetails::Macvlan {
                    mode,
                    source_macs: want_macs
                }),
                "{name}"
            );
        }
        // passthru takes the parent for itself: other macvlans must go first.
        for mode in ["bridge", "private", "vepa", "source"] {
            nl.link()
                .del(format!("nlt-mv-{mode}"))
                .execute()
                .await
                .unwrap();
        }
        nl.link()
            .add(Macvlan::new("nlt-mvp", MacvlanMode::Passthru))
            .name("nlt-mv-pt")
            .execute()
            .await
            .unwrap();
        let pt = nl.link().get("nlt-mv-pt").execute().await.unwrap();
        assert_eq!(
            pt.details,
            Some(LinkDetails::Macvlan {
                mode: MacvlanMode::Passthru,
                source_macs: vec![]
            })
        );
        let err = nl
            .link()
            .add(Macvlan::new("nlt-nosuch", MacvlanMode::Bridge))
            .name("nlt-mv-x")
            .execute()
            .await
            .unwrap_err();
        assert!(matches!(err, NetlinkError::NoParent { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "create macvlan nlt-mv-x on nlt-nosuch: parent nlt-nosuch not found (ENODEV)"
        );
        // Deleting the parent takes its macvlans with it.
        nl.link().del("nlt-mvp").execute().await.unwrap();
        assert!(
            nl.link()
                .get("nlt-mv-pt")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn macvlan_created_directly_in_another_namespace() {
    let Some((_ns, nl)) = setup("macvlan_created_directly_in_another_namespace") else {
        return;
    };
    let pod = private_netns();
    block_on(async {
        add_veth(&nl, "nlt-mvn", "nlt-mvn-b").await;
        nl.link()
            .add(Macvlan::new("nlt-mvn", MacvlanMode::Bridge))
            .name("net1")
            .netns(pod.clone())
            .mtu(1400)
            .execute()
            .await
            .unwrap();
        let in_pod = netlink_in(&pod).link().get("net1").execute().await.unwrap();
        assert_eq!(
            (in_pod.mtu, in_pod.kind.as_deref()),
            (1400, Some("macvlan"))
        );
        assert!(
            nl.link()
                .get("net1")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn vlan_802_1q_and_802_1ad() {
    let Some((_ns, nl)) = setup("vlan_802_1q_and_802_1ad") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-vl", "nlt-vl-b").await;
        for (id, proto) in [(10, VlanProto::Dot1Q), (20, VlanProto::Dot1Ad)] {
            let name = format!("nlt-vl.{id}");
            let made = nl
                .link()
                .add(Vlan::new("nlt-vl", id).proto(proto))
                .name(&name)
                .execute()
                .await;
            match made {
                Err(e) if matches!(e, NetlinkError::KindUnsupported { .. }) => {
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "create vlan {name} on nlt-vl: the kernel has no vlan support (module 8021q not available)"
                        )
                    );
                    skip("vlan_802_1q_and_802_1ad", &e.to_string());
                    return;
                }
                Err(e) => panic!("{e}"),
                Ok(()) => {}
            }
            let link = nl.link().get(name.as_str()).execute().await.unwrap();
            assert_eq!(link.details, Some(LinkDetails::Vlan { id, proto }));
        }
    });
}

#[test]
fn ipvlan_in_every_mode() {
    let Some((_ns, nl)) = setup("ipvlan_in_every_mode") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-ipv", "nlt-ipv-b").await;
        for (i, (mode, flag)) in [
            (IpvlanMode::L2, IpvlanFlag::Bridge),
            (IpvlanMode::L3, IpvlanFlag::Private),
            (IpvlanMode::L3s, IpvlanFlag::Vepa),
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("nlt-ipv{i}");
            let made = nl
                .link()
                .add(Ipvlan::new("nlt-ipv", mode).flag(flag))
                .name(&name)
                .execute()
                .await;
            match made {
                Err(e) if matches!(e, NetlinkError::KindUnsupported { .. }) => {
                    assert!(
                        e.to_string().ends_with(
                            "the kernel has no ipvlan support (module ipvlan not available)"
                        ),
                        "{e}"
                    );
                    skip("ipvlan_in_every_mode", &e.to_string());
                    return;
                }
                Err(e) => panic!("{e}"),
                Ok(()) => {}
            }
            let link = nl.link().get(name.as_str()).execute().await.unwrap();
            assert_eq!(link.details, Some(LinkDetails::Ipvlan { mode, flag }));
        }
    });
}

#[test]
fn move_and_rename_in_one_request() {
    let Some((_ns, nl)) = setup("move_and_rename_in_one_request") else {
        return;
    };
    let pod = private_netns();
    let in_pod = netlink_in(&pod);
    block_on(async {
        add_veth(&nl, "nlt-mr-a", "nlt-mr-b").await;
        // The pod already has a link named like ours: a move without the rename would collide.
        in_pod
            .link()
            .add(Veth::new("nlt-mr-x"))
            .name("nlt-mr-b")
            .execute()
            .await
            .unwrap();
        let err = nl
            .link()
            .set("nlt-mr-b")
            .netns(pod.clone())
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        // Up links move and rename too (the rename-needs-down rule is for renames in place).
        nl.link().set("nlt-mr-b").up().execute().await.unwrap();
        nl.link()
            .set("nlt-mr-b")
            .netns_rename(pod.clone(), "net1")
            .execute()
            .await
            .unwrap();
        assert!(
            nl.link()
                .get("nlt-mr-b")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );
        let moved = in_pod.link().get("net1").execute().await.unwrap();
        assert_eq!(moved.kind.as_deref(), Some("veth"));
    });
}

#[test]
fn master_and_nomaster_on_a_bridge() {
    let Some((_ns, nl)) = setup("master_and_nomaster_on_a_bridge") else {
        return;
    };
    block_on(async {
        nl.link()
            .add(LinkKind::Bridge)
            .name("nlt-br")
            .execute()
            .await
            .unwrap();
        add_veth(&nl, "nlt-br-a", "nlt-br-b").await;
        let br = nl.link().get("nlt-br").execute().await.unwrap();
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        nl.link()
            .set("nlt-br-a")
            .master("nlt-br")
            .execute()
            .await
            .unwrap();
        assert_eq!(
            nl.link().get("nlt-br-a").execute().await.unwrap().master,
            Some(br.index)
        );
        let err = nl
            .link()
            .set("nlt-br-b")
            .master("nlt-br-a")
            .execute()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("set master nlt-br-a on nlt-br-b: "),
            "{err}"
        );
        nl.link()
            .set("nlt-br-a")
            .nomaster()
            .execute()
            .await
            .unwrap();
        assert_eq!(
            nl.link().get("nlt-br-a").execute().await.unwrap().master,
            None
        );
    });
}
