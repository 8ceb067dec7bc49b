//! VF representors: the devlink port dump first, the sysfs names only where devlink cannot
//! answer.
//!
//! The devlink port of a VF (`flavour pcivf`) carries its PF number, VF number, controller and
//! representor netdev: that is the kernel's own mapping. The sysfs way ([`crate::switchdev`]:
//! `phys_switch_id` + `phys_port_name` `pf<P>vf<N>`) guesses the PF number from names and is
//! used only when the kernel has no devlink, or the uplink has no devlink port (a driver
//! without devlink support).
//!
//! ```text
//!   devlink port show                                   ip -d link / sysfs
//!   pci/0000:3b:00.0/65535: physical netdev ens1f0np0   ens1f0np0   phys_port_name p0
//!   pci/0000:3b:00.0/1: pcivf pfnum 0 vfnum 0           ens1f0npf0vf0  phys_port_name pf0vf0
//!                       netdev ens1f0npf0vf0
//! ```

use std::collections::HashMap;

use crds::inventory::NicInventory;

use crate::devlink::{DevlinkDev, DevlinkError, DevlinkHandle, Port, PortFlavour, PortRef};
use crate::sysfs::{SysFs, SysfsError};

/// A representor lookup that failed.
#[derive(Debug, thiserror::Error)]
pub enum RepresentorError {
    /// The devlink port dump failed (for a reason other than "no devlink here").
    #[error("representor of VF {vf} of {uplink}: {source}")]
    Devlink {
        /// The uplink asked about.
        uplink: String,
        /// The VF index.
        vf: u32,
        /// The devlink error.
        source: DevlinkError,
    },
    /// The sysfs lookup failed.
    #[error("representor of VF {vf} of {uplink}: {source}")]
    Sysfs {
        /// The uplink asked about.
        uplink: String,
        /// The VF index.
        vf: u32,
        /// The sysfs error.
        source: SysfsError,
    },
    /// The blocking sysfs task panicked or was cancelled.
    #[error("representor lookup task failed: {0}")]
    Task(String),
}

/// Where a representor was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepresentorSource {
    /// The devlink port of the VF.
    Devlink(PortRef),
    /// `phys_switch_id` and `phys_port_name` in `/sys/class/net`.
    Sysfs,
}

/// A VF's representor netdev and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representor {
    /// The representor netdev.
    pub netdev: String,
    /// How it was found.
    pub source: RepresentorSource,
}

/// True for a port of this host's controller (not of an external host behind a DPU).
fn is_local(p: &Port) -> bool {
    p.external != Some(true) && matches!(p.controller, None | Some(0))
}

/// The devlink port of VF `vf` behind the uplink netdev `uplink`, from a port dump.
///
/// `None` when no port of the dump has `uplink` as its netdev (then devlink cannot say; see
/// [`vf_representor`]). Otherwise the answer is `Some`: the `pcivf` port with that VF number on
/// the uplink's device (and its PF number, when the uplink port reports one), this host's
/// controller first, another controller's only when it is the single candidate. A port without
/// a netdev is a VF whose representor is not (yet) there.
pub fn devlink_vf_port<'a>(ports: &'a [Port], uplink: &str, vf: u32) -> Option<Option<&'a Port>> {
    let up = ports.iter().find(|p| {
        p.netdev.as_deref() == Some(uplink) && p.flavour == Some(PortFlavour::Physical)
    })?;
    let candidates: Vec<&Port> = ports
        .iter()
        .filter(|p| {
            p.dev == up.dev
                && p.flavour == Some(PortFlavour::PciVf)
                && p.vf_number.map(u32::from) == Some(vf)
                && (up.pf_number.is_none() || p.pf_number == up.pf_number)
        })
        .collect();
    if let Some(local) = candidates.iter().find(|p| is_local(p)) {
        return Some(Some(local));
    }
    Some(match candidates.as_slice() {
        [only] => Some(only),
        _ => None,
    })
}

