//! The injector on `AdmissionReview` fixtures as the API server sends them: the patch is applied
//! to the pod and the result read back.

use crds::{NetworkAttachmentDefinition, NicOperatorConfig, nad::NetworkAttachmentDefinitionSpec};
use kube::core::ObjectMeta;
use serde_json::{Value, json};

use super::*;
use crate::{context::Stores, controller::fixtures::TestStores, webhook::review_pod};

fn nad(ns: &str, name: &str, resource: Option<&str>) -> NetworkAttachmentDefinition {
    NetworkAttachmentDefinition {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: resource.map(|r| {
                [(ANNOTATION_NAD_RESOURCE_NAME.to_owned(), r.to_owned())]
                    .into_iter()
                    .collect()
            }),
            ..Default::default()
        },
        spec: NetworkAttachmentDefinitionSpec::default(),
    }
}

fn cluster() -> (Stores, TestStores) {
    let (s, w) = Stores::new();
    let mut w = TestStores(w);
    w.any_nad(nad("tenant", "fast-a", Some("smartnic.io/fast")));
    w.any_nad(nad("tenant", "fast-b", Some("smartnic.io/fast")));
    w.any_nad(nad("shared", "rdma", Some("smartnic.io/rdma")));
    w.any_nad(nad("tenant", "mac", None));
    w.any_nad(nad("tenant", "evil", Some("kubernetes.io/cpu")));
    (s, w)
}

fn pod(networks: Option<&str>, resources: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "tenant", "annotations": {}},
        "spec": {"containers": [
            {"name": "main", "image": "app:1", "resources": resources},
            {"name": "side", "image": "side:1"}
        ]}
    });
    if let Some(n) = networks {
        p["metadata"]["annotations"][ANNOTATION_NETWORKS] = n.into();
    }
    p
}

fn request(op: &str, pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0c9e5f3a-4a61-4d16-9d0a-3f1f4cb0a001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "tenant",
            "operation": op,
            "userInfo": {"username": "alice"},
            "object": pod,
            "oldObject": null,
            "dryRun": false
        }
    }))
    .unwrap()
}

/// The response and the pod after its patch (unchanged when there is none).
fn admit(stores: &Stores, op: &str, pod: Value) -> (AdmissionResponse, Value) {
    let resp = review_pod(&request(op, &pod), stores).response.unwrap();
    assert!(resp.allowed, "the injector never refuses a pod: {resp:?}");
    assert_eq!(resp.uid, "0c9e5f3a-4a61-4d16-9d0a-3f1f4cb0a001");
    let v = serde_json::to_value(&resp).unwrap();
    let mut out = pod;
    if let Some(bytes) = &resp.patch {
        assert_eq!(v["patchType"], "JSONPatch");
        let patch: json_patch::Patch = serde_json::from_slice(bytes).unwrap();
        json_patch::patch(&mut out, &patch).unwrap();
        let _: Pod = serde_json::from_value(out.clone()).expect("the patched pod is a Pod");
    }
    (resp, out)
}

fn first(pod: &Value) -> &Value {
    &pod["spec"]["containers"][0]["resources"]
}

#[test]
fn comma_and_json_forms_name_the_same_networks() {
    let want = vec![
        NetworkRef {
            namespace: "tenant".into(),
            name: "fast-a".into(),
        },
        NetworkRef {
            namespace: "shared".into(),
            name: "rdma".into(),
        },
    ];
    assert_eq!(
        parse_networks(" fast-a , shared/rdma@net2,", "tenant").unwrap(),
        want
    );
    assert_eq!(
        parse_networks(
            r#"[{"name":"fast-a"},{"name":"rdma","namespace":"shared","interface":"net2"}]"#,
            "tenant"
        )
        .unwrap(),
        want
    );
    assert_eq!(parse_networks("", "tenant").unwrap(), vec![]);
}

