//! `flock(2)` on a lock file: the lock other processes (our own ADDs and DELs, and the reference
//! `host-local` binary on a shared `dataDir`) respect. The kernel drops it when the process dies,
//! so a crash mid-ADD never leaves a stuck lock.
//!
//! A lock file may be removed by its holder ([`FileLock::remove`], GC of per-VF locks). A waiter
//! that opened the old file then wakes up holding a lock on a file nobody else will open, so
//! after locking it checks that the path still names the file it locked, and retries if not.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
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
        loop {
            let file = OpenOptions::new()
                .read(true)
                .create(true)
                .append(true)
                .mode(mode)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(path)?;
            let lock =
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
            let held = lock.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Self {
                        _lock: lock,
                        path: path.to_path_buf(),
                    });
                }
                // Removed (or replaced) while we waited: lock the file that is there now.
                _ => continue,
            }
        }
    }

    /// Removes the lock file while holding it, then releases the lock.
    pub fn remove(self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, thread, time::Duration};

    use super::*;

    #[test]
    fn a_waiter_on_a_removed_lock_file_locks_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vf.lock");
        let first = FileLock::exclusive(&path, 0o600).unwrap();
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let waiter = thread::spawn(move || {
            let lock = FileLock::exclusive(&p, 0o600).unwrap();
            tx.send(()).unwrap();
            // Whatever it holds is what the path names now.
            assert!(p.exists());
            drop(lock);
        });
        thread::sleep(Duration::from_millis(50));
        assert!(
            rx.try_recv().is_err(),
            "the waiter got the lock while it was held"
        );
        first.remove().unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
    }
}
