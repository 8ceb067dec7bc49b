//! Renders `deploy/` (and `deploy/examples/`) with `kubectl kustomize` and checks what a cluster
//! would get: every object is its Kubernetes type with no field lost; RBAC has no wildcard and
//! grants each service account exactly the calls its component's code makes (the table below);
//! pods are as tight as they can be; the webhook, its certificate and Services agree; the CRDs
//! are the generated ones; the examples pass the CRD schemas.
//!
//! Without kubectl (or with one too old for these manifests) each test prints
//! `SKIP <name>: <reason>` and returns, which `scripts/check.sh` counts as skipped.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use deploy::{Call, describe, grants_of, render, unused, wildcards};
use k8s_openapi::{
    api::{
        admissionregistration::v1::{
            MutatingWebhookConfiguration, ValidatingAdmissionPolicy,
            ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration,
        },
        apps::v1::{DaemonSet, Deployment},
        core::v1::{
            Container, HostPathVolumeSource, Namespace, Pod, PodSpec, Service, ServiceAccount,
            VolumeMount,
        },
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

const NS: &str = "smartnic-system";
const LEASE: &str = "smartnic-operator-leader";
const AGENT_POLICY: &str = "smartnic-agent-own-node";
const OPERATOR_NODE_POLICY: &str = "smartnic-operator-node-writes";

/// The Kubernetes API calls each component's code makes, with where. A call the code makes and
/// this table misses is a missing permission at run time; a permission no call here uses is more
/// than least privilege and fails the test.
///
/// The `api` suite of hw-tests runs the operator and the agents against a real API server with
/// exactly the deploy's RBAC, so a missing permission fails there for every call a run makes.
/// What only this table checks: that nothing beyond those calls is granted (a real server never
/// complains about a rule too many), including for the calls a run does not reach.
fn calls(service_account: &str) -> Option<Vec<Call>> {
    let c = |group, resource, verb, namespace, name| Call {
        group,
        resource,
        verb,
        namespace,
        name,
    };
    let cluster = |group, resource, verb| c(group, resource, verb, None, None);
    Some(match service_account {
        "smartnic-operator" => vec![
            // controller/watches.rs: the watch caches (reflectors: list, then watch), which the
            // controllers and the webhook read (every NAD too, metadata only, for the
            // network-resources injector: webhook/inject.rs)
            cluster("smartnic.io", "nicpolicies", "list"),
            cluster("smartnic.io", "nicpolicies", "watch"),
            cluster("smartnic.io", "nicnetworks", "list"),
            cluster("smartnic.io", "nicnetworks", "watch"),
            cluster("smartnic.io", "nicpools", "list"),
            cluster("smartnic.io", "nicpools", "watch"),
            cluster("smartnic.io", "nicoperatorconfigs", "list"),
            cluster("smartnic.io", "nicoperatorconfigs", "watch"),
            cluster("smartnic.io", "nicnodestates", "list"),
            cluster("smartnic.io", "nicnodestates", "watch"),
            cluster("", "nodes", "list"),
            cluster("", "nodes", "watch"),
            cluster("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
            cluster("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
            // controller/node_state.rs: the desired state by apply (which may create);
            // drain/mod.rs: the drain-grant annotations (merge patch); status.rs: the agent's
            // finalizer released when the Node is gone (merge patch)
            cluster("smartnic.io", "nicnodestates", "create"),
            cluster("smartnic.io", "nicnodestates", "patch"),
            // status.rs, network.rs, drain/: statuses by apply or merge patch
            cluster("smartnic.io", "nicpolicies/status", "patch"),
            cluster("smartnic.io", "nicnetworks/status", "patch"),
            cluster("smartnic.io", "nicpools/status", "patch"),
            cluster("smartnic.io", "nicoperatorconfigs/status", "patch"),
            cluster("smartnic.io", "nicnodestates/status", "patch"),
            // node_state.rs: node labels by apply; drain/node.rs: cordon and uncordon
            cluster("", "nodes", "patch"),
            // drain/node.rs: the pods of a draining node (every namespace, field selector), evicted
            // through the Eviction subresource in their namespaces
            cluster("", "pods", "list"),
            cluster("", "pods/eviction", "create"),
            // network.rs: NADs in the networks' namespaces, by apply; deleted when a network
            // may no longer use its resource
            cluster(
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "create",
            ),
            cluster("k8s.cni.cncf.io", "network-attachment-definitions", "patch"),
            cluster(
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "delete",
            ),
            // controller/device_classes.rs: a DeviceClass per pool offered by DRA, by apply;
            // the operator's listed by label at start; deleted with their last DRA policy
            cluster("resource.k8s.io", "deviceclasses", "list"),
            cluster("resource.k8s.io", "deviceclasses", "create"),
            cluster("resource.k8s.io", "deviceclasses", "patch"),
            cluster("resource.k8s.io", "deviceclasses", "delete"),
            // controller/mod.rs: kube-runtime's event recorder (create, then patch a series), on
            // objects in every namespace and cluster-scoped ones
            cluster("events.k8s.io", "events", "create"),
            cluster("events.k8s.io", "events", "patch"),
            // leader.rs: the Lease in its own namespace: read, create when absent, renew and
            // take over by replace with resourceVersion
            c(
                "coordination.k8s.io",
                "leases",
                "get",
                Some(NS),
                Some(LEASE),
            ),
            c(
                "coordination.k8s.io",
                "leases",
                "update",
                Some(NS),
                Some(LEASE),
            ),
            c("coordination.k8s.io", "leases", "create", Some(NS), None),
            // controller/placement.rs: the node DaemonSets follow the config's nodeSelector
            c(
                "apps",
                "daemonsets",
                "get",
                Some(NS),
                Some("smartnic-agent"),
            ),
            c(
                "apps",
                "daemonsets",
                "patch",
                Some(NS),
                Some("smartnic-agent"),
            ),
            c(
                "apps",
                "daemonsets",
                "get",
                Some(NS),
                Some("smartnic-device-plugin"),
            ),
            c(
                "apps",
                "daemonsets",
                "patch",
                Some(NS),
                Some("smartnic-device-plugin"),
            ),
            c(
                "apps",
                "daemonsets",
                "get",
                Some(NS),
                Some("smartnic-cni-installer"),
            ),
            c(
                "apps",
                "daemonsets",
                "patch",
                Some(NS),
                Some("smartnic-cni-installer"),
            ),
        ],
        "smartnic-agent" => vec![
            // cluster.rs ensure_node_state: the Node's uid for the owner reference
            c("", "nodes", "get", None, Some("node-1")),
            // cluster.rs: its NicNodeState by apply (which may create), read back, drain
            // request annotations by apply
            c(
                "smartnic.io",
                "nicnodestates",
                "create",
                None,
                Some("node-1"),
            ),
            c(
                "smartnic.io",
                "nicnodestates",
                "patch",
                None,
                Some("node-1"),
            ),
            c("smartnic.io", "nicnodestates", "get", None, Some("node-1")),
            // run.rs Agent::run: a watch on its own NicNodeState (field selector
            // metadata.name=NODE_NAME), i.e. list then watch; run/overlay.rs node_states (with
            // --tunnel-uplink): list then watch of every NicNodeState, for the overlay peers
            cluster("smartnic.io", "nicnodestates", "list"),
            cluster("smartnic.io", "nicnodestates", "watch"),
            // cluster.rs report_status: status by apply
            c(
                "smartnic.io",
                "nicnodestates/status",
                "patch",
                None,
                Some("node-1"),
            ),
            // cluster.rs plan_event: events on the cluster-scoped NicNodeState land in
            // `default` (kube-runtime's recorder)
            c("events.k8s.io", "events", "create", Some("default"), None),
            c("events.k8s.io", "events", "patch", Some("default"), None),
            // uninstall/mod.rs OwnDaemonSet: its own DaemonSet, at start and at SIGTERM
            c(
                "apps",
                "daemonsets",
                "get",
                Some(NS),
                Some("smartnic-agent"),
            ),
        ],
        // the kubelet's unix socket and the host's files only
        "smartnic-device-plugin" => vec![],
        "smartnic-dra" => vec![
            // publish.rs: the Node's uid for the slices' owner reference
            c("", "nodes", "get", None, Some("node-1")),
            // publish.rs: its node's slices (field selector), then create, update, delete
            cluster("resource.k8s.io", "resourceslices", "list"),
            cluster("resource.k8s.io", "resourceslices", "create"),
            c(
                "resource.k8s.io",
                "resourceslices",
                "update",
                None,
                Some("node-1-smartnic.io-0"),
            ),
            c(
                "resource.k8s.io",
                "resourceslices",
                "delete",
                None,
                Some("node-1-smartnic.io-1"),
            ),
            // server.rs: NodePrepareResources reads the claim, in the pod's namespace
            c(
                "resource.k8s.io",
                "resourceclaims",
                "get",
                Some("tenant-a"),
                Some("vf"),
            ),
        ],
        // copies one file onto the host
        "smartnic-cni" => vec![],
        _ => return None,
    })
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// The rendered objects of `dir`, rendered once per process; `None` (after printing the skip)
/// when kubectl cannot render here.
fn rendered(test: &str, dir: &Path) -> Option<Vec<Value>> {
    static DEPLOY: OnceLock<Result<Vec<Value>, (bool, String)>> = OnceLock::new();
    static EXAMPLES: OnceLock<Result<Vec<Value>, (bool, String)>> = OnceLock::new();
    static DRA_EXAMPLES: OnceLock<Result<Vec<Value>, (bool, String)>> = OnceLock::new();
    let cell = if dir == deploy_dir() {
        &DEPLOY
    } else if dir == deploy_dir().join("examples") {
        &EXAMPLES
    } else {
        &DRA_EXAMPLES
    };
    match cell.get_or_init(|| render(dir).map_err(|e| (e.is_unavailable(), e.to_string()))) {
        Ok(objects) => Some(objects.clone()),
        Err((true, reason)) => {
            skip(test, reason);
            None
        }
        Err((false, error)) => panic!("{error}"),
    }
}

fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn of_kind<'a>(objects: &'a [Value], k: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| kind(o) == k)
}

fn typed<T: DeserializeOwned>(obj: &Value) -> T {
    serde_json::from_value(obj.clone())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", describe(obj)))
}

/// The first place where `a` and `b` differ, as a JSON pointer with both values.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    deploy::compare::differences(a, b, at).into_iter().next()
}

/// Parses `obj` as `T` and serializes it back: a field that `T` does not know (a typo, a field
/// at the wrong level) is dropped on the way and shows up as a difference.
fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Option<String> {
    let back = serde_json::to_value(typed::<T>(obj)).expect("serializes");
    difference(obj, &back, "").map(|d| format!("{}: {d}", describe(obj)))
}

fn pod_specs(objects: &[Value]) -> Vec<(String, PodSpec)> {
    let mut specs = Vec::new();
    for obj in of_kind(objects, "DaemonSet") {
        let d: DaemonSet = typed(obj);
        let t = d.spec.template.spec.expect("pod template");
        specs.push((describe(obj), t));
    }
    for obj in of_kind(objects, "Deployment") {
        let d: Deployment = typed(obj);
        let t = d.spec.template.spec.expect("pod template");
        specs.push((describe(obj), t));
    }
    specs
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

#[test]
fn every_object_parses_as_its_kubernetes_type_with_no_field_lost() {
    let Some(objects) = rendered(
        "every_object_parses_as_its_kubernetes_type_with_no_field_lost",
        &deploy_dir(),
    ) else {
        return;
    };
    let mut problems = Vec::new();
    for obj in &objects {
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let diff = match (api, kind(obj)) {
            ("v1", "Namespace") => round_trip::<Namespace>(obj),
            ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(obj),
            ("v1", "Service") => round_trip::<Service>(obj),
            ("apps/v1", "Deployment") => round_trip::<Deployment>(obj),
            ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(obj),
            ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(obj),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(obj),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                round_trip::<ClusterRoleBinding>(obj)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(obj),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(obj),
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                round_trip::<ValidatingWebhookConfiguration>(obj)
            }
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                round_trip::<MutatingWebhookConfiguration>(obj)
            }
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
                round_trip::<ValidatingAdmissionPolicy>(obj)
            }
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
                round_trip::<ValidatingAdmissionPolicyBinding>(obj)
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                round_trip::<CustomResourceDefinition>(obj)
            }
            // cert-manager's types are not Kubernetes' own; webhook_certificate_services_and_
            // deployment_agree checks the fields that matter
            ("cert-manager.io/v1", "Issuer" | "Certificate") => None,
            (api, k) => Some(format!("{}: unexpected type {api} {k}", describe(obj))),
        };
        problems.extend(diff);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // the five components are there
    for (k, name) in [
        ("Deployment", "smartnic-operator"),
        ("DaemonSet", "smartnic-agent"),
        ("DaemonSet", "smartnic-device-plugin"),
        ("DaemonSet", "smartnic-dra"),
        ("DaemonSet", "smartnic-cni-installer"),
    ] {
        assert!(
            of_kind(&objects, k).any(|o| o.pointer("/metadata/name") == Some(&name.into())),
            "no {k} {name}"
        );
    }
}

