//! Benchmarks of the device plugin, each against a baseline measured in the same run:
//!
//! 1. discovery of a 4 PF x 256 VF fixture (on /dev/shm, an in-memory filesystem like sysfs):
//!    the plugin's scan + pool assignment, against `nic::discovery` on the same tree (goal:
//!    < 50 ms);
//! 2. Allocate of one VF over the unix socket: p50/p99 of 2000 calls, against a bare
//!    GetDevicePluginOptions round trip on the same connection (goal: p99 < 1 ms);
//! 3. health change -> ListAndWatch update: a PF's `operstate` flipped 20 times on the fixture,
//!    time until the update arrives (goal: < 1 s), through the production path (the [`Events`]
//!    source: the kernel's event, a uevent of the PF's netdev here since no kernel speaks for a
//!    fixture, with the production safety re-poll), against the fallback (polling every 250 ms,
//!    what the plugin does when it cannot open the event sockets), measured in the same run.
//!
//! `cargo bench -p device-plugin --bench plugin` (add `-- --quick` for a short criterion run).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crds::inventory::EswitchMode;
use criterion::Criterion;
use device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, Empty, device_plugin_client::DevicePluginClient,
};
use device_plugin::app::{Settings, run};
use device_plugin::config::{Format, parse_and_check};
use device_plugin::host::scan;
use device_plugin::kubelet::connect;
use device_plugin::metrics::Metrics;
use device_plugin::pool::assign;
use device_plugin::preferred::Strategy;
use device_plugin::source::{Events, HostSource, Polling};
use nic::fixtures::{FakeHost, HostBuilder};
use nic::uevent::{FakeUevents, Uevent, UeventAction};
use tokio::sync::oneshot;

const PFS: u8 = 4;
const VFS: u32 = 256;

fn config() -> String {
    // one pool per PF, as the operator renders them; the generated PFs are on buses c0, c2, ...
    let pools: Vec<String> = (0..PFS)
        .map(|k| {
            format!(
                r#"{{"resourceName": "pf{k}", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                    "selectors": [{{"pfs": [{{"pciAddress": "0000:{:02x}:00.0"}}]}}]}}"#,
                0xc0 + 2 * u32::from(k)
            )
        })
        .collect();
    format!(r#"{{"resourceList": [{}]}}"#, pools.join(","))
}

fn fixture() -> FakeHost {
    let shm = Path::new("/dev/shm");
    let b = HostBuilder::new().generated(PFS, VFS, EswitchMode::Legacy);
    if shm.is_dir() {
        b.build_under(shm)
    } else {
        b.build()
    }
    .expect("fixture")
}

fn discovery(c: &mut Criterion, host: &FakeHost) {
    let sysfs = host.sysfs();
    let cfg = parse_and_check(&config(), Format::Json).expect("config");
    let state = scan(&sysfs).expect("scan");
    let devices: usize = assign(&cfg, &state).iter().map(Vec::len).sum();
    assert_eq!(devices, usize::from(PFS) * VFS as usize);
    let mut g = c.benchmark_group(format!("discovery {PFS}x{VFS}"));
    g.sample_size(20);
    g.bench_function("device-plugin scan + assign", |b| {
        b.iter(|| {
            let s = scan(&sysfs).expect("scan");
            assign(&cfg, &s)
        })
    });
    g.bench_function("baseline: nic::discovery", |b| {
        b.iter(|| nic::discovery::discover_with_warnings(&sysfs).expect("discover"))
    });
    g.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Running {
    _dir: tempfile::TempDir,
    plugin_dir: std::path::PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), device_plugin::app::Error>>,
}

async fn start(host: &FakeHost) -> Running {
    start_with(
        host,
        Polling {
            interval: Duration::from_millis(250),
        },
    )
    .await
}

async fn start_with(host: &FakeHost, source: impl HostSource) -> Running {
    // device-info files go to /var/run, a tmpfs, on a node: /dev/shm here
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir).expect("mkdir");
    let cfg = dir.path().join("device-plugin.json");
    std::fs::write(&cfg, config()).expect("config");
    let settings = Settings {
        config: cfg,
        sysfs: host.sysfs(),
        plugin_dir: plugin_dir.clone(),
        devinfo_dir: dir.path().join("devinfo"),
        cdi_dir: None,
        strategy: Strategy::Pack,
        safety_check: device_plugin::plugin::SAFETY_CHECK,
        dra_prepared_dir: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(settings, source, Arc::new(Metrics::new()), async {
        let _ = stopped.await;
    }));
    let sock = plugin_dir.join("smartnic.io_pf0.sock");
    while !sock.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Running {
        _dir: dir,
        plugin_dir,
        stop,
        task,
    }
}

