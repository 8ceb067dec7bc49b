//! Admission decisions: each case builds an `AdmissionReview` as the API server sends it, runs
//! [`review`] over caches filled like the watches would, and checks allowed/denied and that the
//! message names the field.

use kube::core::admission::AdmissionResponse;
use serde_json::{Value, json};

use super::*;
use planner::fixtures::cx6;

use crate::{
    context::Stores,
    controller::fixtures::{TestStores, node, node_state, with_inventory},
};

fn stores() -> (Stores, TestStores) {
    let (s, w) = Stores::new();
    (s, TestStores(w))
}

fn request(kind: Kind, op: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let (resource, namespaced) = match kind {
        Kind::Policy => ("nicpolicies", false),
        Kind::Network => ("nicnetworks", true),
        Kind::Pool => ("nicpools", false),
        Kind::OperatorConfig => ("nicoperatorconfigs", false),
    };
    let name = object["metadata"]["name"].clone();
    let mut req = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "smartnic.io", "version": "v1alpha1", "kind": kind.name()},
        "resource": {"group": "smartnic.io", "version": "v1alpha1", "resource": resource},
        "name": name,
        "operation": op,
        "userInfo": {"username": "admin", "groups": ["system:masters"]},
        "object": if op == "DELETE" { Value::Null } else { object.clone() },
        "oldObject": old.unwrap_or(Value::Null),
        "dryRun": false
    });
    if namespaced {
        req["namespace"] = object["metadata"]["namespace"].clone();
    }
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}),
    )
    .unwrap()
}

fn respond(
    kind: Kind,
    op: &str,
    object: Value,
    old: Option<Value>,
    stores: &Stores,
) -> AdmissionResponse {
    let out = review(kind, &request(kind, op, object, old), stores);
    let resp = out.response.expect("a response");
    assert_eq!(
        resp.uid, "705ab4f5-6393-11e8-b7cc-42010a800002",
        "uid is echoed"
    );
    resp
}

fn create(kind: Kind, object: Value, stores: &Stores) -> AdmissionResponse {
    respond(kind, "CREATE", object, None, stores)
}

#[track_caller]
fn assert_denied(resp: &AdmissionResponse, field: &str) {
    assert!(!resp.allowed, "expected a denial naming {field}");
    assert!(
        resp.result.message.contains(&format!("{field}:")),
        "message must name {field}: {}",
        resp.result.message
    );
    assert_eq!(resp.result.code, 422);
}

#[track_caller]
fn assert_allowed(resp: &AdmissionResponse) {
    assert!(
        resp.allowed,
        "expected allowed, got: {}",
        resp.result.message
    );
}

/// A valid policy: NVIDIA PFs named ens1f0 on gpu nodes, VFs 0-3 of 8, resource cx6_vf.
fn policy(name: &str) -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicy",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"matchLabels": {"gpu": "true"}},
            "nicSelector": {"vendor": "15b3", "pfNames": ["ens1f0#0-3"]},
            "numVfs": 8,
            "resourceName": "cx6_vf",
            "priority": 10
        }
    })
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut v;
    for (i, p) in path.iter().enumerate() {
        if i == path.len() - 1 {
            cur[*p] = value;
            break;
        }
        cur = &mut cur[*p];
    }
    v
}

fn policy_with(path: &[&str], value: Value) -> Value {
    let mut full = vec!["spec"];
    full.extend_from_slice(path);
    with(policy("p1"), &full, value)
}

fn typed_policy(v: Value) -> NicPolicy {
    serde_json::from_value(v).unwrap()
}

// === NicPolicy: single-object checks ===

#[test]
fn policy_valid_is_allowed() {
    let (s, _w) = stores();
    assert_allowed(&create(Kind::Policy, policy("p1"), &s));
}

#[test]
fn policy_zero_vfs_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Policy, policy_with(&["numVfs"], json!(0)), &s),
        "spec.numVfs",
    );
}

#[test]
fn policy_empty_node_selector_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Policy, policy_with(&["nodeSelector"], json!({})), &s),
        "spec.nodeSelector",
    );
}