#[test]
fn rbac_holds_no_wildcard_and_binds_only_roles_it_defines() {
    let Some(objects) = rendered(
        "rbac_holds_no_wildcard_and_binds_only_roles_it_defines",
        &deploy_dir(),
    ) else {
        return;
    };
    let mut problems = Vec::new();
    for obj in of_kind(&objects, "ClusterRole").chain(of_kind(&objects, "Role")) {
        let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> = obj
            .get("rules")
            .map(|r| serde_json::from_value(r.clone()).expect("rules"))
            .unwrap_or_default();
        for rule in &rules {
            for w in wildcards(rule) {
                problems.push(format!("{}: {w}", describe(obj)));
            }
        }
        assert!(
            obj.get("aggregationRule").is_none(),
            "{}: aggregated roles grow without review",
            describe(obj)
        );
    }
    // every subject of every binding: grants_of fails on a role the render does not define
    // (cluster-admin, admin, edit, ...)
    for obj in of_kind(&objects, "ClusterRoleBinding").chain(of_kind(&objects, "RoleBinding")) {
        for s in obj
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            let ns = s.get("namespace").and_then(Value::as_str).unwrap_or(NS);
            if let Err(e) = grants_of(&objects, ns, name) {
                problems.push(e.to_string());
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_service_account_exists_with_exactly_the_rules_its_code_needs() {
    let Some(objects) = rendered(
        "every_service_account_exists_with_exactly_the_rules_its_code_needs",
        &deploy_dir(),
    ) else {
        return;
    };
    let accounts: Vec<ServiceAccount> = of_kind(&objects, "ServiceAccount").map(typed).collect();
    let mut problems = Vec::new();
    for (workload, spec) in pod_specs(&objects) {
        let Some(sa) = spec.service_account_name.as_deref() else {
            problems.push(format!(
                "{workload} names no ServiceAccount (it would run as default)"
            ));
            continue;
        };
        let ns = workload.split('/').nth(1).unwrap_or_default();
        let Some(account) = accounts.iter().find(|a| {
            a.metadata.name.as_deref() == Some(sa) && a.metadata.namespace.as_deref() == Some(ns)
        }) else {
            problems.push(format!(
                "{workload}: ServiceAccount {ns}/{sa} does not exist"
            ));
            continue;
        };
        let Some(calls) = calls(sa) else {
            problems.push(format!(
                "{workload}: ServiceAccount {sa} is not in the table of calls"
            ));
            continue;
        };
        let grants = grants_of(&objects, ns, sa).expect("bindings resolve");
        for call in &calls {
            if !grants.iter().any(|g| g.allows(call)) {
                problems.push(format!("{sa} may not {call:?}"));
            }
        }
        for extra in unused(&grants, &calls) {
            problems.push(format!(
                "{sa} is granted {extra}, which its code does not use"
            ));
        }
        if calls.is_empty() {
            let mounted = spec
                .automount_service_account_token
                .or(account.automount_service_account_token)
                .unwrap_or(true);
            if mounted {
                problems.push(format!(
                    "{workload} makes no API call but mounts a service-account token"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn pods_are_privileged_only_where_unavoidable_and_otherwise_drop_every_capability() {
    let Some(objects) = rendered(
        "pods_are_privileged_only_where_unavoidable_and_otherwise_drop_every_capability",
        &deploy_dir(),
    ) else {
        return;
    };
    // the agent's reasons are in deploy/agent/daemonset.yaml, next to the setting
    let may_be_privileged = [("DaemonSet/smartnic-system/smartnic-agent", "agent")];
    let mut problems = Vec::new();
    for (workload, spec) in pod_specs(&objects) {
        for c in containers(&spec) {
            let sc = c.security_context.clone().unwrap_or_default();
            let privileged = sc.privileged.unwrap_or(false);
            let allowed = may_be_privileged.contains(&(workload.as_str(), c.name.as_str()));
            if privileged && !allowed {
                problems.push(format!("{workload}/{}: privileged", c.name));
            }
            if !privileged {
                let drops_all = sc
                    .capabilities
                    .as_ref()
                    .and_then(|cap| cap.drop.as_ref())
                    .is_some_and(|d| d.iter().any(|x| x == "ALL"));
                let adds = sc
                    .capabilities
                    .as_ref()
                    .and_then(|cap| cap.add.clone())
                    .unwrap_or_default();
                if !drops_all || !adds.is_empty() {
                    problems.push(format!(
                        "{workload}/{}: must drop ALL capabilities and add none (adds {adds:?})",
                        c.name
                    ));
                }
                if sc.allow_privilege_escalation != Some(false) {
                    problems.push(format!("{workload}/{}: allowPrivilegeEscalation", c.name));
                }
            }
            if sc.read_only_root_filesystem != Some(true) {
                problems.push(format!("{workload}/{}: writable root filesystem", c.name));
            }
            if c.image.as_deref().is_none_or(|i| !i.contains(':')) {
                problems.push(format!("{workload}/{}: image without a tag", c.name));
            }
        }
        if spec.host_pid == Some(true) || spec.host_ipc == Some(true) {
            problems.push(format!("{workload}: hostPID/hostIPC"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn webhook_certificate_services_and_deployment_agree() {
    let Some(objects) = rendered(
        "webhook_certificate_services_and_deployment_agree",
        &deploy_dir(),
    ) else {
        return;
    };
    let webhooks: ValidatingWebhookConfiguration = typed(
        of_kind(&objects, "ValidatingWebhookConfiguration")
            .next()
            .expect("webhook"),
    );
    let cert = of_kind(&objects, "Certificate")
        .next()
        .expect("Certificate");
    let cert_name = cert.pointer("/metadata/name").and_then(Value::as_str);
    let cert_ns = cert.pointer("/metadata/namespace").and_then(Value::as_str);
    let inject = webhooks
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("cert-manager.io/inject-ca-from"))
        .cloned();
    assert_eq!(
        inject,
        Some(format!(
            "{}/{}",
            cert_ns.unwrap_or(""),
            cert_name.unwrap_or("")
        )),
        "the CA injector must read the webhook's Certificate"
    );
    let dns: Vec<&str> = cert
        .pointer("/spec/dnsNames")
        .and_then(Value::as_array)
        .expect("dnsNames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let secret = cert.pointer("/spec/secretName").and_then(Value::as_str);
    let services: Vec<Service> = of_kind(&objects, "Service").map(typed).collect();
    let operator: Deployment = typed(
        of_kind(&objects, "Deployment")
            .find(|o| o.pointer("/metadata/name") == Some(&"smartnic-operator".into()))
            .expect("operator"),
    );
    let pod = operator.spec.template.spec.expect("pod");
    let mounted_secret = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref().and_then(|s| s.secret_name.clone()));
    assert_eq!(
        mounted_secret.as_deref(),
        secret,
        "the Deployment mounts the issued Secret"
    );
    let container_ports: Vec<String> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    for w in webhooks.webhooks.iter().flatten() {
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"), "{}", w.name);
        assert_eq!(w.side_effects, "None", "{}", w.name);
        let svc_ref = w.client_config.service.as_ref().expect("service reference");
        let host = format!("{}.{}.svc", svc_ref.name, svc_ref.namespace);
        assert!(dns.contains(&host.as_str()), "{host} not in {dns:?}");
        let svc = services
            .iter()
            .find(|s| {
                s.metadata.name.as_deref() == Some(svc_ref.name.as_str())
                    && s.metadata.namespace.as_deref() == Some(svc_ref.namespace.as_str())
            })
            .unwrap_or_else(|| panic!("{}: no Service {host}", w.name));
        let spec = svc.spec.as_ref().expect("service spec");
        let port = spec
            .ports
            .iter()
            .flatten()
            .find(|p| Some(p.port) == svc_ref.port)
            .unwrap_or_else(|| panic!("{host} has no port {:?}", svc_ref.port));
        let target = match &port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s,
            other => panic!("{host}: target port {other:?} should name the container port"),
        };
        assert!(
            container_ports.contains(target),
            "{target} not in {container_ports:?}"
        );
        assert_eq!(
            spec.selector
                .as_ref()
                .and_then(|s| s.get("app.kubernetes.io/name")),
            Some(&"smartnic-operator".to_owned())
        );
        for rule in w.rules.iter().flatten() {
            assert_eq!(
                rule.api_groups.as_deref(),
                Some(&["smartnic.io".to_owned()][..])
            );
        }
    }
}

#[test]
fn the_injector_never_blocks_pods_and_honours_the_opt_out_label() {
    let Some(objects) = rendered(
        "the_injector_never_blocks_pods_and_honours_the_opt_out_label",
        &deploy_dir(),
    ) else {
        return;
    };
    let validating: ValidatingWebhookConfiguration = typed(
        of_kind(&objects, "ValidatingWebhookConfiguration")
            .next()
            .expect("validating webhook"),
    );
    let mutating: Vec<MutatingWebhookConfiguration> =
        of_kind(&objects, "MutatingWebhookConfiguration")
            .map(typed)
            .collect();
    assert_eq!(mutating.len(), 1, "one MutatingWebhookConfiguration");
    let m = &mutating[0];
    let ca = |a: &Option<std::collections::BTreeMap<String, String>>| {
        a.as_ref()
            .and_then(|a| a.get("cert-manager.io/inject-ca-from"))
            .cloned()
    };
    assert_eq!(
        ca(&m.metadata.annotations),
        ca(&validating.metadata.annotations),
        "same certificate as the validating webhook"
    );
    let v_service = validating.webhooks.as_ref().unwrap()[0]
        .client_config
        .service
        .clone()
        .expect("service");
    let hooks = m.webhooks.as_ref().expect("webhooks");
    assert_eq!(hooks.len(), 1);
    let w = &hooks[0];
    assert_eq!(
        w.failure_policy.as_deref(),
        Some("Ignore"),
        "never blocks pods"
    );
    assert_eq!(w.side_effects, "None");
    assert!(w.timeout_seconds.is_some_and(|t| t <= 5), "short timeout");
    let svc = w.client_config.service.as_ref().expect("service reference");
    assert_eq!(
        (&svc.name, &svc.namespace, svc.port),
        (&v_service.name, &v_service.namespace, v_service.port),
        "served by the same Service"
    );
    assert_eq!(svc.path.as_deref(), Some("/mutate-pods"));
    let rules = w.rules.as_ref().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["pods".to_owned()][..])
    );
    assert_eq!(
        rules[0].operations.as_deref(),
        Some(&["CREATE".to_owned()][..])
    );
    let opts_out = |sel: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        sel.as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|e| {
                e.iter().any(|e| {
                    e.key == crds::LABEL_INJECTOR
                        && e.operator == "NotIn"
                        && e.values.as_deref() == Some(&[crds::INJECTOR_DISABLED.to_owned()][..])
                })
            })
    };
    assert!(opts_out(&w.namespace_selector), "namespace opt-out label");
    assert!(opts_out(&w.object_selector), "pod opt-out label");
}

#[test]
fn the_agent_admission_policy_holds_the_agent_to_its_node() {
    let Some(objects) = rendered(
        "the_agent_admission_policy_holds_the_agent_to_its_node",
        &deploy_dir(),
    ) else {
        return;
    };
    let policy: ValidatingAdmissionPolicy = typed(
        of_kind(&objects, "ValidatingAdmissionPolicy")
            .find(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(AGENT_POLICY))
            })
            .expect("policy"),
    );
    let binding: ValidatingAdmissionPolicyBinding = typed(
        of_kind(&objects, "ValidatingAdmissionPolicyBinding")
            .find(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(AGENT_POLICY))
            })
            .expect("binding"),
    );
    let spec = binding.spec;
    assert_eq!(Some(&spec.policy_name), policy.metadata.name.as_ref());
    assert_eq!(spec.validation_actions, ["Deny"]);
    let p = policy.spec.expect("policy spec");
    assert_eq!(p.failure_policy.as_deref(), Some("Fail"));
    let user = agent_user(&objects, NS, "");
    let conditions = p.match_conditions.clone().unwrap_or_default();
    assert!(
        conditions
            .iter()
            .all(|c| matches_user(&c.expression, &user)),
        "the policy must match {user}: {conditions:?}"
    );
    for other in [
        "system:serviceaccount:smartnic-system:smartnic-operator",
        "kubernetes-admin",
        "system:node:w1",
    ] {
        assert!(
            !conditions
                .iter()
                .all(|c| matches_user(&c.expression, other)),
            "the policy must not hold {other}"
        );
    }
    let rules = p
        .match_constraints
        .and_then(|m| m.resource_rules)
        .unwrap_or_default();
    let resources: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| r.resources.clone().unwrap_or_default())
        .collect();
    // every resource the agent may write goes through the policy
    for call in calls("smartnic-agent").expect("agent calls") {
        if call.group == "smartnic.io" && matches!(call.verb, "create" | "patch" | "update") {
            assert!(
                resources.contains(call.resource),
                "{} not matched",
                call.resource
            );
        }
    }
    let exprs: Vec<String> = p
        .validations
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.expression)
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("object.metadata.name == variables.node")),
        "{exprs:?}"
    );
    let vars = p.variables.unwrap_or_default();
    assert!(
        vars.iter().any(|v| v
            .expression
            .contains("authentication.kubernetes.io/node-name")),
        "the node comes from the token's node claim"
    );
    // On CREATE the agent may set no spec, finalizer, foreign annotation or foreign owner.
    for needle in [
        "!has(object.spec.rdmaMode)",
        "size(object.metadata.finalizers) == 0",
        "'smartnic.io/drain-request'",
        "o.kind == 'Node' && o.name == variables.node",
    ] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains("request.operation != 'CREATE'") && e.contains(needle)),
            "no CREATE rule with {needle}: {exprs:?}"
        );
    }
}

