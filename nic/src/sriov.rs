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
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::pci::PciAddress;
use crate::sysfs::{SysFs, SysfsError};

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
        "{address}: {present} of {requested} VFs present after {waited:?} \
         (counting the virtfn links in {})",
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
        "{ready} of {requested} VFs of {address} have {what} after {waited:?}: missing {}",
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
        "{address} is bound to {} after {waited:?}, not to {driver}",
        driver_name(now)
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

/// Requests about `sriov_drivers_autoprobe` of one PF: whether new VFs are bound to a driver
/// by the kernel as they are created.
#[derive(Clone, Debug)]
pub struct AutoprobeHandle {
    sysfs: SysFs,
    pf: PciAddress,
}

impl AutoprobeHandle {
    fn path(&self) -> Result<PathBuf, SriovError> {
        let dir = device_dir(&self.sysfs, self.pf)?;
        let path = dir.join("sriov_drivers_autoprobe");
        if !self.sysfs.exists(&path) {
            read_total(&self.sysfs, self.pf, &dir)?;
        }
        Ok(path)
    }

    /// `cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe`.
    pub fn get(&self) -> Result<bool, SriovError> {
        let path = self.path()?;
        Ok(self.sysfs.read_number::<u8>(&path)? != 0)
    }

    /// `echo 0|1 > /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe` (takes effect for VFs
    /// created afterwards).
    pub fn set(&self, on: bool) -> Result<(), SriovError> {
        let path = self.path()?;
        self.sysfs.write(&path, u8::from(on))?;
        Ok(())
    }

    /// [`AutoprobeHandle::get`] off the async runtime.
    pub async fn get_async(self) -> Result<bool, SriovError> {
        blocking(move || self.get()).await
    }

    /// [`AutoprobeHandle::set`] off the async runtime.
    pub async fn set_async(self, on: bool) -> Result<(), SriovError> {
        blocking(move || self.set(on)).await
    }
}

/// Requests about the VF count of one PF.
#[derive(Clone, Debug)]
pub struct NumVfsHandle {
    sysfs: SysFs,
    pf: PciAddress,
}

impl NumVfsHandle {
    /// Sets the VF count to `n`: `echo 0 > /sys/bus/pci/devices/$PF/sriov_numvfs;
    /// echo N > /sys/bus/pci/devices/$PF/sriov_numvfs`, then waits for the VFs (see
    /// [`SetNumVfsRequest::ready`]).
    pub fn set(self, n: u32) -> SetNumVfsRequest<SystemClock> {
        SetNumVfsRequest {
            sysfs: self.sysfs,
            pf: self.pf,
            n,
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            wait: true,
            ready: None,
            clock: SystemClock,
        }
    }

    /// What setting the count to `n` would do, without writing anything (fails like
    /// [`NumVfsHandle::set`] for a missing or non-SR-IOV function and for too many VFs).
    pub fn plan(&self, n: u32) -> Result<NumVfsPlan, SriovError> {
        let dir = device_dir(&self.sysfs, self.pf)?;
        plan(&self.sysfs, self.pf, &dir, n)
    }

    /// Reads `sriov_totalvfs` and `sriov_numvfs`:
    /// `cat /sys/bus/pci/devices/$PF/sriov_{totalvfs,numvfs}`.
    pub fn get(&self) -> Result<(u32, u32), SriovError> {
        let dir = device_dir(&self.sysfs, self.pf)?;
        let total = read_total(&self.sysfs, self.pf, &dir)?;
        let num = self.sysfs.read_number(&dir.join("sriov_numvfs"))?;
        Ok((total, num))
    }

    /// [`NumVfsHandle::get`] off the async runtime.
    pub async fn get_async(self) -> Result<(u32, u32), SriovError> {
        blocking(move || self.get()).await
    }
}

fn plan(sysfs: &SysFs, pf: PciAddress, dir: &Path, n: u32) -> Result<NumVfsPlan, SriovError> {
    let total = read_total(sysfs, pf, dir)?;
    if n > total {
        return Err(SriovError::TooManyVfs {
            address: pf,
            requested: n,
            total,
        });
    }
    let previous = sysfs.read_number(&dir.join("sriov_numvfs"))?;
    Ok(NumVfsPlan {
        pf,
        previous,
        requested: n,
    })
}

/// What a VF-count change does. The kernel refuses to change a non-zero count directly
/// (`EBUSY`), so any change from a non-zero count goes through 0: every existing VF is
/// destroyed (with whatever was configured on it) before the new ones are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumVfsPlan {
    /// The PF.
    pub pf: PciAddress,
    /// `sriov_numvfs` now.
    pub previous: u32,
    /// The requested count.
    pub requested: u32,
}

