//! Crash safety and concurrency on the in-memory host (the VF is a fake PF's VF with a fake
//! netdev; mode ovs on the in-memory switch, by veth or by a switchdev VF's representor): a
//! crash at every ADD step, in randomized cycles, then DEL, leaves no link, VF
//! setting, owner record, held lock, journal or address behind; 16 threads racing ADD/DEL on one
//! pool of VFs never hold one VF twice.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use std::{
    collections::HashMap,
    fs::File,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use common_fake::*;
use nic::netlink::VfSetting;
use nix::fcntl::{Flock, FlockArg};
use smartnic_cni::{
    env::Command, error::code, failpoint, fake::FakeLink, host::Host, host::Ns, store::STEP_NAMES,
};

/// xorshift64*: a seeded, dependency-free generator; the seed is printed so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

fn no_lock_held(w: &World) -> bool {
    let dir = w.plugin.store.root().join("vf");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return true;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .all(|e| {
            Flock::lock(
                File::open(e.path()).unwrap(),
                FlockArg::LockExclusiveNonblock,
            )
            .is_ok()
        })
}

/// The host's links, their ifindex left out (a rebound VF's netdev is a new one).
fn host_links(w: &World) -> std::collections::BTreeMap<String, FakeLink> {
    let mut links = w.fake.links(Ns::Host);
    for l in links.values_mut() {
        l.index = 0;
    }
    links
}

#[test]
fn a_crash_at_any_add_step_is_undone_by_del() {
    let cycles: usize = std::env::var("FAULT_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let seed = seed();
    println!("fault injection: {cycles} cycles, FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let w = World::new(4);
    // VF 3 is a switchdev VF: mode ovs takes it through its representor; the others get a veth.
    w.switch.switchdev_vf(&bdf(3).to_string(), "pf0_3");
    // An RDMA-exclusive node: VFs 0 and 1 have RDMA devices, which go into the pod with them.
    std::fs::write(&w.plugin.paths.ready_file, r#"{"rdmaExclusive":true}"#).unwrap();
    w.fake.set_rdma_mode(Some(nic::rdma::NetnsMode::Exclusive));
    w.fake.add_rdma_device("rdma0", bdf(0));
    w.fake.add_rdma_device("rdma1", bdf(1));
    // An InfiniBand PF: mode ib sets the pod's GUID and rebinds the VF, whose new netdev has a
    // new ifindex (so links are compared without it).
    w.fake.add_pf("ib0", 2, |i| bdf(8 + i), "mlx5_core");
    w.fake.make_ib("ib0", &[0xffff]);
    for vf in 0..2 {
        let g: nic::netlink::Guid = format!("ba:ce:f6:5a:20:00:00:0{vf}").parse().unwrap();
        w.fake.set_vf("ib0", vf, VfSetting::IbNodeGuid(g)).unwrap();
        w.fake.set_vf("ib0", vf, VfSetting::IbPortGuid(g)).unwrap();
    }
    let rows = w.fake.vf_rows();
    let host = host_links(&w);
    // Silence the failpoints' own panics, not the assertions'.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if !msg.starts_with("failpoint ") {
            default_hook(info);
        }
    }));
    let mut crashed = HashMap::<&str, usize>::new();
    for i in 0..cycles {
        let ns = w.netns(&format!("f{i}"));
        let id = format!("c{i}");
        let conf = match rng.below(4) {
            0 => w.macvlan_conf(["bridge", "private", "vepa", "passthru"][rng.below(4)]),
            1 => w.ovs_conf(
                serde_json::json!({"deviceID": bdf(2 + rng.below(2) as u32).to_string()}),
            ),
            2 => w.sriov_conf(rng.below(4) as u32, serde_json::json!({})),
            _ => serde_json::json!({
                "cniVersion": "1.1.0", "name": "vfnet", "type": "smartnic", "mode": "ib",
                "deviceID": bdf(8 + rng.below(2) as u32).to_string(), "linkState": "enable",
                "capabilities": {"infinibandGUID": true},
                "runtimeConfig": {"infinibandGUID": "02:00:00:00:00:00:10:01"},
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                         "dataDir": w.data_dir().to_str().unwrap()}
            }),
        };
        let step = STEP_NAMES[rng.below(STEP_NAMES.len())];
        let e = env(Command::Add, &id, "net1", Some(&ns));
        let parsed = parse(&conf, &e);
        failpoint::set(Some(step));
        let outcome = catch_unwind(AssertUnwindSafe(|| w.plugin.add(&parsed, &e)));
        failpoint::set(None);
        match outcome {
            Err(_) => *crashed.entry(step).or_default() += 1,
            Ok(Err(err)) => panic!(
                "cycle {i} (seed {seed}): ADD failed without a crash: {}",
                err.msg
            ),
            Ok(Ok(_)) => {}
        }
        // The pod may die before its DEL, and runtimes may repeat a DEL.
        if rng.below(4) == 0 {
            w.fake.remove_netns(&ns);
        }
        for _ in 0..=rng.below(2) {
            let d = env(Command::Del, &id, "net1", Some(&ns));
            w.plugin
                .del(&parse(&conf, &d), &d)
                .unwrap_or_else(|e| panic!("cycle {i} (seed {seed}) step {step}: DEL: {}", e.msg));
        }
        let ctx = format!("cycle {i} (seed {seed}), crash after {step}");
        assert_eq!(w.fake.vf_rows(), rows, "{ctx}: VF table");
        assert_eq!(host_links(&w), host, "{ctx}: host links");
        assert!(w.switch.ports().is_empty(), "{ctx}: OVS ports");
        assert!(w.fake.links(Ns::Pod(&ns)).is_empty(), "{ctx}: pod links");
        assert_eq!(w.leases(), 0, "{ctx}: leases");
        assert!(
            w.plugin.store.vf_owners().unwrap().is_empty(),
            "{ctx}: VF owners"
        );
        assert!(
            w.plugin.store.attachments().unwrap().is_empty(),
            "{ctx}: journals"
        );
        assert!(no_lock_held(&w), "{ctx}: a VF lock is held");
        for d in ["rdma0", "rdma1"] {
            assert_eq!(
                w.fake.rdma_location(d).as_deref(),
                Some("host"),
                "{ctx}: {d}"
            );
        }
        w.fake.remove_netns(&ns);
    }
    let _ = std::panic::take_hook();
    println!("crashes per step: {crashed:?}");
    // Every step that both modes pass was hit.
    for step in [
        "begin",
        "ipam",
        "addresses",
        "done",
        "vf-claimed",
        "vf-saved",
        "vf-configure",
        "vf-rebind",
        "vf-bind",
        "rdma-move",
        "vf-move",
        "ovs-port",
        "link-create",
    ] {
        assert!(
            crashed.get(step).copied().unwrap_or(0) > 0,
            "step {step} never crashed"
        );
    }
}

