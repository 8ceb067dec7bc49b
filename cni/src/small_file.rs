//! Reading a small file from a directory other parties write to (the DRA driver's prepared
//! claims, Multus' device-info files): the plugin runs as root, so no symbolic link is followed,
//! no FIFO or device is opened, and no more than a bound is read.

use std::{
    fs::{self, OpenOptions},
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

/// Why [`read`] returned no bytes.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// The path is a symbolic link, a directory, a FIFO, a device or a socket.
    #[error("not a regular file")]
    NotRegular,
    /// The file holds more than the bound.
    #[error("larger than {} KiB", .max >> 10)]
    TooLarge {
        /// The bound, in bytes.
        max: u64,
    },
    /// The file could not be examined or read (`NotFound` among others).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The bytes of `path` when it is a regular file of at most `max` bytes: an `lstat` first, then
/// an open with `O_NOFOLLOW|O_NONBLOCK`, so that a file swapped for a link or a FIFO in between
/// is refused too.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, SmallFileError> {
    if !fs::symlink_metadata(path)?.file_type().is_file() {
        return Err(SmallFileError::NotRegular);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(SmallFileError::TooLarge { max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"12345678").unwrap();
        assert_eq!(read(&file, 8).unwrap(), b"12345678");
        let e = read(&file, 7).unwrap_err();
        assert!(matches!(e, SmallFileError::TooLarge { max: 7 }), "{e}");
        assert_eq!(
            SmallFileError::TooLarge { max: 64 << 10 }.to_string(),
            "larger than 64 KiB"
        );
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(read(&link, 8), Err(SmallFileError::NotRegular)));
        assert!(matches!(
            read(tmp.path(), 8),
            Err(SmallFileError::NotRegular)
        ));
        let fifo = tmp.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(read(&fifo, 8), Err(SmallFileError::NotRegular)));
        let gone = read(&tmp.path().join("none"), 8).unwrap_err();
        assert!(
            matches!(&gone, SmallFileError::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{gone}"
        );
    }
}
