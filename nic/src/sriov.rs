//! SR-IOV changes through sysfs: the VF count of a PF and the driver a function is bound to.
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
//! sriov.numvfs(pf).set(8).execute()?;           // echo 0 > .../sriov_numvfs; echo 8 > .../sriov_numvfs
//! sriov.driver(vf).bind("vfio-pci").execute()?; // driver_override + unbind + drivers/vfio-pci/bind
//! # Ok(()) }
//! ```
//!
//! On a fixture tree there is no kernel: writes only change files, and
//! `fixtures::FakeHost::settle` plays the kernel's part.

use std::path::PathBuf;
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
    /// The driver is not loaded (its directory under `/sys/bus/pci/drivers` is missing).
    #[error("driver {driver} is not loaded ({} does not exist; try `modprobe {driver}`)", path.display())]
    DriverNotLoaded {
        /// The driver name.
        driver: String,
        /// The missing directory.
        path: PathBuf,
    },
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

/// Entry point for SR-IOV changes on one sysfs root.
#[derive(Clone, Copy, Debug)]
pub struct SriovHandle<'a> {
    sysfs: &'a SysFs,
}

impl<'a> SriovHandle<'a> {
    /// A handle on `sysfs`.
    pub fn new(sysfs: &'a SysFs) -> Self {
        SriovHandle { sysfs }
    }

    /// Requests about the VF count of PF `pf`.
    pub fn numvfs(&self, pf: PciAddress) -> NumVfsHandle<'a> {
        NumVfsHandle {
            sysfs: self.sysfs,
            pf,
        }
    }

    /// Requests about the driver of PCI function `dev`.
    pub fn driver(&self, dev: PciAddress) -> DriverHandle<'a> {
        DriverHandle {
            sysfs: self.sysfs,
            dev,
        }
    }
}

/// Requests about the VF count of one PF.
#[derive(Clone, Copy, Debug)]
pub struct NumVfsHandle<'a> {
    sysfs: &'a SysFs,
    pf: PciAddress,
}

impl<'a> NumVfsHandle<'a> {
    /// Sets the VF count to `n`: `echo 0 > /sys/bus/pci/devices/$PF/sriov_numvfs;
    /// echo N > /sys/bus/pci/devices/$PF/sriov_numvfs`, then waits for the `virtfn` links.
    pub fn set(self, n: u32) -> SetNumVfsRequest<'a, SystemClock> {
        SetNumVfsRequest {
            sysfs: self.sysfs,
            pf: self.pf,
            n,
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            wait: true,
            clock: SystemClock,
        }
    }

    /// Reads `sriov_totalvfs` and `sriov_numvfs`:
    /// `cat /sys/bus/pci/devices/$PF/sriov_{totalvfs,numvfs}`.
    pub fn get(self) -> Result<(u32, u32), SriovError> {
        let dir = pf_dir(self.sysfs, self.pf)?;
        let total = read_total(self.sysfs, self.pf, &dir)?;
        let num = self.sysfs.read_number(&dir.join("sriov_numvfs"))?;
        Ok((total, num))
    }
}

fn pf_dir(sysfs: &SysFs, pf: PciAddress) -> Result<PathBuf, SriovError> {
    let dir = sysfs.pci_device_dir(&pf);
    if !sysfs.exists(&dir) {
        return Err(SriovError::NoDevice {
            address: pf,
            path: dir,
        });
    }
    Ok(dir)
}

fn read_total(sysfs: &SysFs, pf: PciAddress, dir: &std::path::Path) -> Result<u32, SriovError> {
    let path = dir.join("sriov_totalvfs");
    match sysfs.read_number(&path) {
        Err(e) if e.is_not_found() => Err(SriovError::NotSriov { address: pf, path }),
        other => Ok(other?),
    }
}

/// What a VF-count change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumVfsOutcome {
    /// `sriov_numvfs` before.
    pub previous: u32,
    /// The requested (and now present) count.
    pub current: u32,
    /// False when the PF already had the requested count and nothing was written.
    pub changed: bool,
    /// Time spent waiting for the `virtfn` links.
    pub waited: Duration,
    /// True when the `virtfn` links were checked (false after [`SetNumVfsRequest::no_wait`]).
    pub verified: bool,
}