#[test]
fn sixteen_threads_never_hold_one_vf_twice() {
    let w = Arc::new(World::new(4));
    let held: Arc<Mutex<HashMap<u32, String>>> = Arc::default();
    let doubles = Arc::new(AtomicUsize::new(0));
    let adds = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let per_vf: Arc<[AtomicUsize; 4]> = Arc::default();
    let seed = seed();
    println!("concurrency: FAULT_SEED={seed}");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (w, held, doubles, adds, busy, per_vf) = (
                w.clone(),
                held.clone(),
                doubles.clone(),
                adds.clone(),
                busy.clone(),
                per_vf.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_add(t * 7919) | 1);
                let ns = w.netns(&format!("t{t}"));
                for i in 0..40 {
                    let id = format!("t{t}-{i}");
                    let vf = rng.below(4) as u32;
                    let conf = w.sriov_conf(vf, serde_json::json!({}));
                    let e = env(Command::Add, &id, "net1", Some(&ns));
                    match w.plugin.add(&parse(&conf, &e), &e) {
                        Ok(_) => {
                            adds.fetch_add(1, Ordering::Relaxed);
                            per_vf[vf as usize].fetch_add(1, Ordering::Relaxed);
                            // held from the ADD's success until right before its DEL: another
                            // ADD succeeding on this VF meanwhile is a double allocation
                            if let Some(other) = held.lock().unwrap().insert(vf, id.clone()) {
                                eprintln!("VF {vf} held by {other} and {id}");
                                doubles.fetch_add(1, Ordering::Relaxed);
                            }
                            // and the plugin's own record names this ADD as the holder, once
                            let mine = w
                                .plugin
                                .store
                                .vf_owners()
                                .unwrap()
                                .into_iter()
                                .filter(|(_, o)| {
                                    o.split_once(':').map(|(c, _)| c) == Some(id.as_str())
                                })
                                .count();
                            if mine != 1 {
                                eprintln!("{id}: {mine} owner records after its ADD");
                                doubles.fetch_add(1, Ordering::Relaxed);
                            }
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            let still = held.lock().unwrap().remove(&vf);
                            if still.as_deref() != Some(id.as_str()) {
                                eprintln!("VF {vf}: {id} lost it to {still:?} before its DEL");
                                doubles.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(err) if err.code == code::DEVICE_BUSY => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("{id}: {}", err.msg),
                    }
                    let d = env(Command::Del, &id, "net1", Some(&ns));
                    w.plugin.del(&parse(&conf, &d), &d).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "16 threads × 40 ADD/DEL on 4 VFs: {} ADDs succeeded, {} refused as busy, {} double allocations",
        adds.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        doubles.load(Ordering::Relaxed)
    );
    assert_eq!(doubles.load(Ordering::Relaxed), 0);
    // a plugin refusing every ADD as busy never allocates twice: the race must have happened
    let (adds, busy) = (adds.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    assert_eq!(
        adds + busy,
        16 * 40,
        "every ADD either succeeded or was refused as busy"
    );
    assert!(adds >= 16 * 40 / 8, "only {adds} of 640 ADDs succeeded");
    for (vf, n) in per_vf.iter().enumerate() {
        assert!(n.load(Ordering::Relaxed) > 0, "no ADD ever got VF {vf}");
    }
    assert_eq!(w.leases(), 0);
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    let rows = w.fake.vf_rows();
    for i in 0..4 {
        assert_eq!(
            rows[&("pf0".to_string(), i)],
            nic::netlink::VfInfo::new_default(i)
        );
    }
}