#[test]
fn policy_empty_nic_selector_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Policy, policy_with(&["nicSelector"], json!({})), &s),
        "spec.nicSelector",
    );
}

#[test]
fn policy_vendor_with_0x_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["nicSelector", "vendor"], json!("0x15b3")),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.vendor");
}

#[test]
fn policy_bad_device_id_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["nicSelector", "deviceId"], json!("10 1d")),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.deviceId");
}

#[test]
fn policy_prefixed_resource_name_is_denied_with_the_fix() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["resourceName"], json!("smartnic.io/cx6_vf")),
        &s,
    );
    assert_denied(&r, "spec.resourceName");
    assert!(
        r.result.message.contains("write \"cx6_vf\""),
        "{}",
        r.result.message
    );
}

#[test]
fn policy_resource_name_with_dot_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(
            Kind::Policy,
            policy_with(&["resourceName"], json!("cx6.vf")),
            &s,
        ),
        "spec.resourceName",
    );
}

#[test]
fn policy_vf_range_beyond_num_vfs_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["nicSelector", "pfNames"], json!(["ens1f0#4-9"])),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.pfNames[0]");
}

#[test]
fn policy_root_device_not_a_pci_address_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["nicSelector", "rootDevices"], json!(["3b:00.0"])),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.rootDevices[0]");
}

#[test]
fn policy_pf_listed_twice_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(
            &["nicSelector", "pfNames"],
            json!(["ens1f0#0-1", "ens1f0#2-3"]),
        ),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.pfNames[1]");
}

#[test]
fn policy_mtu_below_68_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Policy, policy_with(&["mtu"], json!(60)), &s),
        "spec.mtu",
    );
}

#[test]
fn policy_priority_above_99_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Policy, policy_with(&["priority"], json!(100)), &s),
        "spec.priority",
    );
}

#[test]
fn policy_rdma_with_vfio_is_denied() {
    let (s, _w) = stores();
    let p = with(
        policy_with(&["deviceType"], json!("vfio-pci")),
        &["spec", "isRdma"],
        json!(true),
    );
    assert_denied(&create(Kind::Policy, p, &s), "spec.isRdma");
}

#[test]
fn policy_switchdev_on_infiniband_is_denied() {
    let (s, _w) = stores();
    let p = with(
        policy_with(&["eswitchMode"], json!("switchdev")),
        &["spec", "linkType"],
        json!("ib"),
    );
    assert_denied(&create(Kind::Policy, p, &s), "spec.eswitchMode");
}

#[test]
fn policy_firmware_on_externally_managed_is_denied() {
    let (s, _w) = stores();
    let p = with(
        policy_with(&["externallyManaged"], json!(true)),
        &["spec", "firmware"],
        json!({"totalVfs": 16}),
    );
    assert_denied(&create(Kind::Policy, p, &s), "spec.firmware");
}

#[test]
fn policy_firmware_total_below_num_vfs_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Policy,
        policy_with(&["firmware"], json!({"totalVfs": 4})),
        &s,
    );
    assert_denied(&r, "spec.firmware.totalVfs");
}

#[test]
fn policy_unknown_selector_operator_is_denied() {
    let (s, _w) = stores();
    let sel =
        json!({"matchExpressions": [{"key": "gpu", "operator": "Equals", "values": ["true"]}]});
    let r = create(Kind::Policy, policy_with(&["nodeSelector"], sel), &s);
    assert_denied(&r, "spec.nodeSelector.matchExpressions[0].operator");
}

#[test]
fn policy_of_the_wrong_shape_is_denied_not_dropped() {
    let (s, _w) = stores();
    let r = create(Kind::Policy, policy_with(&["numVfs"], json!("eight")), &s);
    assert_denied(&r, "spec");
}

// === NicPolicy: cross-object checks ===

#[test]
fn policy_claiming_vfs_another_policy_holds_is_denied_naming_it() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("other")));
    let r = create(
        Kind::Policy,
        policy_with(&["nicSelector", "pfNames"], json!(["ens1f0#2-5"])),
        &s,
    );
    assert_denied(&r, "spec.nicSelector.pfNames[0]");
    assert!(
        r.result.message.contains("policy other"),
        "{}",
        r.result.message
    );
}

