//! The device-info file of one attachment (`runtimeConfig.CNIDeviceInfoFile`), which Multus
//! reads after ADD into the pod's `network-status` `device-info`.
//!
//! For a VF from the device plugin, Multus copies the device plugin's file there before ADD. For
//! a VF a pod got by DRA nothing else writes it, so the plugin does: the document of
//! [`crds::devinfo::DeviceInfo`], once, after a successful ADD; and its DEL removes what its ADD
//! wrote.
//!
//! The path comes from stdin, which a tenant's NetworkAttachmentDefinition can fill, and the
//! plugin runs as root: a path is used only when its parent is exactly one of the device-info
//! directories ([`crds::devinfo::CNI_DIR`], or the same under `/run`) and its last component is
//! one plain name; the file is created only when absent (`O_CREAT|O_EXCL`, which also refuses a
//! symbolic link in its place), and it is removed only when it is a regular file that names the
//! attachment's device. Every refusal is a warning, never a failed command: the file is
//! informational.

use std::{
    ffi::OsString,
    fs::{self, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Component, Path, PathBuf},
};

use crds::devinfo::DeviceInfo;

use crate::small_file::{self, SmallFileError};

/// The largest device-info file read back: a document is a few hundred bytes.
pub const MAX_FILE: u64 = 64 << 10;

/// Why a device-info file was not written or removed.
#[derive(Debug, thiserror::Error)]
pub enum DevinfoError {
    /// The path is not one plain file name directly in a device-info directory.
    #[error("runtimeConfig.CNIDeviceInfoFile {path}: not a file name directly in {dirs}; not used")]
    OutsideDir {
        /// The path given.
        path: PathBuf,
        /// The directories allowed, joined.
        dirs: String,
    },
    /// The directory could not be created.
    #[error("cannot create the device-info directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file could not be created or written.
    #[error("cannot write the device-info file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file could not be read or removed.
    #[error("cannot remove the device-info file {path}: {source}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What [`write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The file was created with the document.
    Created,
    /// A file was there already (Multus copied a device plugin's): left as it is.
    Existing,
}

/// What [`remove`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// The file was removed.
    Removed,
    /// There was no file.
    Absent,
    /// The file was left: why.
    Left(String),
}

/// The directories a device-info file may be in: `override_dir` alone (the binary's
/// environment override, for tests), else [`crds::devinfo::CNI_DIR`] and its `/run` spelling.
pub fn dirs(override_dir: Option<OsString>) -> Vec<PathBuf> {
    match override_dir {
        Some(d) => vec![d.into()],
        None => vec![
            crds::devinfo::CNI_DIR.into(),
            crds::devinfo::CNI_DIR_RUN.into(),
        ],
    }
}

/// `path`'s directory when `path` is one plain name directly in one of `dirs`.
pub fn check_path<'a>(path: &'a Path, dirs: &[PathBuf]) -> Result<&'a Path, DevinfoError> {
    let mut parts = path.components();
    let last = parts.next_back();
    let parent = parts.as_path();
    match last {
        Some(Component::Normal(_)) if dirs.iter().any(|d| d.as_path() == parent) => Ok(parent),
        _ => Err(DevinfoError::OutsideDir {
            path: path.to_owned(),
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        }),
    }
}

