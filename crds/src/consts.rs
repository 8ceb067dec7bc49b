//! Names every component must agree on: API group, field managers, finalizers, label and
//! annotation keys, well-known object names.
//!
//! # Drain handshake (annotations on `NicNodeState`)
//!
//! The node agent decides *whether* a change needs a drain (it classifies the change with
//! `planner::drain::classify`); the operator decides *when* (it grants at most
//! `maxUnavailable` nodes per `NicPool` at a time). They talk through annotations on the node's
//! `NicNodeState`, each written by exactly one side with its own field manager:
//!
//! | annotation | written by | values |
//! |---|---|---|
//! | [`ANNOTATION_DRAIN_REQUEST`] | agent | `none` \| `evict-vf-pods` \| `reboot` ([`DrainRequest`]) |
//! | [`ANNOTATION_DRAIN_REQUESTED_AT`] | agent | RFC 3339 time of the first request (queue order) |
//! | [`ANNOTATION_DRAIN_GRANT`] | operator | `none` \| `draining` \| `drained` ([`DrainGrant`]) |
//! | [`ANNOTATION_DRAIN_GRANTED_AT`] | operator | RFC 3339 time the slot was granted (start of the drain timeout); removed with the grant |
//! | [`ANNOTATION_DRAIN_RETRY_AFTER`] | operator | RFC 3339 time before which a node whose drain timed out is not granted again; removed at the next grant |
//!
//! Sequence: the agent sets `drain-request=evict-vf-pods` (or `reboot`) and `drain-requested-at`;
//! the operator, once the pool has room, sets `drain-grant=draining`, cordons the node and evicts
//! (only pods using `smartnic.io/*` resources for `evict-vf-pods`; every evictable pod for
//! `reboot`), then sets `drain-grant=drained`. The agent applies the change (rebooting if needed),
//! then sets `drain-request=none`. The operator uncordons and sets `drain-grant=none`, which frees
//! the pool slot. A node whose grant is not `none` counts against its pool's `maxUnavailable`.
//!
//! Drain timeout: a node still `draining` (pods left to evict) longer than its pool's
//! `drainTimeoutSeconds` after `drain-granted-at` (default [`DEFAULT_DRAIN_TIMEOUT_SECONDS`];
//! 0 = never) is given up: the operator stops evicting, uncordons the node if it cordoned it,
//! sets `drain-grant=none`, removes `drain-granted-at` and sets `drain-retry-after` to now plus
//! the timeout, at least [`MIN_DRAIN_RETRY_AFTER_SECONDS`]. The agent keeps its request and the
//! change stays pending; the slot goes to the next node in the queue, and the node is queued
//! again (at its old request time) once `drain-retry-after` has passed. The drain then starts
//! over. A `drained` node is never timed out: the agent is applying.

use serde::{Deserialize, Serialize};

/// The API group of every smartnic-operator custom resource.
pub const GROUP: &str = "smartnic.io";
/// The API version served by this crate.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every smartnic-operator custom resource.
pub const API_VERSION: &str = "smartnic.io/v1alpha1";
/// Default prefix of every extended resource the device plugin advertises
/// (`smartnic.io/<resourceName>`); `NicOperatorConfig.spec.resourcePrefix` overrides it.
pub const RESOURCE_PREFIX: &str = "smartnic.io";

/// Server-side-apply field manager of the cluster controller (NicNodeState spec, NADs, drain grants,
/// every status it owns).
pub const FIELD_MANAGER_OPERATOR: &str = "smartnic.io/operator";
/// Server-side-apply field manager of the node agent (NicNodeState status, drain requests).
pub const FIELD_MANAGER_AGENT: &str = "smartnic.io/agent";
/// Server-side-apply field manager of the device plugin (node labels it owns, if any).
pub const FIELD_MANAGER_DEVICE_PLUGIN: &str = "smartnic.io/device-plugin";

/// Finalizer the agent puts on its own `NicNodeState`: removed only after the PFs the operator
/// configured on that node were reset (VFs destroyed, eswitch back to the discovered mode).
/// Kubernetes children (NADs) use owner references instead of finalizers.
pub const FINALIZER_NODE_STATE: &str = "smartnic.io/pf-reset";

/// Agent → operator: the disruption a pending change needs ([`DrainRequest`]).
pub const ANNOTATION_DRAIN_REQUEST: &str = "smartnic.io/drain-request";
/// Agent → operator: RFC 3339 timestamp of the first request in the current drain cycle; the
/// operator grants oldest first.
pub const ANNOTATION_DRAIN_REQUESTED_AT: &str = "smartnic.io/drain-requested-at";
/// Operator → agent: the state of the node's drain slot ([`DrainGrant`]).
pub const ANNOTATION_DRAIN_GRANT: &str = "smartnic.io/drain-grant";

