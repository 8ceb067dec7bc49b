//! Where the node components run: the pod `nodeSelector` of each node DaemonSet, from
//! `NicOperatorConfig.spec.nodeSelector`.
//!
//! The agent and the CNI installer run on every node the configuration selects; the device
//! plugin only on those among them whose device-plugin configuration has a pool (the operator
//! labels them [`crds::LABEL_DEVICE_PLUGIN`]).

use std::collections::BTreeMap;

use crds::operator_config::NicOperatorConfigSpec;

/// The pod `nodeSelector` each node DaemonSet should have, by DaemonSet name.
pub fn daemonset_node_selectors(
    config: &NicOperatorConfigSpec,
) -> Vec<(&'static str, BTreeMap<String, String>)> {
    let base = config.node_selector.clone();
    let mut dp = base.clone();
    dp.insert(crds::LABEL_DEVICE_PLUGIN.to_owned(), "true".to_owned());
    vec![
        (crds::DAEMONSET_AGENT, base.clone()),
        (crds::DAEMONSET_DEVICE_PLUGIN, dp),
        (crds::DAEMONSET_CNI, base),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_daemonset_follows_the_config_and_the_device_plugin_also_needs_a_pool() {
        let mut cfg = NicOperatorConfigSpec::default();
        let out = daemonset_node_selectors(&cfg);
        let linux = BTreeMap::from([("kubernetes.io/os".to_owned(), "linux".to_owned())]);
        assert_eq!(out[0], ("smartnic-agent", linux.clone()));
        assert_eq!(out[2], ("smartnic-cni-installer", linux.clone()));
        let mut dp = linux;
        dp.insert("smartnic.io/device-plugin".into(), "true".into());
        assert_eq!(out[1], ("smartnic-device-plugin", dp));

        cfg.node_selector = BTreeMap::from([("nic".to_owned(), "cx7".to_owned())]);
        let out = daemonset_node_selectors(&cfg);
        assert_eq!(out[0].1, cfg.node_selector);
        assert_eq!(out[1].1.len(), 2);
    }
}
