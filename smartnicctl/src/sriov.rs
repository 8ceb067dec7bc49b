//! `smartnicctl sriov`: SR-IOV changes through sysfs.
//!
//! ```text
//! smartnicctl sriov numvfs PF N [--root DIR] [--wait-secs S] [--ready present|driver|netdev]
//! smartnicctl sriov autoprobe PF [on|off] [--root DIR]
//! smartnicctl sriov driver --pci BDF DRIVER|none [--root DIR] [--wait-secs S]
//! smartnicctl sriov representor UPLINK --vf N [--sysfs] [--source] [--root DIR]
//! ```
//!
//! PF: the PF's netdev name (enp1s0) or PCI address (0000:3b:00.0). `--pf` and `--pci` naming
//! the PF still work ([`crate::grammar`]).
//!
//! ```text
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use nic::devlink::DevlinkHandle;
use nic::pci::PciAddress;
use nic::representor::{RepresentorSource, vf_representor};
use nic::sriov::{SriovError, SriovHandle, VfReadiness};
use nic::sysfs::SysFs;

use serde::Serialize;

use crate::link::{Output, block_on, out, print_data};

/// Arguments of `smartnicctl sriov`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Set the number of VFs of a PF: writes 0 then N to sriov_numvfs (nothing when it is
    /// already N), which destroys every existing VF, then waits until the N VFs exist and each
    /// has a driver and a netdev (only the PCI function when sriov_drivers_autoprobe is 0).
    /// Prints which VFs were destroyed.
    #[command(
        after_help = "Example:\n  smartnicctl sriov numvfs enp1s0 4\n  smartnicctl sriov numvfs 0000:01:00.0 0 --root /tmp/h --wait-secs 0"
    )]
    Numvfs {
        /// The PF: its netdev name (enp1s0) or PCI address (0000:3b:00.0).
        pf: String,
        /// Number of VFs (0 removes them all).
        n: u32,
        /// Seconds to wait for the VFs; 0 returns right after the writes (useful on a
        /// copied fixture tree, where no kernel creates them).
        #[arg(long, value_name = "S", default_value_t = 60)]
        wait_secs: u64,
        /// What each VF must have: present (its PCI function), driver (VFs for vfio-pci), netdev.
        /// Default: netdev, or present when sriov_drivers_autoprobe is 0.
        #[arg(long, value_name = "WHAT", value_parser = parse_readiness)]
        ready: Option<VfReadiness>,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show or set sriov_drivers_autoprobe of a PF: whether the kernel binds a driver to VFs as
    /// they are created (off: VFs stay unbound until bound on purpose, e.g. to vfio-pci).
    #[command(after_help = "Example:\n  smartnicctl sriov autoprobe enp1s0 off")]
    Autoprobe {
        /// The PF: its netdev name (enp1s0) or PCI address (0000:3b:00.0).
        pf: String,
        /// `on` or `off`; without it, print the current value.
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Bind a PCI function (usually a VF) to DRIVER through driver_override, unbind and
    /// drivers/DRIVER/bind, then check the bound driver; when that fails, the previous driver
    /// and driver_override are put back and the error says so. `none` unbinds the function and
    /// clears driver_override.
    #[command(after_help = "Example:\n  smartnicctl sriov driver --pci 0000:3b:00.2 vfio-pci")]
    Driver {
        /// The function's PCI address (0000:3b:00.2).
        #[arg(long, value_name = "BDF")]
        pci: PciAddress,
        /// Driver name (vfio-pci, iavf, igbvf, mlx5_core, ...) or `none`.
        driver: String,
        /// Seconds to wait for the bound driver to show.
        #[arg(long, value_name = "S", default_value_t = 10)]
        wait_secs: u64,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the representor netdev of VF N of a switchdev uplink: the netdev of the VF's
    /// devlink port (`devlink port show`: pfnum, vfnum, controller), or, where devlink cannot
    /// answer (no devlink, or the uplink has no devlink port), the netdev on the uplink's
    /// phys_switch_id whose phys_port_name is `pf<P>vf<N>`; fails when there is none.
    #[command(after_help = "Example:\n  smartnicctl sriov representor ens1f0np0 --vf 3")]
    Representor {
        /// The uplink netdev (phys_port_name `p<P>`).
        #[arg(value_name = "UPLINK")]
        pf: String,
        /// VF index.
        #[arg(long, value_name = "N")]
        vf: u32,
        /// Use only the sysfs names, not devlink (also implied by --root).
        #[arg(long)]
        sysfs: bool,
        /// Print how it was found (`devlink port DEV/INDEX` or `sysfs`) after the name.
        #[arg(long)]
        source: bool,
        /// Use the sysfs tree under DIR instead of the host's.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
}

fn sysfs(root: Option<PathBuf>) -> SysFs {
    root.map_or_else(SysFs::host, SysFs::new)
}

fn parse_readiness(s: &str) -> Result<VfReadiness, String> {
    match s {
        "present" => Ok(VfReadiness::Present),
        "driver" => Ok(VfReadiness::Driver),
        "netdev" => Ok(VfReadiness::Netdev),
        _ => Err(format!("{s:?} is not one of present, driver, netdev")),
    }
}

/// The PF given by netdev name or PCI address, and how to name it in messages.
fn pf_arg(sysfs: &SysFs, pf: &str) -> anyhow::Result<(PciAddress, String)> {
    if let Ok(addr) = pf.parse::<PciAddress>() {
        return Ok((addr, addr.to_string()));
    }
    let addr = pf_address(sysfs, pf)?;
    Ok((addr, format!("{pf} ({addr})")))
}

/// While `sriov numvfs` waits for the kernel (a minute for a hundred VFs on some hosts), a line
/// on stderr every few seconds with how many VFs are there; stopped when dropped.
struct Progress {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    const FIRST: Duration = Duration::from_secs(2);
    const EVERY: Duration = Duration::from_secs(5);

    fn start(dir: PathBuf, label: String, n: u32, timeout: Duration) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut next = Self::FIRST;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if start.elapsed() < next || flag.load(Ordering::Relaxed) {
                    continue;
                }
                next += Self::EVERY;
                let present = std::fs::read_dir(&dir)
                    .map(|d| {
                        d.flatten()
                            .filter(|e| e.file_name().to_string_lossy().starts_with("virtfn"))
                            .count()
                    })
                    .unwrap_or(0);
                eprintln!(
                    "{label}: waiting for the VFs: {present} of {n} present after {} (giving up after {})",
                    crds::report::human_duration(start.elapsed()),
                    crds::report::human_duration(timeout)
                );
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `--ready`'s word for `r`.
fn readiness_name(r: VfReadiness) -> String {
    match r {
        VfReadiness::Present => "present",
        VfReadiness::Driver => "driver",
        VfReadiness::Netdev => "netdev",
    }
    .to_owned()
}

/// The netdev name the PF was given by (`None`: by PCI address).
fn ifname(pf: &str) -> Option<String> {
    pf.parse::<PciAddress>().is_err().then(|| pf.to_owned())
}

/// `sriov numvfs -o json|yaml`: the facts of the table line.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NumVfsDoc {
    /// The PF's netdev, when it was named by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pf: Option<String>,
    pci_address: String,
    /// sriov_numvfs before.
    previous: u32,
    /// sriov_numvfs now.
    num_vfs: u32,
    /// Whether anything was written.
    changed: bool,
    /// VF indexes destroyed (every VF that existed, when it changed).
    destroyed: Vec<u32>,
    /// What every VF was seen to have, in `--ready`'s words (absent: not waited for).
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<String>,
    /// How long the wait took, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    waited_seconds: Option<f64>,
}

/// `sriov autoprobe -o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AutoprobeDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pf: Option<String>,
    pci_address: String,
    /// sriov_drivers_autoprobe (after the change, when one was asked for).
    autoprobe: bool,
}

/// `sriov driver -o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DriverDoc {
    pci_address: String,
    /// The driver before (`none`: unbound).
    previous: String,
    /// The driver now (`none`: unbound).
    driver: String,
    changed: bool,
}

/// `sriov representor -o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepresentorDoc {
    uplink: String,
    vf: u32,
    representor: String,
    /// How it was found: `devlink port DEV/INDEX` or `sysfs`, as `--source` prints it.
    source: String,
}