impl NumVfsPlan {
    /// True when anything is written.
    pub fn changes(&self) -> bool {
        self.previous != self.requested
    }

    /// The VFs destroyed (all existing ones, on any change).
    pub fn destroyed(&self) -> Range<u32> {
        if self.changes() {
            0..self.previous
        } else {
            0..0
        }
    }

    /// The VFs created (all requested ones, on any change).
    pub fn created(&self) -> Range<u32> {
        if self.changes() {
            0..self.requested
        } else {
            0..0
        }
    }

    /// The values written to `sriov_numvfs`, in order.
    pub fn writes(&self) -> Vec<u32> {
        let mut w = Vec::new();
        if self.changes() {
            if self.previous != 0 || self.requested == 0 {
                w.push(0);
            }
            if self.requested != 0 {
                w.push(self.requested);
            }
        }
        w
    }
}

impl fmt::Display for NumVfsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, n) = (self.previous, self.requested);
        let range = |r: Range<u32>| match r.len() {
            1 => format!("VF {}", r.start),
            _ => format!("VFs {}-{}", r.start, r.end - 1),
        };
        write!(f, "{}: {p} → {n}", self.pf)?;
        match (self.changes(), p, n) {
            (false, _, _) => write!(f, " changes nothing"),
            (true, 0, _) => write!(f, " creates {n}"),
            (true, _, 0) => write!(f, " destroys {}", range(self.destroyed())),
            (true, _, _) => write!(f, " destroys {} and creates {n}", range(self.destroyed())),
        }
    }
}

/// What a VF must have before a VF-count change counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VfReadiness {
    /// Its `virtfn` link (the PCI function exists).
    Present,
    /// A bound driver (VFs meant for vfio-pci, or a driver without netdevs).
    Driver,
    /// A bound driver and a netdev.
    Netdev,
}

impl fmt::Display for VfReadiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfReadiness::Present => "a PCI function",
            VfReadiness::Driver => "a driver",
            VfReadiness::Netdev => "a netdev",
        })
    }
}

/// What a VF-count change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumVfsOutcome {
    /// What was done: which VFs were destroyed and how many created.
    pub plan: NumVfsPlan,
    /// `sriov_numvfs` before.
    pub previous: u32,
    /// The requested (and now present) count.
    pub current: u32,
    /// False when the PF already had the requested count and nothing was written.
    pub changed: bool,
    /// Time spent waiting for the VFs.
    pub waited: Duration,
    /// True when the VFs were checked (false after [`SetNumVfsRequest::no_wait`]).
    pub verified: bool,
    /// What every VF was checked to have (`None` after [`SetNumVfsRequest::no_wait`]).
    pub ready: Option<VfReadiness>,
}

/// Sets `sriov_numvfs`; see [`NumVfsHandle::set`].
#[derive(Clone, Debug)]
pub struct SetNumVfsRequest<C> {
    sysfs: SysFs,
    pf: PciAddress,
    n: u32,
    timeout: Duration,
    poll: Duration,
    wait: bool,
    ready: Option<VfReadiness>,
    clock: C,
}

impl<C: Clock> SetNumVfsRequest<C> {
    /// How long to wait for the VFs (default 60 s; zero: check once, do not wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns right after the writes without checking the VFs (a fixture tree has no kernel to
    /// create them). [`NumVfsOutcome::verified`] is then false.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// What each VF must have before the change is done. Default: [`VfReadiness::Netdev`]
    /// when `sriov_drivers_autoprobe` is on, [`VfReadiness::Present`] when it is off (no
    /// driver will come). VFs meant for vfio-pci: [`VfReadiness::Driver`].
    pub fn ready(mut self, ready: VfReadiness) -> Self {
        self.ready = Some(ready);
        self
    }

    /// Time between two checks (default 100 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Uses another clock (tests).
    pub fn clock<D: Clock>(self, clock: D) -> SetNumVfsRequest<D> {
        SetNumVfsRequest {
            sysfs: self.sysfs,
            pf: self.pf,
            n: self.n,
            timeout: self.timeout,
            poll: self.poll,
            wait: self.wait,
            ready: self.ready,
            clock,
        }
    }