/// The user name of the agent's service account in the rendered objects, installed in `ns`
/// with names prefixed by `prefix`.
fn agent_user(objects: &[Value], ns: &str, prefix: &str) -> String {
    let agent = pod_specs(objects)
        .into_iter()
        .find(|(w, _)| w == &format!("DaemonSet/{ns}/{prefix}smartnic-agent"))
        .unwrap_or_else(|| panic!("no agent DaemonSet in {ns}"));
    format!(
        "system:serviceaccount:{ns}:{}",
        agent.1.service_account_name.as_deref().unwrap_or("")
    )
}

/// Evaluates a match condition on the user name, for the forms the policy uses: a conjunction
/// (`&&`) of `request.userInfo.username.startsWith('..')`, `.endsWith('..')` and `== '..'`.
/// Anything else fails the test, so a new form must be taught here first.
fn matches_user(expression: &str, user: &str) -> bool {
    expression.split("&&").all(|term| {
        let term = term.trim();
        let arg = |prefix: &str| {
            term.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("')"))
                .map(str::to_owned)
        };
        if let Some(p) = arg("request.userInfo.username.startsWith('") {
            user.starts_with(&p)
        } else if let Some(p) = arg("request.userInfo.username.endsWith('") {
            user.ends_with(&p)
        } else if let Some(p) = term
            .strip_prefix("request.userInfo.username == '")
            .and_then(|r| r.strip_suffix('\''))
        {
            user == p
        } else {
            panic!("a match condition this test cannot evaluate: {term}")
        }
    })
}