/// Sets `sriov_numvfs`; see [`NumVfsHandle::set`].
#[derive(Clone, Debug)]
pub struct SetNumVfsRequest<'a, C> {
    sysfs: &'a SysFs,
    pf: PciAddress,
    n: u32,
    timeout: Duration,
    poll: Duration,
    wait: bool,
    clock: C,
}

impl<'a, C: Clock> SetNumVfsRequest<'a, C> {
    /// How long to wait for the `virtfn` links (default 60 s; zero: check once, do not wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns right after the writes without checking the `virtfn` links (a fixture tree has no
    /// kernel to create them). [`NumVfsOutcome::verified`] is then false.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// Time between two checks of the `virtfn` links (default 100 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Uses another clock (tests).
    pub fn clock<D: Clock>(self, clock: D) -> SetNumVfsRequest<'a, D> {
        SetNumVfsRequest {
            sysfs: self.sysfs,
            pf: self.pf,
            n: self.n,
            timeout: self.timeout,
            poll: self.poll,
            wait: self.wait,
            clock,
        }
    }

    /// Checks the request against `sriov_totalvfs` (nothing is written when it is too large),
    /// writes `0` then `N` (only `0` for zero; nothing when the count is already `N`), then polls
    /// until `virtfn0..virtfn{N-1}` exist and `virtfnN` does not.
    pub fn execute(self) -> Result<NumVfsOutcome, SriovError> {
        let sysfs = self.sysfs;
        let dir = pf_dir(sysfs, self.pf)?;
        let total = read_total(sysfs, self.pf, &dir)?;
        if self.n > total {
            return Err(SriovError::TooManyVfs {
                address: self.pf,
                requested: self.n,
                total,
            });
        }
        let numvfs = dir.join("sriov_numvfs");
        let previous: u32 = sysfs.read_number(&numvfs)?;
        let changed = previous != self.n;
        if changed {
            // The kernel refuses to change a non-zero VF count directly (EBUSY): go through 0.
            if previous != 0 || self.n == 0 {
                sysfs.write(&numvfs, 0)?;
            }
            if self.n != 0 {
                sysfs.write(&numvfs, self.n)?;
            }
        }
        if !self.wait {
            return Ok(NumVfsOutcome {
                previous,
                current: self.n,
                changed,
                waited: Duration::ZERO,
                verified: false,
            });
        }
        let start = self.clock.now();
        loop {
            let present = count_virtfn(sysfs, &dir, self.n);
            if present == self.n && !sysfs.is_link(&dir.join(format!("virtfn{}", self.n))) {
                return Ok(NumVfsOutcome {
                    previous,
                    current: self.n,
                    changed,
                    waited: self.clock.now() - start,
                    verified: true,
                });
            }
            let waited = self.clock.now() - start;
            if waited >= self.timeout {
                let present = if self.n == 0 {
                    count_virtfn(sysfs, &dir, u32::MAX)
                } else {
                    present
                };
                return Err(SriovError::Timeout {
                    address: self.pf,
                    dir,
                    requested: self.n,
                    present,
                    waited,
                });
            }
            self.clock.sleep(self.poll.min(self.timeout - waited));
        }
    }
}

/// Number of consecutive `virtfnI` links (from 0, at most `max`) whose VF directory exists.
fn count_virtfn(sysfs: &SysFs, dir: &std::path::Path, max: u32) -> u32 {
    let mut i = 0;
    while i < max && sysfs.exists(&dir.join(format!("virtfn{i}"))) {
        i += 1;
    }
    i
}

/// Requests about the driver of one PCI function.
#[derive(Clone, Copy, Debug)]
pub struct DriverHandle<'a> {
    sysfs: &'a SysFs,
    dev: PciAddress,
}

