//! `NicNodeState.spec` → the node's device-plugin configuration.
//!
//! One [`ResourcePool`] per resource name (sorted by name), carrying that resource's device
//! type, RDMA and topology flags (the planner guarantees all groups of one resource on a node
//! agree). Each pool has a single selector listing, per PF (by PCI address, sorted), the VF
//! indices of every group of that resource on that PF. VF groups are disjoint, so every VF lands
//! in at most one pool. Externally managed PFs are included: their VFs are handed to the plugin
//! like any other. A PF offered whole (`wholePf`) is listed by its own address in a second
//! selector (`pciAddresses`) of its resource's pool. The VF selector names the link type
//! (`linkTypes`: `ether`/`infiniband`) when every PF of the resource has one in the spec and the
//! VFs keep their kernel driver (like sriov-network-operator, not for vfio-pci), so that a VF
//! whose port changed link layer is not handed out under the old pool.
//!
//! The result is written into the node's own `NicNodeState.spec.devicePlugin`
//! ([`with_device_plugin_config`]), in the same apply as the rest of the spec.

use std::collections::{BTreeMap, BTreeSet};

use crds::{
    device_plugin::{DeviceLinkType, DevicePluginConfig, DeviceSelector, PfVfs, ResourcePool},
    node_state::NicNodeStateSpec,
    policy::VfDeviceType,
};

use super::vf_range::VfSet;

/// Per PF address: the PF name and the VFs of one resource on it.
type PfVfSets<'a> = BTreeMap<&'a str, (Option<String>, VfSet)>;

/// `spec` with `devicePlugin` rendered from its `interfaces`: the complete `NicNodeState.spec`
/// the operator writes. Any `devicePlugin` already in `spec` is replaced, so the field is always a
/// function of the interfaces and the prefix.
pub fn with_device_plugin_config(
    mut spec: NicNodeStateSpec,
    resource_prefix: &str,
) -> NicNodeStateSpec {
    spec.device_plugin = render_device_plugin_config(&spec, resource_prefix);
    spec
}

/// Renders the device-plugin configuration of one node (only `interfaces` is read). PFs that
/// are no PCI function (a netdevsim device, `netdevsim/netdevsimN`) are left out: their VFs
/// have no PCI function for the plugin to advertise.
pub fn render_device_plugin_config(
    node_spec: &NicNodeStateSpec,
    resource_prefix: &str,
) -> DevicePluginConfig {
    // resource -> (first group, pf address -> (name, vfs))
    let mut pools: BTreeMap<&str, (ResourcePool, PfVfSets<'_>)> = BTreeMap::new();
    // a PF without a PCI function (netdevsim) has VFs without one too: nothing to advertise
    let pci_pfs = node_spec
        .interfaces
        .iter()
        .filter(|i| crate::validate::is_pci_address(&i.pci_address));
    // resource -> PFs offered whole
    let mut whole: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // resource -> the link types of its VF groups' PFs; `None` once one is unknown
    let mut links: BTreeMap<&str, Option<BTreeSet<DeviceLinkType>>> = BTreeMap::new();
    for iface in pci_pfs {
        if let Some(w) = &iface.whole_pf {
            pools.entry(w.resource_name.as_str()).or_insert_with(|| {
                (
                    ResourcePool {
                        resource_name: w.resource_name.clone(),
                        resource_prefix: resource_prefix.to_owned(),
                        device_type: w.device_type,
                        is_rdma: w.is_rdma,
                        need_vhost_net: w.need_vhost_net,
                        exclude_topology: w.exclude_topology,
                        selectors: Vec::new(),
                        allocation: w.allocation,
                    },
                    BTreeMap::new(),
                )
            });
            whole
                .entry(w.resource_name.as_str())
                .or_default()
                .push(iface.pci_address.clone());
        }
        for g in &iface.vf_groups {
            let (_, pfs) = pools.entry(g.resource_name.as_str()).or_insert_with(|| {
                (
                    ResourcePool {
                        resource_name: g.resource_name.clone(),
                        resource_prefix: resource_prefix.to_owned(),
                        device_type: g.device_type,
                        is_rdma: g.is_rdma,
                        need_vhost_net: g.need_vhost_net,
                        exclude_topology: g.exclude_topology,
                        selectors: Vec::new(),
                        allocation: g.allocation,
                    },
                    BTreeMap::new(),
                )
            });
            let known = links
                .entry(g.resource_name.as_str())
                .or_insert_with(|| Some(BTreeSet::new()));
            match (iface.link_type, g.device_type) {
                (Some(l), VfDeviceType::Netdevice) => {
                    if let Some(set) = known {
                        set.insert(l.into());
                    }
                }
                // unknown, or vfio-pci (no netdev), as sriov-network-operator leaves it out
                _ => *known = None,
            }
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
                if !pfs.is_empty() {
                    pool.selectors.push(DeviceSelector {
                        pfs: pfs
                            .into_iter()
                            .map(|(addr, (name, vfs))| PfVfs {
                                pci_address: addr.to_owned(),
                                name,
                                vfs: vfs.into_ranges(),
                            })
                            .collect(),
                        link_types: links
                            .get(pool.resource_name.as_str())
                            .cloned()
                            .flatten()
                            .map(|s| s.into_iter().collect())
                            .unwrap_or_default(),
                        ..DeviceSelector::default()
                    });
                }
                if let Some(addrs) = whole.remove(pool.resource_name.as_str()) {
                    // the PF itself, by address (interfaces are sorted by address already)
                    pool.selectors.push(DeviceSelector {
                        pci_addresses: addrs,
                        ..DeviceSelector::default()
                    });
                }
                pool
            })
            .collect(),
        // the agent sets it in the node's file, from the node's rdmaMode
        rdma_exclusive: false,
    }
}

