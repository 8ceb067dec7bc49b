//! Port attach latency: our OVSDB client vs `ovs-vsctl add-port`, in one run, against one
//! private OVS (userspace datapath). Both wait until ovs-vswitchd has applied the change and the
//! port has its OpenFlow port number (`ovs-vsctl` does so by default). Interleaved, so that both
//! see the same machine load. Needs root and Open vSwitch (prints `SKIP ...` otherwise).
//!
//! `cargo bench -p offload --bench port_attach [-- N]` (default N = 40 per variant).
//!
//! Variants:
//! - `client (warm)`: one connection kept open, as the agent or a long-lived CNI helper has it;
//! - `client (cold)`: connect + monitor + add-port, what one CNI invocation pays;
//! - `ovs-vsctl add-port`: a process per attach.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Netns, OvsInstance, skip_reason};
use offload::Ovs;

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn p95(v: &[Duration]) -> Duration {
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Some(r) = skip_reason() {
        println!("SKIP port_attach: {r}");
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let ns = Netns::new("snbench");
    let inst = OvsInstance::start(&ns);
    let ovs = Ovs::connect(&inst.remote()).await.unwrap();
    ovs.bridge()
        .add("br-bench")
        .datapath_type("netdev")
        .execute()
        .await
        .unwrap();
    for i in 0..4 * n {
        ns.exec(&[
            "ip",
            "link",
            "add",
            &format!("b{i}"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("b{i}p"),
        ]);
        ns.exec(&["ip", "link", "set", &format!("b{i}"), "up"]);
    }
    let db = format!("--db=unix:{}", inst.db_sock().display());
    let (mut warm, mut cold, mut vsctl, mut nowait) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (a, b, c) = (
            format!("b{}", 3 * i),
            format!("b{}", 3 * i + 1),
            format!("b{}", 3 * i + 2),
        );

        let t = Instant::now();
        let p = ovs.port().add("br-bench", &a).execute().await.unwrap();
        warm.push(t.elapsed());
        assert!(p.is_some());

        let t = Instant::now();
        let fresh = Ovs::connect(&inst.remote()).await.unwrap();
        let p = fresh.port().add("br-bench", &b).execute().await.unwrap();
        cold.push(t.elapsed());
        assert!(p.is_some());
        drop(fresh);

        let t = Instant::now();
        let out = tokio::process::Command::new("ovs-vsctl")
            .args([db.as_str(), "--timeout=10", "add-port", "br-bench", &c])
            .output()
            .await
            .unwrap();
        vsctl.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // For reference: the commit alone (ovs-vswitchd's share is the rest).
        let t = Instant::now();
        ovs.port()
            .add("br-bench", &format!("b{}", 3 * n + i))
            .no_wait()
            .execute()
            .await
            .unwrap();
        nowait.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every port really has its ofport (the same check for all three; the monitor may see
    // ovs-vsctl's last change a moment after ovs-vsctl returned).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view = ovs.view();
    for i in 0..3 * n {
        let name = format!("b{i}");
        let p = view.interface(&name).and_then(|r| r.ofport);
        assert!(p.is_some_and(|p| p > 0), "{name} has no ofport");
    }
    let (mw, mc, mv, mn) = (
        median(&mut warm),
        median(&mut cold),
        median(&mut vsctl),
        median(&mut nowait),
    );
    println!("port attach, {n} ports per variant, waiting for the ofport (userspace datapath):");
    for (name, m, v) in [
        ("client (warm connection)", mw, &warm),
        ("client (connect + monitor + add)", mc, &cold),
        ("ovs-vsctl add-port", mv, &vsctl),
        ("(client commit only, --no-wait)", mn, &nowait),
    ] {
        println!(
            "  {name:<34} median {:>7.3} ms  p95 {:>7.3} ms",
            ms(m),
            ms(p95(v))
        );
    }
    println!(
        "  ratio warm/ovs-vsctl {:.2}x, cold/ovs-vsctl {:.2}x (goal <= 0.30x)",
        ms(mw) / ms(mv),
        ms(mc) / ms(mv)
    );
}
