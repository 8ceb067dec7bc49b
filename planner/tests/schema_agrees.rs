//! The webhook's single-object rules (`planner::validate`) and the generated CRD schemas must
//! agree, so that a cluster without the webhook refuses what the webhook refuses, and the schema
//! never refuses what the webhook accepts.
//!
//! Each case is a document with one thing changed from a valid object, marked `Schema` when the
//! rule it breaks is expressible in the schema (OpenAPI bounds or a CEL rule) or `Webhook` when
//! only the webhook can check it (it needs parsing the schema cannot do). The test fails when:
//! - the schema refuses a document the webhook accepts (the schema is stricter than the rules);
//! - a `Schema` case is refused by the webhook but accepted by the schema (a bound went missing);
//! - a `Webhook` case is refused by the schema too (it is expressible: mark it so).
//!
//! Checks that need other objects (VF ranges claimed twice, resource-name agreement, namespaces
//! allowed to use a resource, the nodes' inventory) are the webhook's alone and not listed here.

use crds::{NicNetwork, NicOperatorConfig, NicPolicy, NicPool, schema_check::check_object};
use planner::validate::{
    PoolContext, to_message, validate_network, validate_operator_config, validate_policy_spec,
    validate_pool,
};
use serde_json::{Value, json};

/// Where the rule a case breaks can be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    /// The schema must refuse the document as the webhook does.
    Schema,
    /// Only the webhook refuses it; the schema must accept it.
    Webhook,
    /// A valid document: both accept.
    Valid,
}
use Where::{Schema, Valid, Webhook};

fn policy() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicy", "metadata": {"name": "p"},
        "spec": {"nodeSelector": {"matchLabels": {"gpu": "true"}},
                 "nicSelector": {"vendor": "15b3", "pfNames": ["ens1f0#0-3"]},
                 "numVfs": 8, "mtu": 9000, "resourceName": "cx6_vf", "priority": 10,
                 "networkNamespaces": ["team-a"]}})
}

fn network() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNetwork",
        "metadata": {"name": "n", "namespace": "team-a"},
        "spec": {"resourceName": "cx6_vf", "vlan": 100, "vlanQoS": 3, "minTxRate": 10, "maxTxRate": 100,
                 "ipam": {"type": "host-local"}, "capabilities": {"ips": true},
                 "metaPlugins": [{"type": "tuning"}], "logLevel": "info", "logFile": "cni.log"}})
}

fn ovs() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNetwork",
        "metadata": {"name": "o", "namespace": "team-a"},
        "spec": {"mode": "ovs", "resourceName": "cx6_sw", "mtu": 1500,
                 "ovs": {"bridge": "br-int", "trunk": [{"minId": 10, "maxId": 20}],
                         "geneve": {"vni": 7, "dstPort": 6081}}}})
}

fn macvlan() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNetwork",
        "metadata": {"name": "m", "namespace": "team-a"},
        "spec": {"mode": "macvlan", "master": "eth1", "macvlanMode": "bridge", "mtu": 1500}})
}

fn pool() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicPool", "metadata": {"name": "a"},
        "spec": {"nodeSelector": {"matchLabels": {"rack": "r1"}}, "maxUnavailable": "25%", "rdmaMode": "shared"}})
}

fn config() -> Value {
    json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicOperatorConfig", "metadata": {"name": "default"},
        "spec": {"resourcePrefix": "smartnic.io"}})
}

fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    match doc.pointer_mut(parent).expect("parent exists") {
        Value::Object(m) => {
            m.insert(key.to_owned(), value);
        }
        Value::Array(a) => a[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{parent} is not a container"),
    }
    doc
}

fn remove(mut doc: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
        m.remove(key);
    }
    doc
}

