//! Links: get, list, set (rename, MTU, MAC, up/down, netns), delete; VF requests on a veth;
//! ethtool features; errors with errno and extack.

use futures::TryStreamExt;
use nic::{
    ethtool::EthtoolError,
    host::{Host, RealHost},
    netlink::{LinkId, MacAddr, OperState, VfLinkState, VlanProto},
    netns::{NetnsRef, block_on_in_netns},
};

use super::{add_veth, block_on, netlink_in, private_netns, setup};

#[test]
fn rename_mtu_mac_up_down_delete() {
    let Some((_ns, nl)) = setup("rename_mtu_mac_up_down_delete") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-ren-a", "nlt-ren-b").await;
        let link = nl.link().get("nlt-ren-a").execute().await.unwrap();
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert!(!link.up);

        let mac: MacAddr = "02:5a:00:00:00:01".parse().unwrap();
        nl.link()
            .set("nlt-ren-a")
            .name("nlt-ren-c")
            .mtu(9000)
            .mac(mac)
            .up()
            .execute()
            .await
            .unwrap();
        let renamed = nl.link().get(link.index).execute().await.unwrap();
        assert_eq!(renamed.name, "nlt-ren-c");
        assert_eq!(renamed.mtu, 9000);
        assert_eq!(renamed.mac, Some(mac));
        assert!(renamed.up);
        assert!(
            nl.link()
                .get("nlt-ren-a")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );

        // The peer is down, so this end has no carrier: admin up, oper lowerlayerdown/down.
        assert_ne!(renamed.oper_state, OperState::Up);
        nl.link().set("nlt-ren-b").up().execute().await.unwrap();
        nl.link().set(renamed.index).down().execute().await.unwrap();
        assert!(!nl.link().get("nlt-ren-c").execute().await.unwrap().up);

        let names: Vec<_> = nl
            .link()
            .list()
            .execute()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert!(names.contains(&"nlt-ren-b".to_string()), "{names:?}");

        nl.link().del("nlt-ren-c").execute().await.unwrap();
        let gone = nl.link().get("nlt-ren-b").execute().await.unwrap_err();
        assert!(
            gone.is_not_found(),
            "deleting one end deletes the peer: {gone}"
        );
    });
}

#[test]
fn kernel_errors_carry_errno_and_extack() {
    let Some((_ns, nl)) = setup("kernel_errors_carry_errno_and_extack") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-err-a", "nlt-err-b").await;
        let err = nl
            .link()
            .set("nlt-err-a")
            .mtu(70_000)
            .execute()
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::libc::EINVAL), "{err}");
        assert!(
            err.extack().is_some_and(|m| m.contains("mtu")),
            "no extack text: {err}"
        );
        assert!(
            err.to_string().starts_with("set mtu 70000 on nlt-err-a: "),
            "{err}"
        );

        let err = nl
            .link()
            .set("nlt-err-a")
            .name("nlt-err-b")
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");

        let err = nl
            .link()
            .get("nlt-nonexistent")
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("nlt-nonexistent"), "{err}");
    });
}

#[test]
fn move_to_another_namespace_and_back() {
    let Some((home, nl)) = setup("move_to_another_namespace_and_back") else {
        return;
    };
    let away = private_netns();
    let home_for_return = home.clone();
    let away_for_test = away.clone();
    block_on(async move {
        add_veth(&nl, "nlt-mv-a", "nlt-mv-b").await;
        let index = nl.link().get("nlt-mv-b").execute().await.unwrap().index;

        nl.link()
            .set("nlt-mv-b")
            .netns(away_for_test.clone())
            .execute()
            .await
            .unwrap();
        assert!(
            nl.link()
                .get("nlt-mv-b")
                .execute_optional()
                .await
                .unwrap()
                .is_none()
        );

        // In the other namespace: found, renamed, then sent home by a path to the namespace.
        let home_path = match &home_for_return {
            NetnsRef::Fd(fd) => {
                use std::os::fd::AsRawFd;
                NetnsRef::path(format!(
                    "/proc/{}/fd/{}",
                    std::process::id(),
                    fd.as_raw_fd()
                ))
            }
            other => other.clone(),
        };
        let away_nl = netlink_in(&away_for_test);
        let link = away_nl.link().get("nlt-mv-b").execute().await.unwrap();
        away_nl
            .link()
            .set(link.index)
            .name("nlt-mv-c")
            .netns(home_path)
            .execute()
            .await
            .unwrap();
        let moved = away_nl.link().list().execute().await.unwrap();
        assert!(moved.iter().all(|l| l.name != "nlt-mv-c"), "{moved:?}");

        let back = nl.link().get("nlt-mv-c").execute().await.unwrap();
        assert_eq!(back.kind.as_deref(), Some("veth"));
        // The kernel keeps the ifindex when it is free in the target namespace.
        assert_eq!(back.index, index);
        nl.link()
            .del(LinkId::Index(back.index))
            .execute()
            .await
            .unwrap();
    });
}

