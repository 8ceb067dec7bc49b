//! The Helm chart (`deploy/helm/smartnic-operator`) against the kustomization (`deploy/`):
//! with its default values `helm template` renders the objects of `kubectl kustomize deploy`
//! field for field (all but the Namespace, which Helm needs to exist before an install; with
//! `namespace.create=true` that one too); `helm lint --strict` passes for every certificate
//! source; the chart's CRDs are the generated ones; and each value reaches what it promises
//! (images, nodeSelector, resourcePrefix, webhook certificate source, log level, namespace).
//!
//! helm is the pinned build of `hw-tests/helm/build.sh` (or `$SMARTNIC_HELM`); without it each
//! test prints `SKIP <name>: <reason>` and returns, and with `CI=true` fails.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

use deploy::{
    compare,
    helm::{self, HelmError, NAMESPACE},
    render,
};
use serde_json::{Value, json};

fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {reason} (CI=true: the tool must be there; .ci/run builds it)"
    );
    let line = format!("SKIP {test}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// `kubectl kustomize deploy`, once per process.
fn kustomize(test: &str) -> Option<Vec<Value>> {
    static RENDER: OnceLock<Result<Vec<Value>, (bool, String)>> = OnceLock::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match RENDER.get_or_init(|| render(&dir).map_err(|e| (e.is_unavailable(), e.to_string()))) {
        Ok(objects) => Some(objects.clone()),
        Err((true, reason)) => {
            skip(test, reason);
            None
        }
        Err((false, error)) => panic!("{error}"),
    }
}

/// The chart rendered in `namespace` with the extra `helm template` arguments.
fn chart_in(test: &str, namespace: &str, extra: &[&str]) -> Option<Vec<Value>> {
    match helm::template(namespace, extra) {
        Ok(objects) => Some(objects),
        Err(e) if e.is_unavailable() => {
            skip(test, &e.to_string());
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn chart(test: &str, extra: &[&str]) -> Option<Vec<Value>> {
    chart_in(test, NAMESPACE, extra)
}

/// What helm says when it refuses to render with `extra` (the test fails when it renders).
fn refusal(test: &str, extra: &[&str]) -> Option<String> {
    match helm::template(NAMESPACE, extra) {
        Ok(_) => panic!("helm template {extra:?} rendered; it should refuse"),
        Err(e) if e.is_unavailable() => {
            skip(test, &e.to_string());
            None
        }
        Err(e @ HelmError::Failed { .. }) => Some(e.to_string()),
        Err(e) => panic!("{e}"),
    }
}

fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn object<'a>(objects: &'a [Value], k: &str, n: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == k && name(o) == n)
        .unwrap_or_else(|| panic!("the render holds no {k} {n}"))
}

fn pod_spec<'a>(objects: &'a [Value], k: &str, n: &str) -> &'a Value {
    object(objects, k, n)
        .pointer("/spec/template/spec")
        .unwrap_or_else(|| panic!("{k} {n} has no pod template"))
}

/// The value of the env variable `var` of container `container` of workload `k`/`n`.
fn env<'a>(objects: &'a [Value], k: &str, n: &str, container: &str, var: &str) -> &'a str {
    pod_spec(objects, k, n)["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == container)
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{k} {n}: container {container} has no {var}"))
}

fn assert_same(test: &str, kustomize: &[Value], chart: &[Value]) {
    let report = compare::renders("kustomize", kustomize, "chart", chart);
    assert!(
        report.is_empty(),
        "{test}: the chart and `kubectl kustomize deploy` differ in {} place(s) (mirror the \
         kustomize file into deploy/helm/smartnic-operator/templates/):\n  {}",
        report.len(),
        report.join("\n  ")
    );
}

#[test]
fn with_default_values_the_chart_renders_the_kustomization_but_its_namespace() {
    let test = "with_default_values_the_chart_renders_the_kustomization_but_its_namespace";
    let Some(kustomized) = kustomize(test) else {
        return;
    };
    let Some(charted) = chart(test, &[]) else {
        return;
    };
    let namespaces: Vec<&Value> = kustomized
        .iter()
        .filter(|o| kind(o) == "Namespace")
        .collect();
    assert_eq!(namespaces.len(), 1, "the kustomization has one Namespace");
    assert_eq!(name(namespaces[0]), NAMESPACE);
    let without: Vec<Value> = kustomized
        .iter()
        .filter(|o| kind(o) != "Namespace")
        .cloned()
        .collect();
    assert_same(test, &without, &charted);
}

