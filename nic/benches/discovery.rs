//! Full sysfs discovery over generated fixture trees (goal: < 50 ms for 4 PFs x 256 VFs).
//!
//! `cargo bench -p nic --bench discovery -- --quick`
//!
//! Trees are written under `/dev/shm` when it exists: sysfs lives in memory, and a disk
//! filesystem would measure the disk's metadata cache instead.

use std::hint::black_box;
use std::path::Path;

use crds::inventory::EswitchMode;
use criterion::{Criterion, criterion_group, criterion_main};
use nic::discovery::discover_with_warnings;
use nic::fixtures::{FakeHost, HostBuilder};

fn build(b: HostBuilder) -> FakeHost {
    let shm = Path::new("/dev/shm");
    let host = if shm.is_dir() {
        b.build_under(shm)
    } else {
        b.build()
    };
    match host {
        Ok(h) => h,
        Err(e) => panic!("cannot build the fixture tree: {e}"),
    }
}

fn discovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("discover");
    group.sample_size(20);
    for (label, mode) in [
        ("4pf_x_256vf_switchdev", EswitchMode::Switchdev),
        ("4pf_x_256vf_legacy", EswitchMode::Legacy),
    ] {
        let host = build(HostBuilder::new().generated(4, 256, mode));
        let sysfs = host.sysfs();
        let d = match discover_with_warnings(&sysfs) {
            Ok(d) => d,
            Err(e) => panic!("discovery failed: {e}"),
        };
        assert_eq!(d.inventory.nics.len(), 4);
        assert!(d.inventory.nics.iter().all(|n| n.vfs.len() == 256));
        group.bench_function(label, |b| {
            b.iter(|| discover_with_warnings(black_box(&sysfs)))
        });
    }
    let small = build(
        HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .e810()
            .igb_82576(),
    );
    let sysfs = small.sysfs();
    group.bench_function("presets_4pf_12vf", |b| {
        b.iter(|| discover_with_warnings(black_box(&sysfs)))
    });
    group.finish();
}

criterion_group!(benches, discovery);
criterion_main!(benches);
