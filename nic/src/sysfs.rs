//! The sysfs seam: every file read or written under `/sys` (and `pci.ids`) goes through [`SysFs`].
//!
//! A [`SysFs`] is a root directory. On a host it is `/`; in tests it is a temporary directory that
//! [`crate::fixtures`] filled with the same layout the kernel exposes, so the same code runs on
//! both:
//!
//! ```text
//!   <root>/sys/bus/pci/devices/<bdf>        -> ../../../devices/pci0000:3a/.../<bdf>
//!   <root>/sys/bus/pci/drivers/<driver>/    bind, unbind
//!   <root>/sys/class/net/<ifname>           -> ../../devices/.../<bdf>/net/<ifname>
//!   <root>/usr/share/hwdata/pci.ids         (or usr/share/misc/pci.ids)
//! ```
//!
//! The helpers take full paths (built from the `*_dir` methods) so that every error names the exact
//! file, and the data written for writes. Code that reads many attributes of one device opens the
//! device directory once as a [`SysDir`]: its reads resolve one path component instead of the
//! whole path (and the bus symlink) every time, which is most of the cost of a sysfs read.

use std::ffi::OsStr;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

use crate::pci::PciAddress;

/// A sysfs read, parse, list or write that failed. Every message names the full path.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (part of the message, so not repeated as a source).
        error: io::Error,
    },
    /// A file was read but its content is not what the attribute should hold.
    #[error("cannot parse {}: {value:?} is not {expected}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The trimmed content.
        value: String,
        /// What was expected (`"a number"`, `"a PCI address"`, ...).
        expected: &'static str,
    },
    /// A symbolic link could not be read.
    #[error("cannot read link {}: {error}", path.display())]
    ReadLink {
        /// The link.
        path: PathBuf,
        /// The I/O error (part of the message, so not repeated as a source).
        error: io::Error,
    },
    /// A directory could not be listed.
    #[error("cannot list {}: {error}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error (part of the message, so not repeated as a source).
        error: io::Error,
    },
    /// A write was refused (by the kernel, or because the file does not exist).
    #[error("cannot write {data:?} to {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        data: String,
        /// The I/O error: the kernel's errno for sysfs attributes (part of the message).
        error: io::Error,
    },
}

impl SysfsError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SysfsError::Read { path, .. }
            | SysfsError::Parse { path, .. }
            | SysfsError::ReadLink { path, .. }
            | SysfsError::ListDir { path, .. }
            | SysfsError::Write { path, .. } => path,
        }
    }

    /// The underlying I/O error, if the error is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            SysfsError::Read { error, .. }
            | SysfsError::ReadLink { error, .. }
            | SysfsError::ListDir { error, .. }
            | SysfsError::Write { error, .. } => Some(error),
            SysfsError::Parse { .. } => None,
        }
    }

    /// True when the file, link or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
    }

    /// True when the attribute exists but the driver cannot provide it right now: the kernel
    /// answers `EOPNOTSUPP` (e.g. `phys_port_name` on igb), `EINVAL` (`speed` with the link
    /// down) or `ENODATA`. Callers treat such attributes as absent.
    pub fn is_unavailable(&self) -> bool {
        const EINVAL: i32 = 22;
        const ENODATA: i32 = 61;
        const EOPNOTSUPP: i32 = 95;
        self.is_not_found()
            || self
                .io_error()
                .and_then(io::Error::raw_os_error)
                .is_some_and(|code| matches!(code, EINVAL | ENODATA | EOPNOTSUPP))
    }
}

/// A sysfs root: `/` on a host, a fixture directory in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysFs {
    root: PathBuf,
}

impl Default for SysFs {
    fn default() -> Self {
        SysFs::host()
    }
}