/// The representor of VF `vf` of the PF whose uplink netdev is `uplink`.
///
/// Asks devlink first (`devlink port show`, see [`devlink_vf_port`]); falls back to the sysfs
/// names ([`crate::switchdev::vf_representor`]) when `devlink` is `None`, the kernel has no
/// devlink, or the uplink has no devlink port. `Ok(None)`: no representor (legacy mode, or the
/// VF has none). The sysfs reads run on tokio's blocking pool.
///
/// CLI twins: `devlink port show | grep "pfnum 0 vfnum 3"`;
/// `grep -l pf0vf3 /sys/class/net/*/phys_port_name`.
pub async fn vf_representor(
    devlink: Option<&DevlinkHandle>,
    sysfs: &SysFs,
    uplink: &str,
    vf: u32,
) -> Result<Option<Representor>, RepresentorError> {
    if let Some(dl) = devlink {
        match dl.port().list(None).await {
            Ok(ports) => {
                if let Some(found) = devlink_vf_port(&ports, uplink, vf) {
                    return Ok(found.and_then(|p| {
                        Some(Representor {
                            netdev: p.netdev.clone()?,
                            source: RepresentorSource::Devlink(p.port_ref()),
                        })
                    }));
                }
            }
            Err(e) if e.is_unavailable() || e.is_not_supported() => {}
            Err(source) => {
                return Err(RepresentorError::Devlink {
                    uplink: uplink.to_owned(),
                    vf,
                    source,
                });
            }
        }
    }
    let (sysfs, owned) = (sysfs.clone(), uplink.to_owned());
    let found =
        tokio::task::spawn_blocking(move || crate::switchdev::vf_representor(&sysfs, &owned, vf))
            .await
            .map_err(|e| RepresentorError::Task(e.to_string()))?
            .map_err(|source| RepresentorError::Sysfs {
                uplink: uplink.to_owned(),
                vf,
                source,
            })?;
    Ok(found.map(|netdev| Representor {
        netdev,
        source: RepresentorSource::Sysfs,
    }))
}

