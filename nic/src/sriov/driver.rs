//! The driver of a PCI function: bind with verification and rollback, unbind.

use std::path::Path;
use std::time::Duration;

use super::{Clock, Rollback, SriovError, SystemClock, blocking, device_dir, driver_name, poll};
use crate::pci::PciAddress;
use crate::sysfs::SysFs;

/// Requests about the driver of one PCI function.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    pub(super) sysfs: SysFs,
    pub(super) dev: PciAddress,
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
    use std::path::PathBuf;

    use super::*;
    use crate::fixtures::{FakeClock, HostBuilder};
    use crate::sriov::{Rollback, SriovHandle};
    use std::fs;

    fn pci(s: &str) -> PciAddress {
        s.parse().unwrap()
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
            "cannot bind 0000:01:10.2 to vfio-pci: 0000:01:10.2 is bound to no driver after 1 s, \
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
