//! `smartnicctl sriov`: SR-IOV changes through sysfs.
//!
//! ```text
//! smartnicctl sriov numvfs (--pf IFNAME | --pci BDF) N [--root DIR] [--wait-secs S]
//! smartnicctl sriov driver --pci BDF DRIVER|none [--root DIR]
//! smartnicctl sriov representor --pf UPLINK --vf N [--root DIR]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use nic::pci::PciAddress;
use nic::sriov::SriovHandle;
use nic::sysfs::SysFs;

use crate::link::out;

/// Arguments of `smartnicctl sriov`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Set the number of VFs of a PF: writes 0 then N to sriov_numvfs (nothing when it is
    /// already N), then waits until N virtfn links exist.
    Numvfs {
        /// The PF by netdev name.
        #[arg(
            long,
            value_name = "IFNAME",
            conflicts_with = "pci",
            required_unless_present = "pci"
        )]
        pf: Option<String>,
        /// The PF by PCI address (0000:3b:00.0).
        #[arg(long, value_name = "BDF")]
        pci: Option<PciAddress>,
        /// Number of VFs (0 removes them all).
        n: u32,
        /// Seconds to wait for the virtfn links; 0 returns right after the writes (useful on a
        /// copied fixture tree, where no kernel creates them).
        #[arg(long, value_name = "S", default_value_t = 60)]
        wait_secs: u64,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Bind a PCI function (usually a VF) to DRIVER through driver_override, unbind and
    /// drivers/DRIVER/bind; `none` unbinds it and clears driver_override.
    Driver {
        /// The function's PCI address (0000:3b:00.2).
        #[arg(long, value_name = "BDF")]
        pci: PciAddress,
        /// Driver name (vfio-pci, iavf, igbvf, mlx5_core, ...) or `none`.
        driver: String,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Print the representor netdev of VF N of a switchdev uplink, found in sysfs by
    /// phys_switch_id and phys_port_name (`pf<P>vf<N>`); fails when there is none.
    Representor {
        /// The uplink netdev (phys_port_name `p<P>`).
        #[arg(long, value_name = "UPLINK")]
        pf: String,
        /// VF index.
        #[arg(long, value_name = "N")]
        vf: u32,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

fn sysfs(root: Option<PathBuf>) -> SysFs {
    root.map_or_else(SysFs::host, SysFs::new)
}

/// Runs `smartnicctl sriov`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Numvfs {
            pf,
            pci,
            n,
            wait_secs,
            root,
        } => {
            let sysfs = sysfs(root);
            let (addr, label) = match (pf, pci) {
                (_, Some(addr)) => (addr, addr.to_string()),
                (Some(ifname), None) => {
                    let addr = pf_address(&sysfs, &ifname)?;
                    (addr, format!("{ifname} ({addr})"))
                }
                (None, None) => anyhow::bail!("give the PF as --pf IFNAME or --pci BDF"),
            };
            let mut req = SriovHandle::new(&sysfs)
                .numvfs(addr)
                .set(n)
                .timeout(Duration::from_secs(wait_secs));
            if wait_secs == 0 {
                req = req.no_wait();
            }
            let o = req
                .execute()
                .with_context(|| format!("set sriov_numvfs of {label} to {n}"))?;
            if !o.changed {
                out(format!("{label}: sriov_numvfs is already {n}"))
            } else if o.verified {
                out(format!(
                    "{label}: sriov_numvfs {} -> {n} ({n} VF links present after {:.1} s)",
                    o.previous,
                    o.waited.as_secs_f64()
                ))
            } else {
                out(format!(
                    "{label}: sriov_numvfs {} -> {n} (not waiting for the VF links)",
                    o.previous
                ))
            }
        }
        Cmd::Driver { pci, driver, root } => {
            let sysfs = sysfs(root);
            let handle = SriovHandle::new(&sysfs).driver(pci);
            let unbind = driver == "none";
            let req = if unbind {
                handle.unbind()
            } else {
                handle.bind(driver.clone())
            };
            let o = req.execute().with_context(|| {
                if unbind {
                    format!("unbind {pci}")
                } else {
                    format!("bind {pci} to {driver}")
                }
            })?;
            let name = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
            let want = (!unbind).then(|| driver.clone());
            if !o.changed {
                out(format!("{pci}: driver is already {}", name(&o.previous)))?;
            } else {
                out(format!(
                    "{pci}: driver {} -> {}",
                    name(&o.previous),
                    name(&want)
                ))?;
            }
            if o.current != want {
                // the kernel accepted the writes but did not (yet) bind; on a fixture tree there
                // is no kernel at all
                eprintln!(
                    "warning: {pci} is bound to {} after the change",
                    name(&o.current)
                );
            }
            Ok(())
        }
        Cmd::Representor { pf, vf, root } => {
            let sysfs = sysfs(root);
            match nic::switchdev::vf_representor(&sysfs, &pf, vf)
                .with_context(|| format!("look up the representor of VF {vf} of {pf}"))?
            {
                Some(rep) => out(rep),
                None => anyhow::bail!(
                    "no representor of VF {vf} of {pf}: {pf} is not a switchdev uplink \
                     (phys_port_name p<N> with a phys_switch_id) or no netdev has \
                     phys_port_name pf<N>vf{vf} on its switch"
                ),
            }
        }
    }
}

/// The PCI address of the PF netdev `ifname`.
fn pf_address(sysfs: &SysFs, ifname: &str) -> anyhow::Result<PciAddress> {
    let dir = sysfs.netdev_dir(ifname);
    if !sysfs.is_link(&dir) && !sysfs.exists(&dir) {
        anyhow::bail!(
            "no network interface {ifname} ({} does not exist)",
            dir.display()
        );
    }
    sysfs.netdev_pci_address(ifname).with_context(|| {
        format!("{ifname} is not a PCI network function (no PCI device behind it)")
    })
}