impl SysFs {
    /// A sysfs rooted at `root` (`root/sys/...`, `root/usr/share/...`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysFs { root: root.into() }
    }

    /// The host's own sysfs (root `/`).
    pub fn host() -> Self {
        SysFs::new("/")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` under the root; a leading `/` in `rel` is ignored (`/sys/x` and `sys/x` are the same).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.root.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    /// `<root>/sys/bus/pci/devices`: one entry (a symlink) per PCI function.
    pub fn pci_devices_dir(&self) -> PathBuf {
        self.path("sys/bus/pci/devices")
    }

    /// `<root>/sys/bus/pci/devices/<addr>`.
    pub fn pci_device_dir(&self, addr: &PciAddress) -> PathBuf {
        self.pci_devices_dir().join(addr.to_string())
    }

    /// `<root>/sys/bus/pci/drivers`: one directory per loaded PCI driver.
    pub fn pci_drivers_dir(&self) -> PathBuf {
        self.path("sys/bus/pci/drivers")
    }

    /// `<root>/sys/bus/pci/drivers_probe`: writing a PCI address probes drivers for that device.
    pub fn pci_drivers_probe(&self) -> PathBuf {
        self.path("sys/bus/pci/drivers_probe")
    }

    /// `<root>/sys/class/net`: one entry (a symlink) per netdev.
    pub fn class_net_dir(&self) -> PathBuf {
        self.path("sys/class/net")
    }

    /// `<root>/sys/class/net/<ifname>`.
    pub fn netdev_dir(&self, ifname: &str) -> PathBuf {
        self.class_net_dir().join(ifname)
    }

    /// The PCI ids databases, in the order they are tried (`hwdata`, then `misc`).
    pub fn pci_ids_paths(&self) -> [PathBuf; 2] {
        [
            self.path("usr/share/hwdata/pci.ids"),
            self.path("usr/share/misc/pci.ids"),
        ]
    }

    /// The PCI function that owns a netdev: the basename of `/sys/class/net/<ifname>/device`.
    ///
    /// Shell twin: `basename $(readlink /sys/class/net/$IF/device)`. For a representor this is the
    /// PF it was created on; for a virtual netdev (bridge, veth) the link does not exist.
    pub fn netdev_pci_address(&self, ifname: &str) -> Result<PciAddress, SysfsError> {
        let link = self.netdev_dir(ifname).join("device");
        let name = self.read_link_name(&link)?;
        name.parse().map_err(|_| SysfsError::Parse {
            path: link,
            value: name,
            expected: "a link to a PCI device",
        })
    }

    /// Reads a file and trims surrounding whitespace (the kernel ends attributes with `\n`).
    pub fn read_string(&self, path: &Path) -> Result<String, SysfsError> {
        File::open(path)
            .and_then(read_small)
            .map(|s| s.trim().to_owned())
            .map_err(|error| SysfsError::Read {
                path: path.to_owned(),
                error,
            })
    }

    /// Reads a decimal number (`sriov_numvfs`, `mtu`, `numa_node`, ...).
    pub fn read_number<T>(&self, path: &Path) -> Result<T, SysfsError>
    where
        T: FromStr,
    {
        parse_number(path, self.read_string(path)?)
    }

    /// Reads a hexadecimal number with or without `0x` (`vendor` = `0x15b3`, `class` = `0x020000`).
    pub fn read_hex(&self, path: &Path) -> Result<u32, SysfsError> {
        parse_hex(path, self.read_string(path)?)
    }

    /// Reads an optional attribute: `Ok(None)` when the file is missing or the driver does not
    /// provide it (see [`SysfsError::is_unavailable`]) or it is empty.
    pub fn read_optional_string(&self, path: &Path) -> Result<Option<String>, SysfsError> {
        optional(self.read_string(path))
    }

    /// The target of a symbolic link, as stored (usually relative).
    pub fn read_link(&self, path: &Path) -> Result<PathBuf, SysfsError> {
        fs::read_link(path).map_err(|error| SysfsError::ReadLink {
            path: path.to_owned(),
            error,
        })
    }

    /// The last component of a symbolic link's target (`driver` -> `mlx5_core`,
    /// `iommu_group` -> `42`, `virtfn0` -> `0000:3b:00.2`).
    pub fn read_link_name(&self, path: &Path) -> Result<String, SysfsError> {
        link_name(path, &self.read_link(path)?)
    }

    /// The basename of a link, parsed (`iommu_group` -> `42`, `physfn` -> a [`PciAddress`]).
    pub fn read_link_parsed<T>(&self, path: &Path, expected: &'static str) -> Result<T, SysfsError>
    where
        T: FromStr,
    {
        parse_as(path, self.read_link_name(path)?, expected)
    }

    /// The names in a directory, sorted. Non-UTF-8 names are converted lossily.
    pub fn list_dir(&self, path: &Path) -> Result<Vec<String>, SysfsError> {
        let err = |error| SysfsError::ListDir {
            path: path.to_owned(),
            error,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(err)? {
            let entry = entry.map_err(err)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Opens a directory (following symbolic links) for reads relative to it.
    pub fn open_dir(&self, path: &Path) -> Result<SysDir, SysfsError> {
        let fd =
            nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| SysfsError::Read {
                path: path.to_owned(),
                error: e.into(),
            })?;
        Ok(SysDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// True when the path exists (following symbolic links, so a dangling link is `false`).
    pub fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    /// True when `path` itself is a symbolic link, dangling or not.
    pub fn is_link(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    }

    /// Writes `data` to an existing attribute in one `write(2)`, as `echo -n DATA > PATH` does.
    ///
    /// The file is never created: writing to an attribute the kernel does not expose fails with
    /// "not found" instead of leaving a stray file. On a fixture tree the file is truncated first
    /// so a shorter value replaces a longer one.
    pub fn write(&self, path: &Path, data: impl Display) -> Result<(), SysfsError> {
        let data = data.to_string();
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| f.write_all(data.as_bytes()))
            .map_err(|error| SysfsError::Write {
                path: path.to_owned(),
                data,
                error,
            })
    }
}

/// Flags for directory handles: a path-only descriptor is enough to resolve names below it.
const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// A directory opened once (see [`SysFs::open_dir`]); names passed to its methods are relative to
/// it and may have several components (`net/eth0/mtu`). Errors carry the full path.
#[derive(Debug)]
pub struct SysDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl SysDir {
    /// The directory's path (as opened, not canonicalized).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` below this directory, for messages and for the path-based [`SysFs`] helpers.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens a subdirectory (following symbolic links: `virtfn0`, `net/eth0`).
    pub fn open_dir(&self, rel: &str) -> Result<SysDir, SysfsError> {
        let fd = openat(&self.fd, rel, DIR_FLAGS, Mode::empty()).map_err(|e| SysfsError::Read {
            path: self.join(rel),
            error: e.into(),
        })?;
        Ok(SysDir {
            fd,
            path: self.join(rel),
        })
    }

    /// See [`SysFs::read_string`].
    pub fn read_string(&self, rel: &str) -> Result<String, SysfsError> {
        openat(
            &self.fd,
            rel,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .and_then(|fd| read_small(File::from(fd)))
        .map(|s| s.trim().to_owned())
        .map_err(|error| SysfsError::Read {
            path: self.join(rel),
            error,
        })
    }

    /// See [`SysFs::read_number`].
    pub fn read_number<T: FromStr>(&self, rel: &str) -> Result<T, SysfsError> {
        let value = self.read_string(rel)?;
        parse_number(&self.join(rel), value)
    }

    /// See [`SysFs::read_hex`].
    pub fn read_hex(&self, rel: &str) -> Result<u32, SysfsError> {
        let value = self.read_string(rel)?;
        parse_hex(&self.join(rel), value)
    }

    /// See [`SysFs::read_optional_string`].
    pub fn read_optional_string(&self, rel: &str) -> Result<Option<String>, SysfsError> {
        optional(self.read_string(rel))
    }

    /// See [`SysFs::read_link`].
    pub fn read_link(&self, rel: &str) -> Result<PathBuf, SysfsError> {
        readlinkat(&self.fd, rel)
            .map(PathBuf::from)
            .map_err(|e| SysfsError::ReadLink {
                path: self.join(rel),
                error: e.into(),
            })
    }

    /// See [`SysFs::read_link_name`].
    pub fn read_link_name(&self, rel: &str) -> Result<String, SysfsError> {
        let target = self.read_link(rel)?;
        link_name(&self.join(rel), &target)
    }

    /// See [`SysFs::read_link_parsed`].
    pub fn read_link_parsed<T: FromStr>(
        &self,
        rel: &str,
        expected: &'static str,
    ) -> Result<T, SysfsError> {
        let name = self.read_link_name(rel)?;
        parse_as(&self.join(rel), name, expected)
    }

    /// The names in subdirectory `rel` (`"."` for this directory), sorted.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>, SysfsError> {
        let err = |e: nix::Error| SysfsError::ListDir {
            path: self.join(rel),
            error: e.into(),
        };
        let mut dir = Dir::openat(
            &self.fd,
            rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        names.sort_unstable();
        Ok(names)
    }

    /// True when `rel` exists below this directory (following links: a dangling link is `false`).
    pub fn exists(&self, rel: &str) -> bool {
        fstatat(&self.fd, rel, AtFlags::empty()).is_ok()
    }

    /// True when `rel` is a symbolic link, dangling or not.
    pub fn is_link(&self, rel: &str) -> bool {
        fstatat(&self.fd, rel, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
    }
}

fn parse_number<T: FromStr>(path: &Path, value: String) -> Result<T, SysfsError> {
    value.parse().map_err(|_| SysfsError::Parse {
        path: path.to_owned(),
        value,
        expected: "a number",
    })
}

fn parse_hex(path: &Path, value: String) -> Result<u32, SysfsError> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(&value);
    match u32::from_str_radix(digits, 16) {
        Ok(v) => Ok(v),
        Err(_) => Err(SysfsError::Parse {
            path: path.to_owned(),
            value,
            expected: "a hexadecimal number",
        }),
    }
}

fn parse_as<T: FromStr>(
    path: &Path,
    value: String,
    expected: &'static str,
) -> Result<T, SysfsError> {
    value.parse().map_err(|_| SysfsError::Parse {
        path: path.to_owned(),
        value,
        expected,
    })
}

fn optional(read: Result<String, SysfsError>) -> Result<Option<String>, SysfsError> {
    match read {
        Ok(s) if s.is_empty() => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_unavailable() => Ok(None),
        Err(e) => Err(e),
    }
}

fn link_name(path: &Path, target: &Path) -> Result<String, SysfsError> {
    match target.file_name().map(OsStr::to_string_lossy) {
        Some(name) => Ok(name.into_owned()),
        None => Err(SysfsError::Parse {
            path: path.to_owned(),
            value: target.display().to_string(),
            expected: "a link ending in a name",
        }),
    }
}

/// Reads a sysfs attribute: at most one page is ever returned by the kernel, so a fixed buffer and a
/// short read ending the loop saves the `statx` and the extra `read` of `fs::read_to_string`.
fn read_small(mut file: File) -> io::Result<String> {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        let n = file.read(&mut buf[len..])?;
        len += n;
        // A short read is the end for both sysfs attributes and regular files.
        if n == 0 || len < buf.len() {
            break;
        }
    }
    let mut bytes = buf[..len].to_vec();
    if len == buf.len() {
        // A full page: not a sysfs attribute (or a very long one); read the rest normally.
        file.read_to_end(&mut bytes)?;
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (tempfile::TempDir, SysFs) {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = SysFs::new(dir.path());
        (dir, sysfs)
    }

    #[test]
    fn path_ignores_leading_slash() {
        let s = SysFs::new("/tmp/x");
        assert_eq!(
            s.path("/sys/class/net"),
            PathBuf::from("/tmp/x/sys/class/net")
        );
        assert_eq!(
            s.path("sys/class/net"),
            PathBuf::from("/tmp/x/sys/class/net")
        );
        assert_eq!(
            SysFs::host().class_net_dir(),
            PathBuf::from("/sys/class/net")
        );
    }

    #[test]
    fn reads_trimmed_and_parsed_values() {
        let (_d, s) = tmp();
        let p = s.path("a");
        fs::write(&p, "  8\n").unwrap();
        assert_eq!(s.read_string(&p).unwrap(), "8");
        assert_eq!(s.read_number::<u32>(&p).unwrap(), 8);
        fs::write(&p, "0x15b3\n").unwrap();
        assert_eq!(s.read_hex(&p).unwrap(), 0x15b3);
        fs::write(&p, "020000\n").unwrap();
        assert_eq!(s.read_hex(&p).unwrap(), 0x020000);
    }

    #[test]
    fn errors_name_the_path() {
        let (_d, s) = tmp();
        let p = s.path("sriov_numvfs");
        fs::write(&p, "eight\n").unwrap();
        let e = s.read_number::<u32>(&p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("\"eight\" is not a number"), "{msg}");

        let missing = s.path("nope");
        let e = s.read_string(&missing).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("cannot read "));
        assert!(e.to_string().contains("nope"));
    }

    #[test]
    fn optional_reads_treat_missing_and_empty_as_none() {
        let (_d, s) = tmp();
        let p = s.path("phys_switch_id");
        assert_eq!(s.read_optional_string(&p).unwrap(), None);
        fs::write(&p, "\n").unwrap();
        assert_eq!(s.read_optional_string(&p).unwrap(), None);
        fs::write(&p, "b8cef6035a10\n").unwrap();
        assert_eq!(
            s.read_optional_string(&p).unwrap().as_deref(),
            Some("b8cef6035a10")
        );
    }

    #[test]
    fn long_files_are_read_completely() {
        let (_d, s) = tmp();
        let p = s.path("big");
        let text = "x".repeat(10_000);
        fs::write(&p, &text).unwrap();
        assert_eq!(s.read_string(&p).unwrap(), text);
        let exact = "y".repeat(4096);
        fs::write(&p, &exact).unwrap();
        assert_eq!(s.read_string(&p).unwrap(), exact);
    }

    #[test]
    fn links_and_dirs() {
        let (_d, s) = tmp();
        fs::create_dir_all(s.path("sys/bus/pci/drivers/mlx5_core")).unwrap();
        fs::create_dir_all(s.path("dev")).unwrap();
        std::os::unix::fs::symlink("../sys/bus/pci/drivers/mlx5_core", s.path("dev/driver"))
            .unwrap();
        assert_eq!(
            s.read_link_name(&s.path("dev/driver")).unwrap(),
            "mlx5_core"
        );
        std::os::unix::fs::symlink("../nowhere/42", s.path("dev/iommu_group")).unwrap();
        assert_eq!(
            s.read_link_parsed::<u32>(&s.path("dev/iommu_group"), "a group number")
                .unwrap(),
            42
        );
        assert!(s.is_link(&s.path("dev/iommu_group")));
        assert!(!s.exists(&s.path("dev/iommu_group")));
        assert_eq!(
            s.list_dir(&s.path("dev")).unwrap(),
            ["driver", "iommu_group"]
        );
        let e = s.list_dir(&s.path("missing")).unwrap_err();
        assert!(e.to_string().contains("cannot list"));
    }

    #[test]
    fn write_replaces_and_never_creates() {
        let (_d, s) = tmp();
        let p = s.path("sriov_numvfs");
        fs::write(&p, "16\n").unwrap();
        s.write(&p, 8).unwrap();
        assert_eq!(s.read_number::<u32>(&p).unwrap(), 8);
        let missing = s.path("driver_override");
        let e = s.write(&missing, "vfio-pci").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"vfio-pci\""), "{msg}");
        assert!(msg.contains("driver_override"), "{msg}");
        assert!(!missing.exists());
    }

    #[test]
    fn dir_handles_read_relative_to_the_directory() {
        let (_d, s) = tmp();
        fs::create_dir_all(s.path("dev/net/eth0")).unwrap();
        fs::write(s.path("dev/net/eth0/mtu"), "9000\n").unwrap();
        fs::write(s.path("dev/vendor"), "0x8086\n").unwrap();
        fs::write(s.path("dev/empty"), "\n").unwrap();
        std::os::unix::fs::symlink("../drivers/igb", s.path("dev/driver")).unwrap();
        std::os::unix::fs::symlink("dev", s.path("link")).unwrap();
        let d = s.open_dir(&s.path("link")).unwrap();
        assert_eq!(d.read_number::<u32>("net/eth0/mtu").unwrap(), 9000);
        assert_eq!(d.read_hex("vendor").unwrap(), 0x8086);
        assert_eq!(d.read_optional_string("empty").unwrap(), None);
        assert_eq!(d.read_optional_string("missing").unwrap(), None);
        assert_eq!(d.read_link_name("driver").unwrap(), "igb");
        assert!(d.is_link("driver"));
        assert!(!d.exists("driver"));
        assert!(d.exists("vendor"));
        assert_eq!(
            d.list_dir(".").unwrap(),
            ["driver", "empty", "net", "vendor"]
        );
        assert_eq!(d.list_dir("net").unwrap(), ["eth0"]);
        let net = d.open_dir("net/eth0").unwrap();
        assert_eq!(net.path(), s.path("link/net/eth0"));
        let e = d.read_number::<u32>("vendor").unwrap_err();
        assert!(e.to_string().contains("link/vendor"), "{e}");
        let e = d.read_string("nope").unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("link/nope"), "{e}");
        let e = d.list_dir("nope").unwrap_err();
        assert!(
            e.is_not_found() && e.to_string().starts_with("cannot list "),
            "{e}"
        );
        assert!(s.open_dir(&s.path("nope")).unwrap_err().is_not_found());
    }

    #[test]
    fn netdev_pci_address_follows_device_link() {
        let (_d, s) = tmp();
        fs::create_dir_all(s.path("sys/class/net/ens1f0")).unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0",
            s.path("sys/class/net/ens1f0/device"),
        )
        .unwrap();
        assert_eq!(
            s.netdev_pci_address("ens1f0").unwrap().to_string(),
            "0000:3b:00.0"
        );
        assert!(s.netdev_pci_address("lo").unwrap_err().is_not_found());
    }
}
