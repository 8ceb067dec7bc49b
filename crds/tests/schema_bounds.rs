//! The generated CRD schemas alone (no webhook) reject documents that break a bound: each case
//! takes a valid object, changes one thing, and must be refused by the OpenAPI keywords or the CEL
//! rules, with the error on the named field.

use crds::schema_check::{SchemaError, check_object, crd_of_kind, open_api_schema, rule_warnings};
use serde_json::{Value, json};

fn policy() -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1",
        "kind": "NicPolicy",
        "metadata": {"name": "cx6"},
        "spec": {
            "nodeSelector": {"matchLabels": {"gpu": "true"}},
            "nicSelector": {"vendor": "15b3", "deviceId": "101d", "pfNames": ["ens1f0#0-3"], "rootDevices": []},
            "numVfs": 8,
            "mtu": 9000,
            "resourceName": "cx6_vf",
            "priority": 10,
            "firmware": {"totalVfs": 16}
        }
    })
}

fn network() -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1",
        "kind": "NicNetwork",
        "metadata": {"name": "fast", "namespace": "team-a"},
        "spec": {
            "resourceName": "cx6_vf",
            "vlan": 100,
            "vlanQoS": 3,
            "spoofChk": true,
            "minTxRate": 100,
            "maxTxRate": 1000,
            "ipam": {"type": "host-local", "subnet": "10.56.0.0/24"},
            "capabilities": {"ips": true},
            "metaPlugins": [{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}],
            "logLevel": "debug",
            "logFile": "cx6.log"
        }
    })
}

fn ovs_network() -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1",
        "kind": "NicNetwork",
        "metadata": {"name": "offload", "namespace": "team-a"},
        "spec": {
            "mode": "ovs",
            "resourceName": "cx6_sw",
            "mtu": 1500,
            "ovs": {"bridge": "br-int", "trunk": [{"minId": 10, "maxId": 20}],
                    "geneve": {"vni": 5001, "dstPort": 6081}}
        }
    })
}

fn pool() -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1",
        "kind": "NicPool",
        "metadata": {"name": "workers"},
        "spec": {"nodeSelector": {"matchLabels": {"pool": "a"}}, "maxUnavailable": "25%", "rdmaMode": "exclusive"}
    })
}

fn config() -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1",
        "kind": "NicOperatorConfig",
        "metadata": {"name": "default"},
        "spec": {"resourcePrefix": "example.com", "nodeSelector": {"smartnic": "yes"}}
    })
}

/// Sets (or, with `Value::Null` and `remove`, removes) the value at a JSON pointer.
fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = doc.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(m) => {
            m.insert(key.to_owned(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = value;
        }
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

fn show(errors: &[SchemaError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn valid_objects_pass() {
    for doc in [policy(), network(), ovs_network(), pool(), config()] {
        if let Err(e) = check_object(&doc) {
            panic!("{} was refused: {}", doc["kind"], show(&e));
        }
    }
    // macvlan on a host master, percentages and integers for maxUnavailable
    let macvlan = json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNetwork",
        "metadata": {"name": "m", "namespace": "x"},
        "spec": {"mode": "macvlan", "master": "eth1", "macvlanMode": "private", "mtu": 1400}});
    assert_eq!(check_object(&macvlan), Ok(()));
    for mu in [json!(0), json!(3), json!("100%"), json!("1%"), json!("05%")] {
        let doc = set(pool(), "/spec/maxUnavailable", mu.clone());
        assert_eq!(check_object(&doc), Ok(()), "maxUnavailable {mu}");
    }
    // the minimal policy: defaults fill the rest
    let minimal = json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicy",
        "metadata": {"name": "p"},
        "spec": {"nodeSelector": {"matchLabels": {"a": "b"}}, "nicSelector": {"vendor": "8086"},
                 "numVfs": 1, "resourceName": "r"}});
    assert_eq!(check_object(&minimal), Ok(()));
    // a whole-PF pool: no numVfs at all
    let whole = json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicy",
        "metadata": {"name": "p"},
        "spec": {"nodeSelector": {"matchLabels": {"a": "b"}}, "nicSelector": {"pfNames": ["ens2f0"]},
                 "wholePf": true, "deviceType": "vfio-pci", "resourceName": "r"}});
    assert_eq!(check_object(&whole), Ok(()));
}