async fn allocate_latency(host: &FakeHost) {
    let r = start(host).await;
    let ch = connect(&r.plugin_dir.join("smartnic.io_pf0.sock"))
        .await
        .expect("connect");
    let mut c = DevicePluginClient::new(ch);
    let req = || AllocateRequest {
        container_requests: vec![ContainerAllocateRequest {
            devices_ids: vec!["0000:c0:00.2".into()],
        }],
    };
    const N: usize = 2000;
    for _ in 0..100 {
        c.allocate(req()).await.expect("warm-up");
        c.get_device_plugin_options(Empty {})
            .await
            .expect("warm-up");
    }
    let mut alloc = Vec::with_capacity(N);
    let mut base = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        c.get_device_plugin_options(Empty {})
            .await
            .expect("options");
        base.push(t.elapsed());
        let t = Instant::now();
        c.allocate(req()).await.expect("allocate");
        alloc.push(t.elapsed());
    }
    alloc.sort();
    base.sort();
    println!(
        "allocate (1 VF, pool of {VFS}, device-info file written): p50 {:?}  p99 {:?}  max {:?}   goal p99 < 1 ms",
        percentile(&alloc, 0.5),
        percentile(&alloc, 0.99),
        alloc[N - 1]
    );
    println!(
        "baseline GetDevicePluginOptions round trip:            p50 {:?}  p99 {:?}  max {:?}",
        percentile(&base, 0.5),
        percentile(&base, 0.99),
        base[N - 1]
    );
    let _ = r.stop.send(());
    let _ = r.task.await;
}

/// The production safety re-poll of the event source (main.rs `REPOLL`).
const REPOLL: Duration = Duration::from_secs(5);

/// 20 operstate flips of a PF, each followed by `announce` (what tells the source); the times
/// until ListAndWatch reports the change, sorted.
async fn health_flips(r: &Running, host: &FakeHost, announce: &dyn Fn()) -> Vec<Duration> {
    let ch = connect(&r.plugin_dir.join("smartnic.io_pf1.sock"))
        .await
        .expect("connect");
    let mut c = DevicePluginClient::new(ch);
    let mut s = c.list_and_watch(Empty {}).await.expect("list").into_inner();
    s.message().await.expect("first").expect("first");
    let operstate = host
        .device_dir("0000:c2:00.0")
        .join("net/gen1np0/operstate");
    let mut times = Vec::new();
    for i in 0..20 {
        let (state, want) = if i % 2 == 0 {
            ("down\n", "Unhealthy")
        } else {
            ("up\n", "Healthy")
        };
        let t = Instant::now();
        std::fs::write(&operstate, state).expect("write");
        announce();
        let m = s.message().await.expect("update").expect("update");
        times.push(t.elapsed());
        assert!(m.devices.iter().all(|d| d.health == want));
    }
    // back to up for the next run
    std::fs::write(&operstate, "up\n").expect("write");
    times.sort();
    times
}

async fn health_latency(host: &FakeHost) {
    let uevents = FakeUevents::new();
    let events = Events {
        netlink: None,
        uevents: Arc::new(uevents.clone()),
        repoll: REPOLL,
        fallback: Duration::from_millis(250),
    };
    let r = start_with(host, events).await;
    // the event path must be the one measured, not its polling fallback
    let t = Instant::now();
    while uevents.subscribers() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the event source did not subscribe (netlink refused?): it would measure the fallback"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let change = || {
        uevents.push(Uevent::new(
            UeventAction::Change,
            "/devices/pci0000:00/0000:c2:00.0/net/gen1np0",
            "net",
            [],
        ));
    };
    let events_times = health_flips(&r, host, &change).await;
    let _ = r.stop.send(());
    let _ = r.task.await;

    let r = start(host).await;
    let poll_times = health_flips(&r, host, &|| {}).await;
    let _ = r.stop.send(());
    let _ = r.task.await;

    let p50 = |t: &[Duration]| percentile(t, 0.5);
    println!(
        "health change -> ListAndWatch update ({VFS} devices in the pool), events (production): p50 {:?}  max {:?}   goal < 1 s",
        p50(&events_times),
        events_times[events_times.len() - 1]
    );
    println!(
        "baseline, polling every 250 ms (the fallback):                                 p50 {:?}  max {:?}   events/polling p50 {:.2}x",
        p50(&poll_times),
        poll_times[poll_times.len() - 1],
        p50(&events_times).as_secs_f64() / p50(&poll_times).as_secs_f64()
    );
}

fn main() {
    let host = fixture();
    let mut c = Criterion::default().configure_from_args();
    discovery(&mut c, &host);
    c.final_summary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(allocate_latency(&host));
    rt.block_on(health_latency(&host));
}
