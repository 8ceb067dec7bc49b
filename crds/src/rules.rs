//! The cross-field rules of the CRD schemas, as CEL `x-kubernetes-validations`. The API server
//! enforces them even when the validating webhook is not installed or not reachable, so a cluster
//! without the webhook still refuses `vlan: 5000` or `trunk` together with `vlan`.
//!
//! The webhook (`validate`) keeps every rule too, with longer messages, and the checks that need
//! other objects (overlapping VF ranges, resource-name agreement, namespaces allowed to use a
//! resource, the discovered inventory). A test holds each webhook rule that the schema can express
//! against the generated schema, so the two cannot drift apart.
//!
//! Rules are written to hold whether or not the API server has applied the schema defaults yet
//! (`has()` guards; the mode defaults to `sriov`), so that client-side evaluation of a document as
//! written gives the same verdict.

use schemars::Schema;
use serde_json::{Value, json};

/// One `x-kubernetes-validations` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CelRule {
    /// The CEL expression; `self` is the object the rule is attached to.
    pub rule: &'static str,
    /// The message the API server returns when the rule does not hold.
    pub message: &'static str,
    /// The field the error is reported on, relative to the object (`.vlanQoS`).
    pub field_path: &'static str,
}

impl CelRule {
    fn to_json(self) -> Value {
        json!({"rule": self.rule, "message": self.message, "fieldPath": self.field_path})
    }
}

/// The network's mode with its default applied.
macro_rules! mode {
    () => {
        "(has(self.mode) ? self.mode : 'sriov')"
    };
}

/// A field only the given mode accepts (one rule per field, so the error names it).
macro_rules! only_in {
    ($field:literal, $mode:literal) => {
        CelRule {
            rule: concat!("!has(self.", $field, ") || ", mode!(), " == '", $mode, "'"),
            message: concat!("only for mode ", $mode),
            field_path: concat!(".", $field),
        }
    };
}

/// Rules on `NicPolicy.spec`.
pub const POLICY_SPEC_RULES: &[CelRule] = &[
    CelRule {
        rule: "(has(self.nodeSelector.matchLabels) && size(self.nodeSelector.matchLabels) > 0) || (has(self.nodeSelector.matchExpressions) && size(self.nodeSelector.matchExpressions) > 0)",
        message: "must select nodes; an empty selector would configure NICs on every node (to mean that, select kubernetes.io/os: linux explicitly)",
        field_path: ".nodeSelector",
    },
    CelRule {
        rule: "has(self.nicSelector.vendor) || has(self.nicSelector.deviceId) || (has(self.nicSelector.pfNames) && size(self.nicSelector.pfNames) > 0) || (has(self.nicSelector.rootDevices) && size(self.nicSelector.rootDevices) > 0)",
        message: "is empty and would match no NIC; set vendor, deviceId, pfNames or rootDevices",
        field_path: ".nicSelector",
    },
    CelRule {
        rule: "!(has(self.isRdma) && self.isRdma && has(self.deviceType) && self.deviceType == 'vfio-pci')",
        message: "RDMA needs the vendor's kernel VF driver; it cannot be used with deviceType vfio-pci",
        field_path: ".isRdma",
    },
    CelRule {
        rule: "!(has(self.eswitchMode) && self.eswitchMode == 'switchdev' && has(self.linkType) && self.linkType == 'ib')",
        message: "switchdev needs Ethernet; it cannot be used with linkType ib",
        field_path: ".eswitchMode",
    },
    CelRule {
        rule: "!has(self.firmware) || !has(self.externallyManaged) || !self.externallyManaged",
        message: "not allowed with externallyManaged: the operator does not touch firmware of externally managed PFs",
        field_path: ".firmware",
    },
    CelRule {
        rule: "(has(self.wholePf) && self.wholePf) || (has(self.numVfs) && self.numVfs >= 1)",
        message: "must be at least 1 (delete the policy to remove its VFs; 0 only with wholePf)",
        field_path: ".numVfs",
    },
    CelRule {
        rule: "!(has(self.wholePf) && self.wholePf) || !has(self.numVfs) || self.numVfs == 0",
        message: "a whole-PF pool creates no VFs: numVfs must be 0 or unset",
        field_path: ".wholePf",
    },
    CelRule {
        rule: "!(has(self.wholePf) && self.wholePf) || (!has(self.eswitchMode) && !has(self.firmware) && !(has(self.externallyManaged) && self.externallyManaged))",
        message: "not allowed with eswitchMode, externallyManaged or firmware: those concern VFs, and a whole-PF pool has none",
        field_path: ".wholePf",
    },
    CelRule {
        rule: "!(has(self.wholePf) && self.wholePf) || ((!has(self.nicSelector.pfNames) || self.nicSelector.pfNames.all(n, !n.contains('#'))) && (!has(self.nicSelector.rootDevices) || self.nicSelector.rootDevices.all(n, !n.contains('#'))))",
        message: "a whole-PF pool takes whole PFs: no VF ranges (#...) in pfNames or rootDevices",
        field_path: ".wholePf",
    },
    CelRule {
        rule: "!has(self.firmware) || !has(self.firmware.totalVfs) || self.firmware.totalVfs >= self.numVfs",
        message: "must be at least numVfs",
        field_path: ".firmware.totalVfs",
    },
];

