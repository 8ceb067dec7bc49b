//! The VF count of a PF: what a change destroys, the writes, and the wait for each VF.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::{Clock, SriovError, SystemClock, blocking, device_dir, poll, read_total};
use crate::pci::PciAddress;
use crate::sysfs::SysFs;

/// Requests about the VF count of one PF.
#[derive(Clone, Debug)]
pub struct NumVfsHandle {
    pub(super) sysfs: SysFs,
    pub(super) pf: PciAddress,
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

#[cfg(test)]
mod tests {

    use super::*;
    use crate::fixtures::{FakeClock, HostBuilder};
    use crate::sriov::SriovHandle;
    use crate::sysfs::SysfsError;
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
            "2 of 4 VFs of 0000:01:00.0 have a netdev after 10 s: missing 1,3"
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
            msg.starts_with("0000:01:00.0: 2 of 4 VFs present after 2 s"),
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
}
