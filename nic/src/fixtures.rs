//! Fake sysfs trees for tests (feature `test-util`).
//!
//! [`HostBuilder`] writes the layout the kernel exposes into a directory, with relative symbolic
//! links so a tree can be checked in and used from any checkout:
//!
//! ```text
//!   sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/   vendor device class modalias numa_node
//!       sriov_totalvfs sriov_numvfs ... driver -> ../../../../bus/pci/drivers/mlx5_core
//!       iommu_group -> ../../../../kernel/iommu_groups/40   virtfn0 -> ../0000:3b:00.2
//!       net/ens1f0np0/{address,mtu,operstate,speed,type,ifindex,phys_port_name,phys_switch_id}
//!   sys/bus/pci/devices/0000:3b:00.0 -> ../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0
//!   sys/bus/pci/drivers/<drv>/{bind,unbind,new_id,remove_id}   sys/bus/pci/drivers_probe
//!   sys/class/net/ens1f0np0 -> ../../devices/.../0000:3b:00.0/net/ens1f0np0
//!   sys/kernel/iommu_groups/40/devices/0000:3b:00.0 -> ../../../../devices/.../0000:3b:00.0
//!   usr/share/hwdata/pci.ids                           (only the entries the tree uses)
//! ```
//!
//! Presets: [`HostBuilder::cx6dx`] (NVIDIA ConnectX-6 Dx, legacy or switchdev with representors),
//! [`HostBuilder::e810`] (Intel E810 with one VF on vfio-pci), [`HostBuilder::igb_82576`] (Intel
//! 82576, the NIC QEMU emulates), [`HostBuilder::connectx6_ib`] (an InfiniBand port) and
//! [`HostBuilder::generated`] (N PFs x M VFs, for benchmarks).
//!
//! There is no kernel behind a fixture: writes only change files. [`FakeHost::settle`] plays the
//! kernel's part afterwards (VFs appear for a new `sriov_numvfs`, `bind`/`unbind` move the `driver`
//! link), and [`FakeClock`] lets tests of waiting code run without sleeping.

mod builder;
mod clock;
mod host;
mod spec;
mod tree;

pub use self::builder::HostBuilder;
pub use self::clock::FakeClock;
pub use self::host::FakeHost;
pub use self::spec::{
    CLASS_ETHERNET, CLASS_INFINIBAND, CLASS_NVME, FunctionSpec, NetdevSpec, PfSpec, VfTemplate,
};

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crds::inventory::EswitchMode;

    use super::tree::relative;
    use super::*;
    use crate::sriov::Clock;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("sys/bus/pci/devices"),
                Path::new("sys/devices/pci0000:3a/x")
            ),
            PathBuf::from("../../../devices/pci0000:3a/x")
        );
        assert_eq!(
            relative(Path::new("a/b"), Path::new("a/c")),
            PathBuf::from("../c")
        );
        assert_eq!(
            relative(
                Path::new("d/0000:3b:00.0/net/ens1f0"),
                Path::new("d/0000:3b:00.0")
            ),
            PathBuf::from("../../../0000:3b:00.0")
        );
    }

    #[test]
    fn vf_addresses_follow_offset_and_stride() {
        let b = HostBuilder::new().igb_82576();
        let pf = &b.pfs()[0];
        let vfs: Vec<String> = pf.vfs.iter().map(|v| v.address.to_string()).collect();
        assert_eq!(vfs, ["0000:01:10.0", "0000:01:10.2"]);
        let b = HostBuilder::new().cx6dx(EswitchMode::Legacy);
        assert_eq!(b.pfs()[1].vfs[0].address.to_string(), "0000:3b:01.2");
    }

    #[test]
    fn tree_has_the_kernel_layout() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .build()
            .unwrap();
        let s = host.sysfs();
        let pf = host.device_dir("0000:3b:00.0");
        assert_eq!(s.read_string(&pf.join("class")).unwrap(), "0x020000");
        assert_eq!(s.read_link_name(&pf.join("driver")).unwrap(), "mlx5_core");
        assert_eq!(
            s.read_link_name(&pf.join("virtfn1")).unwrap(),
            "0000:3b:00.3"
        );
        assert_eq!(
            s.read_link_name(&host.device_dir("0000:3b:00.3").join("physfn"))
                .unwrap(),
            "0000:3b:00.0"
        );
        // class/net links resolve to the device's net/ dir, and device links back
        let rep = s.netdev_dir("ens1f0npf0vf2");
        assert_eq!(
            s.read_string(&rep.join("phys_port_name")).unwrap(),
            "pf0vf2"
        );
        assert_eq!(
            s.netdev_pci_address("ens1f0npf0vf2").unwrap().to_string(),
            "0000:3b:00.0"
        );
        assert_eq!(
            s.netdev_pci_address("ens1f0v3").unwrap().to_string(),
            "0000:3b:00.5"
        );
        // every link is relative
        let mut stack = vec![host.root().to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let m = fs::symlink_metadata(e.path()).unwrap();
                if m.file_type().is_symlink() {
                    let t = fs::read_link(e.path()).unwrap();
                    assert!(t.is_relative(), "{}", e.path().display());
                    assert!(e.path().exists(), "dangling {}", e.path().display());
                } else if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }

    #[test]
    fn settle_creates_and_removes_vfs() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let s = host.sysfs();
        let pf = host.device_dir("0000:01:00.0");
        fs::write(pf.join("sriov_numvfs"), "5").unwrap();
        host.settle().unwrap();
        assert!(pf.join("virtfn4").exists());
        assert_eq!(
            s.read_link_name(&pf.join("virtfn4")).unwrap(),
            "0000:01:11.0"
        );
        assert!(s.netdev_dir("enp1s0v4").exists());
        fs::write(pf.join("sriov_numvfs"), "0").unwrap();
        host.settle().unwrap();
        assert!(!pf.join("virtfn0").exists());
        assert!(!s.netdev_dir("enp1s0v0").exists());
        assert!(!host.device_dir("0000:01:10.0").exists());
    }

    #[test]
    fn settle_moves_drivers() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let s = host.sysfs();
        let vf = host.device_dir("0000:01:10.2");
        fs::write(vf.join("driver_override"), "vfio-pci").unwrap();
        fs::write(s.pci_drivers_dir().join("igbvf/unbind"), "0000:01:10.2").unwrap();
        fs::write(s.pci_drivers_dir().join("vfio-pci/bind"), "0000:01:10.2").unwrap();
        host.settle().unwrap();
        assert_eq!(s.read_link_name(&vf.join("driver")).unwrap(), "vfio-pci");
        assert!(!vf.join("net").exists());
        assert!(!s.netdev_dir("enp1s0v1").exists());
        fs::write(vf.join("driver_override"), "\n").unwrap();
        fs::write(s.pci_drivers_dir().join("vfio-pci/unbind"), "0000:01:10.2").unwrap();
        fs::write(s.pci_drivers_probe(), "0000:01:10.2").unwrap();
        host.settle().unwrap();
        assert_eq!(s.read_link_name(&vf.join("driver")).unwrap(), "igbvf");
        assert!(s.netdev_dir("enp1s0v1").exists());
    }

    #[test]
    fn fake_clock_advances_without_sleeping() {
        let hits = Cell::new(0);
        let c = FakeClock::new(|n| hits.set(n));
        let t0 = c.now();
        c.sleep(Duration::from_secs(30));
        c.sleep(Duration::from_secs(30));
        assert_eq!(c.now() - t0, Duration::from_secs(60));
        assert_eq!(hits.get(), 2);
        assert_eq!(c.sleeps(), 2);
    }
}
