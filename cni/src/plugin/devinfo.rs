//! The device-info file of a VF a pod got by DRA (see [`crate::devinfo`]): planned before the
//! ADD touches the VF, journaled and written once the ADD succeeded, removed by the DEL that
//! undoes it. A VF from the device plugin gets none from us: Multus copied the device plugin's
//! file before ADD.

use std::path::{Path, PathBuf};

use crds::{devinfo::DeviceInfo, link::NetworkMode};

use super::Plugin;
use crate::{
    config::NetConf,
    devinfo::{self, Removed, Written},
    error::CniError,
    host::Host,
    store::{Journal, Step},
    switch::Switch,
};

impl<H: Host, S: Switch> Plugin<H, S> {
    /// The file and document an ADD of `conf` is to write, or `None`: the device is not from a
    /// DRA claim, the runtime names no file, or the path is refused (a warning).
    pub(super) fn devinfo_planned(&self, conf: &NetConf) -> Option<(PathBuf, DeviceInfo)> {
        if !conf.dra_claimed || !matches!(conf.conf.mode, NetworkMode::Sriov | NetworkMode::Ib) {
            return None;
        }
        let (path, bdf) = conf.device_info_file.as_ref().zip(conf.device_id)?;
        if let Err(e) = devinfo::check_path(path, &self.paths.devinfo_dirs) {
            tracing::warn!("{e}");
            return None;
        }
        // a whole PF has no physfn and no VF entry: its address is all the document says
        let (pf, rdma) = match self.host.vf_device(&bdf) {
            Ok(dev) => (
                dev.pf_bdf.map(|a| a.to_string()),
                self.host.rdma_device(&dev).ok().flatten(),
            ),
            Err(_) => (None, None),
        };
        Some((path.clone(), DeviceInfo::pci(bdf.to_string(), pf, rdma)))
    }

    /// Journals and writes the planned file; only the journal can fail the ADD.
    pub(super) fn devinfo_write(
        &self,
        path: &Path,
        info: &DeviceInfo,
        journal: &mut Journal,
    ) -> Result<(), CniError> {
        journal.record(&Step::DeviceInfo {
            path: path.display().to_string(),
        })?;
        match devinfo::write(path, &self.paths.devinfo_dirs, info) {
            Ok(Written::Created) => {
                tracing::info!(file = %path.display(), "device-info of {} written", info.pci.pci_address);
            }
            Ok(Written::Existing) => {
                tracing::info!(file = %path.display(), "a device-info file is there already; left as it is");
            }
            Err(e) => tracing::warn!("{e}"),
        }
        Ok(())
    }

    /// Removes the file an ADD journaled when it still names `bdf`; anything else is a warning.
    pub(super) fn devinfo_remove(&self, path: &Path, bdf: &str) {
        match devinfo::remove(path, &self.paths.devinfo_dirs, bdf) {
            Ok(Removed::Removed | Removed::Absent) => {}
            Ok(Removed::Left(why)) => {
                tracing::warn!(file = %path.display(), "device-info file left: {why}");
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}