/// The webhook's verdict: the object must deserialize into our type (the webhook refuses what
/// does not), then pass the single-object checks.
fn webhook(doc: &Value) -> Result<(), String> {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let parse_err = |e: serde_json::Error| format!("does not parse: {e}");
    match doc["kind"].as_str() {
        Some("NicPolicy") => {
            let p: NicPolicy = serde_json::from_value(doc.clone()).map_err(parse_err)?;
            validate_policy_spec(&p.spec).map_err(|e| to_message(&e))
        }
        Some("NicNetwork") => {
            let n: NicNetwork = serde_json::from_value(doc.clone()).map_err(parse_err)?;
            validate_network(&n.spec).map_err(|e| to_message(&e))
        }
        Some("NicPool") => {
            let p: NicPool = serde_json::from_value(doc.clone()).map_err(parse_err)?;
            validate_pool(&name, &p.spec, &PoolContext::default()).map_err(|e| to_message(&e))
        }
        Some("NicOperatorConfig") => {
            let c: NicOperatorConfig = serde_json::from_value(doc.clone()).map_err(parse_err)?;
            validate_operator_config(&name, &c.spec).map_err(|e| to_message(&e))
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Value, Where)> {
    let p = policy;
    let n = network;
    vec![
        ("policy", p(), Valid),
        ("network", n(), Valid),
        ("ovs network", ovs(), Valid),
        ("macvlan network", macvlan(), Valid),
        ("pool", pool(), Valid),
        ("config", config(), Valid),
        ("policy: spaces around a PF name", set(p(), "/spec/nicSelector/pfNames", json!([" ens1f0 # 0 - 3 "])), Valid),
        ("policy: upper-case hex", set(p(), "/spec/nicSelector/rootDevices", json!(["0000:AF:1F.7"])), Valid),
        ("policy: open to every namespace", remove(p(), "/spec/networkNamespaces"), Valid),
        ("policy: open to no namespace", set(p(), "/spec/networkNamespaces", json!([])), Valid),
        ("network: vlan 0 with 802.1q", set(set(n(), "/spec/vlanQoS", json!(0)), "/spec/vlan", json!(0)), Valid),
        ("network: maxTxRate 0 means no limit", set(n(), "/spec/maxTxRate", json!(0)), Valid),
        ("pool: maxUnavailable 0", set(pool(), "/spec/maxUnavailable", json!(0)), Valid),
        ("pool: 100%", set(pool(), "/spec/maxUnavailable", json!("100%")), Valid),
        // NicPolicy
        ("empty node selector", set(p(), "/spec/nodeSelector", json!({})), Schema),
        ("label key=value", set(p(), "/spec/nodeSelector", json!({"matchLabels": {"gpu=true": ""}})), Webhook),
        ("unknown selector operator", set(p(), "/spec/nodeSelector", json!({"matchExpressions": [{"key": "gpu", "operator": "Equals", "values": ["x"]}]})), Webhook),
        ("empty nic selector", set(p(), "/spec/nicSelector", json!({})), Schema),
        ("vendor with 0x", set(p(), "/spec/nicSelector/vendor", json!("0x15b3")), Schema),
        ("device id not hex", set(p(), "/spec/nicSelector/deviceId", json!("10g1")), Schema),
        ("VF range beyond numVfs", set(p(), "/spec/nicSelector/pfNames", json!(["ens1f0#0-8"])), Webhook),
        ("reversed VF range", set(p(), "/spec/nicSelector/pfNames", json!(["ens1f0#3-0"])), Webhook),
        ("VF range without PF name", set(p(), "/spec/nicSelector/pfNames", json!(["#0-3"])), Schema),
        ("garbage VF range", set(p(), "/spec/nicSelector/pfNames", json!(["ens1f0#x"])), Schema),
        ("overlapping items", set(p(), "/spec/nicSelector/pfNames", json!(["ens1f0#0-3,2"])), Webhook),
        ("PF listed twice", set(p(), "/spec/nicSelector/pfNames", json!(["ens1f0#0", "ens1f0#1"])), Webhook),
        ("PF name too long", set(p(), "/spec/nicSelector/pfNames", json!(["sixteen-chars-xx"])), Schema),
        ("PF name with a colon", set(p(), "/spec/nicSelector/pfNames", json!(["eth:1"])), Schema),
        ("PF name dot-dot", set(p(), "/spec/nicSelector/pfNames", json!([".."])), Webhook),
        ("bad root device", set(p(), "/spec/nicSelector/rootDevices", json!(["0000:3b:20.0"])), Schema),
        ("ranges in both lists", set(p(), "/spec/nicSelector/rootDevices", json!(["0000:3b:00.0#4-5"])), Webhook),
        ("numVfs 0", set(p(), "/spec/numVfs", json!(0)), Schema),
        ("numVfs above 65535", set(p(), "/spec/numVfs", json!(65536)), Schema),
        ("numVfs negative", set(p(), "/spec/numVfs", json!(-1)), Schema),
        ("MTU 67", set(p(), "/spec/mtu", json!(67)), Schema),
        ("MTU 65536", set(p(), "/spec/mtu", json!(65536)), Schema),
        ("vfio-pci with isRdma", set(set(p(), "/spec/deviceType", json!("vfio-pci")), "/spec/isRdma", json!(true)), Schema),
        ("switchdev on ib", set(set(p(), "/spec/eswitchMode", json!("switchdev")), "/spec/linkType", json!("ib")), Schema),
        ("resourceName with a dot", set(p(), "/spec/resourceName", json!("cx6.vf")), Schema),
        ("resourceName with a space", set(p(), "/spec/resourceName", json!("cx6 vf")), Schema),
        ("resourceName with prefix", set(p(), "/spec/resourceName", json!("smartnic.io/cx6_vf")), Schema),
        ("resourceName empty", set(p(), "/spec/resourceName", json!("")), Schema),
        ("resourceName of 64", set(p(), "/spec/resourceName", json!("a".repeat(64))), Schema),
        ("resourceName ending in -", set(p(), "/spec/resourceName", json!("cx6-")), Schema),
        ("priority 100", set(p(), "/spec/priority", json!(100)), Schema),
        ("firmware on an external PF", set(set(p(), "/spec/externallyManaged", json!(true)), "/spec/firmware", json!({})), Schema),
        ("firmware capacity below numVfs", set(p(), "/spec/firmware", json!({"totalVfs": 4})), Schema),
        ("network namespace not a DNS label", set(p(), "/spec/networkNamespaces", json!(["team_a"])), Schema),
        // NicNetwork
        ("vlan in ipvlan", set(set(macvlan(), "/spec/mode", json!("ipvlan")), "/spec/vlan", json!(5)), Schema),
        ("vlan in macvlan", set(macvlan(), "/spec/vlan", json!(5)), Schema),
        ("VLAN 4095", set(n(), "/spec/vlan", json!(4095)), Schema),
        ("VLAN 5000", set(n(), "/spec/vlan", json!(5000)), Schema),
        ("QoS 8", set(n(), "/spec/vlanQoS", json!(8)), Schema),
        ("QoS without VLAN", remove(n(), "/spec/vlan"), Schema),
        ("802.1ad without VLAN", set(set(set(n(), "/spec/vlan", json!(0)), "/spec/vlanQoS", json!(0)), "/spec/vlanProto", json!("802.1ad")), Schema),
        ("min rate above max", set(n(), "/spec/minTxRate", json!(1000)), Schema),
        ("sriov without resource", remove(n(), "/spec/resourceName"), Schema),
        ("ovs without resource", remove(ovs(), "/spec/resourceName"), Schema),
        ("macvlan without master or resource", remove(macvlan(), "/spec/master"), Schema),
        ("macvlan with master and resource", set(macvlan(), "/spec/resourceName", json!("cx6_vf")), Schema),
        ("master in sriov", set(n(), "/spec/master", json!("eth1")), Schema),
        ("master not an interface name", set(macvlan(), "/spec/master", json!("eth/1")), Schema),
        ("shell syntax in a master", set(macvlan(), "/spec/master", json!("$(touch${IFS}Y)")), Schema),
        ("shell syntax in a bridge", set(ovs(), "/spec/ovs/bridge", json!("`id`")), Schema),
        ("config: an allow-list dataDir that is not a path", set(config(), "/spec/tenantAllowList", json!({"ipamDataDirs": ["relative"]})), Schema),
        ("config: an allow-list master with shell syntax", set(config(), "/spec/tenantAllowList", json!({"masters": [{"name": "$(x)"}]})), Schema),
        ("config: an allow-list", set(config(), "/spec/tenantAllowList", json!({"masters": [{"name": "eth1", "namespaces": ["team-a"]}], "bridges": [{"name": "br-int"}], "ipamDataDirs": ["/var/lib/smartnic/ipam"], "resolvConfs": ["/etc/resolv.conf"]})), Valid),
        ("macvlanMode in sriov", set(n(), "/spec/macvlanMode", json!("vepa")), Schema),
        ("ipvlanMode in macvlan", set(macvlan(), "/spec/ipvlanMode", json!("l3")), Schema),
        ("macvlan source without MACs", set(macvlan(), "/spec/macvlanMode", json!("source")), Schema),
        ("source MACs in bridge mode", set(macvlan(), "/spec/macvlanSourceMacs", json!(["02:00:00:00:5e:01"])), Schema),
        ("source MAC not a MAC", set(set(macvlan(), "/spec/macvlanMode", json!("source")), "/spec/macvlanSourceMacs", json!(["02:00:00:00:5e"])), Schema),
        ("spoofChk in ovs", set(ovs(), "/spec/spoofChk", json!(true)), Schema),
        ("trust in macvlan", set(macvlan(), "/spec/trust", json!(false)), Schema),
        ("linkState in ovs", set(ovs(), "/spec/linkState", json!("enable")), Schema),
        ("maxTxRate in macvlan", set(macvlan(), "/spec/maxTxRate", json!(10)), Schema),
        ("MTU in sriov", set(n(), "/spec/mtu", json!(1500)), Schema),
        ("MTU 67 in macvlan", set(macvlan(), "/spec/mtu", json!(67)), Schema),
        ("ovs options in sriov", set(n(), "/spec/ovs", json!({})), Schema),
        ("trunk and vlan", set(ovs(), "/spec/vlan", json!(10)), Schema),
        ("trunk from 0", set(ovs(), "/spec/ovs/trunk/0/minId", json!(0)), Schema),
        ("trunk to 4095", set(ovs(), "/spec/ovs/trunk/0/maxId", json!(4095)), Schema),
        ("trunk reversed", set(ovs(), "/spec/ovs/trunk/0/minId", json!(21)), Schema),
        ("bridge name too long", set(ovs(), "/spec/ovs/bridge", json!("a-very-long-bridge")), Schema),
        ("VNI above 24 bits", set(ovs(), "/spec/ovs/geneve/vni", json!(16_777_216)), Schema),
        ("Geneve port 0", set(ovs(), "/spec/ovs/geneve/dstPort", json!(0)), Schema),
        ("ipam not an object", set(n(), "/spec/ipam", json!("host-local")), Schema),
        ("ipam without type", set(n(), "/spec/ipam", json!({"subnet": "10.0.0.0/8"})), Schema),
        ("ipam with empty type", set(n(), "/spec/ipam", json!({"type": ""})), Schema),
        ("capability name with a dash", set(n(), "/spec/capabilities", json!({"device-id": true})), Schema),
        ("meta plugin without type", set(n(), "/spec/metaPlugins", json!([{"sysctl": {}}])), Schema),
        ("meta plugin not an object", set(n(), "/spec/metaPlugins", json!(["tuning"])), Schema),
        ("meta plugin is ours", set(n(), "/spec/metaPlugins", json!([{"type": "smartnic"}])), Webhook),
        ("log file as a path", set(n(), "/spec/logFile", json!("/etc/cron.d/x")), Schema),
        ("log file with ..", set(n(), "/spec/logFile", json!("../../etc/passwd")), Schema),
        ("log file hidden", set(n(), "/spec/logFile", json!(".x")), Schema),
        ("log level verbose", set(n(), "/spec/logLevel", json!("verbose")), Schema),
        ("spoofChk as \"on\"", set(n(), "/spec/spoofChk", json!("on")), Schema),
        // NicPool
        ("maxUnavailable -1", set(pool(), "/spec/maxUnavailable", json!(-1)), Schema),
        ("maxUnavailable 0%", set(pool(), "/spec/maxUnavailable", json!("0%")), Schema),
        ("maxUnavailable 101%", set(pool(), "/spec/maxUnavailable", json!("101%")), Schema),
        ("maxUnavailable half", set(pool(), "/spec/maxUnavailable", json!("half")), Schema),
        ("maxUnavailable digits as a string", set(pool(), "/spec/maxUnavailable", json!("5")), Webhook),
        ("pool label key=value", set(pool(), "/spec/nodeSelector", json!({"matchLabels": {"a=b": ""}})), Webhook),
        ("rdmaMode other", set(pool(), "/spec/rdmaMode", json!("private")), Schema),
        // NicOperatorConfig
        ("config not named default", set(config(), "/metadata/name", json!("other")), Schema),
        ("prefix not a DNS subdomain", set(config(), "/spec/resourcePrefix", json!("Smartnic.io")), Schema),
        ("prefix with an empty label", set(config(), "/spec/resourcePrefix", json!("a..b")), Schema),
        ("config log level verbose", set(config(), "/spec/logLevel", json!("verbose")), Schema),
    ]
}

#[test]
fn webhook_and_schema_agree_on_every_single_object_rule() {
    let mut failures = Vec::new();
    let all = cases();
    for (what, doc, place) in &all {
        let hook = webhook(doc);
        let schema = check_object(doc).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        match (place, &hook, &schema) {
            (_, Ok(()), Err(s)) => failures.push(format!(
                "{what}: the schema refuses what the webhook accepts: {s}"
            )),
            (Valid, Err(h), _) => {
                failures.push(format!("{what}: the webhook refuses a valid case: {h}"));
            }
            (Schema | Webhook, Ok(()), _) => {
                failures.push(format!("{what}: the webhook accepts it; the case tests nothing"));
            }
            (Schema, Err(_), Ok(())) => failures.push(format!(
                "{what}: the webhook refuses it, the schema accepts it (a bound or CEL rule is missing)"
            )),
            (Webhook, Err(_), Err(s)) => failures.push(format!(
                "{what}: marked webhook-only, but the schema refuses it too ({s}): mark it Schema"
            )),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
