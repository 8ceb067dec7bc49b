//! The device-plugin hand-off: the agent writes the **applied** device-plugin configuration (the
//! `DevicePluginConfig` of `crds`, only the pools whose VFs are in place) to a file on the host,
//! which the node's device plugin reads. The plugin never advertises VFs that do not exist yet:
//! before a step that destroys or rebinds a PF's VFs, the file is rewritten without that PF's
//! pools, and the PF's pools come back once its steps are done.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crds::device_plugin::DevicePluginConfig;
use planner::apply::applied_device_plugin_config;

use crate::files::{FileError, read_json, write_json};

/// Default path of the hand-off file.
pub const DEFAULT_DEVICE_PLUGIN_FILE: &str = crds::device_plugin::DEFAULT_CONFIG_FILE;

/// The hand-off file and what it holds now.
#[derive(Debug)]
pub struct DevicePluginFile {
    path: PathBuf,
    current: Mutex<Option<DevicePluginConfig>>,
}

impl DevicePluginFile {
    /// The file at `path`; what it holds is read on the first write.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            current: Mutex::new(None),
        }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `desired` restricted to the PFs for which `ready` holds, atomically, unless the
    /// file already says exactly that. Returns whether it wrote.
    pub fn publish(
        &self,
        desired: &DevicePluginConfig,
        ready: impl Fn(&str) -> bool,
    ) -> Result<bool, FileError> {
        let applied = applied_device_plugin_config(desired, ready);
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_none() {
            *current = read_json(&self.path).ok().flatten();
        }
        if current.as_ref() == Some(&applied) {
            return Ok(false);
        }
        write_json(&self.path, &applied)?;
        *current = Some(applied);
        Ok(true)
    }

    /// What the file holds (as last written or read).
    pub fn current(&self) -> Option<DevicePluginConfig> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The node's device-plugin configuration as the file carries it: the rendered pools, and
/// whether the node's `rdmaMode` is `exclusive` (the CNI plugin then moves each VF's RDMA device
/// into its pod).
pub fn node_config(spec: &crds::node_state::NicNodeStateSpec) -> DevicePluginConfig {
    DevicePluginConfig {
        rdma_exclusive: spec.rdma_mode == Some(crds::pool::RdmaMode::Exclusive),
        ..spec.device_plugin.clone()
    }
}

#[cfg(test)]
mod tests {
    use crds::{node_state::NicNodeStateSpec, pool::RdmaMode};

    use super::*;

    #[test]
    fn the_file_says_when_the_node_is_rdma_exclusive() {
        let mut spec = NicNodeStateSpec::default();
        assert!(!node_config(&spec).rdma_exclusive);
        spec.rdma_mode = Some(RdmaMode::Shared);
        assert!(!node_config(&spec).rdma_exclusive);
        spec.rdma_mode = Some(RdmaMode::Exclusive);
        assert!(node_config(&spec).rdma_exclusive);
        let dir = tempfile::tempdir().unwrap();
        let file = DevicePluginFile::new(dir.path().join("dp.json"));
        file.publish(&node_config(&spec), |_| true).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["rdmaExclusive"], true, "{text}");
    }

    #[test]
    fn the_file_carries_each_pools_allocation_unchanged() {
        use crds::{
            device_plugin::{DeviceSelector, ResourcePool},
            dra::Allocation,
        };
        let pool = |name: &str, allocation| ResourcePool {
            resource_name: name.into(),
            resource_prefix: "smartnic.io".into(),
            allocation,
            selectors: vec![DeviceSelector {
                pci_addresses: vec!["0000:3b:00.0".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut spec = NicNodeStateSpec::default();
        spec.device_plugin.resource_list = vec![
            pool("a", Allocation::DevicePlugin),
            pool("b", Allocation::Dra),
            pool("c", Allocation::Both),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = DevicePluginFile::new(dir.path().join("dp.json"));
        file.publish(&node_config(&spec), |_| true).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let list = &doc["resourceList"];
        // the default is left out, as in files written before the field existed
        assert_eq!(list[0].get("allocation"), None, "{text}");
        assert_eq!(list[1]["allocation"], "dra", "{text}");
        assert_eq!(list[2]["allocation"], "both", "{text}");
    }
}