    /// Checks the request against `sriov_totalvfs` (nothing is written when it is too large),
    /// writes `0` then `N` (only `0` for zero; nothing when the count is already `N`), then polls
    /// until `virtfn0..virtfn{N-1}` exist and `virtfnN` does not, and each VF is ready.
    ///
    /// A refused write is [`SriovError::NumVfsWrite`], which says how many VFs the PF has after
    /// it: 0 when the kernel took the 0 and refused the N (e.g. not enough MSI-X vectors or bus
    /// numbers).
    pub fn execute(self) -> Result<NumVfsOutcome, SriovError> {
        let sysfs = &self.sysfs;
        let dir = device_dir(sysfs, self.pf)?;
        let plan = plan(sysfs, self.pf, &dir, self.n)?;
        let numvfs = dir.join("sriov_numvfs");
        for value in plan.writes() {
            if let Err(source) = sysfs.write(&numvfs, value) {
                return Err(SriovError::NumVfsWrite {
                    address: self.pf,
                    previous: plan.previous,
                    requested: self.n,
                    now: sysfs.read_number(&numvfs).ok(),
                    source,
                });
            }
        }
        let mut outcome = NumVfsOutcome {
            plan,
            previous: plan.previous,
            current: self.n,
            changed: plan.changes(),
            waited: Duration::ZERO,
            verified: false,
            ready: None,
        };
        if !self.wait {
            return Ok(outcome);
        }
        let start = self.clock.now();
        let links = poll(&self.clock, self.timeout, self.poll, || {
            let present = count_virtfn(sysfs, &dir, self.n);
            let extra = sysfs.is_link(&dir.join(format!("virtfn{}", self.n)));
            Ok((present == self.n && !extra).then_some(()))
        })?;
        if let Err(waited) = links {
            let max = if self.n == 0 { u32::MAX } else { self.n };
            return Err(SriovError::Timeout {
                address: self.pf,
                requested: self.n,
                present: count_virtfn(sysfs, &dir, max),
                dir,
                waited,
            });
        }
        let ready = match self.ready {
            Some(r) => r,
            None => match sysfs.read_number::<u8>(&dir.join("sriov_drivers_autoprobe")) {
                Ok(0) => VfReadiness::Present,
                _ => VfReadiness::Netdev,
            },
        };
        let left = self.timeout.saturating_sub(self.clock.now() - start);
        let mut missing = Vec::new();
        let vfs = poll(&self.clock, left, self.poll, || {
            missing = (0..self.n)
                .filter(|i| !vf_ready(sysfs, &dir.join(format!("virtfn{i}")), ready))
                .collect();
            Ok(missing.is_empty().then_some(()))
        })?;
        if vfs.is_err() {
            return Err(SriovError::VfsNotReady {
                address: self.pf,
                requested: self.n,
                ready: self.n - missing.len() as u32,
                missing,
                what: ready,
                waited: self.clock.now() - start,
            });
        }
        outcome.waited = self.clock.now() - start;
        outcome.verified = true;
        outcome.ready = Some(ready);
        Ok(outcome)
    }
}

impl<C: Clock + Send + 'static> SetNumVfsRequest<C> {
    /// [`SetNumVfsRequest::execute`] off the async runtime (the writes and the polls block).
    pub async fn execute_async(self) -> Result<NumVfsOutcome, SriovError> {
        blocking(move || self.execute()).await
    }
}

/// Number of consecutive `virtfnI` links (from 0, at most `max`) whose VF directory exists.
fn count_virtfn(sysfs: &SysFs, dir: &Path, max: u32) -> u32 {
    let mut i = 0;
    while i < max && sysfs.exists(&dir.join(format!("virtfn{i}"))) {
        i += 1;
    }
    i
}

/// True when the VF behind `link` has what `ready` asks for.
fn vf_ready(sysfs: &SysFs, link: &Path, ready: VfReadiness) -> bool {
    let driver = || sysfs.exists(&link.join("driver"));
    let netdev = || {
        sysfs
            .list_dir(&link.join("net"))
            .is_ok_and(|names| !names.is_empty())
    };
    match ready {
        VfReadiness::Present => sysfs.exists(link),
        VfReadiness::Driver => driver(),
        VfReadiness::Netdev => driver() && netdev(),
    }
}

/// Requests about the driver of one PCI function.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    sysfs: SysFs,
    dev: PciAddress,
}

impl DriverHandle {
    /// Binds the function to `driver`, rolling back on failure:
    /// `echo $DRV > .../$BDF/driver_override; echo $BDF > .../$BDF/driver/unbind;
    /// echo $BDF > /sys/bus/pci/drivers/$DRV/bind`.
    pub fn bind(self, driver: impl Into<String>) -> DriverRequest<SystemClock> {
        self.request(Some(driver.into()))
    }

    /// Unbinds the function from its driver and clears `driver_override`:
    /// `echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind; echo > .../$BDF/driver_override`.
    pub fn unbind(self) -> DriverRequest<SystemClock> {
        self.request(None)
    }

    fn request(self, target: Option<String>) -> DriverRequest<SystemClock> {
        DriverRequest {
            sysfs: self.sysfs,
            dev: self.dev,
            target,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            clock: SystemClock,
        }
    }

