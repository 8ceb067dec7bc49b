//! Field-by-field round trips and warnings of the conversion.

use crds::{NicNetwork, NicOperatorConfig, NicPolicy, NicPool};

use super::*;

fn one(doc: Value) -> (Value, Vec<String>) {
    let mut conv = Conversion::default();
    convert_object(&doc, &mut conv).unwrap();
    assert_eq!(conv.objects.len(), 1, "{:?}", conv.warnings);
    (conv.objects.remove(0), conv.warnings)
}

/// Converts `their` spec of `kind`, reads the result back through our typed object and
/// returns it re-serialised: a field that survives this is understood by our types.
fn through_our_types(kind: &str, their: Value) -> Value {
    let doc = json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": kind,
        "metadata": {"name": "x", "namespace": "sriov"}, "spec": their});
    let (o, _) = one(doc);
    match o["kind"].as_str().unwrap() {
        "NicPolicy" => serde_json::to_value(serde_json::from_value::<NicPolicy>(o).unwrap()),
        "NicNetwork" => serde_json::to_value(serde_json::from_value::<NicNetwork>(o).unwrap()),
        "NicPool" => serde_json::to_value(serde_json::from_value::<NicPool>(o).unwrap()),
        _ => serde_json::to_value(serde_json::from_value::<NicOperatorConfig>(o).unwrap()),
    }
    .unwrap()
}

fn base_policy() -> Value {
    json!({"resourceName": "intelnics", "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
           "numVfs": 8, "nicSelector": {"vendor": "8086"}})
}

fn with(mut base: Value, key: &str, v: Value) -> Value {
    base[key] = v;
    base
}

#[test]
fn every_policy_field_round_trips_into_our_types() {
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "resourceName",
            json!("intel_vf"),
            "/spec/resourceName",
            json!("intel_vf"),
        ),
        ("priority", json!(10), "/spec/priority", json!(10)),
        ("mtu", json!(9000), "/spec/mtu", json!(9000)),
        ("numVfs", json!(16), "/spec/numVfs", json!(16)),
        ("isRdma", json!(true), "/spec/isRdma", json!(true)),
        (
            "needVhostNet",
            json!(true),
            "/spec/needVhostNet",
            json!(true),
        ),
        (
            "excludeTopology",
            json!(true),
            "/spec/excludeTopology",
            json!(true),
        ),
        (
            "externallyManaged",
            json!(true),
            "/spec/externallyManaged",
            json!(true),
        ),
        (
            "deviceType",
            json!("vfio-pci"),
            "/spec/deviceType",
            json!("vfio-pci"),
        ),
        ("linkType", json!("ETH"), "/spec/linkType", json!("eth")),
        (
            "eSwitchMode",
            json!("switchdev"),
            "/spec/eswitchMode",
            json!("switchdev"),
        ),
        (
            "nodeSelector",
            json!({"a": "b"}),
            "/spec/nodeSelector/matchLabels",
            json!({"a": "b"}),
        ),
    ];
    for (field, v, pointer, want) in cases {
        let got = through_our_types("SriovNetworkNodePolicy", with(base_policy(), field, v));
        assert_eq!(got.pointer(pointer), Some(&want), "{field}: {got}");
    }
    let sel = json!({"vendor": "15b3", "deviceID": "101d", "pfNames": ["ens1f0#0-3"], "rootDevices": ["0000:3b:00.0"]});
    let got = through_our_types(
        "SriovNetworkNodePolicy",
        with(base_policy(), "nicSelector", sel),
    );
    assert_eq!(
        got["spec"]["nicSelector"],
        json!({"vendor": "15b3", "deviceId": "101d", "pfNames": ["ens1f0#0-3"], "rootDevices": ["0000:3b:00.0"]})
    );
}

fn base_network() -> Value {
    json!({"resourceName": "intelnics", "networkNamespace": "team-a"})
}

#[test]
fn every_network_field_round_trips_into_our_types() {
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "resourceName",
            json!("cx6"),
            "/spec/resourceName",
            json!("cx6"),
        ),
        ("vlan", json!(100), "/spec/vlan", json!(100)),
        ("vlanQoS", json!(3), "/spec/vlanQoS", json!(3)),
        (
            "vlanProto",
            json!("802.1Q"),
            "/spec/vlanProto",
            json!("802.1q"),
        ),
        ("spoofChk", json!("on"), "/spec/spoofChk", json!(true)),
        ("trust", json!("off"), "/spec/trust", json!(false)),
        (
            "linkState",
            json!("enable"),
            "/spec/linkState",
            json!("enable"),
        ),
        ("minTxRate", json!(100), "/spec/minTxRate", json!(100)),
        ("maxTxRate", json!(1000), "/spec/maxTxRate", json!(1000)),
        (
            "ipam",
            json!("{\"type\": \"host-local\", \"subnet\": \"10.56.217.0/24\"}"),
            "/spec/ipam",
            json!({"type": "host-local", "subnet": "10.56.217.0/24"}),
        ),
        (
            "capabilities",
            json!("{\"ips\": true, \"mac\": true}"),
            "/spec/capabilities",
            json!({"ips": true, "mac": true}),
        ),
        (
            "metaPlugins",
            json!(
                "{\"type\": \"tuning\", \"sysctl\": {\"net.ipv4.conf.IFNAME.arp_notify\": \"1\"}}, {\"type\": \"bandwidth\"}"
            ),
            "/spec/metaPlugins",
            json!([{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}, {"type": "bandwidth"}]),
        ),
        ("logLevel", json!("debug"), "/spec/logLevel", json!("debug")),
        (
            "logFile",
            json!("/tmp/sriov.log"),
            "/spec/logFile",
            json!("sriov.log"),
        ),
        (
            "networkNamespace",
            json!("team-b"),
            "/metadata/namespace",
            json!("team-b"),
        ),
    ];
    for (field, v, pointer, want) in cases {
        let got = through_our_types("SriovNetwork", with(base_network(), field, v));
        assert_eq!(got.pointer(pointer), Some(&want), "{field}: {got}");
        assert_eq!(got["spec"]["mode"], "sriov");
    }
}