/// A kustomize `namespace:` override once disabled the policy silently (it named the namespace
/// in its user match); rendered into another namespace, the policy still holds that agent.
#[test]
fn the_agent_admission_policy_holds_in_any_namespace() {
    let test = "the_agent_admission_policy_holds_in_any_namespace";
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(deploy_dir(), tmp.path().join("deploy")).unwrap();
    let overlay = tmp.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         namespace: gpu-network-ops\nnamePrefix: prod-\nresources:\n  - ../deploy\n",
    )
    .unwrap();
    let objects = match render(&overlay) {
        Ok(o) => o,
        Err(e) if e.is_unavailable() => return skip(test, &e.to_string()),
        Err(e) => panic!("{e}"),
    };
    let user = agent_user(&objects, "gpu-network-ops", "prod-");
    assert!(!user.contains(NS), "{user}");
    let policy: ValidatingAdmissionPolicy = typed(
        of_kind(&objects, "ValidatingAdmissionPolicy")
            .find(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(AGENT_POLICY))
            })
            .expect("policy"),
    );
    let conditions = policy
        .spec
        .and_then(|p| p.match_conditions)
        .unwrap_or_default();
    assert!(!conditions.is_empty());
    assert!(
        conditions
            .iter()
            .all(|c| matches_user(&c.expression, &user)),
        "after the override the policy no longer holds {user}: {conditions:?}"
    );
    let binding: ValidatingAdmissionPolicyBinding = typed(
        of_kind(&objects, "ValidatingAdmissionPolicyBinding")
            .find(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(AGENT_POLICY))
            })
            .expect("binding"),
    );
    assert_eq!(
        Some(binding.spec.policy_name),
        typed::<ValidatingAdmissionPolicy>(
            of_kind(&objects, "ValidatingAdmissionPolicy")
                .next()
                .unwrap()
        )
        .metadata
        .name
    );
}