/// Operator → agent: RFC 3339 time the drain slot was granted; the drain timeout counts from it.
pub const ANNOTATION_DRAIN_GRANTED_AT: &str = "smartnic.io/drain-granted-at";
/// Operator: RFC 3339 time before which a node whose drain timed out is not granted again.
pub const ANNOTATION_DRAIN_RETRY_AFTER: &str = "smartnic.io/drain-retry-after";

/// Set by the operator on every `NicNodeState` and NAD it creates: `smartnic-operator`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "smartnic-operator";
/// Set by the operator on `NicNodeState`: the owning node's name (the object is named after the
/// node too; the label allows label-selector watches).
pub const LABEL_NODE: &str = "smartnic.io/node";
/// Set by the operator on a NAD: the name of the `NicNetwork` it was rendered from.
pub const LABEL_NETWORK: &str = "smartnic.io/network";
/// Node label the operator sets to `true` when the node's device-plugin configuration has at least
/// one resource pool; the device-plugin DaemonSet selects on it.
pub const LABEL_DEVICE_PLUGIN: &str = "smartnic.io/device-plugin";
/// The node components' DaemonSets in the operator's namespace (`deploy/`), whose pod
/// `nodeSelector` the operator keeps equal to `NicOperatorConfig.spec.nodeSelector`.
pub const DAEMONSET_AGENT: &str = "smartnic-agent";
/// See [`DAEMONSET_AGENT`]; this one also selects on [`LABEL_DEVICE_PLUGIN`].
pub const DAEMONSET_DEVICE_PLUGIN: &str = "smartnic-device-plugin";
/// See [`DAEMONSET_AGENT`].
pub const DAEMONSET_CNI: &str = "smartnic-cni-installer";
/// The well-known node label holding the operating system (`linux`).
pub const LABEL_OS: &str = "kubernetes.io/os";

/// NAD annotation linking a network to a device-plugin resource (Multus convention).
pub const ANNOTATION_NAD_RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";

/// Namespace or pod label that opts out of the network-resources injector when set to
/// [`INJECTOR_DISABLED`] (the `MutatingWebhookConfiguration` in `deploy/` selects on it).
pub const LABEL_INJECTOR: &str = "smartnic.io/network-resources-injector";
/// The value of [`LABEL_INJECTOR`] that opts out.
pub const INJECTOR_DISABLED: &str = "disabled";

/// Name of the singleton `NicOperatorConfig`.
pub const OPERATOR_CONFIG_NAME: &str = "default";

/// Largest `NicPolicy.spec.priority`; also its default (lowest precedence).
pub const MAX_POLICY_PRIORITY: u32 = 99;
/// Largest `NicPolicy.spec.numVfs`. The SR-IOV capability's TotalVFs and NumVFs registers are
/// 16 bits wide (PCIe Base Specification, SR-IOV Extended Capability), and Linux keeps
/// `sriov_totalvfs` in a `u16`, so no PF can expose more. The schema holds this protocol limit;
/// the device's own limit (`sriov_totalvfs`, or `firmware.totalVfs`) is checked per node against
/// the discovered inventory, because it differs between NICs (igb 7, mlx5 up to 127 by default,
/// ice 256 per device).
pub const MAX_NUM_VFS: u32 = u16::MAX as u32;
/// Lowest MTU accepted anywhere (the IPv4 minimum, RFC 791).
pub const MIN_MTU: u32 = 68;
/// Highest MTU accepted anywhere (the largest MTU a netdev takes in practice).
pub const MAX_MTU: u32 = 65535;
/// Highest usable VLAN id (4095 is reserved by IEEE 802.1Q).
pub const MAX_VLAN: u16 = 4094;
/// Highest VLAN priority (PCP is 3 bits).
pub const MAX_VLAN_QOS: u8 = 7;
/// Most ranges in a `NicPolicy.spec.ibGuidPool`.
pub const MAX_GUID_RANGES: usize = 64;
/// Highest InfiniBand partition key: P_Keys are 16 bits, the top bit the membership (1 full,
/// 0 limited) and the low 15 bits the partition.
pub const MAX_PKEY: u16 = u16::MAX;
/// The full-membership bit of a P_Key.
pub const PKEY_FULL_MEMBER: u16 = 0x8000;
/// Highest Geneve VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Longest device-plugin resource name without prefix (the name part of a Kubernetes qualified
/// name, which is what kubelet accepts after `<prefix>/`).
pub const MAX_RESOURCE_NAME_LEN: usize = 63;
/// The resource names we accept (without prefix): letters, digits, `_` and `-`, starting and
/// ending with a letter or digit. A subset of the kubelet's qualified-name rule (which also allows
/// `.`): the name becomes part of environment variable names, where `.` is not portable.
pub const RESOURCE_NAME_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$";
/// An Ethernet MAC address in colon notation (`02:00:5e:10:00:01`).
pub const MAC_PATTERN: &str = "^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$";
/// Four hexadecimal digits: a PCI vendor or device id as sysfs writes it (`15b3`).
pub const HEX4_PATTERN: &str = "^[0-9a-fA-F]{4}$";
/// A `pfNames` entry: a netdev name (1-15 characters without `/`, `:`, whitespace or `#`),
/// optionally followed by `#` and VF indices/ranges. The exact range syntax (order, overlap,
/// bounds) is checked by the webhook and the planner.
pub const PF_NAME_ENTRY_PATTERN: &str = r"^\s*[^/:\s#]{1,15}\s*(#[0-9 ,-]+)?$";
/// A `rootDevices` entry: a PCI address `DDDD:BB:DD.F` (device 00-1f, function 0-7), optionally
/// followed by `#` and VF indices/ranges.
pub const ROOT_DEVICE_ENTRY_PATTERN: &str =
    r"^\s*[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]\s*(#[0-9 ,-]+)?$";
