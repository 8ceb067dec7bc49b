//! Addresses and routes, IPv4 and IPv6.

use nic::netlink::{IpFamily, IpPrefix, NetlinkHandle, Scope, Veth};

use super::{block_on, setup};

async fn up_veth(nl: &NetlinkHandle, a: &str, b: &str) {
    nl.link()
        .add(Veth::new(b))
        .name(a)
        .up()
        .execute()
        .await
        .expect("create a veth pair");
    nl.link().set(b).up().execute().await.expect("peer up");
}

#[test]
fn addresses_v4_and_v6() {
    let Some((_ns, nl)) = setup("addresses_v4_and_v6") else {
        return;
    };
    block_on(async {
        up_veth(&nl, "nlt-ad-a", "nlt-ad-b").await;
        let v4: IpPrefix = "10.250.0.2/24".parse().unwrap();
        let v6: IpPrefix = "2001:db8:250::2/64".parse().unwrap();
        nl.address().add("nlt-ad-a", v4).execute().await.unwrap();
        nl.address().add("nlt-ad-a", v6).execute().await.unwrap();
        let index = nl.link().get("nlt-ad-a").execute().await.unwrap().index;
        let listed = nl.address().list().dev("nlt-ad-a").execute().await.unwrap();
        assert!(listed.iter().all(|a| a.index == index));
        let find = |p: IpPrefix| listed.iter().find(|a| a.address == p).cloned();
        assert_eq!(find(v4).map(|a| a.scope), Some(Scope::Global), "{listed:?}");
        assert_eq!(find(v6).map(|a| a.scope), Some(Scope::Global), "{listed:?}");
        let v4_only = nl
            .address()
            .list()
            .dev("nlt-ad-a")
            .family(IpFamily::V4)
            .execute()
            .await
            .unwrap();
        assert_eq!(
            v4_only.iter().map(|a| a.address).collect::<Vec<_>>(),
            vec![v4]
        );

        let err = nl
            .address()
            .add("nlt-ad-a", v4)
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert!(
            err.to_string()
                .starts_with("add address 10.250.0.2/24 on nlt-ad-a: "),
            "{err}"
        );
        nl.address().del("nlt-ad-a", v4).execute().await.unwrap();
        nl.address().del("nlt-ad-a", v6).execute().await.unwrap();
        let left = nl.address().list().dev("nlt-ad-a").execute().await.unwrap();
        assert!(
            left.iter().all(|a| a.address != v4 && a.address != v6),
            "{left:?}"
        );
        let err = nl
            .address()
            .del("nlt-ad-a", v4)
            .execute()
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::libc::EADDRNOTAVAIL), "{err}");
        let err = nl
            .address()
            .add("nlt-ad-none", v4)
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("nlt-ad-none"), "{err}");
    });
}

#[test]
fn routes_v4_and_v6() {
    let Some((_ns, nl)) = setup("routes_v4_and_v6") else {
        return;
    };
    block_on(async {
        up_veth(&nl, "nlt-rt-a", "nlt-rt-b").await;
        let index = nl.link().get("nlt-rt-a").execute().await.unwrap().index;
        nl.address()
            .add("nlt-rt-a", "10.251.0.2/24".parse().unwrap())
            .execute()
            .await
            .unwrap();
        // nodad would be quicker, but a gateway route does not need the address usable.
        nl.address()
            .add("nlt-rt-a", "2001:db8:251::2/64".parse().unwrap())
            .execute()
            .await
            .unwrap();

        nl.route()
            .add("10.99.0.0/16".parse().unwrap())
            .gateway("10.251.0.1".parse().unwrap())
            .metric(50)
            .execute()
            .await
            .unwrap();
        nl.route()
            .add("10.98.0.0/16".parse().unwrap())
            .dev("nlt-rt-a")
            .table(100)
            .execute()
            .await
            .unwrap();
        nl.route()
            .add(IpPrefix::default_route(IpFamily::V6))
            .gateway("2001:db8:251::1".parse().unwrap())
            .dev("nlt-rt-a")
            .metric(1024)
            .execute()
            .await
            .unwrap();

        let main = nl.route().list(IpFamily::V4).execute().await.unwrap();
        let r = main
            .iter()
            .find(|r| r.destination.to_string() == "10.99.0.0/16")
            .unwrap_or_else(|| panic!("{main:?}"));
        assert_eq!(r.gateway, Some("10.251.0.1".parse().unwrap()));
        assert_eq!((r.oif, r.metric, r.table), (Some(index), Some(50), 254));
        assert_eq!((r.scope, r.protocol), (Scope::Global, 3));
        // The kernel's own prefix route for the address is there too.
        assert!(
            main.iter()
                .any(|r| r.destination.to_string() == "10.251.0.0/24")
        );
        let t100 = nl
            .route()
            .list(IpFamily::V4)
            .table(100)
            .execute()
            .await
            .unwrap();
        assert_eq!(t100.len(), 1, "{t100:?}");
        assert_eq!((t100[0].scope, t100[0].oif), (Scope::Link, Some(index)));
        let v6 = nl
            .route()
            .list(IpFamily::V6)
            .dev("nlt-rt-a")
            .execute()
            .await
            .unwrap();
        let default = v6
            .iter()
            .find(|r| r.destination.prefix_len == 0)
            .unwrap_or_else(|| panic!("{v6:?}"));
        assert_eq!(default.gateway, Some("2001:db8:251::1".parse().unwrap()));
        assert_eq!(default.metric, Some(1024));

        let err = nl
            .route()
            .add("10.97.0.0/16".parse().unwrap())
            .gateway("10.9.9.1".parse().unwrap())
            .execute()
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::libc::ENETUNREACH), "{err}");
        assert!(
            err.to_string()
                .starts_with("add route 10.97.0.0/16 via 10.9.9.1: "),
            "{err}"
        );
        let err = nl
            .route()
            .add("10.99.0.0/16".parse().unwrap())
            .gateway("10.251.0.1".parse().unwrap())
            .metric(50)
            .execute()
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");

        nl.route()
            .del("10.99.0.0/16".parse().unwrap())
            .execute()
            .await
            .unwrap();
        nl.route()
            .del("10.98.0.0/16".parse().unwrap())
            .table(100)
            .execute()
            .await
            .unwrap();
        nl.route()
            .del(IpPrefix::default_route(IpFamily::V6))
            .dev("nlt-rt-a")
            .execute()
            .await
            .unwrap();
        let err = nl
            .route()
            .del("10.99.0.0/16".parse().unwrap())
            .execute()
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::libc::ESRCH), "{err}");
        let main = nl.route().list(IpFamily::V4).execute().await.unwrap();
        assert!(
            main.iter()
                .all(|r| r.destination.to_string() != "10.99.0.0/16")
        );
    });
}
