//! SR-IOV changes through sysfs: the VF count of a PF, VF autoprobe, and the driver a function is
//! bound to.
//!
//! Requests follow the handle -> builder -> `execute()` shape:
//!
//! ```no_run
//! # use nic::{sysfs::SysFs, sriov::SriovHandle};
//! # fn main() -> Result<(), nic::sriov::SriovError> {
//! let sysfs = SysFs::host();
//! let pf = "0000:3b:00.0".parse().expect("literal");
//! let vf = "0000:3b:00.2".parse().expect("literal");
//! let sriov = SriovHandle::new(&sysfs);
//! let plan = sriov.numvfs(pf).plan(8)?;          // "8 → 4 destroys VFs 0-7 and creates 4"
//! sriov.numvfs(pf).set(8).execute()?;           // echo 0 > .../sriov_numvfs; echo 8 > .../sriov_numvfs
//! sriov.autoprobe(pf).set(false)?;              // echo 0 > .../sriov_drivers_autoprobe
//! sriov.driver(vf).bind("vfio-pci").execute()?; // driver_override + unbind + drivers/vfio-pci/bind
//! # Ok(()) }
//! ```
//!
//! Every request blocks (sysfs writes, and polls of up to the request's timeout); async callers
//! use the `*_async` forms, which run them on tokio's blocking pool.
//!
//! On a fixture tree there is no kernel: writes only change files, and
//! `fixtures::FakeHost::settle` plays the kernel's part (tests call it from a `FakeClock`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::pci::PciAddress;
use crate::sysfs::{SysFs, SysfsError};

mod autoprobe;
mod driver;
mod numvfs;

pub use self::autoprobe::AutoprobeHandle;
pub use self::driver::{DriverHandle, DriverOutcome, DriverRequest};
pub use self::numvfs::{NumVfsHandle, NumVfsOutcome, NumVfsPlan, SetNumVfsRequest, VfReadiness};

/// An SR-IOV change that failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    /// A sysfs read or write failed (the message names the file and the data).
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// The PCI function does not exist.
    #[error("no PCI function {address} ({} does not exist)", path.display())]
    NoDevice {
        /// The address asked for.
        address: PciAddress,
        /// The directory that is missing.
        path: PathBuf,
    },
    /// The function has no SR-IOV capability.
    #[error("{address} is not SR-IOV capable ({} does not exist)", path.display())]
    NotSriov {
        /// The PF address.
        address: PciAddress,
        /// The missing `sriov_totalvfs`.
        path: PathBuf,
    },
    /// More VFs were asked for than the device supports; nothing was written.
    #[error("{address} supports at most {total} VFs (sriov_totalvfs), {requested} requested")]
    TooManyVfs {
        /// The PF address.
        address: PciAddress,
        /// The requested count.
        requested: u32,
        /// `sriov_totalvfs`.
        total: u32,
    },
    /// A write to `sriov_numvfs` failed part way: the message says how many VFs the PF has now
    /// (0 when the write of 0 went through and the write of N did not).
    #[error(
        "{address}: changing sriov_numvfs {previous} → {requested} failed: {source}; \
         the PF now has {}", vf_count(*.now)
    )]
    NumVfsWrite {
        /// The PF address.
        address: PciAddress,
        /// `sriov_numvfs` before.
        previous: u32,
        /// The requested count.
        requested: u32,
        /// `sriov_numvfs` read back after the failure (`None`: unreadable).
        now: Option<u32>,
        /// The refused write.
        source: SysfsError,
    },
    /// The VF links did not reach the requested count in time.
    #[error(
        "{address}: {present} of {requested} VFs present after {} \
         (counting the virtfn links in {})",
        crds::report::human_duration(*waited),
        dir.display()
    )]
    Timeout {
        /// The PF address.
        address: PciAddress,
        /// The PF's sysfs directory.
        dir: PathBuf,
        /// The requested VF count.
        requested: u32,
        /// VF links present at the deadline (for `0` requested: links still present).
        present: u32,
        /// How long it waited.
        waited: Duration,
    },
    /// The VFs exist but not all of them got a driver (and a netdev) in time.
    #[error(
        "{ready} of {requested} VFs of {address} have {what} after {}: missing {}",
        crds::report::human_duration(*waited),
        index_list(missing)
    )]
    VfsNotReady {
        /// The PF address.
        address: PciAddress,
        /// The requested VF count.
        requested: u32,
        /// VFs that are ready.
        ready: u32,
        /// Indexes of the VFs that are not.
        missing: Vec<u32>,
        /// What was waited for.
        what: VfReadiness,
        /// How long it waited.
        waited: Duration,
    },
    /// The driver is not loaded (its directory under `/sys/bus/pci/drivers` is missing).
    #[error("driver {driver} is not loaded ({} does not exist; try `modprobe {driver}`)", path.display())]
    DriverNotLoaded {
        /// The driver name.
        driver: String,
        /// The missing directory.
        path: PathBuf,
    },
    /// The writes went through but the function is not bound to the driver asked for.
    #[error(
        "{address} is bound to {} after {}, not to {driver}",
        driver_name(now),
        crds::report::human_duration(*waited)
    )]
    NotBound {
        /// The function.
        address: PciAddress,
        /// The driver asked for.
        driver: String,
        /// The driver bound at the deadline.
        now: Option<String>,
        /// How long it waited.
        waited: Duration,
    },
    /// A bind failed and was rolled back (or the rollback failed too: see [`Rollback`]).
    #[error("cannot bind {address} to {driver}: {cause}; {rollback}")]
    BindFailed {
        /// The function.
        address: PciAddress,
        /// The driver asked for.
        driver: String,
        /// Why the bind failed.
        cause: Box<SriovError>,
        /// What the rollback did.
        rollback: Rollback,
    },
    /// A blocking task of an `*_async` request panicked or was cancelled.
    #[error("SR-IOV task failed: {0}")]
    Task(String),
}