/// Replaces the representors that discovery inferred from sysfs names with the devlink port
/// dump's, for every PF that has a devlink instance (`pci/<PF>`, `netdevsim/netdevsimN`) with
/// ports in `ports`. A VF whose devlink port has no netdev gets none; PFs devlink does not know
/// keep the inference.
pub fn apply_devlink_representors(inventory: &mut NicInventory, ports: &[Port]) {
    let mut by_dev: HashMap<&DevlinkDev, Vec<&Port>> = HashMap::new();
    for p in ports {
        by_dev.entry(&p.dev).or_default().push(p);
    }
    for nic in &mut inventory.nics {
        let dev = crate::discovery::devlink_instance(&nic.pci_address);
        let Some(dev_ports) = by_dev.get(&dev) else {
            continue;
        };
        let vf_ports: HashMap<u32, &Port> = dev_ports
            .iter()
            .filter(|p| p.flavour == Some(PortFlavour::PciVf) && is_local(p))
            .filter_map(|p| Some((u32::from(p.vf_number?), *p)))
            .collect();
        if vf_ports.is_empty() {
            continue;
        }
        for vf in &mut nic.vfs {
            vf.representor = vf_ports.get(&vf.vf_id).and_then(|p| p.netdev.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devlink::{EswitchMode, FakeDevlink};
    use crate::discovery::discover;
    use crate::fixtures::HostBuilder;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn devlink_and_sysfs_agree_on_the_cx6dx_preset() {
        let host = HostBuilder::new()
            .cx6dx(crds::inventory::EswitchMode::Switchdev)
            .build()
            .unwrap();
        let sysfs = host.sysfs();
        let fake = host.devlink();
        let dl = DevlinkHandle::new(fake.clone());
        rt().block_on(async {
            for (uplink, vfs, pf) in [("ens1f0np0", 4, 0), ("ens1f1np1", 2, 1)] {
                for vf in 0..vfs {
                    let d = vf_representor(Some(&dl), &sysfs, uplink, vf)
                        .await
                        .unwrap()
                        .unwrap();
                    let s = vf_representor(None, &sysfs, uplink, vf)
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(d.netdev, format!("ens1f{pf}npf{pf}vf{vf}"));
                    assert_eq!(s.netdev, d.netdev);
                    assert!(matches!(d.source, RepresentorSource::Devlink(_)));
                    assert_eq!(s.source, RepresentorSource::Sysfs);
                }
            }
            // no VF 4 on port 1: neither way finds one
            assert_eq!(
                vf_representor(Some(&dl), &sysfs, "ens1f1np1", 4)
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                vf_representor(None, &sysfs, "ens1f1np1", 4).await.unwrap(),
                None
            );
        });
    }

    #[test]
    fn devlink_wins_over_names_and_sysfs_is_the_fallback() {
        let host = HostBuilder::new()
            .cx6dx(crds::inventory::EswitchMode::Switchdev)
            .build()
            .unwrap();
        let sysfs = host.sysfs();
        let fake = host.devlink();
        // a driver whose representor names do not follow pf<P>vf<N> for VF 2: devlink knows
        let dev = DevlinkDev::pci("0000:3b:00.0");
        fake.add_vf_port(&dev, 3, 0, 2, Some("rep-odd"));
        let dl = DevlinkHandle::new(fake.clone());
        rt().block_on(async {
            let r = vf_representor(Some(&dl), &sysfs, "ens1f0np0", 2)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.netdev, "rep-odd");
            // a VF port without a netdev: no representor, even though sysfs has a name
            fake.add_vf_port(&dev, 4, 0, 3, None);
            assert_eq!(
                vf_representor(Some(&dl), &sysfs, "ens1f0np0", 3)
                    .await
                    .unwrap(),
                None
            );
            // no devlink on this kernel: sysfs answers
            fake.set_unavailable(true);
            let r = vf_representor(Some(&dl), &sysfs, "ens1f0np0", 2)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (r.netdev.as_str(), r.source),
                ("ens1f0npf0vf2", RepresentorSource::Sysfs)
            );
            // other devlink failures are errors
            fake.set_unavailable(false);
            fake.fail(crate::devlink::DevlinkOp::ListPorts, nix::libc::EPERM);
            let e = vf_representor(Some(&dl), &sysfs, "ens1f0np0", 2)
                .await
                .unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("representor of VF 2 of ens1f0np0: list devlink ports"),
                "{e}"
            );
        });
    }

    #[test]
    fn an_uplink_devlink_does_not_know_falls_back_to_sysfs() {
        let host = HostBuilder::new()
            .cx6dx(crds::inventory::EswitchMode::Switchdev)
            .build()
            .unwrap();
        let fake = FakeDevlink::new();
        fake.add_dev(&DevlinkDev::pci("0000:99:00.0"), EswitchMode::Legacy);
        let dl = DevlinkHandle::new(fake);
        let r = rt()
            .block_on(vf_representor(Some(&dl), &host.sysfs(), "ens1f1np1", 1))
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.netdev.as_str(), r.source),
            ("ens1f1npf1vf1", RepresentorSource::Sysfs)
        );
    }

    #[test]
    fn external_controllers_count_only_when_alone() {
        let dev = DevlinkDev::pci("0000:03:00.0");
        let fake = FakeDevlink::new();
        fake.add_uplink(&dev, 0, 0, "p0");
        fake.add_vf_port_on(&dev, 1, 1, 0, 5, Some("c1pf0vf5"));
        let ports = fake.ports();
        assert_eq!(
            devlink_vf_port(&ports, "p0", 5)
                .unwrap()
                .unwrap()
                .netdev
                .as_deref(),
            Some("c1pf0vf5")
        );
        fake.add_vf_port(&dev, 2, 0, 5, Some("pf0vf5"));
        let ports = fake.ports();
        assert_eq!(
            devlink_vf_port(&ports, "p0", 5)
                .unwrap()
                .unwrap()
                .netdev
                .as_deref(),
            Some("pf0vf5")
        );
        assert!(devlink_vf_port(&ports, "eth9", 5).is_none());
    }

    #[test]
    fn inventory_representors_come_from_devlink() {
        let host = HostBuilder::new()
            .cx6dx(crds::inventory::EswitchMode::Switchdev)
            .build()
            .unwrap();
        let mut inv = discover(&host.sysfs()).unwrap();
        let before = inv.clone();
        let fake = host.devlink();
        apply_devlink_representors(&mut inv, &fake.ports());
        assert_eq!(
            inv, before,
            "sysfs inference and devlink agree on the preset"
        );
        fake.add_vf_port(&DevlinkDev::pci("0000:3b:00.1"), 2, 1, 1, Some("rep-x"));
        apply_devlink_representors(&mut inv, &fake.ports());
        let pf1 = inv
            .nics
            .iter()
            .find(|n| n.pci_address == "0000:3b:00.1")
            .unwrap();
        assert_eq!(pf1.vfs[1].representor.as_deref(), Some("rep-x"));
        assert_eq!(pf1.vfs[0].representor.as_deref(), Some("ens1f1npf1vf0"));
    }
}
