//! The node's copy of the administrator's allow-list for tenant network configurations
//! (`NicOperatorConfig.spec.tenantAllowList`, carried to the node in
//! `NicNodeState.spec.cniAllowList`): the CNI plugin reads it from
//! [`crds::cni::NODE_ALLOW_LIST_FILE`] on every call, so the agent keeps that file equal to the
//! spec. Written whole (temporary file, fsync, rename, mode 0644: the plugin reads it, only root
//! writes it); rewritten only when its content differs.
//!
//! A spec without an allow-list (no `NicOperatorConfig` in the cluster) leaves the file as it
//! is: a file an administrator keeps by hand on such a cluster is not removed or emptied. The
//! agent never deletes the file.

use std::path::{Path, PathBuf};

use crds::cni::TenantAllowList;

use crate::files::{FileError, write_atomic_mode};

/// The file's permission bits: the plugin (root) reads it; anyone may see what is allowed.
pub const MODE: u32 = 0o644;

/// The allow-list file.
#[derive(Debug)]
pub struct AllowListFile {
    path: PathBuf,
}

/// The file's content for `list`: pretty JSON and a newline (an administrator reads it).
fn render(list: &TenantAllowList) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(list).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl AllowListFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file say `list` (read each time, so that an edit behind the agent's back is
    /// put back at the next pass); `None` leaves it alone. Returns whether it wrote.
    pub fn publish(&self, list: Option<&TenantAllowList>) -> Result<bool, FileError> {
        let Some(list) = list else {
            return Ok(false);
        };
        let want = render(list);
        if std::fs::read(&self.path).is_ok_and(|have| have == want) {
            return Ok(false);
        }
        write_atomic_mode(&self.path, &want, Some(MODE))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crds::cni::HostInterfaceGrant;

    use super::*;

    fn list() -> TenantAllowList {
        TenantAllowList {
            ipam_data_dirs: vec!["/var/lib/smartnic/ipam".into()],
            masters: vec![HostInterfaceGrant {
                name: "eth1".into(),
                namespaces: Some(vec!["team-a".into()]),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_file_says_the_list_0644_and_is_written_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/smartnic/cni-allow-list.json");
        let f = AllowListFile::new(&path);
        assert!(f.publish(Some(&list())).unwrap());
        let read: TenantAllowList = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, list());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, MODE, "{mode:o}");
        assert!(
            !f.publish(Some(&list())).unwrap(),
            "unchanged: not rewritten"
        );
        // a new agent (restart) reads the file first and does not rewrite it either
        assert!(!AllowListFile::new(&path).publish(Some(&list())).unwrap());
        // the administrator empties the list: the grants are gone from the node
        assert!(f.publish(Some(&TenantAllowList::default())).unwrap());
        let read: TenantAllowList = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, TenantAllowList::default());
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cni-allow-list.json"], "no temporary file left");
    }

    #[test]
    fn no_list_in_the_spec_leaves_a_hand_kept_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni-allow-list.json");
        std::fs::write(&path, b"{\"masters\":[{\"name\":\"eth9\"}]}").unwrap();
        let f = AllowListFile::new(&path);
        assert!(!f.publish(None).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"masters\":[{\"name\":\"eth9\"}]}"
        );
        assert!(
            !AllowListFile::new(dir.path().join("none"))
                .publish(None)
                .unwrap()
        );
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn a_hand_edited_file_is_put_back_to_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni-allow-list.json");
        let f = AllowListFile::new(&path);
        f.publish(Some(&list())).unwrap();
        std::fs::write(&path, b"{}").unwrap();
        assert!(f.publish(Some(&list())).unwrap());
        let read: TenantAllowList = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, list());
    }
}