#[test]
fn pool_and_operator_config_fields_round_trip_into_our_types() {
    let pool = json!({"nodeSelector": {"matchLabels": {"pool": "a"}}, "maxUnavailable": "25%", "rdmaMode": "exclusive"});
    let got = through_our_types("SriovNetworkPoolConfig", pool);
    assert_eq!(
        got["spec"]["nodeSelector"],
        json!({"matchLabels": {"pool": "a"}})
    );
    assert_eq!(got["spec"]["maxUnavailable"], "25%");
    assert_eq!(got["spec"]["rdmaMode"], "exclusive");
    let got = through_our_types("SriovNetworkPoolConfig", json!({"maxUnavailable": 2}));
    assert_eq!(got["spec"]["maxUnavailable"], 2);

    let cfg = json!({"configDaemonNodeSelector": {"node-role.kubernetes.io/worker": ""},
                     "logLevel": 2, "disableDrain": true, "enableOvsOffload": true});
    let got = through_our_types("SriovOperatorConfig", cfg);
    assert_eq!(got["metadata"]["name"], "default");
    assert_eq!(
        got["spec"]["nodeSelector"],
        json!({"node-role.kubernetes.io/worker": ""})
    );
    assert_eq!(got["spec"]["logLevel"], "trace");
    assert_eq!(got["spec"]["features"]["drain"], false);
    assert!(got["spec"]["features"].get("ovsHardwareOffload").is_none());
}

#[test]
fn what_has_no_counterpart_is_named_in_a_warning() {
    let doc = json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "p", "namespace": "sriov"},
        "spec": with(with(with(base_policy(), "vdpaType", json!("virtio")), "bridge", json!({"ovs": {}})),
                     "nicSelector", json!({"vendor": "8086", "netFilter": "openstack/NetworkID:x"}))});
    let (_, warnings) = one(doc);
    for field in ["spec.vdpaType", "spec.bridge", "spec.nicSelector.netFilter"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(field) && w.starts_with("SriovNetworkNodePolicy sriov/p")),
            "{field}: {warnings:?}"
        );
    }
    let mut conv = Conversion::default();
    convert_object(
        &json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "OVSNetwork", "metadata": {"name": "ovs"}}),
        &mut conv,
    )
    .unwrap();
    assert!(conv.objects.is_empty());
    assert!(
        conv.warnings[0].contains("OVSNetwork has no counterpart"),
        "{:?}",
        conv.warnings
    );
}

#[test]
fn multi_document_yaml_and_lists() {
    let text = "---\napiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetwork\nmetadata:\n  name: a\n  namespace: sriov\nspec:\n  resourceName: r\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: sriovnetwork.openshift.io/v1\n  kind: SriovNetworkPoolConfig\n  metadata:\n    name: p\n  spec:\n    maxUnavailable: 1\n---\n";
    let conv = convert_text(text).unwrap();
    let kinds: Vec<&str> = conv
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["NicNetwork", "NicPool"]);
    let yaml = render(&conv.objects, Format::Yaml).unwrap();
    let back: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(back, conv.objects);
    let list: Value = serde_json::from_str(&render(&conv.objects, Format::Json).unwrap()).unwrap();
    assert_eq!(list["kind"], "List");
}

/// `SriovIBNetwork` becomes a mode `ib` network; its own fields carry over, an Ethernet VF
/// setting (not theirs either) is named in a warning.
#[test]
fn an_ib_network_becomes_mode_ib() {
    let doc = json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovIBNetwork",
        "metadata": {"name": "ib-net", "namespace": "sriov"},
        "spec": {"resourceName": "mlnx_ib", "networkNamespace": "hpc", "linkState": "enable",
                 "capabilities": "{ \"infinibandGUID\": true }",
                 "ipam": "{\"type\": \"host-local\", \"subnet\": \"10.56.217.0/24\"}",
                 "vlan": 5}});
    let (o, warnings) = one(doc.clone());
    assert_eq!(o["kind"], "NicNetwork");
    assert_eq!(o["metadata"]["namespace"], "hpc");
    assert_eq!(o["spec"]["mode"], "ib");
    assert_eq!(o["spec"]["resourceName"], "mlnx_ib");
    assert_eq!(o["spec"]["linkState"], "enable");
    assert_eq!(o["spec"]["capabilities"]["infinibandGUID"], true);
    assert_eq!(o["spec"]["ipam"]["type"], "host-local");
    assert!(o["spec"].get("vlan").is_none());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("spec.vlan"), "{warnings:?}");
    // our types read it, and our checks accept it
    let typed: NicNetwork = serde_json::from_value(o).unwrap();
    assert_eq!(planner::validate::validate_network(&typed.spec), Ok(()));
}
