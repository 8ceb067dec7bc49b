//! `NicNetwork` → `NetworkAttachmentDefinition`.
//!
//! The NAD has the network's name and namespace, a controller owner reference to the
//! `NicNetwork` (so Kubernetes deletes it with the network), the labels
//! [`crds::LABEL_MANAGED_BY`] and [`crds::LABEL_NETWORK`], and, when the network uses a
//! device-plugin resource, the annotation `k8s.v1.cni.cncf.io/resourceName:
//! <prefix>/<resourceName>` through which Multus finds the allocated VF (not for a pool offered
//! by DRA only: [`render_nad_offered`]). Its `spec.config` is a
//! [`SmartnicNetConf`] serialised as JSON: `"type": "smartnic"`, `"mode"`, the mode's options
//! under the same names as in the `NicNetwork` spec, and `ipam` copied unchanged. With
//! `metaPlugins` it is a conflist instead ([`render_nad_config`]): our plugin first, then the meta
//! plugins (tuning, bandwidth, ...) in order.
//!
//! In mode `sriov` the VLAN is always written (`vlan` 0 and `vlanQoS` 0 when unset), so a VF is
//! always programmed untagged unless the network asks otherwise, whatever a previous user left.

use std::collections::BTreeMap;

use crds::{
    ANNOTATION_NAD_RESOURCE_NAME, LABEL_MANAGED_BY, LABEL_NETWORK, MANAGED_BY,
    NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec, NicNetwork,
    cni::{CNI_VERSION, PLUGIN_TYPE, SmartnicNetConf},
    k8s::ObjectMeta,
    network::NetworkMode,
};
use kube::Resource;

use crate::{
    dra::PoolOffer,
    validate::{FieldError, to_message, validate_network},
};