impl<'a> DriverHandle<'a> {
    /// Binds the function to `driver`:
    /// `echo $DRV > .../$BDF/driver_override; echo $BDF > .../$BDF/driver/unbind;
    /// echo $BDF > /sys/bus/pci/drivers/$DRV/bind`.
    pub fn bind(self, driver: impl Into<String>) -> DriverRequest<'a> {
        DriverRequest {
            sysfs: self.sysfs,
            dev: self.dev,
            target: Some(driver.into()),
        }
    }

    /// Unbinds the function from its driver and clears `driver_override`:
    /// `echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind; echo > .../$BDF/driver_override`.
    pub fn unbind(self) -> DriverRequest<'a> {
        DriverRequest {
            sysfs: self.sysfs,
            dev: self.dev,
            target: None,
        }
    }

    /// The bound driver: `basename $(readlink /sys/bus/pci/devices/$BDF/driver)`.
    pub fn get(self) -> Result<Option<String>, SriovError> {
        let dir = pf_dir(self.sysfs, self.dev)?;
        current_driver(self.sysfs, &dir)
    }
}

fn current_driver(sysfs: &SysFs, dir: &std::path::Path) -> Result<Option<String>, SriovError> {
    match sysfs.read_link_name(&dir.join("driver")) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a driver change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverOutcome {
    /// Driver before the change.
    pub previous: Option<String>,
    /// Driver read back afterwards (on a fixture tree without `settle`, still the old one).
    pub current: Option<String>,
    /// False when the function was already in the requested state and nothing was written.
    pub changed: bool,
}

/// Binds or unbinds a driver; see [`DriverHandle::bind`] and [`DriverHandle::unbind`].
#[derive(Clone, Debug)]
pub struct DriverRequest<'a> {
    sysfs: &'a SysFs,
    dev: PciAddress,
    target: Option<String>,
}

impl DriverRequest<'_> {
    /// Performs the change.
    ///
    /// Bind: sets `driver_override` (so no other driver grabs the function on a re-probe; it stays
    /// set), unbinds the current driver, then writes the address to `drivers/<driver>/bind`; a
    /// driver that is not loaded is refused before anything is written. When the function has no
    /// `driver_override` attribute (kernels before 3.16), the bind is written without it.
    ///
    /// Unbind: writes the address to the current driver's `unbind` and clears `driver_override`,
    /// so `echo $BDF > /sys/bus/pci/drivers_probe` later restores the default driver.
    pub fn execute(self) -> Result<DriverOutcome, SriovError> {
        let sysfs = self.sysfs;
        let dir = pf_dir(sysfs, self.dev)?;
        let bdf = self.dev.to_string();
        let previous = current_driver(sysfs, &dir)?;
        let overrides = dir.join("driver_override");
        let has_override = sysfs.exists(&overrides);
        let Some(target) = self.target else {
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
        let current = current_driver(sysfs, &dir)?;
        Ok(DriverOutcome {
            previous,
            current,
            changed: true,
        })
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
    fn set_numvfs_goes_through_zero_and_waits_for_links() {
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
        assert_eq!(
            out,
            NumVfsOutcome {
                previous: 2,
                current: 5,
                changed: true,
                waited: Duration::from_millis(300),
                verified: true,
            }
        );
        assert_eq!(clock.sleeps(), 3);
        assert_eq!(seen.borrow()[0], "5");
        assert!(host.device_dir("0000:01:00.0").join("virtfn4").exists());
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
    fn bind_writes_override_unbind_and_bind() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let sysfs = host.sysfs();
        let vf = pci("0000:01:10.2");
        let h = SriovHandle::new(&sysfs);
        let out = h.driver(vf).bind("vfio-pci").execute().unwrap();
        assert_eq!(out.previous.as_deref(), Some("igbvf"));
        assert!(out.changed);
        let drivers = sysfs.pci_drivers_dir();
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        assert_eq!(
            read(host.device_dir("0000:01:10.2").join("driver_override")),
            "vfio-pci"
        );
        assert_eq!(read(drivers.join("igbvf/unbind")), "0000:01:10.2");
        assert_eq!(read(drivers.join("vfio-pci/bind")), "0000:01:10.2");
        host.settle().unwrap();
        assert_eq!(h.driver(vf).get().unwrap().as_deref(), Some("vfio-pci"));
        // again: nothing to do
        let out = h.driver(vf).bind("vfio-pci").execute().unwrap();
        assert!(!out.changed);
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