#[test]
fn vf_requests_on_a_veth_reach_the_driver_and_get_eopnotsupp() {
    let Some((_ns, nl)) = setup("vf_requests_on_a_veth_reach_the_driver_and_get_eopnotsupp") else {
        return;
    };
    block_on(async {
        add_veth(&nl, "nlt-vf-a", "nlt-vf-b").await;
        assert!(nl.vf("nlt-vf-a").list().execute().await.unwrap().is_empty());
        let vf = nl.vf("nlt-vf-a");
        // A malformed IFLA_VFINFO_LIST would be EINVAL from the policy parse; EOPNOTSUPP means
        // the nest was accepted and only the missing driver op failed.
        let requests = [
            ("mac", vf.set(0).mac("02:00:00:00:00:01".parse().unwrap())),
            ("vlan", vf.set(0).vlan(10, 2, VlanProto::Dot1Q)),
            ("vlan", vf.set(0).vlan(10, 2, VlanProto::Dot1Ad)),
            ("spoofchk", vf.set(0).spoofchk(false)),
            ("trust", vf.set(0).trust(true)),
            ("min-tx-rate", vf.set(0).min_tx_rate(10)),
            ("max-tx-rate", vf.set(0).max_tx_rate(100)),
            ("link-state", vf.set(0).link_state(VfLinkState::Disable)),
        ];
        for (setting, request) in requests {
            let err = request.execute().await.unwrap_err();
            assert!(err.is_not_supported(), "{setting}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("set vf 0 {setting} on nlt-vf-a: ")),
                "{err}"
            );
        }
    });
}

#[test]
fn ethtool_features_of_a_veth() {
    let Some((ns, nl)) = setup("ethtool_features_of_a_veth") else {
        return;
    };
    block_on(add_veth(&nl, "nlt-eth-a", "nlt-eth-b"));
    // ethtool in the namespace from the same host object as netlink.
    let ethtool = RealHost::new().unwrap().ethtool(&ns).unwrap();
    block_on(async {
        let features = ethtool.features().get("nlt-eth-a").execute().await.unwrap();
        let tc = &features.features["hw-tc-offload"];
        assert!(
            !tc.active && tc.fixed,
            "hw-tc-offload on a veth is off [fixed]: {tc:?}"
        );
        assert!(
            features.features.contains_key("tx-scatter-gather"),
            "bit 0 is kept"
        );

        // tx-checksumming is ethtool's group name for the tx-checksum-* bits.
        let off = ethtool
            .features()
            .set("nlt-eth-a")
            .feature("tx-checksumming", false)
            .execute()
            .await
            .unwrap();
        assert!(
            off.requested
                .iter()
                .any(|(n, _)| n == "tx-checksum-ip-generic"),
            "{off:?}"
        );
        let now = ethtool.features().get("nlt-eth-a").execute().await.unwrap();
        assert!(!now.features["tx-checksum-ip-generic"].active);
        ethtool
            .features()
            .set("nlt-eth-a")
            .feature("tx", true)
            .execute()
            .await
            .unwrap();
        let now = ethtool.features().get("nlt-eth-a").execute().await.unwrap();
        assert!(now.features["tx-checksum-ip-generic"].active);

        let before = now.features["rx-gro"].active;
        ethtool
            .features()
            .set("nlt-eth-a")
            .feature("rx-gro", !before)
            .execute()
            .await
            .unwrap();
        let now = ethtool.features().get("nlt-eth-a").execute().await.unwrap();
        assert_eq!(now.features["rx-gro"].active, !before);

        let err = ethtool
            .features()
            .set("nlt-eth-a")
            .feature("hw-tc-offload", true)
            .execute()
            .await
            .unwrap_err();
        assert!(matches!(err, EthtoolError::NotChanged { .. }), "{err}");
        assert!(err.to_string().contains("hw-tc-offload"), "{err}");

        let err = ethtool
            .features()
            .get("nlt-eth-none")
            .execute()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nlt-eth-none"), "{err}");
        let err = ethtool
            .features()
            .set("nlt-eth-a")
            .feature("no-such-feature", true)
            .execute()
            .await
            .unwrap_err();
        assert!(matches!(err, EthtoolError::UnknownFeature { .. }), "{err}");
    });
}

#[test]
fn links_in_a_new_namespace_are_only_loopback() {
    let Some((ns, nl)) = setup("links_in_a_new_namespace_are_only_loopback") else {
        return;
    };
    // Checked against rtnetlink's own dump, made on a thread inside the namespace.
    let raw = block_on_in_netns(&ns, || async {
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let raw: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
        raw.len()
    })
    .unwrap();
    let ours = block_on(nl.link().list().execute()).unwrap();
    assert_eq!(raw, ours.len());
    let names: Vec<_> = ours.into_iter().map(|l| l.name).collect();
    assert_eq!(names, vec!["lo".to_string()]);
}

/// Needs no root: this kernel either has devlink (then listing works) or has no "devlink"
/// family, which must come back as `Ok(None)`, not as a failure.
#[test]
fn devlink_absence_is_not_a_failure() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match nic::devlink::DevlinkHandle::connect_optional()
            .await
            .unwrap()
        {
            None => {
                let err = nic::devlink::DevlinkHandle::connect().await.unwrap_err();
                assert!(err.is_unavailable(), "{err}");
                println!("no devlink on this kernel: {err}");
            }
            Some(dl) => {
                let devs = dl.dev().list().await.unwrap();
                let ports = dl.port().list(None).await.unwrap();
                println!("devlink devices: {devs:?}, {} ports", ports.len());
            }
        }
    });
}
