//! Port attach latency: our OVSDB client vs `ovs-vsctl add-port`, in one run, against one
//! private OVS (userspace datapath). Both wait until ovs-vswitchd has applied the change and the
//! port has its OpenFlow port number (`ovs-vsctl` does so by default). Interleaved, so that both
//! see the same machine load, in an order that rotates each iteration (each variant in each
//! position equally often). Needs root and Open vSwitch (prints `SKIP ...` otherwise).
//!
//! `cargo bench -p offload --bench port_attach [-- N [PORTS]]`: N attaches per variant (default
//! 40) to a bridge that holds PORTS other ports (default 16, a node's pods). Each iteration's
//! ports are taken off again (outside the clock), so every attach sees the same bridge: how long
//! ovs-vswitchd takes to apply a change grows with the ports on the bridge and the links in its
//! namespace (it re-reads them all), the same for both sides, and a bench that only ever added
//! would measure its own growth.
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
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = nums.first().copied().unwrap_or(40);
    let background = nums.get(1).copied().unwrap_or(16);
    let ns = Netns::new("snbench");
    // The pods' ends of the veths live elsewhere, as on a node: ovs-vswitchd lists every link of
    // its namespace on each change (getifaddrs), so both ends in its namespace doubled that work.
    let pods = Netns::new("snbpods");
    let inst = OvsInstance::start(&ns);
    let ovs = Ovs::connect(&inst.remote()).await.unwrap();
    ovs.bridge()
        .add("br-bench")
        .datapath_type("netdev")
        .execute()
        .await
        .unwrap();
    let veth = |name: &str| {
        ns.exec(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
            "netns",
            &pods.name,
        ]);
        ns.exec(&["ip", "link", "set", name, "up"]);
    };
    for i in 0..background {
        let name = format!("bg{i}");
        veth(&name);
        ovs.port().add("br-bench", &name).execute().await.unwrap();
    }
    let db = format!("--db=unix:{}", inst.db_sock().display());
    let (mut warm, mut cold, mut vsctl, mut nowait) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let names = ["a", "b", "c", "d"].map(|v| format!("{v}{i}"));
        for name in &names {
            veth(name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The order rotates every iteration: each variant goes first, second, third and last
        // equally often, so none always meets a bridge with the others' ports already on it.
        for k in 0..4 {
            let v = (i + k) % 4;
            let name = names[v].as_str();
            let t = Instant::now();
            match v {
                0 => {
                    let p = ovs.port().add("br-bench", name).execute().await.unwrap();
                    warm.push(t.elapsed());
                    assert!(p.is_some());
                }
                1 => {
                    let fresh = Ovs::connect(&inst.remote()).await.unwrap();
                    let p = fresh.port().add("br-bench", name).execute().await.unwrap();
                    cold.push(t.elapsed());
                    assert!(p.is_some());
                    drop(fresh);
                }
                2 => {
                    let out = tokio::process::Command::new("ovs-vsctl")
                        .args([db.as_str(), "--timeout=10", "add-port", "br-bench", name])
                        .output()
                        .await
                        .unwrap();
                    vsctl.push(t.elapsed());
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                _ => {
                    // for reference: the commit alone (ovs-vswitchd's share is the rest)
                    ovs.port()
                        .add("br-bench", name)
                        .no_wait()
                        .execute()
                        .await
                        .unwrap();
                    nowait.push(t.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;

        // Every port really got its ofport (the same check for all four; the monitor may see
        // ovs-vsctl's change a moment after ovs-vsctl returned), then back to the same bridge.
        let view = ovs.view();
        for name in &names {
            let p = view.interface(name).and_then(|r| r.ofport);
            assert!(p.is_some_and(|p| p > 0), "{name} has no ofport");
        }
        for name in &names {
            ovs.port().del(name).execute().await.unwrap();
            ns.exec(&["ip", "link", "del", name]);
        }
    }
    let (mw, mc, mv, mn) = (
        median(&mut warm),
        median(&mut cold),
        median(&mut vsctl),
        median(&mut nowait),
    );
    println!(
        "port attach to a bridge of {background} ports, {n} attaches per variant, waiting for the ofport (userspace datapath):"
    );
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
        "  ratio warm/ovs-vsctl {:.2}x, cold/ovs-vsctl {:.2}x (goal <= 0.30x); ovs-vswitchd's share of warm about {:.1} ms",
        ms(mw) / ms(mv),
        ms(mc) / ms(mv),
        ms(mw.saturating_sub(mn))
    );
}