    /// The bound driver: `basename $(readlink /sys/bus/pci/devices/$BDF/driver)`.
    pub fn get(&self) -> Result<Option<String>, SriovError> {
        let dir = device_dir(&self.sysfs, self.dev)?;
        current_driver(&self.sysfs, &dir)
    }

    /// `driver_override` (`None` when unset, `(null)`, or the kernel has no such attribute).
    pub fn get_override(&self) -> Result<Option<String>, SriovError> {
        let dir = device_dir(&self.sysfs, self.dev)?;
        read_override(&self.sysfs, &dir)
    }

    /// [`DriverHandle::get`] off the async runtime.
    pub async fn get_async(self) -> Result<Option<String>, SriovError> {
        blocking(move || self.get()).await
    }
}

fn current_driver(sysfs: &SysFs, dir: &Path) -> Result<Option<String>, SriovError> {
    match sysfs.read_link_name(&dir.join("driver")) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn read_override(sysfs: &SysFs, dir: &Path) -> Result<Option<String>, SriovError> {
    Ok(sysfs
        .read_optional_string(&dir.join("driver_override"))?
        .filter(|s| s != "(null)"))
}

/// What a driver change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverOutcome {
    /// Driver before the change.
    pub previous: Option<String>,
    /// Driver read back afterwards (after a bind: the requested one, verified).
    pub current: Option<String>,
    /// False when the function was already in the requested state and nothing was written.
    pub changed: bool,
}

/// Binds or unbinds a driver; see [`DriverHandle::bind`] and [`DriverHandle::unbind`].
#[derive(Clone, Debug)]
pub struct DriverRequest<C> {
    sysfs: SysFs,
    dev: PciAddress,
    target: Option<String>,
    timeout: Duration,
    poll: Duration,
    clock: C,
}

impl<C: Clock> DriverRequest<C> {
    /// How long to wait for the bound driver to show (default 10 s; drivers that probe
    /// asynchronously bind after the write returns).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time between two checks (default 50 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Uses another clock (tests).
    pub fn clock<D: Clock>(self, clock: D) -> DriverRequest<D> {
        DriverRequest {
            sysfs: self.sysfs,
            dev: self.dev,
            target: self.target,
            timeout: self.timeout,
            poll: self.poll,
            clock,
        }
    }

    /// Performs the change.
    ///
    /// Bind: sets `driver_override` (so no other driver grabs the function on a re-probe; it stays
    /// set), unbinds the current driver, writes the address to `drivers/<driver>/bind`, then
    /// waits until the function's `driver` link names `<driver>`. A driver that is not loaded is
    /// refused before anything is written. When a write fails or the driver does not show, the
    /// change is rolled back: `driver_override` is cleared and the previous driver is bound
    /// again; the error ([`SriovError::BindFailed`]) says both what
    /// failed and where the function is now. When the function has no `driver_override`
    /// attribute (kernels before 3.16), the bind is written without it.
    ///
    /// Unbind: writes the address to the current driver's `unbind` and clears `driver_override`,
    /// so `echo $BDF > /sys/bus/pci/drivers_probe` later restores the default driver.
    pub fn execute(self) -> Result<DriverOutcome, SriovError> {
        let sysfs = &self.sysfs;
        let dir = device_dir(sysfs, self.dev)?;
        let bdf = self.dev.to_string();
        let previous = current_driver(sysfs, &dir)?;
        let overrides = dir.join("driver_override");
        let has_override = sysfs.exists(&overrides);
        let Some(target) = self.target.clone() else {
            if let Some(old) = &previous {
                sysfs.write(&sysfs.pci_drivers_dir().join(old).join("unbind"), &bdf)?;
            }
            if has_override {
                // "\n" clears the override; an empty write never reaches the kernel.
                sysfs.write(&overrides, "\n")?;
            }
            let current = current_driver(sysfs, &dir)?;
            return Ok(DriverOutcome {
                changed: previous.is_some(),
                previous,
                current,
            });
        };
        if previous.as_deref() == Some(target.as_str()) {
            return Ok(DriverOutcome {
                current: previous.clone(),
                previous,
                changed: false,
            });
        }
        let ddir = sysfs.pci_drivers_dir().join(&target);
        if !sysfs.exists(&ddir) {
            return Err(SriovError::DriverNotLoaded {
                driver: target,
                path: ddir,
            });
        }
        let attempt = (|| {
            if has_override {
                sysfs.write(&overrides, &target)?;
            }
            if let Some(old) = &previous {
                sysfs.write(&sysfs.pci_drivers_dir().join(old).join("unbind"), &bdf)?;
            }
            let bind = ddir.join("bind");
            if sysfs.exists(&bind) {
                sysfs.write(&bind, &bdf)?;
            } else {
                sysfs.write(&sysfs.pci_drivers_probe(), &bdf)?;
            }
            self.wait_for(&dir, Some(&target))
        })();
        match attempt {
            Ok(()) => Ok(DriverOutcome {
                previous,
                current: Some(target),
                changed: true,
            }),
            Err(cause) => {
                let rollback = self.rollback(&dir, previous.as_deref());
                Err(SriovError::BindFailed {
                    address: self.dev,
                    driver: target,
                    cause: Box::new(cause),
                    rollback,
                })
            }
        }
    }

