//! RDMA isolation in mode sriov on the in-memory host: on an RDMA-exclusive node the VF's RDMA
//! device goes into the pod with the VF and comes back on DEL (also after a crash, and after
//! the pod's namespace is gone); a kernel not in exclusive mode refuses the ADD with an error
//! saying so; on other nodes the device stays where it is.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common_fake::*;
use nic::rdma::NetnsMode;
use smartnic_cni::{env::Command, failpoint, host::Ns};

fn rdma_world(exclusive_node: bool, kernel: Option<NetnsMode>) -> World {
    let w = World::new(2);
    let file = if exclusive_node {
        r#"{"resourceList":[],"rdmaExclusive":true}"#
    } else {
        r#"{"resourceList":[]}"#
    };
    std::fs::write(&w.plugin.paths.ready_file, file).unwrap();
    w.fake.set_rdma_mode(kernel);
    w.fake.add_rdma_device("mlx5_2", bdf(0));
    w
}

#[test]
fn an_exclusive_node_moves_the_rdma_device_with_the_vf_and_back() {
    let w = rdma_world(true, Some(NetnsMode::Exclusive));
    let ns = w.netns("p1");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(
        w.fake.rdma_location("mlx5_2"),
        Some(ns.display().to_string())
    );
    let journal = std::fs::read_to_string(w.plugin.store.journal_path("c1", "net1")).unwrap();
    assert!(
        journal.contains(r#"{"step":"rdma-move","device":"mlx5_2"}"#),
        "{journal}"
    );
    del(&w, &conf, "c1", Some(&ns));
    assert_eq!(w.fake.rdma_location("mlx5_2").as_deref(), Some("host"));
    // a VF without an RDMA device attaches as before
    let conf1 = w.sriov_conf(1, serde_json::json!({}));
    add(&w, &conf1, "c2", &ns).unwrap();
    del(&w, &conf1, "c2", Some(&ns));
}

#[test]
fn a_kernel_not_in_exclusive_mode_refuses_the_add_and_keeps_nothing() {
    for kernel in [Some(NetnsMode::Shared), None] {
        let w = rdma_world(true, kernel);
        let rows = w.fake.vf_rows();
        let host = w.fake.links(Ns::Host);
        let ns = w.netns("p1");
        let conf = w.sriov_conf(0, serde_json::json!({}));
        let err = add(&w, &conf, "c1", &ns).unwrap_err();
        assert!(
            err.msg.contains("has RDMA device mlx5_2")
                && err.msg.contains("rdmaMode is exclusive")
                && err.msg.contains("rdma system set netns exclusive"),
            "{}",
            err.msg
        );
        let now = if kernel.is_some() {
            "mode is shared"
        } else {
            "absent"
        };
        assert!(err.msg.contains(now), "{}", err.msg);
        assert_eq!(w.fake.rdma_location("mlx5_2").as_deref(), Some("host"));
        assert_eq!(w.fake.vf_rows(), rows, "the VF settings are undone");
        assert_eq!(w.fake.links(Ns::Host), host, "the VF netdev stays home");
        assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    }
}

#[test]
fn other_nodes_leave_the_rdma_device_where_it_is() {
    // shared (or unset) rdmaMode: every pod sees every RDMA device, nothing to move
    let w = rdma_world(false, Some(NetnsMode::Shared));
    let ns = w.netns("p1");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(w.fake.rdma_location("mlx5_2").as_deref(), Some("host"));
    del(&w, &conf, "c1", Some(&ns));
}

#[test]
fn del_after_a_crash_or_without_the_pod_brings_the_rdma_device_home() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let failpoint = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("failpoint "));
        if !failpoint {
            default_hook(info);
        }
    }));
    let w = rdma_world(true, Some(NetnsMode::Exclusive));
    let conf = w.sriov_conf(0, serde_json::json!({}));
    // a crash right after the device moved (vf-move is journaled next)
    for (i, step) in ["rdma-move", "vf-move", "addresses"]
        .into_iter()
        .enumerate()
    {
        let ns = w.netns(&format!("p{i}"));
        let id = format!("c{i}");
        let e = env(Command::Add, &id, "net1", Some(&ns));
        failpoint::set(Some(step));
        let crashed = catch_unwind(AssertUnwindSafe(|| w.plugin.add(&parse(&conf, &e), &e)));
        failpoint::set(None);
        assert!(crashed.is_err(), "{step}: the failpoint fired");
        del(&w, &conf, &id, Some(&ns));
        assert_eq!(
            w.fake.rdma_location("mlx5_2").as_deref(),
            Some("host"),
            "crash after {step}"
        );
    }
    let _ = std::panic::take_hook();
    // the pod's namespace destroyed before DEL: the kernel returned the device already
    let ns = w.netns("gone");
    add(&w, &conf, "c9", &ns).unwrap();
    w.fake.remove_netns(&ns);
    del(&w, &conf, "c9", Some(&ns));
    assert_eq!(w.fake.rdma_location("mlx5_2").as_deref(), Some("host"));
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}
