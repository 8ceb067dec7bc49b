//! `smartnic install`: copies the running binary into the node's CNI directory atomically, so
//! that a runtime exec'ing `smartnic` at the same moment sees the old file or the new one, never
//! a half-written one: write to a temporary name in the same directory, fsync, chmod 0755,
//! rename over the target, fsync the directory.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Default destination directory.
pub const DEFAULT_DEST: &str = "/opt/cni/bin";

/// How old an uninstall marker may be and still hold the keep-running loop back: an uninstall
/// takes at most the agent's grace period (90 s); an older marker is one a killed agent left,
/// and is ignored.
pub const MARKER_FRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// The marker the agent leaves in `dest_dir` while it uninstalls the node
/// ([`crds::host_paths::CNI_UNINSTALL_MARKER`]).
pub fn marker(dest_dir: &Path) -> PathBuf {
    let name = crds::host_paths::CNI_UNINSTALL_MARKER
        .rsplit('/')
        .next()
        .unwrap_or_default();
    dest_dir.join(name)
}

/// Whether the agent is uninstalling the node: a marker in `dest_dir` younger than
/// [`MARKER_FRESH`] at `now`. The keep-running loop then does not put the binary back.
pub fn uninstalling(dest_dir: &Path, now: std::time::SystemTime) -> bool {
    fs::metadata(marker(dest_dir))
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < MARKER_FRESH)
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// The target was written (new or different content).
    Written(PathBuf),
    /// The target already had the same content.
    Unchanged(PathBuf),
}

/// Installs `source` as `<dest_dir>/<name>`.
pub fn install(source: &Path, dest_dir: &Path, name: &str) -> io::Result<Installed> {
    let target = dest_dir.join(name);
    let mut new = Vec::new();
    File::open(source)?.read_to_end(&mut new)?;
    if fs::read(&target).is_ok_and(|old| old == new) {
        return Ok(Installed::Unchanged(target));
    }
    fs::create_dir_all(dest_dir)?;
    let tmp = dest_dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(&new)?;
        f.set_permissions(fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(dest_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| Installed::Written(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_atomically_and_only_when_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::write(&src, b"v1").unwrap();
        let dest = tmp.path().join("opt/cni/bin");
        assert!(matches!(
            install(&src, &dest, "smartnic").unwrap(),
            Installed::Written(_)
        ));
        assert_eq!(fs::read(dest.join("smartnic")).unwrap(), b"v1");
        let mode = fs::metadata(dest.join("smartnic"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(matches!(
            install(&src, &dest, "smartnic").unwrap(),
            Installed::Unchanged(_)
        ));
        fs::write(&src, b"v2").unwrap();
        install(&src, &dest, "smartnic").unwrap();
        assert_eq!(fs::read(dest.join("smartnic")).unwrap(), b"v2");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[test]
    fn a_fresh_uninstall_marker_holds_the_loop_back_and_a_stale_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        assert!(!uninstalling(tmp.path(), now));
        fs::write(marker(tmp.path()), b"").unwrap();
        assert!(uninstalling(tmp.path(), now));
        assert!(!uninstalling(
            tmp.path(),
            now + MARKER_FRESH + std::time::Duration::from_secs(1)
        ));
        assert_eq!(
            marker(Path::new("/opt/cni/bin")),
            Path::new(crds::host_paths::CNI_UNINSTALL_MARKER)
        );
    }
}
