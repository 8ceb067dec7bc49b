//! `flock(2)` on a lock file: the lock other processes (our own ADDs and DELs, and the reference
//! `host-local` binary on a shared `dataDir`) respect. The kernel drops it when the process dies,
//! so a crash mid-ADD never leaves a stuck lock.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// Opens (creating it, mode `mode`) and locks `path` exclusively, waiting for other holders.
    pub fn exclusive(path: &Path, mode: u32) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .mode(mode)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(path)?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        Ok(Self {
            _lock: lock,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
