//! Root test of the lookup of a PF's macvlan/ipvlan users on the running kernel: a veth plays
//! the PF, a macvlan on it lives in a "pod" namespace found under `<root>/var/run/netns`, as
//! the container runtimes keep them. Everything happens in private namespaces made by the test.
//!
//! Without root, or without macvlan in the kernel, the test prints `SKIP <name>: <reason>` on
//! the real stdout and returns; any other failure to build the links fails the test.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use agent::run::host::{LiveHost, NodeHost};
use crds::inventory::{Nic, NicInventory};
use nic::{
    netlink::{Macvlan, MacvlanMode, NetlinkHandle, Veth},
    netns::{NetnsRef, create_netns, run_in_netns},
    sysfs::SysFs,
};

fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[test]
fn a_macvlan_in_a_pod_namespace_is_a_user_of_its_pf() {
    const TEST: &str = "a_macvlan_in_a_pod_namespace_is_a_user_of_its_pf";
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        skip(TEST, "needs root (creates network namespaces and links)");
        return;
    }
    let host = NetnsRef::fd(create_netns().expect("a namespace for the host side"));
    let pod = create_netns().expect("a pod namespace");
    let root = tempfile::tempdir().expect("root");
    let netns_dir = root.path().join("var/run/netns");
    std::fs::create_dir_all(&netns_dir).expect("netns dir");
    let pod_path = format!("/proc/{}/fd/{}", std::process::id(), pod.as_raw_fd());
    std::os::unix::fs::symlink(&pod_path, netns_dir.join("cni-test")).expect("link");

    let users = run_in_netns(&host, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let made = rt.block_on(async {
            let nl = NetlinkHandle::connect()?;
            nl.link()
                .add(Veth::new("pf0peer"))
                .name("pf0")
                .execute()
                .await?;
            nl.link()
                .add(Macvlan::new("pf0", MacvlanMode::Bridge))
                .name("net1")
                .netns(NetnsRef::path(&pod_path))
                .execute()
                .await
        });
        made?;
        let inventory = NicInventory {
            nics: vec![Nic {
                pci_address: "0000:01:00.0".into(),
                name: Some("pf0".into()),
                ..Default::default()
            }],
        };
        Ok::<_, nic::netlink::NetlinkError>(
            LiveHost::new(SysFs::new(root.path())).upper_users(&inventory),
        )
    })
    .expect("the host namespace");
    // only a kernel without macvlan may skip; any other failure is our netlink code's and fails
    let users = match users {
        Ok(u) => u,
        Err(e) if e.is_not_supported() => {
            skip(TEST, &format!("kernel feature: no macvlan ({e})"));
            return;
        }
        Err(e) => panic!("creating the veth and the macvlan failed: {e}"),
    };
    assert_eq!(
        users.get("0000:01:00.0"),
        Some(&vec!["cni-test/net1".to_owned()]),
        "{users:?}"
    );
}