    /// Waits until the bound driver is `want`.
    fn wait_for(&self, dir: &Path, want: Option<&str>) -> Result<(), SriovError> {
        let mut now = None;
        let r = poll(&self.clock, self.timeout, self.poll, || {
            now = current_driver(&self.sysfs, dir)?;
            Ok((now.as_deref() == want).then_some(()))
        })?;
        r.map(|_| ()).map_err(|waited| SriovError::NotBound {
            address: self.dev,
            driver: driver_name(&want.map(str::to_owned)).to_owned(),
            now,
            waited,
        })
    }

    /// Clears `driver_override` and binds the previous driver again after a failed bind.
    fn rollback(&self, dir: &Path, previous: Option<&str>) -> Rollback {
        let sysfs = &self.sysfs;
        let bdf = self.dev.to_string();
        let undo = || -> Result<(), SriovError> {
            let overrides = dir.join("driver_override");
            if sysfs.exists(&overrides) {
                sysfs.write(&overrides, "\n")?;
            }
            let now = current_driver(sysfs, dir)?;
            if now.as_deref() == previous {
                return Ok(());
            }
            if let Some(other) = &now {
                sysfs.write(&sysfs.pci_drivers_dir().join(other).join("unbind"), &bdf)?;
            }
            if let Some(prev) = previous {
                let bind = sysfs.pci_drivers_dir().join(prev).join("bind");
                if sysfs.exists(&bind) {
                    sysfs.write(&bind, &bdf)?;
                } else {
                    sysfs.write(&sysfs.pci_drivers_probe(), &bdf)?;
                }
            }
            self.wait_for(dir, previous)
        };
        match undo() {
            Ok(()) => Rollback::Restored {
                driver: previous.map(str::to_owned),
            },
            Err(error) => Rollback::Failed {
                error: Box::new(error),
                now: current_driver(sysfs, dir).ok().flatten(),
            },
        }
    }
}

