//! The objects an administrator writes deserialize into the types, with the documented defaults.

use crds::{
    NicNetwork, NicNodeState, NicOperatorConfig, NicPolicy, NicPool,
    inventory::{EswitchMode, NicInventory},
    k8s::IntOrString,
    network::NetworkMode,
    node_state::NicNodeStateStatus,
    policy::VfDeviceType,
};

#[test]
fn the_issue_example_policy_parses_with_defaults() {
    let yaml = r#"
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: gpu-cx6
spec:
  nodeSelector:
    matchLabels:
      gpu: "true"
  nicSelector:
    vendor: "15b3"
    deviceId: "101d"
  numVfs: 8
  eswitchMode: switchdev
  resourceName: cx6_vf
"#;
    let p: NicPolicy = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(p.spec.num_vfs, 8);
    assert_eq!(p.spec.priority, 99, "default: lowest precedence");
    assert_eq!(p.spec.device_type, VfDeviceType::Netdevice);
    assert_eq!(p.spec.eswitch_mode, Some(EswitchMode::Switchdev));
    assert!(!p.spec.externally_managed);
}

#[test]
fn networks_pools_and_config_parse() {
    let n: NicNetwork = serde_saphyr::from_str(
        r#"
apiVersion: smartnic.io/v1alpha1
kind: NicNetwork
metadata: {name: fast, namespace: team-a}
spec:
  resourceName: cx6_vf
  vlan: 100
  vlanQoS: 3
  spoofChk: true
  ipam: {type: host-local, subnet: 10.56.0.0/24}
  capabilities: {ips: true}
"#,
    )
    .unwrap();
    assert_eq!(n.spec.mode, NetworkMode::Sriov);
    assert_eq!(n.spec.vlan_qos, Some(3));
    assert_eq!(n.spec.ipam.as_ref().unwrap()["subnet"], "10.56.0.0/24");

    let p: NicPool = serde_saphyr::from_str(
        "apiVersion: smartnic.io/v1alpha1\nkind: NicPool\nmetadata: {name: gpu}\nspec:\n  nodeSelector: {matchLabels: {gpu: \"true\"}}\n  maxUnavailable: 25%\n",
    )
    .unwrap();
    assert_eq!(
        p.spec.max_unavailable,
        Some(IntOrString::String("25%".into()))
    );

    let c: NicOperatorConfig = serde_saphyr::from_str(
        "apiVersion: smartnic.io/v1alpha1\nkind: NicOperatorConfig\nmetadata: {name: default}\nspec: {}\n",
    )
    .unwrap();
    assert_eq!(c.spec.resource_prefix, "smartnic.io");
    assert!(c.spec.features.drain);
}

#[test]
fn discover_output_is_a_valid_node_state_status() {
    let inv = NicInventory {
        nics: vec![crds::inventory::Nic {
            pci_address: "0000:3b:00.0".into(),
            vendor_id: "15b3".into(),
            device_id: "101d".into(),
            total_vfs: 16,
            ..Default::default()
        }],
    };
    // `smartnicctl discover -o json` output, unchanged, is a status the agent can write.
    let status: NicNodeStateStatus =
        serde_json::from_value(serde_json::to_value(&inv).unwrap()).unwrap();
    assert_eq!(status.nics, inv.nics);
    assert_eq!(status.sync_status, None);
    let mut s = NicNodeState::new("worker-1", Default::default());
    s.status = Some(status);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["status"]["nics"][0]["totalVfs"], 16);
    assert_eq!(v["kind"], "NicNodeState");
}