/// Why a network cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum NadError {
    /// The `NicNetwork` has no name, namespace or uid (not read from the API server).
    #[error(
        "NicNetwork {name:?} in namespace {namespace:?} has no {missing}; render only objects read from the API server"
    )]
    MissingMetadata {
        /// Name, if any.
        name: Option<String>,
        /// Namespace, if any.
        namespace: Option<String>,
        /// The missing field.
        missing: &'static str,
    },
    /// The spec fails validation.
    #[error("NicNetwork {namespace}/{name} is invalid: {message}")]
    Invalid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Joined field errors.
        message: String,
        /// The field errors.
        errors: Vec<FieldError>,
    },
    /// The CNI config could not be serialised.
    #[error("cannot serialise the CNI config of NicNetwork {namespace}/{name}: {source}")]
    Serialize {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// The CNI capability through which the runtime passes a pod's InfiniBand GUID
/// (`runtimeConfig.infinibandGUID`, from Multus' `infiniband-guid`).
pub const INFINIBAND_GUID_CAPABILITY: &str = "infinibandGUID";

/// The CNI capability through which the runtime names the file it reads the attachment's
/// device-info from (`runtimeConfig.CNIDeviceInfoFile`): Multus copies the device plugin's file
/// there before ADD, and the plugin writes it for a VF claimed by DRA.
pub const DEVICE_INFO_FILE_CAPABILITY: &str = "CNIDeviceInfoFile";

/// Builds the CNI network configuration of a network (without validating it). Modes `sriov` and
/// `ib` declare the `CNIDeviceInfoFile` capability, mode `ib` the `infinibandGUID` one besides,
/// unless the network turns them off.
pub fn render_cni_config(
    name: &str,
    spec: &crds::NicNetworkSpec,
    resource_prefix: &str,
) -> SmartnicNetConf {
    let sriov = spec.mode == NetworkMode::Sriov;
    let ib = spec.mode == NetworkMode::Ib;
    let ovs = spec.ovs.as_ref().filter(|_| spec.mode == NetworkMode::Ovs);
    let mut capabilities = spec.capabilities.clone();
    if sriov || ib {
        // without it Multus passes no device-info file and the pod's network-status has no
        // `device-info` for the VF
        capabilities
            .entry(DEVICE_INFO_FILE_CAPABILITY.to_owned())
            .or_insert(true);
    }
    if ib {
        // the runtime hands a pod's `infiniband-guid` over only to a plugin that declares it
        capabilities
            .entry(INFINIBAND_GUID_CAPABILITY.to_owned())
            .or_insert(true);
    }
    SmartnicNetConf {
        cni_version: CNI_VERSION.to_owned(),
        name: name.to_owned(),
        plugin_type: PLUGIN_TYPE.to_owned(),
        mode: spec.mode,
        resource_name: spec
            .resource_name
            .as_ref()
            .map(|r| format!("{resource_prefix}/{r}")),
        vlan: if sriov {
            Some(spec.vlan.unwrap_or(0))
        } else {
            spec.vlan
        },
        vlan_qos: if sriov {
            Some(spec.vlan_qos.unwrap_or(0))
        } else {
            None
        },
        vlan_proto: spec.vlan_proto.filter(|_| sriov),
        spoof_chk: spec.spoof_chk.filter(|_| sriov),
        trust: spec.trust.filter(|_| sriov),
        link_state: spec.link_state.filter(|_| sriov || ib),
        pkey: spec.pkey.filter(|_| ib),
        min_tx_rate: spec.min_tx_rate.filter(|_| sriov),
        max_tx_rate: spec.max_tx_rate.filter(|_| sriov),
        macvlan_mode: match spec.mode {
            NetworkMode::Macvlan => Some(spec.macvlan_mode.unwrap_or_default()),
            _ => None,
        },
        macvlan_source_macs: match spec.mode {
            NetworkMode::Macvlan => spec.macvlan_source_macs.clone(),
            _ => Vec::new(),
        },
        ipvlan_mode: match spec.mode {
            NetworkMode::Ipvlan => Some(spec.ipvlan_mode.unwrap_or_default()),
            _ => None,
        },
        master: spec
            .master
            .clone()
            .filter(|_| !sriov && !ib && spec.mode != NetworkMode::Ovs),
        mtu: spec.mtu.filter(|_| !sriov && !ib),
        bridge: ovs.and_then(|o| o.bridge.clone()),
        trunk: ovs.map(|o| o.trunk.clone()).unwrap_or_default(),
        geneve: ovs.and_then(|o| o.geneve.clone()),
        capabilities,
        ipam: spec.ipam.clone(),
        log_level: spec.log_level,
        log_file: spec.log_file.clone(),
    }
}

/// The NAD's `spec.config` for a network: our plugin's network configuration alone, or, when the
/// network has `metaPlugins`, a conflist whose `plugins` are our plugin first and then the meta
/// plugins in their order, unchanged. In the conflist, `cniVersion` and `name` are on the list
/// (the runtime hands them to every plugin), not on our entry.
pub fn render_nad_config(
    name: &str,
    spec: &crds::NicNetworkSpec,
    resource_prefix: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let conf = render_cni_config(name, spec, resource_prefix);
    let mut ours = serde_json::to_value(&conf)?;
    if spec.meta_plugins.is_empty() {
        return Ok(ours);
    }
    if let Some(o) = ours.as_object_mut() {
        o.remove("cniVersion");
        o.remove("name");
    }
    let mut plugins = Vec::with_capacity(1 + spec.meta_plugins.len());
    plugins.push(ours);
    plugins.extend(spec.meta_plugins.iter().cloned());
    Ok(serde_json::json!({
        "cniVersion": conf.cni_version,
        "name": conf.name,
        "plugins": plugins,
    }))
}

/// Renders the NAD of a `NicNetwork` read from the API server (it needs name, namespace and uid
/// for the owner reference). Validates the spec first with [`validate_network`]. The network's
/// pool is taken as offered by the device plugin; see [`render_nad_offered`].
pub fn render_nad(
    network: &NicNetwork,
    resource_prefix: &str,
) -> Result<NetworkAttachmentDefinition, NadError> {
    render_nad_offered(network, resource_prefix, PoolOffer::default())
}

/// [`render_nad`] for a pool offered as `offer` says ([`crate::dra::pool_offers`]). A pool
/// offered by DRA only gets no `resourceName` annotation: the network-resources injector would
/// add a device-plugin request that no node advertises, and the pod would never schedule. The
/// CNI plugin then finds the pod's VF in its prepared DRA claims (by the `resourceName` of the
/// CNI config, which stays).
pub fn render_nad_offered(
    network: &NicNetwork,
    resource_prefix: &str,
    offer: PoolOffer,
) -> Result<NetworkAttachmentDefinition, NadError> {
    let meta = &network.metadata;
    let missing = |missing| NadError::MissingMetadata {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        missing,
    };
    let name = meta.name.clone().ok_or_else(|| missing("name"))?;
    let namespace = meta.namespace.clone().ok_or_else(|| missing("namespace"))?;
    let owner = network
        .controller_owner_ref(&())
        .ok_or_else(|| missing("uid"))?;
    if let Err(errors) = validate_network(&network.spec) {
        return Err(NadError::Invalid {
            namespace,
            name,
            message: to_message(&errors),
            errors,
        });
    }
    let config = render_nad_config(&name, &network.spec, resource_prefix)
        .and_then(|c| serde_json::to_string(&c))
        .map_err(|source| NadError::Serialize {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    let device_plugin = offer.device_plugin || !offer.dra;
    let annotations = network
        .spec
        .resource_name
        .as_ref()
        .filter(|_| device_plugin)
        .map(|r| {
            BTreeMap::from([(
                ANNOTATION_NAD_RESOURCE_NAME.to_owned(),
                format!("{resource_prefix}/{r}"),
            )])
        });
    Ok(NetworkAttachmentDefinition {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                (LABEL_NETWORK.to_owned(), name),
            ])),
            annotations,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: NetworkAttachmentDefinitionSpec {
            config: Some(config),
        },
    })
}