#[test]
fn policy_with_disjoint_vf_range_next_to_another_is_allowed() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("other")));
    let p = policy_with(&["nicSelector", "pfNames"], json!(["ens1f0#4-7"]));
    let p = with(p, &["spec", "resourceName"], json!("cx6_vf_b"));
    assert_allowed(&create(Kind::Policy, p, &s));
}

#[test]
fn policy_num_vfs_above_a_nodes_total_vfs_is_denied_naming_the_node() {
    let (s, mut w) = stores();
    let n1 = node("n1", &[("gpu", "true")]);
    w.node(n1.clone());
    w.node_state(with_inventory(
        node_state("n1", &n1, Default::default()),
        vec![cx6("0000:3b:00.0", "ens1f0")],
    ));
    let r = create(Kind::Policy, policy_with(&["numVfs"], json!(32)), &s);
    assert_denied(&r, "spec.numVfs");
    assert!(
        r.result.message.contains("n1") && r.result.message.contains("sriov_totalvfs 16"),
        "{}",
        r.result.message
    );
}

#[test]
fn policy_sharing_a_resource_name_with_another_device_type_is_denied() {
    let (s, mut w) = stores();
    let mut other = typed_policy(policy("other"));
    other.spec.node_selector.match_labels = Some([("rack".to_owned(), "b".to_owned())].into());
    w.policy(other);
    let p = policy_with(&["deviceType"], json!("vfio-pci"));
    assert_denied(&create(Kind::Policy, p, &s), "spec.deviceType");
}

#[test]
fn policy_update_leaving_the_spec_alone_is_allowed_even_if_it_now_conflicts() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("other")));
    let mine = policy("p1");
    let relabelled = with(
        mine.clone(),
        &["metadata", "labels"],
        json!({"team": "net"}),
    );
    assert_allowed(&respond(Kind::Policy, "UPDATE", relabelled, Some(mine), &s));
}

#[test]
fn policy_update_changing_the_spec_is_checked() {
    let (s, _w) = stores();
    let old = policy("p1");
    let new = policy_with(&["numVfs"], json!(0));
    assert_denied(
        &respond(Kind::Policy, "UPDATE", new, Some(old), &s),
        "spec.numVfs",
    );
}

#[test]
fn policy_delete_is_allowed() {
    let (s, _w) = stores();
    assert_allowed(&respond(
        Kind::Policy,
        "DELETE",
        policy("p1"),
        Some(policy("p1")),
        &s,
    ));
}

#[test]
fn policy_selecting_no_known_node_is_allowed_with_a_warning() {
    let (s, mut w) = stores();
    w.node(node("n9", &[("gpu", "false")]));
    let r = create(Kind::Policy, policy("p1"), &s);
    assert_allowed(&r);
    assert!(
        r.warnings
            .unwrap_or_default()
            .iter()
            .any(|w| w.contains("matches no node"))
    );
}

// === NicNetwork ===

fn network(spec: Value) -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNetwork",
        "metadata": {"name": "net1", "namespace": "tenant-a"},
        "spec": spec
    })
}

#[test]
fn network_valid_sriov_is_allowed() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("p1")));
    let r = create(
        Kind::Network,
        network(json!({"resourceName": "cx6_vf", "vlan": 100, "ipam": {"type": "whereabouts"}})),
        &s,
    );
    assert_allowed(&r);
    assert!(r.warnings.is_none(), "{:?}", r.warnings);
}

#[test]
fn network_vlan_above_4094_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(
            Kind::Network,
            network(json!({"resourceName": "cx6_vf", "vlan": 5000})),
            &s,
        ),
        "spec.vlan",
    );
}

#[test]
fn network_sriov_without_resource_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(Kind::Network, network(json!({"mode": "sriov"})), &s),
        "spec.resourceName",
    );
}

#[test]
fn network_sriov_with_mtu_is_denied() {
    let (s, _w) = stores();
    assert_denied(
        &create(
            Kind::Network,
            network(json!({"resourceName": "cx6_vf", "mtu": 9000})),
            &s,
        ),
        "spec.mtu",
    );
}