#[test]
fn the_device_plugin_reads_the_file_the_agent_writes() {
    let Some(objects) = rendered(
        "the_device_plugin_reads_the_file_the_agent_writes",
        &deploy_dir(),
    ) else {
        return;
    };
    let specs = pod_specs(&objects);
    let spec = |w: &str| {
        specs
            .iter()
            .find(|(n, _)| n == w)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {w}"))
    };
    // the host directory behind the container path `path` in `spec`
    let host_dir_of = |spec: &PodSpec, path: &str| -> Option<String> {
        let c = &spec.containers[0];
        let m = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| Path::new(path).starts_with(&m.mount_path))
            .max_by_key(|m| m.mount_path.len())?;
        let v = spec.volumes.iter().flatten().find(|v| v.name == m.name)?;
        let host = v.host_path.as_ref()?.path.clone();
        let rest = Path::new(path).strip_prefix(&m.mount_path).ok()?;
        Some(Path::new(&host).join(rest).display().to_string())
    };
    let file = crds::device_plugin::DEFAULT_CONFIG_FILE;
    let agent = spec("DaemonSet/smartnic-system/smartnic-agent");
    let dp = spec("DaemonSet/smartnic-system/smartnic-device-plugin");
    let config = dp.containers[0]
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config");
    assert_eq!(config, file);
    assert_eq!(
        host_dir_of(&agent, file).as_deref(),
        Some(file),
        "agent side"
    );
    assert_eq!(
        host_dir_of(&dp, config).as_deref(),
        Some(file),
        "device-plugin side"
    );
    // the directory is mounted, not the file: the agent replaces the file by rename
    let dp_mounts: Vec<&str> = dp.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(!dp_mounts.contains(&file), "{dp_mounts:?}");
    let plugin_dir = dp.containers[0]
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--plugin-dir="))
        .expect("--plugin-dir");
    assert_eq!(
        host_dir_of(&dp, &format!("{plugin_dir}/kubelet.sock")).as_deref(),
        Some("/var/lib/kubelet/device-plugins/kubelet.sock")
    );
    // the agent learns its node from the downward API
    let env = agent.containers[0].env.clone().unwrap_or_default();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"));
}