#[cfg(test)]
mod tests {
    use crds::network::{GeneveOptions, IpvlanMode, MacvlanMode, OvsOptions, VlanRange};
    use serde_json::{Value, json};

    use super::*;

    fn network(spec: crds::NicNetworkSpec) -> NicNetwork {
        let mut n = NicNetwork::new("fast", spec);
        n.metadata.namespace = Some("team-a".into());
        n.metadata.uid = Some("0b1c2d3e-0000-4000-8000-000000000001".into());
        n
    }

    fn config(nad: &NetworkAttachmentDefinition) -> Value {
        serde_json::from_str(nad.spec.config.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn sriov_network_renders_vf_options_resource_annotation_and_owner() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                resource_name: Some("cx6_vf".into()),
                vlan: Some(100),
                vlan_qos: Some(3),
                vlan_proto: Some(crds::network::VlanProto::Dot1Ad),
                spoof_chk: Some(true),
                trust: Some(false),
                link_state: Some(crds::network::VfLinkState::Enable),
                min_tx_rate: Some(100),
                max_tx_rate: Some(1000),
                ipam: Some(json!({"type": "host-local", "subnet": "10.56.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]})),
                capabilities: [("ips".to_string(), true)].into(),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        assert_eq!(nad.metadata.name.as_deref(), Some("fast"));
        assert_eq!(nad.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            nad.metadata.annotations.as_ref().unwrap()["k8s.v1.cni.cncf.io/resourceName"],
            "smartnic.io/cx6_vf"
        );
        let owner = &nad.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("NicNetwork", "fast", Some(true))
        );
        assert_eq!(owner.api_version, "smartnic.io/v1alpha1");
        assert_eq!(
            nad.metadata.labels.as_ref().unwrap()["smartnic.io/network"],
            "fast"
        );
        assert_eq!(
            config(&nad),
            json!({
                "cniVersion": "1.1.0", "name": "fast", "type": "smartnic", "mode": "sriov",
                "resourceName": "smartnic.io/cx6_vf",
                "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad", "spoofChk": true, "trust": false,
                "linkState": "enable", "minTxRate": 100, "maxTxRate": 1000,
                "capabilities": {"ips": true, "CNIDeviceInfoFile": true},
                "ipam": {"type": "host-local", "subnet": "10.56.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}
            })
        );
    }

    #[test]
    fn a_pool_offered_by_dra_only_gets_no_resource_annotation() {
        let net = network(crds::NicNetworkSpec {
            resource_name: Some("cx6_vf".into()),
            ..Default::default()
        });
        let offer = |device_plugin, dra| PoolOffer { device_plugin, dra };
        let annotation = |o| {
            render_nad_offered(&net, "smartnic.io", o)
                .unwrap()
                .metadata
                .annotations
                .and_then(|a| a.get(ANNOTATION_NAD_RESOURCE_NAME).cloned())
        };
        assert_eq!(annotation(offer(false, true)), None);
        let both = Some("smartnic.io/cx6_vf".to_owned());
        assert_eq!(annotation(offer(true, true)), both);
        assert_eq!(annotation(offer(true, false)), both);
        // a pool no policy names yet: as before, the device plugin's annotation
        assert_eq!(annotation(offer(false, false)), both);
        // the CNI config keeps the resource: the plugin matches the prepared claims by it
        let dra = render_nad_offered(&net, "smartnic.io", offer(false, true)).unwrap();
        assert_eq!(config(&dra)["resourceName"], "smartnic.io/cx6_vf");
    }

    #[test]
    fn sriov_network_without_vlan_is_programmed_untagged() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                resource_name: Some("cx6_vf".into()),
                ..Default::default()
            }),
            "example.com",
        )
        .unwrap();
        let c = config(&nad);
        assert_eq!(
            (c["vlan"].clone(), c["vlanQoS"].clone()),
            (json!(0), json!(0))
        );
        assert!(c.get("ipam").is_none());
        assert_eq!(c["resourceName"], "example.com/cx6_vf");
    }

