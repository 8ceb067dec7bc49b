//! `NicNetwork` → `NetworkAttachmentDefinition`.
//!
//! The NAD has the network's name and namespace, a controller owner reference to the
//! `NicNetwork` (so Kubernetes deletes it with the network), the labels
//! [`crds::LABEL_MANAGED_BY`] and [`crds::LABEL_NETWORK`], and, when the network uses a
//! device-plugin resource, the annotation `k8s.v1.cni.cncf.io/resourceName:
//! <prefix>/<resourceName>` through which Multus finds the allocated VF. Its `spec.config` is a
//! [`SmartnicNetConf`] serialised as JSON: `"type": "smartnic"`, `"mode"`, the mode's options
//! under the same names as in the `NicNetwork` spec, and `ipam` copied unchanged.
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

use crate::validate::{FieldError, to_message, validate_network};

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

/// Builds the CNI network configuration of a network (without validating it).
pub fn render_cni_config(
    name: &str,
    spec: &crds::NicNetworkSpec,
    resource_prefix: &str,
) -> SmartnicNetConf {
    let sriov = spec.mode == NetworkMode::Sriov;
    let ovs = spec.ovs.as_ref().filter(|_| spec.mode == NetworkMode::Ovs);
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
        link_state: spec.link_state.filter(|_| sriov),
        min_tx_rate: spec.min_tx_rate.filter(|_| sriov),
        max_tx_rate: spec.max_tx_rate.filter(|_| sriov),
        macvlan_mode: match spec.mode {
            NetworkMode::Macvlan => Some(spec.macvlan_mode.unwrap_or_default()),
            _ => None,
        },
        ipvlan_mode: match spec.mode {
            NetworkMode::Ipvlan => Some(spec.ipvlan_mode.unwrap_or_default()),
            _ => None,
        },
        master: spec
            .master
            .clone()
            .filter(|_| !sriov && spec.mode != NetworkMode::Ovs),
        mtu: spec.mtu.filter(|_| !sriov),
        bridge: ovs.and_then(|o| o.bridge.clone()),
        trunk: ovs.map(|o| o.trunk.clone()).unwrap_or_default(),
        geneve: ovs.and_then(|o| o.geneve.clone()),
        capabilities: spec.capabilities.clone(),
        ipam: spec.ipam.clone(),
    }
}

/// Renders the NAD of a `NicNetwork` read from the API server (it needs name, namespace and uid
/// for the owner reference). Validates the spec first with [`validate_network`].
pub fn render_nad(
    network: &NicNetwork,
    resource_prefix: &str,
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
    let conf = render_cni_config(&name, &network.spec, resource_prefix);
    let config = serde_json::to_string(&conf).map_err(|source| NadError::Serialize {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    let annotations = network.spec.resource_name.as_ref().map(|r| {
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
