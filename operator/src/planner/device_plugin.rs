//! `NicNodeState.spec` → the node's device-plugin configuration.
//!
//! One [`ResourcePool`] per resource name (sorted by name), carrying that resource's device
//! type, RDMA and topology flags (the planner guarantees all groups of one resource on a node
//! agree). Each pool has a single selector listing, per PF (by PCI address, sorted), the VF
//! indices of every group of that resource on that PF. VF groups are disjoint, so every VF lands
//! in at most one pool. Externally managed PFs are included: their VFs are handed to the plugin
//! like any other.

use std::collections::BTreeMap;

use crds::{
    device_plugin::{DevicePluginConfig, DeviceSelector, PfVfs, ResourcePool},
    node_state::NicNodeStateSpec,
};

use super::vf_range::VfSet;

/// Per PF address: the PF name and the VFs of one resource on it.
type PfVfSets<'a> = BTreeMap<&'a str, (Option<String>, VfSet)>;

/// Renders the device-plugin configuration of one node.
pub fn render_device_plugin_config(
    node_spec: &NicNodeStateSpec,
    resource_prefix: &str,
) -> DevicePluginConfig {
    // resource -> (first group, pf address -> (name, vfs))
    let mut pools: BTreeMap<&str, (ResourcePool, PfVfSets<'_>)> = BTreeMap::new();
    for iface in &node_spec.interfaces {
        for g in &iface.vf_groups {
            let (_, pfs) = pools.entry(g.resource_name.as_str()).or_insert_with(|| {
                (
                    ResourcePool {
                        resource_name: g.resource_name.clone(),
                        resource_prefix: resource_prefix.to_owned(),
                        device_type: g.device_type,
                        is_rdma: g.is_rdma,
                        exclude_topology: g.exclude_topology,
                        selectors: Vec::new(),
                    },
                    BTreeMap::new(),
                )
            });
            let (_, vfs) = pfs
                .entry(iface.pci_address.as_str())
                .or_insert_with(|| (iface.name.clone(), VfSet::empty()));
            *vfs = VfSet::from_ranges(vfs.ranges().iter().chain(g.vfs.iter()).copied());
        }
    }
    DevicePluginConfig {
        resource_list: pools
            .into_values()
            .map(|(mut pool, pfs)| {
                pool.selectors = vec![DeviceSelector {
                    pfs: pfs
                        .into_iter()
                        .map(|(addr, (name, vfs))| PfVfs {
                            pci_address: addr.to_owned(),
                            name,
                            vfs: vfs.into_ranges(),
                        })
                        .collect(),
                    ..DeviceSelector::default()
                }];
                pool
            })
            .collect(),
    }
}