#[test]
fn crds_in_the_render_equal_the_generated_ones() {
    let Some(objects) = rendered("crds_in_the_render_equal_the_generated_ones", &deploy_dir())
    else {
        return;
    };
    let mut rendered: Vec<Value> = of_kind(&objects, "CustomResourceDefinition")
        .cloned()
        .collect();
    // the one label the top-level kustomization adds to everything
    for crd in &mut rendered {
        let labels = crd
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
            .expect("labels");
        assert_eq!(
            labels.remove("app.kubernetes.io/part-of"),
            Some("smartnic-operator".into())
        );
        if labels.is_empty() {
            crd["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("labels");
        }
    }
    let name = |v: &Value| {
        v.pointer("/metadata/name")
            .cloned()
            .unwrap_or_default()
            .to_string()
    };
    rendered.sort_by_key(name);
    let mut generated: Vec<Value> = crds::generate::crds()
        .iter()
        .map(|c| serde_json::to_value(c).expect("serializes"))
        .collect();
    generated.sort_by_key(name);
    assert_eq!(rendered.len(), generated.len());
    for (r, g) in rendered.iter().zip(&generated) {
        assert_eq!(difference(r, g, ""), None, "{} differs from crds", name(g));
    }
}

/// deploy/examples/dra: the policy and network pass the CRD schemas, the pool is offered by DRA,
/// the NicNetwork names it, every ResourceClaimTemplate and the pod parse as their Kubernetes
/// types with no field lost, and every request of ours names the DeviceClass the operator renders
/// for the pool (`<resourceName with '_' as '-'>.<prefix>`). hw-tests/api/93-dra-cel.sh has
/// the API server and the scheduler evaluate them.
#[test]
fn dra_examples_pass_the_schemas_and_name_the_rendered_device_class() {
    use k8s_openapi::api::resource::v1::ResourceClaimTemplate;
    let dir = deploy_dir().join("examples").join("dra");
    let Some(objects) = rendered(
        "dra_examples_pass_the_schemas_and_name_the_rendered_device_class",
        &dir,
    ) else {
        return;
    };
    for obj in &objects {
        match (obj.get("apiVersion").and_then(Value::as_str), kind(obj)) {
            (Some("smartnic.io/v1alpha1"), _) => {
                if let Err(errors) = crds::schema_check::check_object(obj) {
                    panic!("{}: {errors:?}", describe(obj));
                }
            }
            (Some("v1"), "Pod") => assert_eq!(round_trip::<Pod>(obj), None),
            (Some("resource.k8s.io/v1"), "ResourceClaimTemplate") => {
                assert_eq!(round_trip::<ResourceClaimTemplate>(obj), None)
            }
            _ => panic!("{}: unexpected in the DRA examples", describe(obj)),
        }
    }
    let one = |k: &str| of_kind(&objects, k).next().cloned().expect(k);
    let (policy, network) = (one("NicPolicy"), one("NicNetwork"));
    assert_eq!(
        policy.pointer("/spec/allocation"),
        Some(&Value::from("dra"))
    );
    let resource = policy
        .pointer("/spec/resourceName")
        .and_then(Value::as_str)
        .expect("resourceName");
    assert_eq!(
        network
            .pointer("/spec/resourceName")
            .and_then(Value::as_str),
        Some(resource)
    );
    let class = format!(
        "{}.{}",
        resource.replace('_', "-").to_ascii_lowercase(),
        crds::RESOURCE_PREFIX
    );
    let templates: Vec<&Value> = of_kind(&objects, "ResourceClaimTemplate").collect();
    assert_eq!(templates.len(), 4);
    for t in templates {
        let requests = t
            .pointer("/spec/spec/devices/requests")
            .and_then(Value::as_array)
            .expect("requests");
        let ours = requests
            .iter()
            .filter_map(|r| {
                r.pointer("/exactly/deviceClassName")
                    .and_then(Value::as_str)
            })
            .filter(|c| !c.starts_with("gpu."))
            .collect::<Vec<_>>();
        assert_eq!(ours, vec![class.as_str()], "{}", describe(t));
    }
    let pod = one("Pod");
    assert_eq!(
        pod.pointer("/metadata/annotations/k8s.v1.cni.cncf.io~1networks"),
        network.pointer("/metadata/name")
    );
    assert!(
        pod.pointer("/spec/resourceClaims/0/resourceClaimTemplateName")
            .and_then(Value::as_str)
            .is_some_and(|n| of_kind(&objects, "ResourceClaimTemplate")
                .any(|t| t.pointer("/metadata/name").and_then(Value::as_str) == Some(n)))
    );
}

#[test]
fn examples_pass_the_crd_schemas_and_fit_together() {
    let dir = deploy_dir().join("examples");
    let Some(objects) = rendered("examples_pass_the_crd_schemas_and_fit_together", &dir) else {
        return;
    };
    let mut kinds = BTreeSet::new();
    for obj in &objects {
        kinds.insert(kind(obj).to_owned());
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some("smartnic.io/v1alpha1") => {
                if let Err(errors) = crds::schema_check::check_object(obj) {
                    panic!("{}: {errors:?}", describe(obj));
                }
            }
            Some("v1") if kind(obj) == "Pod" => assert_eq!(round_trip::<Pod>(obj), None),
            Some("v1") if kind(obj) == "Namespace" => {
                assert_eq!(round_trip::<Namespace>(obj), None)
            }
            _ => panic!("{}: unexpected in the examples", describe(obj)),
        }
    }
    assert!(
        ["NicPolicy", "NicNetwork", "Pod"]
            .iter()
            .all(|k| kinds.contains(*k)),
        "{kinds:?}"
    );
    let one = |k: &str| of_kind(&objects, k).next().cloned().expect(k);
    let (policy, network, pod) = (one("NicPolicy"), one("NicNetwork"), one("Pod"));
    let resource = policy.pointer("/spec/resourceName").and_then(Value::as_str);
    assert_eq!(
        network
            .pointer("/spec/resourceName")
            .and_then(Value::as_str),
        resource
    );
    let network_ns = network.pointer("/metadata/namespace").expect("namespace");
    let allowed = policy
        .pointer("/spec/networkNamespaces")
        .and_then(Value::as_array)
        .expect("networkNamespaces");
    assert!(
        allowed.contains(network_ns),
        "the policy admits the network's namespace"
    );
    assert_eq!(pod.pointer("/metadata/namespace"), Some(network_ns));
    assert_eq!(
        pod.pointer("/metadata/annotations/k8s.v1.cni.cncf.io~1networks"),
        network.pointer("/metadata/name"),
        "the pod attaches to the network's NAD (same name)"
    );
    let request = format!("{}/{}", crds::RESOURCE_PREFIX, resource.unwrap_or(""));
    let pod: Pod = typed(&pod);
    let limits = pod.spec.expect("spec").containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    assert!(limits.contains_key(&request), "the pod asks for {request}");
}