#[test]
fn network_macvlan_with_vlan_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Network,
        network(json!({"mode": "macvlan", "master": "ens1f0", "vlan": 10})),
        &s,
    );
    assert_denied(&r, "spec.vlan");
}

#[test]
fn network_macvlan_with_master_and_resource_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Network,
        network(json!({"mode": "macvlan", "master": "ens1f0", "resourceName": "cx6_vf"})),
        &s,
    );
    assert_denied(&r, "spec.master");
}

/// The tenant attacks the CNI refuses on the node, refused here first.
#[test]
fn network_naming_host_paths_or_interfaces_not_granted_is_denied() {
    let (s, mut w) = stores();
    let mut cfg = NicOperatorConfig::new("default", Default::default());
    cfg.spec.tenant_allow_list.masters = vec![crds::cni::HostInterfaceGrant {
        name: "ens1f0".into(),
        namespaces: Some(vec!["tenant-a".into()]),
    }];
    w.config(cfg);
    let macvlan = |extra: Value| {
        let mut spec = json!({"mode": "macvlan", "master": "ens1f0"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        network(spec)
    };
    assert_allowed(&create(Kind::Network, macvlan(json!({})), &s));
    for (extra, field) in [
        (json!({"master": "eno1"}), "spec.master"),
        (json!({"master": "$(touch${IFS}Y)"}), "spec.master"),
        (json!({"logFile": "/etc/cron.d/x"}), "spec.logFile"),
        (json!({"logFile": "../x"}), "spec.logFile"),
        (
            json!({"ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "dataDir": "/etc/x"}}),
            "spec.ipam.dataDir",
        ),
        (
            json!({"ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "resolvConf": "/etc/shadow"}}),
            "spec.ipam.resolvConf",
        ),
    ] {
        assert_denied(&create(Kind::Network, macvlan(extra.clone()), &s), field);
    }
    let mut other_ns = macvlan(json!({}));
    other_ns["metadata"]["namespace"] = "tenant-b".into();
    assert_denied(&create(Kind::Network, other_ns, &s), "spec.master");
    let ovs =
        network(json!({"mode": "ovs", "resourceName": "cx6_vf", "ovs": {"bridge": "br-mgmt"}}));
    assert_denied(&create(Kind::Network, ovs, &s), "spec.ovs.bridge");
}

#[test]
fn network_vlan_qos_without_vlan_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Network,
        network(json!({"resourceName": "cx6_vf", "vlanQoS": 3})),
        &s,
    );
    assert_denied(&r, "spec.vlanQoS");
}

#[test]
fn network_min_rate_above_max_rate_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Network,
        network(json!({"resourceName": "cx6_vf", "minTxRate": 2000, "maxTxRate": 1000})),
        &s,
    );
    assert_denied(&r, "spec.minTxRate");
}

#[test]
fn network_geneve_vni_above_24_bits_is_denied() {
    let (s, _w) = stores();
    let spec =
        json!({"mode": "ovs", "resourceName": "cx6_vf", "ovs": {"geneve": {"vni": 16777216}}});
    assert_denied(
        &create(Kind::Network, network(spec), &s),
        "spec.ovs.geneve.vni",
    );
}

#[test]
fn network_for_a_resource_no_policy_provides_is_allowed_with_a_warning() {
    let (s, _w) = stores();
    let r = create(
        Kind::Network,
        network(json!({"resourceName": "nobody_vf"})),
        &s,
    );
    assert_allowed(&r);
    assert!(r.warnings.unwrap_or_default()[0].starts_with("spec.resourceName"));
}

#[test]
fn network_ovs_on_legacy_vfs_is_allowed_with_a_warning() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("p1")));
    let r = create(
        Kind::Network,
        network(json!({"mode": "ovs", "resourceName": "cx6_vf"})),
        &s,
    );
    assert_allowed(&r);
    assert!(r.warnings.unwrap_or_default()[0].contains("switchdev"));
}