/// Writes `info` to `path` unless a file is there (see the module documentation): the
/// directory made 0755 when missing (Multus and the device plugin share it), the file 0644.
pub fn write(path: &Path, dirs: &[PathBuf], info: &DeviceInfo) -> Result<Written, DevinfoError> {
    let dir = check_path(path, dirs)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| DevinfoError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
    let wrote = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .and_then(|mut f| f.write_all(info.to_json().as_bytes()));
    match wrote {
        Ok(()) => Ok(Written::Created),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::Existing),
        Err(source) => Err(DevinfoError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Removes `path` when it is a regular file in one of `dirs` whose document names the PCI
/// function `pci_address`.
///
// Safe against a path a tenant chose: the directory check keeps it to files Multus and device
// plugins put there, a symbolic link or anything else not a regular file is left (and
// `remove_file` unlinks a name, never what a link points to), and the content check keeps it to
// a file about the device this attachment held, which no other live attachment can hold.
pub fn remove(path: &Path, dirs: &[PathBuf], pci_address: &str) -> Result<Removed, DevinfoError> {
    check_path(path, dirs)?;
    let err = |source| DevinfoError::Remove {
        path: path.to_owned(),
        source,
    };
    let bytes = match small_file::read(path, MAX_FILE) {
        Ok(b) => b,
        Err(SmallFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Removed::Absent);
        }
        Err(SmallFileError::Io(e)) => return Err(err(e)),
        Err(e) => return Ok(Removed::Left(e.to_string())),
    };
    match serde_json::from_slice::<DeviceInfo>(&bytes) {
        Ok(d) if d.pci.pci_address == pci_address => {}
        Ok(d) => {
            return Ok(Removed::Left(format!(
                "it names {}, not {pci_address}",
                d.pci.pci_address
            )));
        }
        Err(e) => {
            return Ok(Removed::Left(format!(
                "not a pci device-info document: {e}"
            )));
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(Removed::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removed::Absent),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VF: &str = "0000:3b:02.1";

    fn info() -> DeviceInfo {
        DeviceInfo::pci(VF, Some("0000:3b:00.0".into()), None)
    }

    #[test]
    fn only_a_plain_name_directly_in_a_devinfo_directory_is_used() {
        let dirs = dirs(None);
        for ok in [
            "/var/run/k8s.cni.cncf.io/devinfo/cni/net1-6f1c2a3b-device.json",
            "/run/k8s.cni.cncf.io/devinfo/cni/x",
        ] {
            let dir = check_path(Path::new(ok), &dirs).unwrap();
            assert!(dir.ends_with("devinfo/cni"), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "/var/run/k8s.cni.cncf.io/devinfo/dp/smartnic.io-vf-0000:3b:02.1-device.json",
            "/var/run/k8s.cni.cncf.io/devinfo/cni",
            "/var/run/k8s.cni.cncf.io/devinfo/cni/",
            "/var/run/k8s.cni.cncf.io/devinfo/cni/..",
            "/var/run/k8s.cni.cncf.io/devinfo/cni/../../../../etc/shadow",
            "/var/run/k8s.cni.cncf.io/devinfo/cni/sub/x",
            "/var/run/k8s.cni.cncf.io/devinfo/x",
            "var/run/k8s.cni.cncf.io/devinfo/cni/x",
            "/",
            "",
        ] {
            let e = check_path(Path::new(bad), &dirs).unwrap_err();
            assert!(
                e.to_string().contains("runtimeConfig.CNIDeviceInfoFile")
                    && e.to_string()
                        .contains("/var/run/k8s.cni.cncf.io/devinfo/cni or "),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_file_is_created_once_and_an_existing_one_or_a_link_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devinfo/cni");
        let dirs = dirs(Some(dir.clone().into()));
        let path = dir.join("a-net1");
        // the directory is made when missing
        assert_eq!(write(&path, &dirs, &info()).unwrap(), Written::Created);
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"type": "pci", "version": "1.1.0",
                "pci": {"pci-address": VF, "pf-pci-address": "0000:3b:00.0"}})
        );
        // a file there (Multus copied a device plugin's) is left as it is
        let copied = dir.join("b-net1");
        fs::write(&copied, "from the device plugin").unwrap();
        assert_eq!(write(&copied, &dirs, &info()).unwrap(), Written::Existing);
        assert_eq!(
            fs::read_to_string(&copied).unwrap(),
            "from the device plugin"
        );
        // a symbolic link in its place is not followed, even a dangling one
        let target = tmp.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.join("c-net1")).unwrap();
        assert_eq!(
            write(&dir.join("c-net1"), &dirs, &info()).unwrap(),
            Written::Existing
        );
        assert!(!target.exists());
        // a path out of the directory is refused before anything is made
        let out = tmp.path().join("other/x");
        assert!(matches!(
            write(&out, &dirs, &info()),
            Err(DevinfoError::OutsideDir { .. })
        ));
        assert!(
            write(&dir.join("../cni/../x"), &dirs, &info()).is_err(),
            "dot-dot"
        );
        assert!(!tmp.path().join("other").exists() && !tmp.path().join("devinfo/x").exists());
    }

    #[test]
    fn only_a_regular_file_naming_the_device_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cni");
        let dirs = dirs(Some(dir.clone().into()));
        let path = dir.join("a-net1");
        assert_eq!(remove(&path, &dirs, VF).unwrap(), Removed::Absent);
        write(&path, &dirs, &info()).unwrap();
        // another device's document stays
        assert!(matches!(
            remove(&path, &dirs, "0000:3b:02.2").unwrap(),
            Removed::Left(why) if why.contains("names 0000:3b:02.1")
        ));
        assert_eq!(remove(&path, &dirs, VF).unwrap(), Removed::Removed);
        assert!(!path.exists());
        // a link to a document naming the device: the link and its target stay
        let target = tmp.path().join("target.json");
        fs::write(&target, info().to_json()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            remove(&path, &dirs, VF).unwrap(),
            Removed::Left(why) if why == "not a regular file"
        ));
        assert!(target.exists() && path.symlink_metadata().is_ok());
        // a file outside the directory that names the device stays
        assert!(matches!(
            remove(&target, &dirs, VF),
            Err(DevinfoError::OutsideDir { .. })
        ));
        assert!(target.exists());
    }
}