/// The agent container's mount at `path` and the host path behind it.
fn agent_host_mount(objects: &[Value], path: &str) -> (VolumeMount, HostPathVolumeSource) {
    let (_, agent) = pod_specs(objects)
        .into_iter()
        .find(|(w, _)| w == "DaemonSet/smartnic-system/smartnic-agent")
        .expect("agent");
    let m = agent.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
        .unwrap_or_else(|| panic!("{path} mounted"))
        .clone();
    let v = agent
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == m.name)
        .and_then(|v| v.host_path.clone())
        .expect("a host path");
    (m, v)
}

#[test]
fn the_agent_sees_the_hosts_open_vswitch_for_the_overlay() {
    let Some(objects) = rendered(
        "the_agent_sees_the_hosts_open_vswitch_for_the_overlay",
        &deploy_dir(),
    ) else {
        return;
    };
    // smartnic-agent --ovs-rundir defaults to /run/openvswitch, where the CNI (on the host)
    // finds db.sock, br-int.mgmt and the overlay lock it shares with the agent
    let (m, v) = agent_host_mount(&objects, "/run/openvswitch");
    assert_ne!(m.read_only, Some(true), "the lock file is created there");
    assert_eq!(v.path, "/run/openvswitch");
    // nodes without OVS (no --tunnel-uplink) still start the agent
    assert_eq!(v.type_.as_deref(), Some("DirectoryOrCreate"));
}