#[test]
fn network_ib_on_ethernet_vfs_is_allowed_with_a_warning_and_a_bad_pkey_is_denied() {
    let (s, mut w) = stores();
    w.policy(typed_policy(policy("p1")));
    let r = create(
        Kind::Network,
        network(json!({"mode": "ib", "resourceName": "cx6_vf", "pkey": 32769})),
        &s,
    );
    assert_allowed(&r);
    assert!(r.warnings.unwrap_or_default()[0].contains("linkType: ib"));
    let r = create(
        Kind::Network,
        network(json!({"mode": "ib", "resourceName": "cx6_vf", "pkey": 32768})),
        &s,
    );
    assert_denied(&r, "spec.pkey");
}

// === NicPool ===

fn pool(name: &str, selector: Value, max: Value) -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicPool",
        "metadata": {"name": name},
        "spec": {"nodeSelector": selector, "maxUnavailable": max}
    })
}

#[test]
fn pool_valid_is_allowed() {
    let (s, _w) = stores();
    assert_allowed(&create(
        Kind::Pool,
        pool("r1", json!({"matchLabels": {"rack": "r1"}}), json!("25%")),
        &s,
    ));
}

#[test]
fn pool_percentage_above_100_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Pool,
        pool("r1", json!({"matchLabels": {"rack": "r1"}}), json!("150%")),
        &s,
    );
    assert_denied(&r, "spec.maxUnavailable");
}

#[test]
fn pool_negative_max_unavailable_is_denied() {
    let (s, _w) = stores();
    let r = create(
        Kind::Pool,
        pool("r1", json!({"matchLabels": {"rack": "r1"}}), json!(-1)),
        &s,
    );
    assert_denied(&r, "spec.maxUnavailable");
}

#[test]
fn pool_overlapping_another_pool_on_a_node_is_denied_naming_both() {
    let (s, mut w) = stores();
    w.node(node("n1", &[("rack", "r1"), ("gpu", "true")]));
    let other: NicPool = serde_json::from_value(pool(
        "gpus",
        json!({"matchLabels": {"gpu": "true"}}),
        json!(1),
    ))
    .unwrap();
    w.pool(other);
    let r = create(
        Kind::Pool,
        pool("r1", json!({"matchLabels": {"rack": "r1"}}), json!(1)),
        &s,
    );
    assert_denied(&r, "spec.nodeSelector");
    assert!(
        r.result.message.contains("n1") && r.result.message.contains("gpus"),
        "{}",
        r.result.message
    );
}

// === NicOperatorConfig ===

#[test]
fn operator_config_not_named_default_is_denied() {
    let (s, _w) = stores();
    let c = json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicOperatorConfig", "metadata": {"name": "mine"}, "spec": {}});
    assert_denied(&create(Kind::OperatorConfig, c, &s), "metadata.name");
}

#[test]
fn operator_config_bad_prefix_is_denied() {
    let (s, _w) = stores();
    let c = json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicOperatorConfig", "metadata": {"name": "default"}, "spec": {"resourcePrefix": "Smartnic_IO"}});
    assert_denied(&create(Kind::OperatorConfig, c, &s), "spec.resourcePrefix");
}

// === malformed reviews ===

#[test]
fn garbage_body_gets_an_invalid_response() {
    let (s, _w) = stores();
    let out = review(Kind::Policy, b"{not json", &s);
    let r = out.response.unwrap();
    assert!(!r.allowed);
    assert!(r.result.message.contains("cannot read the AdmissionReview"));
}

#[test]
fn review_without_request_gets_an_invalid_response() {
    let (s, _w) = stores();
    let body = serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
    )
    .unwrap();
    let r = review(Kind::Network, &body, &s).response.unwrap();
    assert!(!r.allowed);
    assert!(r.result.message.contains("no request"));
}

#[tokio::test]
async fn router_serves_the_review_over_http() {
    use tower::ServiceExt;
    let (s, _w) = stores();
    let body = request(
        Kind::Policy,
        "CREATE",
        policy_with(&["numVfs"], json!(0)),
        None,
    );
    let req = http::Request::post("/validate-nicpolicy")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let resp = router(s).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.numVfs")
    );
}