/// Rules on `NicNetwork.spec`.
pub const NETWORK_SPEC_RULES: &[CelRule] = &[
    CelRule {
        rule: concat!(
            "has(self.resourceName) || !(",
            mode!(),
            " in ['sriov', 'ovs'])"
        ),
        message: "is required in modes sriov and ovs: it names the VF pool pods draw from",
        field_path: ".resourceName",
    },
    CelRule {
        rule: "has(self.resourceName) || has(self.master)",
        message: "modes macvlan and ipvlan need either resourceName (the allocated VF is the master) or master (a host interface)",
        field_path: ".resourceName",
    },
    CelRule {
        rule: "!has(self.master) || !has(self.resourceName)",
        message: "give either master or resourceName, not both",
        field_path: ".master",
    },
    CelRule {
        rule: concat!(
            "!has(self.master) || ",
            mode!(),
            " in ['macvlan', 'ipvlan']"
        ),
        message: "only for modes macvlan and ipvlan",
        field_path: ".master",
    },
    CelRule {
        rule: concat!("!has(self.vlan) || ", mode!(), " in ['sriov', 'ovs']"),
        message: "only for modes sriov and ovs: a macvlan or ipvlan child has no VLAN of its own",
        field_path: ".vlan",
    },
    only_in!("vlanQoS", "sriov"),
    only_in!("vlanProto", "sriov"),
    only_in!("spoofChk", "sriov"),
    only_in!("trust", "sriov"),
    only_in!("linkState", "sriov"),
    only_in!("minTxRate", "sriov"),
    only_in!("maxTxRate", "sriov"),
    only_in!("macvlanMode", "macvlan"),
    CelRule {
        rule: "!has(self.macvlanSourceMacs) || size(self.macvlanSourceMacs) == 0 || (has(self.macvlanMode) && self.macvlanMode == 'source')",
        message: "only with macvlanMode source",
        field_path: ".macvlanSourceMacs",
    },
    CelRule {
        rule: "!has(self.macvlanMode) || self.macvlanMode != 'source' || (has(self.macvlanSourceMacs) && size(self.macvlanSourceMacs) > 0)",
        message: "macvlanMode source needs at least one MAC in macvlanSourceMacs",
        field_path: ".macvlanMode",
    },
    only_in!("ipvlanMode", "ipvlan"),
    only_in!("ovs", "ovs"),
    CelRule {
        rule: "!has(self.vlanQoS) || self.vlanQoS == 0 || (has(self.vlan) && self.vlan != 0)",
        message: "a non-zero VLAN priority needs a non-zero vlan",
        field_path: ".vlanQoS",
    },
    CelRule {
        rule: "!has(self.vlanProto) || self.vlanProto != '802.1ad' || (has(self.vlan) && self.vlan != 0)",
        message: "802.1ad needs a non-zero vlan",
        field_path: ".vlanProto",
    },
    CelRule {
        rule: "!has(self.minTxRate) || !has(self.maxTxRate) || self.maxTxRate == 0 || self.minTxRate <= self.maxTxRate",
        message: "must not be above maxTxRate",
        field_path: ".minTxRate",
    },
    CelRule {
        rule: concat!("!has(self.mtu) || ", mode!(), " != 'sriov'"),
        message: "not allowed in mode sriov: the VF MTU is set by the NicPolicy",
        field_path: ".mtu",
    },
    CelRule {
        rule: "!has(self.vlan) || !has(self.ovs) || !has(self.ovs.trunk) || size(self.ovs.trunk) == 0",
        message: "give either vlan (access port) or trunk, not both",
        field_path: ".ovs.trunk",
    },
    CelRule {
        rule: "!has(self.capabilities) || self.capabilities.all(k, k.matches('^[A-Za-z0-9]+$'))",
        message: "keys must be CNI capability names (letters and digits, e.g. ips, mac, deviceID)",
        field_path: ".capabilities",
    },
];

/// Rules on an OVS trunk VLAN range.
pub const VLAN_RANGE_RULES: &[CelRule] = &[CelRule {
    rule: "self.minId <= self.maxId",
    message: "minId must not be above maxId",
    field_path: ".minId",
}];

/// Rules on `NicPool.spec.maxUnavailable` (an integer or a percentage string).
pub const MAX_UNAVAILABLE_RULES: &[CelRule] = &[CelRule {
    // `string()` of an int is its decimal form, so one pattern covers both shapes (a string of
    // digits without `%` passes here too; the webhook refuses it).
    rule: "string(self).matches('^([0-9]+|0*(100|[1-9][0-9]?)%)$')",
    message: "must be a node count (0 pauses drains) or a percentage 1%-100%",
    field_path: "",
}];

/// Rules on a whole `NicOperatorConfig`.
pub const OPERATOR_CONFIG_RULES: &[CelRule] = &[CelRule {
    rule: "self.metadata.name == 'default'",
    message: "only the object named \"default\" is read; name it so",
    field_path: "",
}];

fn add_rules(schema: &mut Schema, rules: &[CelRule]) {
    schema.insert(
        "x-kubernetes-validations".into(),
        Value::Array(rules_json(rules)),
    );
}

pub(crate) fn policy_spec_rules(schema: &mut Schema) {
    add_rules(schema, POLICY_SPEC_RULES);
}

pub(crate) fn network_spec_rules(schema: &mut Schema) {
    add_rules(schema, NETWORK_SPEC_RULES);
}

pub(crate) fn vlan_range_rules(schema: &mut Schema) {
    add_rules(schema, VLAN_RANGE_RULES);
}

pub(crate) fn max_unavailable_rules(schema: &mut Schema) {
    add_rules(schema, MAX_UNAVAILABLE_RULES);
}

/// The JSON form of `rules` (`fieldPath` omitted where empty).
fn rules_json(rules: &[CelRule]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            let mut v = r.to_json();
            if r.field_path.is_empty()
                && let Some(o) = v.as_object_mut()
            {
                o.remove("fieldPath");
            }
            v
        })
        .collect()
}