/// The agent writes the node's CNI allow-list where the plugin on the host reads it: a
/// read-write mount of the same host directory.
#[test]
fn the_agent_writes_the_cni_allow_list_where_the_plugin_reads_it() {
    let Some(objects) = rendered(
        "the_agent_writes_the_cni_allow_list_where_the_plugin_reads_it",
        &deploy_dir(),
    ) else {
        return;
    };
    let file = Path::new(crds::cni::NODE_ALLOW_LIST_FILE);
    let dir = file.parent().and_then(Path::to_str).expect("a directory");
    let (m, v) = agent_host_mount(&objects, dir);
    assert_ne!(m.read_only, Some(true), "the agent writes the file");
    assert_eq!(v.path, dir, "the host's directory, at the same path");
}

/// The per-VF metrics name the pod holding each VF from the CNI plugin's records, and the
/// uninstall checks them: the agent sees the plugin's state directory of the host where its
/// `--cni-state-dir` default says, inside the host's `/run/smartnic`, which the uninstall
/// empties.
#[test]
fn the_agent_reads_the_cni_records_of_the_host() {
    let Some(objects) = rendered("the_agent_reads_the_cni_records_of_the_host", &deploy_dir())
    else {
        return;
    };
    let dir = Path::new(crds::cni_state::STATE_DIR)
        .parent()
        .and_then(Path::to_str)
        .expect("a parent");
    let (m, v) = agent_host_mount(&objects, dir);
    assert_ne!(m.read_only, Some(true), "the uninstall empties it");
    assert_eq!(v.path, dir);
}

/// Every `hostPath` of every DaemonSet is in `crds::host_paths` (ours, with who removes it on
/// an uninstall, or a shared directory we leave): a new host path cannot be forgotten by the
/// uninstall. Each directory the agent empties on an uninstall is mounted into it read-write at
/// the same path, and the host's CNI binary directory where `--cni-bin-dir` defaults.
#[test]
fn every_host_path_is_known_to_the_uninstall() {
    use crds::host_paths::{self, Removal, Remover};
    let test = "every_host_path_is_known_to_the_uninstall";
    let Some(objects) = rendered(test, &deploy_dir()) else {
        return;
    };
    let mut seen = 0;
    for (workload, spec) in pod_specs(&objects) {
        for v in spec.volumes.iter().flatten() {
            if let Some(h) = &v.host_path {
                seen += 1;
                assert!(
                    host_paths::known(&h.path),
                    "{workload}: hostPath {} is not in crds::host_paths (OWNED or SHARED_HOST_DIRS)",
                    h.path
                );
            }
        }
    }
    assert!(seen > 5, "{seen} host paths");
    for owned in host_paths::OWNED
        .iter()
        .filter(|o| o.remover == Remover::Agent)
    {
        // a file's directory is mounted under /host (the CNI binary's: --cni-bin-dir)
        let (at, host) = match owned.removal {
            Removal::Contents => (owned.path.to_owned(), owned.path),
            _ => {
                let dir = Path::new(owned.path)
                    .parent()
                    .and_then(Path::to_str)
                    .expect("a directory");
                (format!("/host{dir}"), dir)
            }
        };
        let (m, v) = agent_host_mount(&objects, &at);
        assert_ne!(m.read_only, Some(true), "{at}: the uninstall removes in it");
        assert_eq!(v.path, host, "{at}");
    }
}

/// The operator's `patch` on Nodes (RBAC cannot narrow it) is held to its own labels and
/// annotations and `spec.unschedulable` by an admission policy that matches its service account
/// in any namespace and covers every Node write its code makes.
#[test]
fn the_operator_may_change_only_its_part_of_a_node() {
    let test = "the_operator_may_change_only_its_part_of_a_node";
    let Some(objects) = rendered(test, &deploy_dir()) else {
        return;
    };
    let named = |kind: &'static str| {
        of_kind(&objects, kind)
            .find(|o| o["metadata"]["name"] == OPERATOR_NODE_POLICY)
            .unwrap_or_else(|| panic!("no {kind} {OPERATOR_NODE_POLICY}"))
            .clone()
    };
    let policy: ValidatingAdmissionPolicy = typed(&named("ValidatingAdmissionPolicy"));
    let binding: ValidatingAdmissionPolicyBinding =
        typed(&named("ValidatingAdmissionPolicyBinding"));
    assert_eq!(binding.spec.policy_name, OPERATOR_NODE_POLICY);
    assert_eq!(binding.spec.validation_actions, ["Deny"]);
    let p = policy.spec.expect("spec");
    assert_eq!(p.failure_policy.as_deref(), Some("Fail"));
    let operator = pod_specs(&objects)
        .into_iter()
        .find(|(w, _)| w == &format!("Deployment/{NS}/smartnic-operator"))
        .expect("operator");
    let user = format!(
        "system:serviceaccount:{NS}:{}",
        operator.1.service_account_name.as_deref().unwrap_or("")
    );
    let conditions = p.match_conditions.unwrap_or_default();
    assert!(
        conditions
            .iter()
            .all(|c| matches_user(&c.expression, &user))
    );
    assert!(
        !conditions
            .iter()
            .all(|c| matches_user(&c.expression, &agent_user(&objects, NS, ""))),
        "the agent is not held to the operator's policy"
    );
    let rules = p
        .match_constraints
        .and_then(|m| m.resource_rules)
        .unwrap_or_default();
    for call in calls("smartnic-operator").expect("operator calls") {
        if call.group.is_empty() && call.resource == "nodes" && call.verb == "patch" {
            assert!(
                rules.iter().any(|r| r
                    .resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == "nodes"))
                    && r.operations
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|x| x == "UPDATE"))),
                "node patches are not matched: {rules:?}"
            );
        }
    }
    let exprs: Vec<String> = p
        .validations
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.expression)
        .collect();
    for needle in [
        "k.startsWith('smartnic.io/')",
        "object.spec.taints",
        "object.spec.podCIDR",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needle)),
            "{needle}: {exprs:?}"
        );
    }
}