#[cfg(test)]
mod tests {
    use crds::policy::VfDeviceType;
    use serde_json::json;

    use super::*;
    use crate::{
        desired::desired_node_state,
        fixtures::{cx6, inventory, labels, policy},
    };

    #[test]
    fn one_pool_per_resource_with_vf_ranges_per_pf() {
        let mut net = policy("net", 10, &["ens1f0#0-3", "ens1f1#0-3"]);
        net.spec.is_rdma = true;
        let mut dpdk = policy("dpdk", 20, &["ens1f0#4-7"]);
        dpdk.spec.resource_name = "cx6_dpdk".into();
        dpdk.spec.device_type = VfDeviceType::VfioPci;
        dpdk.spec.exclude_topology = true;
        dpdk.spec.need_vhost_net = true;
        let mut more = policy("more", 30, &["ens1f0#6-7", "ens1f1#4-5"]);
        more.spec.is_rdma = true;
        let plan = desired_node_state(
            &[net, dpdk, more],
            &labels(&[("gpu", "true")]),
            &inventory(vec![
                cx6("0000:3b:00.0", "ens1f0"),
                cx6("0000:3b:00.1", "ens1f1"),
            ]),
        );
        // `more` loses VFs 6-7 of ens1f0 to `dpdk` but keeps ens1f1#4-5.
        assert_eq!(plan.rejections.len(), 1);
        let cfg = render_device_plugin_config(&plan.spec, "smartnic.io");
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            json!({"resourceList": [
                {"resourceName": "cx6_dpdk", "resourcePrefix": "smartnic.io", "deviceType": "vfio-pci",
                 "isRdma": false, "needVhostNet": true, "excludeTopology": true,
                 "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0", "name": "ens1f0", "vfs": [{"first": 4, "last": 7}]}]}]},
                {"resourceName": "cx6_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                 "isRdma": true, "needVhostNet": false, "excludeTopology": false,
                 "selectors": [{"pfs": [
                     {"pciAddress": "0000:3b:00.0", "name": "ens1f0", "vfs": [{"first": 0, "last": 3}]},
                     {"pciAddress": "0000:3b:00.1", "name": "ens1f1", "vfs": [{"first": 0, "last": 5}]}
                 ]}]}
            ]})
        );
    }

    #[test]
    fn empty_spec_gives_an_empty_config() {
        let cfg = render_device_plugin_config(&NicNodeStateSpec::default(), "smartnic.io");
        assert!(cfg.resource_list.is_empty());
    }

    #[test]
    fn complete_spec_carries_the_config_and_replaces_a_stale_one() {
        let plan = desired_node_state(
            &[policy("net", 10, &["ens1f0#0-3"])],
            &labels(&[("gpu", "true")]),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        let stale = with_device_plugin_config(plan.spec.clone(), "old.example.com");
        let spec = with_device_plugin_config(stale, "smartnic.io");
        assert_eq!(spec.interfaces, plan.spec.interfaces);
        assert_eq!(
            spec.device_plugin,
            render_device_plugin_config(&plan.spec, "smartnic.io")
        );
        assert_eq!(spec.device_plugin.resource_list.len(), 1);
        assert_eq!(
            spec.device_plugin.resource_list[0].resource_prefix,
            "smartnic.io"
        );
    }
}