/// (what, document, field the error must be reported on)
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        // NicPolicy
        (
            "numVfs 0",
            set(policy(), "/spec/numVfs", json!(0)),
            "spec.numVfs",
        ),
        (
            "numVfs above the PCI limit",
            set(policy(), "/spec/numVfs", json!(65536)),
            "spec.numVfs",
        ),
        (
            "priority 100",
            set(policy(), "/spec/priority", json!(100)),
            "spec.priority",
        ),
        ("mtu 67", set(policy(), "/spec/mtu", json!(67)), "spec.mtu"),
        (
            "mtu 65536",
            set(policy(), "/spec/mtu", json!(65536)),
            "spec.mtu",
        ),
        (
            "resource name with a dot",
            set(policy(), "/spec/resourceName", json!("cx6.vf")),
            "spec.resourceName",
        ),
        (
            "resource name with prefix",
            set(policy(), "/spec/resourceName", json!("smartnic.io/cx6")),
            "spec.resourceName",
        ),
        (
            "resource name ending in _",
            set(policy(), "/spec/resourceName", json!("cx6_")),
            "spec.resourceName",
        ),
        (
            "resource name of 64",
            set(policy(), "/spec/resourceName", json!("a".repeat(64))),
            "spec.resourceName",
        ),
        (
            "empty resource name",
            set(policy(), "/spec/resourceName", json!("")),
            "spec.resourceName",
        ),
        (
            "vendor 0x15b3",
            set(policy(), "/spec/nicSelector/vendor", json!("0x15b3")),
            "spec.nicSelector.vendor",
        ),
        (
            "device id 101",
            set(policy(), "/spec/nicSelector/deviceId", json!("101")),
            "spec.nicSelector.deviceId",
        ),
        (
            "pf name with /",
            set(policy(), "/spec/nicSelector/pfNames", json!(["a/b"])),
            "spec.nicSelector.pfNames[0]",
        ),
        (
            "pf name of 16",
            set(
                policy(),
                "/spec/nicSelector/pfNames",
                json!(["sixteen-chars-xx"]),
            ),
            "spec.nicSelector.pfNames[0]",
        ),
        (
            "pf range with letters",
            set(policy(), "/spec/nicSelector/pfNames", json!(["ens1f0#a-b"])),
            "spec.nicSelector.pfNames[0]",
        ),
        (
            "root device device 20",
            set(
                policy(),
                "/spec/nicSelector/rootDevices",
                json!(["0000:3b:20.0"]),
            ),
            "spec.nicSelector.rootDevices[0]",
        ),
        (
            "root device without domain",
            set(
                policy(),
                "/spec/nicSelector/rootDevices",
                json!(["3b:00.0"]),
            ),
            "spec.nicSelector.rootDevices[0]",
        ),
        (
            "network namespace with capitals",
            set(policy(), "/spec/networkNamespaces", json!(["Team-A"])),
            "spec.networkNamespaces[0]",
        ),
        (
            "deviceType vfio",
            set(policy(), "/spec/deviceType", json!("vfio")),
            "spec.deviceType",
        ),
        (
            "empty node selector",
            set(policy(), "/spec/nodeSelector", json!({})),
            "spec.nodeSelector",
        ),
        (
            "empty nic selector",
            set(policy(), "/spec/nicSelector", json!({})),
            "spec.nicSelector",
        ),
        (
            "rdma with vfio-pci",
            set(
                set(policy(), "/spec/isRdma", json!(true)),
                "/spec/deviceType",
                json!("vfio-pci"),
            ),
            "spec.isRdma",
        ),
        (
            "switchdev on ib",
            set(
                set(policy(), "/spec/eswitchMode", json!("switchdev")),
                "/spec/linkType",
                json!("ib"),
            ),
            "spec.eswitchMode",
        ),
        (
            "firmware with externallyManaged",
            set(policy(), "/spec/externallyManaged", json!(true)),
            "spec.firmware",
        ),
        (
            "wholePf with VFs",
            set(
                set(
                    remove(policy(), "/spec/firmware"),
                    "/spec/wholePf",
                    json!(true),
                ),
                "/spec/nicSelector/pfNames",
                json!(["ens1f0"]),
            ),
            "spec.wholePf",
        ),
        (
            "wholePf with eswitchMode",
            set(
                set(
                    set(
                        remove(policy(), "/spec/firmware"),
                        "/spec/wholePf",
                        json!(true),
                    ),
                    "/spec/numVfs",
                    json!(0),
                ),
                "/spec/eswitchMode",
                json!("legacy"),
            ),
            "spec.wholePf",
        ),
        (
            "wholePf with a VF range",
            set(
                set(
                    set(
                        remove(policy(), "/spec/firmware"),
                        "/spec/wholePf",
                        json!(true),
                    ),
                    "/spec/numVfs",
                    json!(0),
                ),
                "/spec/nicSelector/pfNames",
                json!(["ens1f0#0-3"]),
            ),
            "spec.wholePf",
        ),
        (
            "numVfs missing without wholePf",
            remove(policy(), "/spec/numVfs"),
            "spec.numVfs",
        ),
        (
            "firmware totalVfs below numVfs",
            set(policy(), "/spec/firmware/totalVfs", json!(4)),
            "spec.firmware.totalVfs",
        ),
        (
            "unknown field",
            set(policy(), "/spec/numVf", json!(8)),
            "spec",
        ),
        // NicNetwork
        (
            "vlan 4095",
            set(network(), "/spec/vlan", json!(4095)),
            "spec.vlan",
        ),
        (
            "vlan 5000",
            set(network(), "/spec/vlan", json!(5000)),
            "spec.vlan",
        ),
        (
            "vlan -1",
            set(network(), "/spec/vlan", json!(-1)),
            "spec.vlan",
        ),
        (
            "vlanQoS 8",
            set(network(), "/spec/vlanQoS", json!(8)),
            "spec.vlanQoS",
        ),
        (
            "vlanQoS without vlan",
            set(network(), "/spec/vlan", json!(0)),
            "spec.vlanQoS",
        ),
        (
            "802.1ad without vlan",
            set(
                remove(
                    set(network(), "/spec/vlanProto", json!("802.1ad")),
                    "/spec/vlan",
                ),
                "/spec/vlanQoS",
                json!(0),
            ),
            "spec.vlanProto",
        ),
        (
            "minTxRate above maxTxRate",
            set(network(), "/spec/minTxRate", json!(2000)),
            "spec.minTxRate",
        ),
        (
            "spoofChk as on",
            set(network(), "/spec/spoofChk", json!("on")),
            "spec.spoofChk",
        ),
        (
            "sriov without resource",
            remove(network(), "/spec/resourceName"),
            "spec.resourceName",
        ),
        (
            "mtu in sriov",
            set(network(), "/spec/mtu", json!(1500)),
            "spec.mtu",
        ),
        (
            "master in sriov",
            set(network(), "/spec/master", json!("eth1")),
            "spec.master",
        ),
        (
            "macvlanMode in sriov",
            set(network(), "/spec/macvlanMode", json!("bridge")),
            "spec.macvlanMode",
        ),
        (
            "ovs options in sriov",
            set(network(), "/spec/ovs", json!({"bridge": "br0"})),
            "spec.ovs",
        ),
        (
            "ipam without type",
            set(network(), "/spec/ipam", json!({"subnet": "10.0.0.0/24"})),
            "spec.ipam",
        ),
        (
            "ipam as a string",
            set(network(), "/spec/ipam", json!("{\"type\":\"host-local\"}")),
            "spec.ipam",
        ),
        (
            "capability with a dash",
            set(network(), "/spec/capabilities", json!({"device-id": true})),
            "spec.capabilities",
        ),
        (
            "meta plugin without type",
            set(network(), "/spec/metaPlugins", json!([{"mtu": 1500}])),
            "spec.metaPlugins[0]",
        ),
        (
            "log level trace",
            set(network(), "/spec/logLevel", json!("trace")),
            "spec.logLevel",
        ),
        (
            "log file as a path on the node",
            set(network(), "/spec/logFile", json!("/etc/cron.d/smartnic")),
            "spec.logFile",
        ),
        (
            "log file climbing out of the log directory",
            set(network(), "/spec/logFile", json!("../shadow")),
            "spec.logFile",
        ),
        (
            "shell syntax in a master",
            set(
                remove(
                    set(network(), "/spec/mode", json!("macvlan")),
                    "/spec/resourceName",
                ),
                "/spec/master",
                json!("$(touch${IFS}Y)"),
            ),
            "spec.master",
        ),
        (
            "mode bridge",
            set(network(), "/spec/mode", json!("bridge")),
            "spec.mode",
        ),
        (
            "trunk with vlan",
            set(ovs_network(), "/spec/vlan", json!(10)),
            "spec.ovs.trunk",
        ),
        (
            "trunk minId 0",
            set(ovs_network(), "/spec/ovs/trunk/0/minId", json!(0)),
            "spec.ovs.trunk[0].minId",
        ),
        (
            "trunk maxId 4095",
            set(ovs_network(), "/spec/ovs/trunk/0/maxId", json!(4095)),
            "spec.ovs.trunk[0].maxId",
        ),
        (
            "trunk reversed",
            set(ovs_network(), "/spec/ovs/trunk/0/minId", json!(30)),
            "spec.ovs.trunk[0].minId",
        ),
        (
            "vni above 24 bits",
            set(ovs_network(), "/spec/ovs/geneve/vni", json!(16_777_216)),
            "spec.ovs.geneve.vni",
        ),
        (
            "geneve port 0",
            set(ovs_network(), "/spec/ovs/geneve/dstPort", json!(0)),
            "spec.ovs.geneve.dstPort",
        ),
        (
            "bridge name with /",
            set(ovs_network(), "/spec/ovs/bridge", json!("br/0")),
            "spec.ovs.bridge",
        ),
        (
            "spoofChk in ovs",
            set(ovs_network(), "/spec/spoofChk", json!(true)),
            "spec.spoofChk",
        ),
        // NicPool
        (
            "maxUnavailable -1",
            set(pool(), "/spec/maxUnavailable", json!(-1)),
            "spec.maxUnavailable",
        ),
        (
            "maxUnavailable 0%",
            set(pool(), "/spec/maxUnavailable", json!("0%")),
            "spec.maxUnavailable",
        ),
        (
            "maxUnavailable 101%",
            set(pool(), "/spec/maxUnavailable", json!("101%")),
            "spec.maxUnavailable",
        ),
        (
            "maxUnavailable words",
            set(pool(), "/spec/maxUnavailable", json!("half")),
            "spec.maxUnavailable",
        ),
        (
            "rdmaMode other",
            set(pool(), "/spec/rdmaMode", json!("private")),
            "spec.rdmaMode",
        ),
        // NicOperatorConfig
        (
            "config not named default",
            set(config(), "/metadata/name", json!("mine")),
            "",
        ),
        (
            "prefix with capitals",
            set(config(), "/spec/resourcePrefix", json!("Example.com")),
            "spec.resourcePrefix",
        ),
        (
            "prefix with slash",
            set(config(), "/spec/resourcePrefix", json!("example.com/x")),
            "spec.resourcePrefix",
        ),
    ]
}

#[test]
fn each_broken_bound_is_refused_by_the_schema_alone() {
    let mut failures = Vec::new();
    for (what, doc, field) in cases() {
        match check_object(&doc) {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(errors) => {
                // the error names the field itself or, for an object-level rule, the object
                if !errors.iter().any(|e| e.field == field) {
                    failures.push(format!(
                        "{what}: expected an error on {field:?}, got {}",
                        show(&errors)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_cel_rule_compiles_within_the_api_server_cost_budget() {
    for crd in crds::generate::crds() {
        let schema = open_api_schema(&crd);
        let warnings = rule_warnings(&schema);
        assert!(
            warnings.is_empty(),
            "{}: {warnings:#?}",
            crd.spec.names.kind
        );
    }
    assert!(crd_of_kind("NicPolicy").is_some());
}