#[test]
fn hostile_annotations_are_refused_with_the_reason_and_never_panic() {
    let long = "a,".repeat(MAX_ANNOTATION_BYTES);
    assert!(
        parse_networks(&long, "t")
            .unwrap_err()
            .contains("bytes long")
    );
    let many = vec!["n"; MAX_NETWORKS + 1].join(",");
    assert!(
        parse_networks(&many, "t")
            .unwrap_err()
            .contains("65 networks")
    );
    assert!(parse_networks("[{", "t").unwrap_err().contains("JSON"));
    assert!(
        parse_networks(r#"[{"nam":"x"}]"#, "t")
            .unwrap_err()
            .contains("entry 0")
    );
    assert!(
        parse_networks(r#"[{"name":"x","namespace":7}]"#, "t")
            .unwrap_err()
            .contains("namespace")
    );
    assert!(
        parse_networks("../etc/passwd", "t")
            .unwrap_err()
            .contains("namespace")
    );
    assert!(parse_networks("Ünï/cødé", "t").is_err());
    for s in ["@", "/", "a/", "/b", "a/b/c", "[1,2]", "[null]", "\u{0}"] {
        assert!(parse_networks(s, "t").is_err(), "{s:?}");
    }
}

#[test]
fn only_extended_resources_outside_kubernetes_io_are_injected() {
    assert!(is_extended_resource("smartnic.io/fast"));
    assert!(is_extended_resource("intel.com/sriov_netdevice"));
    for r in [
        "cpu",
        "memory",
        "kubernetes.io/x",
        "requests.kubernetes.io/x",
        "a/",
        "a/-x",
        "/x",
        "a/b/c",
        "Smart.io/x",
    ] {
        assert!(!is_extended_resource(r), "{r}");
    }
}

#[test]
fn requests_and_limits_are_summed_per_resource_on_the_first_container() {
    let (s, _w) = cluster();
    let (resp, out) = admit(
        &s,
        "CREATE",
        pod(
            Some("fast-a, fast-b@net2, shared/rdma, mac"),
            json!({"requests": {"cpu": "1"}}),
        ),
    );
    assert_eq!(resp.warnings, None);
    assert_eq!(
        first(&out),
        &json!({
            "requests": {"cpu": "1", "smartnic.io/fast": "2", "smartnic.io/rdma": "1"},
            "limits": {"smartnic.io/fast": "2", "smartnic.io/rdma": "1"}
        })
    );
    assert_eq!(out["spec"]["containers"][1].get("resources"), None);
}

#[test]
fn json_form_without_resources_block_gets_one() {
    let (s, _w) = cluster();
    let mut p = pod(Some(r#"[{"name":"fast-a","interface":"x"}]"#), Value::Null);
    p["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let (_, out) = admit(&s, "CREATE", p);
    assert_eq!(
        first(&out),
        &json!({"requests": {"smartnic.io/fast": "1"}, "limits": {"smartnic.io/fast": "1"}})
    );
}

#[test]
fn a_value_the_user_set_is_kept() {
    let (s, _w) = cluster();
    let (_, out) = admit(
        &s,
        "CREATE",
        pod(
            Some("fast-a, fast-b, shared/rdma"),
            json!({"limits": {"smartnic.io/fast": "5"}}),
        ),
    );
    assert_eq!(
        first(&out),
        &json!({
            "requests": {"smartnic.io/rdma": "1"},
            "limits": {"smartnic.io/fast": "5", "smartnic.io/rdma": "1"}
        })
    );
    // everything already set: no patch at all
    let (resp, _) = admit(
        &s,
        "CREATE",
        pod(
            Some("fast-a"),
            json!({"requests": {"smartnic.io/fast": "3"}, "limits": {"smartnic.io/fast": "3"}}),
        ),
    );
    assert_eq!(resp.patch, None);
}

#[test]
fn switched_off_in_the_operator_config_or_by_the_pod_label_nothing_changes() {
    let (s, mut w) = cluster();
    let mut off = pod(Some("fast-a"), json!({}));
    off["metadata"]["labels"] = json!({LABEL_INJECTOR: INJECTOR_DISABLED});
    let (resp, _) = admit(&s, "CREATE", off);
    assert_eq!(resp.patch, None);

    let mut cfg = NicOperatorConfig::new("default", Default::default());
    cfg.spec.features.network_resources_injector = false;
    w.config(cfg);
    let (resp, out) = admit(&s, "CREATE", pod(Some("fast-a"), json!({})));
    assert_eq!(resp.patch, None);
    assert_eq!(first(&out), &json!({}));
}

#[test]
fn problems_leave_the_pod_admitted_with_a_warning_naming_them() {
    let (s, _w) = cluster();
    let (resp, out) = admit(&s, "CREATE", pod(Some("fast-a, nope, evil"), json!({})));
    let warnings = resp.warnings.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("tenant/nope") && warnings[0].contains("no such"));
    assert!(warnings[1].contains("tenant/evil") && warnings[1].contains("kubernetes.io/cpu"));
    assert_eq!(first(&out)["limits"], json!({"smartnic.io/fast": "1"}));

    let (resp, _) = admit(&s, "CREATE", pod(Some("[{"), json!({})));
    assert_eq!(resp.patch, None);
    assert!(resp.warnings.unwrap()[0].contains(ANNOTATION_NETWORKS));
}

#[test]
fn updates_and_pods_without_networks_are_left_alone() {
    let (s, _w) = cluster();
    let (resp, _) = admit(&s, "UPDATE", pod(Some("fast-a"), json!({})));
    assert_eq!(resp.patch, None);
    let (resp, _) = admit(&s, "CREATE", pod(None, json!({})));
    assert_eq!((resp.patch, resp.warnings), (None, None));
}

#[tokio::test]
async fn router_serves_mutate_pods() {
    use tower::ServiceExt;
    let (s, _w) = cluster();
    let req = http::Request::post("/mutate-pods")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(request(
            "CREATE",
            &pod(Some("fast-a"), json!({})),
        )))
        .unwrap();
    let resp = crate::webhook::router(s).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["patchType"], "JSONPatch");
}
