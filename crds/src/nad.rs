//! `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`, Multus): the object the operator renders
//! from a `NicNetwork`. The CRD itself belongs to Multus, so `crdgen` does not emit it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Network attachment (multi-net-spec v1.3): a CNI configuration a pod can attach to through the
/// `k8s.v1.cni.cncf.io/networks` annotation.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    shortname = "net-attach-def",
    namespaced,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachmentDefinitionSpec {
    /// The CNI configuration as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}