/// A DNS label (RFC 1123): what namespace names are.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS subdomain (RFC 1123): dot-separated DNS labels.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Linux network interface name: 1-15 characters without `/`, `:` or whitespace.
pub const NETDEV_NAME_PATTERN: &str = r"^[^/:\s]{1,15}$";
/// An absolute file path (no NUL byte).
pub const ABSOLUTE_PATH_PATTERN: &str = r"^/[^\x00]*$";
/// `maxUnavailable` of the implicit pool that holds every node no `NicPool` selects.
pub const DEFAULT_POOL_MAX_UNAVAILABLE: u32 = 1;
/// `drainTimeoutSeconds` of a pool that leaves it unset, and of the implicit default pool.
pub const DEFAULT_DRAIN_TIMEOUT_SECONDS: u32 = 600;
/// Shortest wait before a node whose drain timed out may be granted again, so that a short
/// timeout does not cordon and uncordon the same node in a tight loop.
pub const MIN_DRAIN_RETRY_AFTER_SECONDS: u32 = 60;

/// Condition type on `NicPolicy`, `NicNetwork`, `NicPool`: the object passed validation.
pub const CONDITION_VALID: &str = "Valid";
/// Condition type on `NicNetwork`: its NAD exists and matches the spec.
pub const CONDITION_READY: &str = "Ready";
/// Condition type on `NicPolicy`: every selected node applied it (no per-node rejections).
pub const CONDITION_APPLIED: &str = "Applied";
/// Condition type on `NicNodeState`: the agent applied `metadata.generation`.
pub const CONDITION_SYNCED: &str = "Synced";
/// Condition type on `NicNodeState`: the node is draining for a change.
pub const CONDITION_DRAINING: &str = "Draining";
/// Condition type on `NicNodeState`, set by an agent run with `--tunnel-uplink`: its uplink
/// gives the overlay tunnel endpoint published in `status.tunnelEndpoint`.
pub const CONDITION_TUNNEL_ENDPOINT: &str = "TunnelEndpoint";

/// The disruption a pending configuration change needs, as requested by the node agent
/// (value of [`ANNOTATION_DRAIN_REQUEST`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum DrainRequest {
    /// Nothing to do, or the change is applied without disturbing pods.
    #[default]
    None,
    /// Evict only the pods that use this operator's resources (VFs) on the node, then apply.
    EvictVfPods,
    /// Drain the node fully and reboot it (firmware or link-type changes).
    Reboot,
}

impl DrainRequest {
    /// The annotation value (`none`, `evict-vf-pods`, `reboot`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::EvictVfPods => "evict-vf-pods",
            Self::Reboot => "reboot",
        }
    }

    /// Reads an annotation value; `None` for an unknown value.
    pub fn from_annotation(value: &str) -> Option<Self> {
        [Self::None, Self::EvictVfPods, Self::Reboot]
            .into_iter()
            .find(|v| v.as_str() == value)
    }
}

/// State of a node's drain slot as set by the operator (value of [`ANNOTATION_DRAIN_GRANT`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum DrainGrant {
    /// No slot held.
    #[default]
    None,
    /// Slot granted; the operator is cordoning and evicting.
    Draining,
    /// Eviction finished; the agent may apply the change.
    Drained,
}

impl DrainGrant {
    /// The annotation value (`none`, `draining`, `drained`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Draining => "draining",
            Self::Drained => "drained",
        }
    }

    /// Reads an annotation value; `None` for an unknown value.
    pub fn from_annotation(value: &str) -> Option<Self> {
        [Self::None, Self::Draining, Self::Drained]
            .into_iter()
            .find(|v| v.as_str() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_annotation_values_round_trip_and_match_serde() {
        for r in [
            DrainRequest::None,
            DrainRequest::EvictVfPods,
            DrainRequest::Reboot,
        ] {
            assert_eq!(DrainRequest::from_annotation(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for g in [DrainGrant::None, DrainGrant::Draining, DrainGrant::Drained] {
            assert_eq!(DrainGrant::from_annotation(g.as_str()), Some(g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        assert_eq!(DrainRequest::from_annotation("drain"), None);
        assert!(DrainRequest::Reboot > DrainRequest::EvictVfPods);
    }
}