fn vf_count(n: Option<u32>) -> String {
    match n {
        Some(1) => "1 VF".into(),
        Some(n) => format!("{n} VFs"),
        None => "an unknown number of VFs (sriov_numvfs unreadable)".into(),
    }
}

fn driver_name(d: &Option<String>) -> &str {
    d.as_deref().unwrap_or("no driver")
}

/// `3,5,7`, cut after 16 entries.
fn index_list(ids: &[u32]) -> String {
    let mut s: Vec<String> = ids.iter().take(16).map(u32::to_string).collect();
    if ids.len() > 16 {
        s.push(format!("... ({} in all)", ids.len()));
    }
    s.join(",")
}

/// What the rollback of a failed bind did.
#[derive(Debug)]
pub enum Rollback {
    /// The function is back on its previous driver (or unbound, if it had none) and
    /// `driver_override` is cleared.
    Restored {
        /// The driver bound now.
        driver: Option<String>,
    },
    /// The rollback failed as well.
    Failed {
        /// Why.
        error: Box<SriovError>,
        /// The driver bound now.
        now: Option<String>,
    },
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::Restored { driver: Some(d) } => {
                write!(f, "rolled back: on {d} again, driver_override cleared")
            }
            Rollback::Restored { driver: None } => {
                write!(f, "rolled back: unbound as before, driver_override cleared")
            }
            Rollback::Failed { error, now } => write!(
                f,
                "rollback failed: {error}; the function is now on {}",
                driver_name(now)
            ),
        }
    }
}

/// Time source for waiting; tests use `fixtures::FakeClock` so waits take no real time.
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Sleeps for `d`.
    fn sleep(&self, d: Duration);
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep(&self, d: Duration) {
        (**self).sleep(d);
    }
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Polls `done` until it returns `Some`, at most `timeout` after the first try.
fn poll<C: Clock, T>(
    clock: &C,
    timeout: Duration,
    interval: Duration,
    mut done: impl FnMut() -> Result<Option<T>, SriovError>,
) -> Result<Result<(T, Duration), Duration>, SriovError> {
    let start = clock.now();
    loop {
        if let Some(v) = done()? {
            return Ok(Ok((v, clock.now() - start)));
        }
        let waited = clock.now() - start;
        if waited >= timeout {
            return Ok(Err(waited));
        }
        clock.sleep(interval.min(timeout - waited));
    }
}

/// Runs a blocking request on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SriovError> + Send + 'static,
) -> Result<T, SriovError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SriovError::Task(e.to_string()))?
}

/// Entry point for SR-IOV changes on one sysfs root.
#[derive(Clone, Debug)]
pub struct SriovHandle {
    sysfs: SysFs,
}

impl SriovHandle {
    /// A handle on `sysfs`.
    pub fn new(sysfs: &SysFs) -> Self {
        SriovHandle {
            sysfs: sysfs.clone(),
        }
    }

    /// Requests about the VF count of PF `pf`.
    pub fn numvfs(&self, pf: PciAddress) -> NumVfsHandle {
        NumVfsHandle {
            sysfs: self.sysfs.clone(),
            pf,
        }
    }

    /// Requests about `sriov_drivers_autoprobe` of PF `pf`.
    pub fn autoprobe(&self, pf: PciAddress) -> AutoprobeHandle {
        AutoprobeHandle {
            sysfs: self.sysfs.clone(),
            pf,
        }
    }

    /// Requests about the driver of PCI function `dev`.
    pub fn driver(&self, dev: PciAddress) -> DriverHandle {
        DriverHandle {
            sysfs: self.sysfs.clone(),
            dev,
        }
    }
}

fn device_dir(sysfs: &SysFs, pf: PciAddress) -> Result<PathBuf, SriovError> {
    let dir = sysfs.pci_device_dir(&pf);
    if !sysfs.exists(&dir) {
        return Err(SriovError::NoDevice {
            address: pf,
            path: dir,
        });
    }
    Ok(dir)
}

fn read_total(sysfs: &SysFs, pf: PciAddress, dir: &Path) -> Result<u32, SriovError> {
    let path = dir.join("sriov_totalvfs");
    match sysfs.read_number(&path) {
        Err(e) if e.is_not_found() => Err(SriovError::NotSriov { address: pf, path }),
        other => Ok(other?),
    }
}