    #[test]
    fn macvlan_network_on_a_host_master_has_no_resource_annotation() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                mode: NetworkMode::Macvlan,
                master: Some("ens1f0".into()),
                macvlan_mode: Some(MacvlanMode::Private),
                mtu: Some(9000),
                ipam: Some(json!({"type": "static"})),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        assert!(nad.metadata.annotations.is_none());
        assert_eq!(
            config(&nad),
            json!({"cniVersion": "1.1.0", "name": "fast", "type": "smartnic", "mode": "macvlan",
                   "macvlanMode": "private", "master": "ens1f0", "mtu": 9000, "ipam": {"type": "static"}})
        );
    }

    #[test]
    fn vf_modes_declare_the_device_info_file_capability_unless_the_network_turns_it_off() {
        let spec = |mode, caps: &[(&str, bool)]| crds::NicNetworkSpec {
            mode,
            resource_name: Some("cx6_vf".into()),
            master: (mode == NetworkMode::Macvlan).then(|| "ens1f0".to_owned()),
            capabilities: caps.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..Default::default()
        };
        let caps =
            |s: &crds::NicNetworkSpec| render_cni_config("fast", s, "smartnic.io").capabilities;
        for mode in [NetworkMode::Sriov, NetworkMode::Ib] {
            assert!(
                caps(&spec(mode, &[]))[DEVICE_INFO_FILE_CAPABILITY],
                "{mode:?}"
            );
            let off = spec(mode, &[(DEVICE_INFO_FILE_CAPABILITY, false)]);
            assert!(!caps(&off)[DEVICE_INFO_FILE_CAPABILITY], "{mode:?}");
        }
        // a netdev made on a master is no device a device-info file could describe
        for mode in [NetworkMode::Macvlan, NetworkMode::Ipvlan, NetworkMode::Ovs] {
            assert!(
                !caps(&spec(mode, &[])).contains_key(DEVICE_INFO_FILE_CAPABILITY),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn ipvlan_network_on_an_allocated_vf_defaults_to_l2() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                mode: NetworkMode::Ipvlan,
                resource_name: Some("cx6_vf".into()),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        let c = config(&nad);
        assert_eq!(c["mode"], "ipvlan");
        assert_eq!(c["ipvlanMode"], json!(IpvlanMode::L2));
        assert!(c.get("vlan").is_none());
        assert_eq!(
            nad.metadata.annotations.as_ref().unwrap()["k8s.v1.cni.cncf.io/resourceName"],
            "smartnic.io/cx6_vf"
        );
    }

    #[test]
    fn ovs_network_carries_bridge_trunk_and_geneve() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                mode: NetworkMode::Ovs,
                resource_name: Some("cx6_sd".into()),
                mtu: Some(8950),
                ovs: Some(OvsOptions {
                    bridge: Some("br-phys".into()),
                    trunk: vec![VlanRange {
                        min_id: 10,
                        max_id: 20,
                    }],
                    geneve: Some(GeneveOptions {
                        vni: 5001,
                        dst_port: None,
                    }),
                }),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        assert_eq!(
            config(&nad),
            json!({"cniVersion": "1.1.0", "name": "fast", "type": "smartnic", "mode": "ovs",
                   "resourceName": "smartnic.io/cx6_sd", "mtu": 8950, "bridge": "br-phys",
                   "trunk": [{"minId": 10, "maxId": 20}],
                   "geneve": {"vni": 5001}})
        );
    }

    #[test]
    fn rendered_config_parses_back_into_the_shared_type() {
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                resource_name: Some("x".into()),
                vlan: Some(7),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        let back: SmartnicNetConf =
            serde_json::from_str(nad.spec.config.as_deref().unwrap()).unwrap();
        assert_eq!(back.vlan, Some(7));
        assert_eq!(back.plugin_type, "smartnic");
    }

    #[test]
    fn invalid_or_unsaved_networks_are_not_rendered() {
        let err = render_nad(
            &network(crds::NicNetworkSpec {
                mode: NetworkMode::Ipvlan,
                vlan: Some(5),
                master: Some("eth0".into()),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap_err();
        assert!(
            matches!(&err, NadError::Invalid { errors, .. } if errors[0].field == "spec.vlan"),
            "{err}"
        );
        let mut n = network(crds::NicNetworkSpec {
            resource_name: Some("x".into()),
            ..Default::default()
        });
        n.metadata.uid = None;
        assert!(matches!(
            render_nad(&n, "smartnic.io"),
            Err(NadError::MissingMetadata { missing: "uid", .. })
        ));
    }

    #[test]
    fn meta_plugins_make_a_conflist_with_our_plugin_first() {
        let tuning = json!({"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}});
        let bandwidth = json!({"type": "bandwidth", "capabilities": {"bandwidth": true}});
        let nad = render_nad(
            &network(crds::NicNetworkSpec {
                resource_name: Some("cx6_vf".into()),
                vlan: Some(7),
                meta_plugins: vec![tuning.clone(), bandwidth.clone()],
                log_level: Some(crds::network::PluginLogLevel::Debug),
                log_file: Some("fast.log".into()),
                ipam: Some(json!({"type": "static"})),
                ..Default::default()
            }),
            "smartnic.io",
        )
        .unwrap();
        let c = config(&nad);
        assert_eq!(c["cniVersion"], CNI_VERSION);
        assert_eq!(c["name"], "fast");
        let plugins = c["plugins"].as_array().unwrap();
        assert_eq!(plugins.len(), 3);
        assert_eq!(
            plugins[0],
            json!({"type": "smartnic", "mode": "sriov", "resourceName": "smartnic.io/cx6_vf",
                   "vlan": 7, "vlanQoS": 0, "capabilities": {"CNIDeviceInfoFile": true},
                   "ipam": {"type": "static"},
                   "logLevel": "debug", "logFile": "fast.log"})
        );
        assert_eq!(
            plugins[1], tuning,
            "meta plugins are passed through unchanged, in order"
        );
        assert_eq!(plugins[2], bandwidth);
        // the entry still reads as our plugin's configuration once the runtime adds the list's
        // name and version
        let mut entry = plugins[0].clone();
        entry["cniVersion"] = c["cniVersion"].clone();
        entry["name"] = c["name"].clone();
        let conf: SmartnicNetConf = serde_json::from_value(entry).unwrap();
        assert_eq!(conf.log_level, Some(crds::network::PluginLogLevel::Debug));
        assert_eq!(conf.vlan, Some(7));
    }

    #[test]
    fn without_meta_plugins_the_config_is_a_single_plugin_with_its_log_settings() {
        let spec = crds::NicNetworkSpec {
            resource_name: Some("cx6_vf".into()),
            log_level: Some(crds::network::PluginLogLevel::Warning),
            ..Default::default()
        };
        let c = render_nad_config("fast", &spec, "smartnic.io").unwrap();
        assert!(c.get("plugins").is_none());
        assert_eq!(c["type"], "smartnic");
        assert_eq!(c["logLevel"], "warning");
        assert!(c.get("logFile").is_none());
    }
}