/// `VFs 0-7`, `VF 0`, `no VF`.
fn vf_range(r: std::ops::Range<u32>) -> String {
    match r.len() {
        0 => "no VF".into(),
        1 => format!("VF {}", r.start),
        _ => format!("VFs {}-{}", r.start, r.end - 1),
    }
}

/// Runs `smartnicctl sriov`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Numvfs {
            pf,
            n,
            wait_secs,
            ready,
            root,
            output,
        } => {
            let sysfs = sysfs(root);
            let (addr, label) = pf_arg(&sysfs, &pf)?;
            let mut req = SriovHandle::new(&sysfs)
                .numvfs(addr)
                .set(n)
                .timeout(Duration::from_secs(wait_secs));
            if wait_secs == 0 {
                req = req.no_wait();
            }
            if let Some(r) = ready {
                req = req.ready(r);
            }
            let progress = (wait_secs > 0 && n > 0).then(|| {
                Progress::start(
                    sysfs.path(format!("sys/bus/pci/devices/{addr}")),
                    label.clone(),
                    n,
                    Duration::from_secs(wait_secs),
                )
            });
            let result = req.execute();
            drop(progress);
            let o = result.with_context(|| format!("set sriov_numvfs of {label} to {n}"))?;
            if output != Output::Table {
                let doc = NumVfsDoc {
                    pf: ifname(&pf),
                    pci_address: addr.to_string(),
                    previous: o.previous,
                    num_vfs: n,
                    changed: o.changed,
                    destroyed: if o.changed {
                        o.plan.destroyed().collect()
                    } else {
                        Vec::new()
                    },
                    // as the table: what the VFs were waited for, only for a change that waited
                    ready: o
                        .ready
                        .filter(|_| o.changed && o.verified && n > 0)
                        .map(readiness_name),
                    waited_seconds: (o.changed && o.verified && n > 0)
                        .then_some(o.waited.as_secs_f64()),
                };
                return print_data(output, &doc);
            }
            if !o.changed {
                return out(format!("{label}: sriov_numvfs is already {n}"));
            }
            let what = format!(
                "{label}: sriov_numvfs {} -> {n}: destroyed {}, created {n}",
                o.previous,
                vf_range(o.plan.destroyed())
            );
            match o.ready {
                Some(r) if o.verified && n > 0 => out(format!(
                    "{what}; every VF has {r} after {}",
                    crds::report::human_duration(o.waited)
                )),
                _ if o.verified => out(what),
                _ => out(format!("{what}; not waiting for the VFs")),
            }
        }
        Cmd::Autoprobe {
            pf,
            state,
            root,
            output,
        } => {
            let sysfs = sysfs(root);
            let (addr, label) = pf_arg(&sysfs, &pf)?;
            let h = SriovHandle::new(&sysfs).autoprobe(addr);
            if let Some(state) = state {
                h.set(state == "on")
                    .with_context(|| format!("set sriov_drivers_autoprobe of {label} {state}"))?;
            }
            let on = h
                .get()
                .with_context(|| format!("read sriov_drivers_autoprobe of {label}"))?;
            if output != Output::Table {
                return print_data(
                    output,
                    &AutoprobeDoc {
                        pf: ifname(&pf),
                        pci_address: addr.to_string(),
                        autoprobe: on,
                    },
                );
            }
            out(format!(
                "{label}: sriov_drivers_autoprobe {}",
                if on { "on" } else { "off" }
            ))
        }
        Cmd::Driver {
            pci,
            driver,
            wait_secs,
            root,
            output,
        } => {
            let sysfs = sysfs(root);
            let handle = SriovHandle::new(&sysfs).driver(pci);
            let unbind = driver == "none";
            let req = if unbind {
                handle.unbind()
            } else {
                handle.bind(driver.clone())
            };
            let o = match req.timeout(Duration::from_secs(wait_secs)).execute() {
                Ok(o) => o,
                // It names the function, the driver and where the function is now.
                Err(e @ SriovError::BindFailed { .. }) => return Err(e.into()),
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(if unbind {
                        format!("unbind {pci}")
                    } else {
                        format!("bind {pci} to {driver}")
                    }));
                }
            };
            let name = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
            if output != Output::Table {
                return print_data(
                    output,
                    &DriverDoc {
                        pci_address: pci.to_string(),
                        previous: name(&o.previous),
                        driver: name(&o.current),
                        changed: o.changed,
                    },
                );
            }
            if !o.changed {
                out(format!("{pci}: driver is already {}", name(&o.previous)))
            } else if unbind {
                out(format!("{pci}: driver {} -> none", name(&o.previous)))
            } else {
                out(format!(
                    "{pci}: driver {} -> {} (bound driver checked)",
                    name(&o.previous),
                    name(&o.current)
                ))
            }
        }
        Cmd::Representor {
            pf,
            vf,
            sysfs: sysfs_only,
            source,
            root,
            output,
        } => {
            // A fixture tree has no devlink behind it: the host's would answer about other devices.
            let use_devlink = !sysfs_only && root.is_none();
            let sysfs = sysfs(root);
            let found = block_on(async {
                let dl = if use_devlink {
                    DevlinkHandle::connect_optional().await?
                } else {
                    None
                };
                anyhow::Ok(vf_representor(dl.as_ref(), &sysfs, &pf, vf).await?)
            })?
            .with_context(|| format!("look up the representor of VF {vf} of {pf}"))?;
            match found {
                Some(rep) if output != Output::Table => print_data(
                    output,
                    &RepresentorDoc {
                        uplink: pf.clone(),
                        vf,
                        representor: rep.netdev,
                        source: match rep.source {
                            RepresentorSource::Devlink(port) => format!("devlink port {port}"),
                            RepresentorSource::Sysfs => "sysfs".into(),
                        },
                    },
                ),
                Some(rep) if source => match rep.source {
                    RepresentorSource::Devlink(port) => {
                        out(format!("{} devlink port {port}", rep.netdev))
                    }
                    RepresentorSource::Sysfs => out(format!("{} sysfs", rep.netdev)),
                },
                Some(rep) => out(rep.netdev),
                None => anyhow::bail!(
                    "no representor of VF {vf} of {pf}: devlink has no netdev for that VF port, or \
                     (without devlink) {pf} is not a switchdev uplink (phys_port_name p<N> with a \
                     phys_switch_id) or no netdev has phys_port_name pf<N>vf{vf} on its switch"
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