impl<C: Clock + Send + 'static> DriverRequest<C> {
    /// [`DriverRequest::execute`] off the async runtime (the writes and the polls block).
    pub async fn execute_async(self) -> Result<DriverOutcome, SriovError> {
        blocking(move || self.execute()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FakeClock, HostBuilder};
    use crds::inventory::EswitchMode;
    use std::fs;

    fn pci(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn set_numvfs_goes_through_zero_and_waits_for_drivers_and_netdevs() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let pf = pci("0000:01:00.0");
        let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
        let seen = std::cell::RefCell::new(Vec::new());
        // the "kernel" answers on the third poll
        let clock = FakeClock::new(|n| {
            seen.borrow_mut().push(fs::read_to_string(&numvfs).unwrap());
            if n == 3 {
                host.settle().unwrap();
            }
        });
        let out = SriovHandle::new(&sysfs)
            .numvfs(pf)
            .set(5)
            .clock(&clock)
            .execute()
            .unwrap();
        let plan = NumVfsPlan {
            pf,
            previous: 2,
            requested: 5,
        };
        assert_eq!(
            out,
            NumVfsOutcome {
                plan,
                previous: 2,
                current: 5,
                changed: true,
                waited: Duration::from_millis(300),
                verified: true,
                ready: Some(VfReadiness::Netdev),
            }
        );
        assert_eq!(clock.sleeps(), 3);
        assert_eq!(seen.borrow()[0], "5");
        assert!(host.device_dir("0000:01:00.0").join("virtfn4").exists());
    }

    #[test]
    fn plans_say_what_they_destroy() {
        let plan = |previous, requested| NumVfsPlan {
            pf: pci("0000:3b:00.0"),
            previous,
            requested,
        };
        let p = plan(8, 4);
        assert_eq!(
            p.to_string(),
            "0000:3b:00.0: 8 → 4 destroys VFs 0-7 and creates 4"
        );
        assert_eq!(
            (p.destroyed(), p.created(), p.writes()),
            (0..8, 0..4, vec![0, 4])
        );
        assert_eq!(plan(0, 4).to_string(), "0000:3b:00.0: 0 → 4 creates 4");
        assert_eq!(plan(0, 4).writes(), [4]);
        assert_eq!(plan(1, 0).to_string(), "0000:3b:00.0: 1 → 0 destroys VF 0");
        assert_eq!(plan(1, 0).writes(), [0]);
        assert_eq!(
            plan(2, 2).to_string(),
            "0000:3b:00.0: 2 → 2 changes nothing"
        );
        assert!(plan(2, 2).writes().is_empty() && plan(2, 2).destroyed().is_empty());

        let host = HostBuilder::new().igb_82576().build().unwrap();
        let h = SriovHandle::new(&host.sysfs()).numvfs(pci("0000:01:00.0"));
        assert_eq!(
            h.plan(7).unwrap().to_string(),
            "0000:01:00.0: 2 → 7 destroys VFs 0-1 and creates 7"
        );
        assert!(matches!(h.plan(8), Err(SriovError::TooManyVfs { .. })));
    }

    #[test]
    fn a_refused_write_says_how_many_vfs_are_left() {
        let e = SriovError::NumVfsWrite {
            address: pci("0000:3b:00.0"),
            previous: 8,
            requested: 4,
            now: Some(0),
            source: SysfsError::Write {
                path: "/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs".into(),
                data: "4".into(),
                error: std::io::Error::from_raw_os_error(28),
            },
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("0000:3b:00.0: changing sriov_numvfs 8 → 4 failed: cannot write \"4\""),
            "{msg}"
        );
        assert!(msg.ends_with("; the PF now has 0 VFs"), "{msg}");

        // on a tree whose sriov_numvfs refuses writes (and reads)
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
        let sysfs = host.sysfs();
        let h = SriovHandle::new(&sysfs).numvfs(pci("0000:01:00.0"));
        let total = h.plan(3).unwrap();
        assert_eq!(total.previous, 2);
        fs::remove_file(&numvfs).unwrap();
        fs::write(&numvfs, "0\n").unwrap();
        let mut perms = fs::metadata(&numvfs).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
        fs::set_permissions(&numvfs, perms).unwrap();
        if nix::unistd::geteuid().is_root() {
            // root writes read-only files: make the attribute a directory instead
            fs::remove_file(&numvfs).unwrap();
            fs::create_dir(&numvfs).unwrap();
        }
        let e = h.set(3).no_wait().execute().unwrap_err();
        assert!(
            matches!(e, SriovError::Sysfs(_) | SriovError::NumVfsWrite { .. }),
            "{e}"
        );
    }

    #[test]
    fn waits_for_each_vf_and_names_the_missing_ones() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let clock = FakeClock::new(|n| {
            if n == 1 {
                host.settle().unwrap();
                // VFs 1 and 3 come up without a netdev
                host.remove_net_dir("0000:01:10.2").unwrap();
                host.remove_net_dir("0000:01:10.6").unwrap();
            }
        });
        let e = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(4)
            .timeout(Duration::from_secs(10))
            .clock(&clock)
            .execute()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 of 4 VFs of 0000:01:00.0 have a netdev after 10s: missing 1,3"
        );
        // vfio-pci VFs need only a driver
        let out = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(4)
            .ready(VfReadiness::Driver)
            .clock(FakeClock::new(|_| panic!("no wait expected")))
            .execute()
            .unwrap();
        assert_eq!((out.changed, out.ready), (false, Some(VfReadiness::Driver)));
    }

    #[test]
    fn autoprobe_off_means_waiting_for_the_functions_only() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let pf = pci("0000:01:00.0");
        let ap = SriovHandle::new(&sysfs).autoprobe(pf);
        assert!(ap.get().unwrap());
        ap.set(false).unwrap();
        assert_eq!(
            fs::read_to_string(
                host.device_dir("0000:01:00.0")
                    .join("sriov_drivers_autoprobe")
            )
            .unwrap(),
            "0"
        );
        assert!(!ap.get().unwrap());
        let clock = FakeClock::new(|_| {
            host.settle().unwrap();
            for vf in ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"] {
                host.remove_attr(vf, "driver").unwrap();
            }
        });
        let out = SriovHandle::new(&sysfs)
            .numvfs(pf)
            .set(3)
            .clock(&clock)
            .execute()
            .unwrap();
        assert_eq!(out.ready, Some(VfReadiness::Present));
        let e = SriovHandle::new(&sysfs)
            .autoprobe(pci("0000:01:10.0"))
            .get()
            .unwrap_err();
        assert!(e.to_string().contains("is not SR-IOV capable"), "{e}");
    }

    #[test]
    fn zero_removes_every_vf() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
        let out = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(0)
            .clock(FakeClock::new(|_| host.settle().unwrap()))
            .execute()
            .unwrap();
        assert_eq!(out.previous, 2);
        assert_eq!(out.plan.destroyed(), 0..2);
        assert_eq!(fs::read_to_string(&numvfs).unwrap(), "0");
        assert!(!host.device_dir("0000:01:00.0").join("virtfn0").exists());
    }

    #[test]
    fn same_count_writes_nothing() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
        let out = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(2)
            .clock(FakeClock::new(|_| panic!("no wait expected")))
            .execute()
            .unwrap();
        assert!(!out.changed);
        assert_eq!(fs::read_to_string(&numvfs).unwrap(), "2\n");
    }

    #[test]
    fn too_many_vfs_is_refused_before_any_write() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
        let e = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(8)
            .execute()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "0000:01:00.0 supports at most 7 VFs (sriov_totalvfs), 8 requested"
        );
        assert_eq!(fs::read_to_string(&numvfs).unwrap(), "2\n");
    }

    #[test]
    fn timeout_names_the_pf_and_counts() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let clock = FakeClock::new(|_| {});
        let e = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(4)
            .timeout(Duration::from_secs(2))
            .clock(&clock)
            .execute()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("0000:01:00.0: 2 of 4 VFs present after 2s"),
            "{msg}"
        );
        assert!(msg.contains("virtfn links in "), "{msg}");
        assert_eq!(clock.sleeps(), 20);
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn zero_timeout_does_not_wait() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let e = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(3)
            .timeout(Duration::ZERO)
            .clock(FakeClock::new(|_| panic!("no sleep expected")))
            .execute()
            .unwrap_err();
        assert!(matches!(e, SriovError::Timeout { present: 2, .. }), "{e}");
    }

    #[test]
    fn no_wait_returns_after_the_writes() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let out = SriovHandle::new(&sysfs)
            .numvfs(pci("0000:01:00.0"))
            .set(3)
            .no_wait()
            .clock(FakeClock::new(|_| panic!("no sleep expected")))
            .execute()
            .unwrap();
        assert!(out.changed && !out.verified);
        assert_eq!(
            fs::read_to_string(host.device_dir("0000:01:00.0").join("sriov_numvfs")).unwrap(),
            "3"
        );
    }

    #[test]
    fn async_wrappers_run_off_the_runtime() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let h = SriovHandle::new(&sysfs);
        let pf = pci("0000:01:00.0");
        let (out, counts, driver, autoprobe) = rt.block_on(async {
            let out = h.numvfs(pf).set(4).no_wait().execute_async().await.unwrap();
            let counts = h.numvfs(pf).get_async().await.unwrap();
            let driver = h.driver(pci("0000:01:10.0")).get_async().await.unwrap();
            let e = h
                .driver(pci("0000:01:10.0"))
                .bind("uio_pci_generic")
                .execute_async()
                .await
                .unwrap_err();
            assert!(matches!(e, SriovError::DriverNotLoaded { .. }), "{e}");
            (
                out,
                counts,
                driver,
                h.autoprobe(pf).get_async().await.unwrap(),
            )
        });
        assert_eq!(out.plan.writes(), [0, 4]);
        assert_eq!(counts, (7, 4));
        assert_eq!(driver.as_deref(), Some("igbvf"));
        assert!(autoprobe);
    }

    #[test]
    fn errors_for_missing_and_non_sriov_devices() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let sysfs = host.sysfs();
        let h = SriovHandle::new(&sysfs);
        let e = h.numvfs(pci("0000:99:00.0")).set(1).execute().unwrap_err();
        assert!(
            e.to_string().starts_with("no PCI function 0000:99:00.0"),
            "{e}"
        );
        // a VF has no sriov_totalvfs
        let e = h.numvfs(pci("0000:3b:00.2")).set(1).execute().unwrap_err();
        assert!(
            e.to_string().contains("0000:3b:00.2 is not SR-IOV capable"),
            "{e}"
        );
        assert!(e.to_string().contains("sriov_totalvfs"), "{e}");
        assert_eq!(h.numvfs(pci("0000:3b:00.0")).get().unwrap(), (8, 4));
    }

    #[test]
    fn bind_writes_override_unbind_and_bind_and_verifies() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let vf = pci("0000:01:10.2");
        let h = SriovHandle::new(&sysfs);
        let drivers = sysfs.pci_drivers_dir();
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        let written = std::cell::RefCell::new(Vec::new());
        let clock = FakeClock::new(|_| {
            written.borrow_mut().push((
                read(host.device_dir("0000:01:10.2").join("driver_override")),
                read(drivers.join("igbvf/unbind")),
                read(drivers.join("vfio-pci/bind")),
            ));
            host.settle().unwrap();
        });
        let out = h
            .driver(vf)
            .bind("vfio-pci")
            .clock(&clock)
            .execute()
            .unwrap();
        assert_eq!(out.previous.as_deref(), Some("igbvf"));
        assert_eq!(out.current.as_deref(), Some("vfio-pci"));
        assert!(out.changed);
        assert_eq!(
            written.borrow()[0],
            (
                "vfio-pci".to_string(),
                "0000:01:10.2".to_string(),
                "0000:01:10.2".to_string()
            )
        );
        assert_eq!(h.driver(vf).get().unwrap().as_deref(), Some("vfio-pci"));
        assert_eq!(
            h.driver(vf).get_override().unwrap().as_deref(),
            Some("vfio-pci")
        );
        // again: nothing to do
        let out = h.driver(vf).bind("vfio-pci").execute().unwrap();
        assert!(!out.changed);
    }

    #[test]
    fn a_driver_that_does_not_bind_is_rolled_back() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        host.never_binds("vfio-pci");
        let sysfs = host.sysfs();
        let vf = pci("0000:01:10.2");
        let h = SriovHandle::new(&sysfs);
        let clock = FakeClock::new(|_| host.settle().unwrap());
        let e = h
            .driver(vf)
            .bind("vfio-pci")
            .timeout(Duration::from_secs(1))
            .clock(&clock)
            .execute()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot bind 0000:01:10.2 to vfio-pci: 0000:01:10.2 is bound to no driver after 1s, \
             not to vfio-pci; rolled back: on igbvf again, driver_override cleared"
        );
        assert_eq!(h.driver(vf).get().unwrap().as_deref(), Some("igbvf"));
        assert_eq!(h.driver(vf).get_override().unwrap(), None);
        assert!(
            host.device_dir("0000:01:10.2")
                .join("net/enp1s0v1")
                .exists()
        );
    }

    #[test]
    fn a_refused_bind_write_leaves_the_function_as_it_was() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let vf = pci("0000:01:10.2");
        let h = SriovHandle::new(&sysfs);
        let settle = FakeClock::new(|_| host.settle().unwrap());
        h.driver(vf).unbind().execute().unwrap();
        host.settle().unwrap();
        host.refuse_bind_writes("vfio-pci").unwrap();
        let e = h
            .driver(vf)
            .bind("vfio-pci")
            .clock(&settle)
            .execute()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "cannot bind 0000:01:10.2 to vfio-pci: cannot write \"0000:01:10.2\" to "
            ),
            "{msg}"
        );
        assert!(
            msg.ends_with("rolled back: unbound as before, driver_override cleared"),
            "{msg}"
        );
        assert_eq!(h.driver(vf).get().unwrap(), None);
        assert_eq!(h.driver(vf).get_override().unwrap(), None);
        // and a failing rollback says where the function is
        let e = SriovError::BindFailed {
            address: vf,
            driver: "igb".into(),
            cause: Box::new(SriovError::Task("x".into())),
            rollback: Rollback::Failed {
                error: Box::new(SriovError::Task("y".into())),
                now: None,
            },
        };
        assert!(
            e.to_string().ends_with(
                "rollback failed: SR-IOV task failed: y; the function is now on no driver"
            )
        );
    }

    #[test]
    fn bind_to_an_unloaded_driver_writes_nothing() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let e = SriovHandle::new(&sysfs)
            .driver(pci("0000:01:10.2"))
            .bind("uio_pci_generic")
            .execute()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("driver uio_pci_generic is not loaded"),
            "{e}"
        );
        assert_eq!(
            fs::read_to_string(host.device_dir("0000:01:10.2").join("driver_override")).unwrap(),
            "(null)\n"
        );
    }

    #[test]
    fn unbind_clears_override() {
        let host = HostBuilder::new().e810().build().unwrap();
        let sysfs = host.sysfs();
        let vf = pci("0000:17:02.1"); // VF 1, on vfio-pci
        let h = SriovHandle::new(&sysfs);
        assert_eq!(h.driver(vf).get().unwrap().as_deref(), Some("vfio-pci"));
        let out = h.driver(vf).unbind().execute().unwrap();
        assert!(out.changed);
        assert_eq!(
            fs::read_to_string(sysfs.pci_drivers_dir().join("vfio-pci/unbind")).unwrap(),
            "0000:17:02.1"
        );
        host.settle().unwrap();
        assert_eq!(h.driver(vf).get().unwrap(), None);
        let out = h.driver(vf).unbind().execute().unwrap();
        assert!(!out.changed);
    }
}
