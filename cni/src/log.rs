//! The plugin's log output. A log line carries values from the tenant's configuration (a
//! `master` name, an error message quoting a key), so every line is escaped: no newline (a
//! forged second line) and no other control character (terminal escapes) gets through. The file
//! is a plain name inside one directory of ours, created 0600 and opened without following a
//! symbolic link.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// `bytes` with every control character but a final newline written as `\xNN` (and `\` as
/// `\\`, so the escape cannot be forged either).
pub fn escape_line(bytes: &[u8]) -> Vec<u8> {
    let (body, nl) = match bytes.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (bytes, false),
    };
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in body {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    if nl {
        out.push(b'\n');
    }
    out
}

/// A writer that escapes each buffer it is given as one line ([`escape_line`]). The log
/// formatter hands it one whole event per `write`.
#[derive(Debug)]
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Opens `dir/name` for appending: `dir` made 0700 when missing, the file created 0600, never
/// through a symbolic link (`O_NOFOLLOW`), and only a regular file. `name` is checked already
/// ([`crate::validate::log_file_name`]).
pub fn open(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn lines_cannot_be_forged() {
        assert_eq!(escape_line(b"a b\n"), b"a b\n");
        assert_eq!(
            escape_line(b"master=x\nroot ALL\x1b[2J\\x0a\n"),
            b"master=x\\x0aroot ALL\\x1b[2J\\\\x0a\n".to_vec()
        );
        let mut out = Vec::new();
        Escaping(&mut out).write_all(b"one\ntwo\r\n").unwrap();
        assert_eq!(out, b"one\\x0atwo\\x0d\n");
    }

    #[test]
    fn the_file_is_ours_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log/cni");
        let (mut f, path) = open(&dir, "n.log").unwrap();
        f.write_all(b"x\n").unwrap();
        assert_eq!(path, dir.join("n.log"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // a symbolic link planted in the directory is not followed
        let target = tmp.path().join("target");
        std::os::unix::fs::symlink(&target, dir.join("evil.log")).unwrap();
        assert!(open(&dir, "evil.log").is_err());
        assert!(!target.exists());
        // nor is a FIFO (or any non-file) written to
        nix::unistd::mkfifo(
            &dir.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(open(&dir, "fifo").is_err());
    }
}