#[test]
fn with_namespace_create_the_chart_renders_the_kustomization_object_for_object() {
    let test = "with_namespace_create_the_chart_renders_the_kustomization_object_for_object";
    let Some(kustomized) = kustomize(test) else {
        return;
    };
    let Some(charted) = chart(test, &["--set", "namespace.create=true"]) else {
        return;
    };
    assert_same(test, &kustomized, &charted);
}

#[test]
fn helm_lint_passes_strictly_for_every_certificate_source() {
    let chart = helm::chart_dir();
    let chart = chart.to_string_lossy();
    let sources: [&[&str]; 3] = [
        &[],
        &["--set", "webhook.certificate.source=selfSigned"],
        &[
            "--set",
            "webhook.certificate.source=secret",
            "--set",
            "webhook.certificate.secret.caBundle=Q0E=",
        ],
    ];
    for extra in sources {
        let mut args = vec!["lint", "--strict", &chart, "--namespace", NAMESPACE];
        args.extend_from_slice(extra);
        match helm::run(&args) {
            Ok(out) => assert!(
                out.contains("0 chart(s) failed"),
                "helm lint {extra:?}: {out}"
            ),
            Err(e) if e.is_unavailable() => {
                return skip(
                    "helm_lint_passes_strictly_for_every_certificate_source",
                    &e.to_string(),
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn the_chart_crds_are_the_generated_ones_with_kustomizes_label() {
    let generated = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    let copies = helm::chart_dir().join("crds");
    let names = |dir: &PathBuf| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&copies),
        names(&generated),
        "the chart's crds/ and deploy/crds hold other files: run deploy/helm/sync-crds.sh"
    );
    for file in names(&generated) {
        let text = std::fs::read_to_string(generated.join(&file)).expect("read CRD");
        let copy = std::fs::read_to_string(copies.join(&file)).expect("read copy");
        assert!(
            copy == helm::chart_crd(&file, &text),
            "deploy/helm/smartnic-operator/crds/{file} is not deploy/crds/{file} with the part-of label: run deploy/helm/sync-crds.sh"
        );
    }
}

#[test]
fn images_can_be_overridden_per_component() {
    let test = "images_can_be_overridden_per_component";
    let Some(objects) = chart(
        test,
        &[
            "--set",
            "images.agent.repository=registry.example/smartnic-agent",
            "--set",
            "images.agent.tag=1.2.3",
            "--set",
            "images.agent.pullPolicy=Always",
            "--set",
            "images.cni.repository=registry.example/smartnic-cni",
        ],
    ) else {
        return;
    };
    let images = |k: &str, n: &str| -> Vec<(String, String)> {
        let spec = pod_spec(&objects, k, n);
        ["initContainers", "containers"]
            .iter()
            .flat_map(|f| spec[*f].as_array().into_iter().flatten())
            .map(|c| {
                (
                    c["image"].as_str().unwrap_or("").to_owned(),
                    c["imagePullPolicy"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let pair = |i: &str, p: &str| (i.to_owned(), p.to_owned());
    assert_eq!(
        images("DaemonSet", "smartnic-agent"),
        [pair("registry.example/smartnic-agent:1.2.3", "Always")]
    );
    // the tag defaults to the chart's appVersion, for both of the installer's containers
    assert_eq!(
        images("DaemonSet", "smartnic-cni-installer"),
        [
            pair("registry.example/smartnic-cni:0.1.0", "IfNotPresent"),
            pair("registry.example/smartnic-cni:0.1.0", "IfNotPresent")
        ]
    );
    assert_eq!(
        images("Deployment", "smartnic-operator"),
        [pair("smartnic-operator:0.1.0", "IfNotPresent")]
    );
    assert_eq!(
        images("DaemonSet", "smartnic-device-plugin"),
        [pair("smartnic-device-plugin:0.1.0", "IfNotPresent")]
    );
}

/// NicOperatorConfig `default` of a render, when the chart writes it.
fn operator_config(objects: &[Value]) -> Option<&Value> {
    objects
        .iter()
        .find(|o| kind(o) == "NicOperatorConfig" && name(o) == "default")
}

/// The hook annotations that let the config exist before the webhook on a first install and
/// never be deleted by an upgrade.
fn assert_config_is_an_in_place_hook(config: &Value) {
    assert_eq!(
        config.pointer("/metadata/annotations"),
        Some(&json!({"helm.sh/hook": "pre-install,pre-upgrade",
            "helm.sh/hook-delete-policy": "hook-failed"}))
    );
}

#[test]
fn the_node_selector_reaches_the_node_daemonsets_and_the_operator_config() {
    let test = "the_node_selector_reaches_the_node_daemonsets_and_the_operator_config";
    // Helm merges maps with the defaults: null drops the default's kubernetes.io/os
    let Some(objects) = chart(
        test,
        &[
            "--set-json",
            r#"nodeSelector={"kubernetes.io/os":null,"nic":"cx7"}"#,
        ],
    ) else {
        return;
    };
    let selector = |k: &str, n: &str| pod_spec(&objects, k, n)["nodeSelector"].clone();
    assert_eq!(
        selector("DaemonSet", "smartnic-agent"),
        json!({"nic": "cx7"})
    );
    assert_eq!(
        selector("DaemonSet", "smartnic-cni-installer"),
        json!({"nic": "cx7"})
    );
    assert_eq!(
        selector("DaemonSet", "smartnic-device-plugin"),
        json!({"nic": "cx7", "smartnic.io/device-plugin": "true"})
    );
    // the operator is not a node component
    assert_eq!(
        selector("Deployment", "smartnic-operator"),
        json!({"kubernetes.io/os": "linux"})
    );
    // the operator plans for the same nodes (and would set the DaemonSets' selector from it)
    let config = operator_config(&objects)
        .expect("a nodeSelector of its own writes NicOperatorConfig default");
    assert_eq!(config["spec"]["nodeSelector"], json!({"nic": "cx7"}));
    assert_config_is_an_in_place_hook(config);
}

#[test]
fn the_resource_prefix_reaches_the_operator_config() {
    let test = "the_resource_prefix_reaches_the_operator_config";
    let Some(objects) = chart(test, &["--set", "resourcePrefix=openshift.io"]) else {
        return;
    };
    let config =
        operator_config(&objects).expect("a prefix of its own writes NicOperatorConfig default");
    assert_eq!(
        config["spec"],
        json!({"logLevel": "info", "resourcePrefix": "openshift.io",
            "nodeSelector": {"kubernetes.io/os": "linux"}})
    );
    assert_config_is_an_in_place_hook(config);
    // it is a valid NicOperatorConfig: the CRD's types read it back unchanged
    let typed: crds::NicOperatorConfig =
        serde_json::from_value(config.clone()).expect("parses as NicOperatorConfig");
    assert_eq!(typed.spec.resource_prefix, "openshift.io");
    // with the defaults there is none (the equivalence tests also say so)
    let Some(defaults) = chart(test, &[]) else {
        return;
    };
    assert!(operator_config(&defaults).is_none());
    let Some(created) = chart(test, &["--set", "operatorConfig.create=true"]) else {
        return;
    };
    assert_eq!(
        operator_config(&created).expect("operatorConfig.create")["spec"]["resourcePrefix"],
        "smartnic.io"
    );
}

fn is_cert_manager(obj: &Value) -> bool {
    obj["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("cert-manager.io/"))
        || obj
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.keys().any(|k| k.starts_with("cert-manager.io/")))
}

/// The caBundle of every webhook of both webhook configurations, as `(configuration kind,
/// webhook name, caBundle)`.
fn ca_bundles(objects: &[Value]) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for k in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let config = object(objects, k, "smartnic-operator");
        for w in config["webhooks"].as_array().expect("webhooks") {
            out.push((
                k.to_owned(),
                w["name"].as_str().unwrap_or("").to_owned(),
                w.pointer("/clientConfig/caBundle")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ));
        }
    }
    assert!(out.len() >= 2);
    out
}

fn mounted_secret(objects: &[Value]) -> &str {
    pod_spec(objects, "Deployment", "smartnic-operator")["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "webhook-tls")
        .and_then(|v| v.pointer("/secret/secretName"))
        .and_then(Value::as_str)
        .expect("the operator mounts volume webhook-tls from a Secret")
}

#[test]
fn with_a_secret_no_cert_manager_object_is_rendered_and_both_webhooks_get_its_ca() {
    let test = "with_a_secret_no_cert_manager_object_is_rendered_and_both_webhooks_get_its_ca";
    let Some(objects) = chart(
        test,
        &[
            "--set",
            "webhook.certificate.source=secret",
            "--set",
            "webhook.certificate.secret.name=site-pki-webhook",
            "--set",
            "webhook.certificate.secret.caBundle=LS0tQ0EtLS0=",
        ],
    ) else {
        return;
    };
    let cm: Vec<String> = objects
        .iter()
        .filter(|o| is_cert_manager(o))
        .map(deploy::describe)
        .collect();
    assert!(cm.is_empty(), "cert-manager objects or annotations: {cm:?}");
    for (k, w, ca) in ca_bundles(&objects) {
        assert_eq!(ca.as_deref(), Some("LS0tQ0EtLS0="), "{k} webhook {w}");
    }
    assert_eq!(mounted_secret(&objects), "site-pki-webhook");
    // the chart creates no Secret: it is the administrator's
    assert!(!objects.iter().any(|o| kind(o) == "Secret"));

    // with cert-manager (the default): no caBundle, the CA injector's annotation on both
    let Some(defaults) = chart(test, &[]) else {
        return;
    };
    for (k, w, ca) in ca_bundles(&defaults) {
        assert_eq!(ca, None, "{k} webhook {w}");
    }
    for k in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        assert_eq!(
            object(&defaults, k, "smartnic-operator")
                .pointer("/metadata/annotations/cert-manager.io~1inject-ca-from"),
            Some(&json!("smartnic-system/smartnic-operator-webhook"))
        );
    }
}

/// Standard base64 (the alphabet of `b64enc`), padding optional.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    out
}

/// `openssl` with `args`, `None` when there is no openssl.
fn openssl(args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

#[test]
fn self_signed_generates_one_ca_for_the_secret_and_both_webhooks() {
    let test = "self_signed_generates_one_ca_for_the_secret_and_both_webhooks";
    let Some(objects) = chart(test, &["--set", "webhook.certificate.source=selfSigned"]) else {
        return;
    };
    assert!(!objects.iter().any(is_cert_manager));
    let secret = object(&objects, "Secret", "smartnic-operator-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(mounted_secret(&objects), "smartnic-operator-webhook-tls");
    let data = |k: &str| {
        secret["data"][k]
            .as_str()
            .unwrap_or_else(|| panic!("Secret without {k}"))
    };
    for (k, w, ca) in ca_bundles(&objects) {
        assert_eq!(ca.as_deref(), Some(data("ca.crt")), "{k} webhook {w}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |f: &str| {
        let p = dir.path().join(f);
        std::fs::write(&p, base64_decode(data(f))).expect("write");
        p.to_string_lossy().into_owned()
    };
    let (ca, crt, key) = (write("ca.crt"), write("tls.crt"), write("tls.key"));
    // the serving certificate is signed by the CA, names the Service, and matches the key
    let Some((ok, out)) = openssl(&["verify", "-CAfile", &ca, "-purpose", "sslserver", &crt])
    else {
        return skip(
            test,
            "openssl not found (it checks the generated certificate)",
        );
    };
    assert!(ok, "openssl verify: {out}");
    let (_, names) =
        openssl(&["x509", "-in", &crt, "-noout", "-ext", "subjectAltName"]).expect("openssl");
    for dns in [
        "DNS:smartnic-operator-webhook.smartnic-system.svc",
        "DNS:smartnic-operator-webhook.smartnic-system.svc.cluster.local",
    ] {
        assert!(names.contains(dns), "{dns} not in {names}");
    }
    // valid for webhook.certificate.selfSigned.validityDays (3650) days, not more
    let days = |d: u64| (d * 86_400).to_string();
    let (ten_years, _) =
        openssl(&["x509", "-in", &crt, "-noout", "-checkend", &days(3649)]).expect("openssl");
    let (longer, _) =
        openssl(&["x509", "-in", &crt, "-noout", "-checkend", &days(3651)]).expect("openssl");
    assert!(
        ten_years && !longer,
        "the certificate is not valid for 3650 days"
    );
    let (_, cert_pub) = openssl(&["x509", "-in", &crt, "-noout", "-pubkey"]).expect("openssl");
    let (_, key_pub) = openssl(&["pkey", "-in", &key, "-pubout"]).expect("openssl");
    assert_eq!(cert_pub, key_pub, "tls.key is not the certificate's key");
}

#[test]
fn the_operator_replicas_are_a_value() {
    let test = "the_operator_replicas_are_a_value";
    let Some(objects) = chart(test, &["--set", "operator.replicas=3"]) else {
        return;
    };
    assert_eq!(
        object(&objects, "Deployment", "smartnic-operator")["spec"]["replicas"],
        3
    );
}

#[test]
fn the_log_level_reaches_every_component() {
    let test = "the_log_level_reaches_every_component";
    let Some(objects) = chart(
        test,
        &[
            "--set",
            "logLevel=debug",
            "--set",
            "operatorConfig.create=true",
        ],
    ) else {
        return;
    };
    assert_eq!(
        env(
            &objects,
            "Deployment",
            "smartnic-operator",
            "operator",
            "RUST_LOG"
        ),
        "debug,kube_runtime=warn"
    );
    assert_eq!(
        env(&objects, "DaemonSet", "smartnic-agent", "agent", "RUST_LOG"),
        "debug,kube_runtime=warn"
    );
    assert_eq!(
        env(
            &objects,
            "DaemonSet",
            "smartnic-device-plugin",
            "device-plugin",
            "RUST_LOG"
        ),
        "debug"
    );
    // and the operator's runtime level, which it follows without a restart
    assert_eq!(
        operator_config(&objects).expect("operatorConfig.create")["spec"]["logLevel"],
        "debug"
    );
}

#[test]
fn the_chart_follows_the_release_namespace() {
    let test = "the_chart_follows_the_release_namespace";
    let Some(objects) = chart_in(test, "nic-system", &["--set", "namespace.create=true"]) else {
        return;
    };
    let text = serde_json::to_string(&objects).expect("serializes");
    assert!(
        !text.contains(NAMESPACE),
        "{NAMESPACE} is left in a render for namespace nic-system"
    );
    let namespaced = |o: &&Value| o.pointer("/metadata/namespace").is_some();
    for obj in objects.iter().filter(namespaced) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        // events on cluster-scoped objects go to `default`, wherever the agent runs
        let expected = if name(obj) == "smartnic-agent-events" {
            "default"
        } else {
            "nic-system"
        };
        assert_eq!(ns, expected, "{}", deploy::describe(obj));
    }
    let webhook = object(
        &objects,
        "ValidatingWebhookConfiguration",
        "smartnic-operator",
    );
    assert_eq!(
        webhook.pointer("/webhooks/0/clientConfig/service/namespace"),
        Some(&json!("nic-system"))
    );
    assert_eq!(
        object(&objects, "Namespace", "nic-system")
            .pointer("/metadata/labels/pod-security.kubernetes.io~1enforce"),
        Some(&json!("privileged"))
    );
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    let test = "bad_values_are_refused_naming_the_value";
    let cases: [(&[&str], &str); 5] = [
        (
            &["--set", "webhook.certificate.source=vault"],
            "webhook.certificate.source",
        ),
        (
            &["--set", "webhook.certificate.source=secret"],
            "webhook.certificate.secret.caBundle",
        ),
        (&["--set", "logLevel=loud"], "logLevel"),
        (&["--set", "resourcePrefix=Smartnic_IO"], "resourcePrefix"),
        (
            &["--set", "images.agent.pullPolicy=Sometimes"],
            "pullPolicy",
        ),
    ];
    for (extra, named) in cases {
        let Some(message) = refusal(test, extra) else {
            return;
        };
        assert!(message.contains(named), "{extra:?}: {message}");
    }
}
