//! Test-only: a fake API server (`ApiServerVerifier`) over a `tower_test` mock, cache writers and
//! object builders.
//!
//! Each test fills the caches directly (what the watches would have delivered), starts one
//! [`Scenario`] on the verifier, calls a reconcile function, then awaits [`timeout_after_1s`]:
//! a missing call fails by timeout; an extra call fails in the reconciler, because the verifier
//! dropped its handle and the client sees a closed service.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crds::{
    FIELD_MANAGER_OPERATOR, NetworkAttachmentDefinition, NicNetwork, NicNodeState,
    NicNodeStateSpec, NicOperatorConfig, NicPolicy, NicPool, inventory::Nic, k8s::jiff::Timestamp,
    node_state::NicNodeStateStatus,
};
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Client, Resource,
    client::Body,
    runtime::{reflector::store::Writer, watcher},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::{
    context::{Context, StoreWriters, Stores},
    metrics::Metrics,
};

type MockHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Responder = tower_test::mock::SendResponse<Response<Body>>;

/// The fake API server: asserts each request of a scenario and answers it.
pub struct ApiServerVerifier(MockHandle);

/// The cache writers of a test context.
pub struct TestStores(pub StoreWriters);

fn put<K>(w: &mut Writer<K>, obj: K)
where
    K: Resource + Clone,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

/// Replays the writer's current objects as a complete initial list, which marks the cache ready.
fn mark_ready<K>(w: &mut Writer<K>)
where
    K: Resource + Clone,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let objects = w.as_reader().state();
    w.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        w.apply_watcher_event(&watcher::Event::InitApply((*o).clone()));
    }
    w.apply_watcher_event(&watcher::Event::InitDone);
}

impl TestStores {
    /// Marks every cache as having had its first full list (what `controller::run` waits for).
    pub fn mark_ready(&mut self) {
        mark_ready(&mut self.0.nodes);
        mark_ready(&mut self.0.node_states);
        mark_ready(&mut self.0.policies);
        mark_ready(&mut self.0.pools);
        mark_ready(&mut self.0.networks);
        mark_ready(&mut self.0.configs);
        mark_ready(&mut self.0.nads);
        mark_ready(&mut self.0.all_nads);
    }

    /// Adds or replaces a Node.
    pub fn node(&mut self, n: Node) {
        put(&mut self.0.nodes, n);
    }
    /// Adds or replaces a `NicNodeState`.
    pub fn node_state(&mut self, s: NicNodeState) {
        put(&mut self.0.node_states, s);
    }
    /// Adds or replaces a `NicPolicy`.
    pub fn policy(&mut self, p: NicPolicy) {
        put(&mut self.0.policies, p);
    }
    /// Adds or replaces a `NicPool`.
    pub fn pool(&mut self, p: NicPool) {
        put(&mut self.0.pools, p);
    }
    /// Adds or replaces a `NicNetwork`.
    pub fn network(&mut self, n: NicNetwork) {
        put(&mut self.0.networks, n);
    }
    /// Adds or replaces a NAD.
    pub fn nad(&mut self, n: NetworkAttachmentDefinition) {
        put(&mut self.0.nads, n);
    }
    /// Adds or replaces a NAD in the cache of every NAD (the injector's).
    pub fn any_nad(&mut self, n: NetworkAttachmentDefinition) {
        put(&mut self.0.all_nads, n);
    }
    /// Adds or replaces the operator configuration.
    pub fn config(&mut self, c: NicOperatorConfig) {
        put(&mut self.0.configs, c);
    }
}

/// Namespace of the operator in tests.
pub const TEST_NAMESPACE: &str = "smartnic-system";

/// The clock of a test context: 2026-11-26T10:05:00Z.
pub fn test_now() -> Timestamp {
    Timestamp::constant(1_795_687_500, 0)
}

/// A context over a mock client and empty caches, its clock at [`test_now`].
pub fn test_context() -> (Arc<Context>, ApiServerVerifier, TestStores) {
    test_context_at(test_now)
}

/// [`test_context`] with the clock `now`.
pub fn test_context_at(now: fn() -> Timestamp) -> (Arc<Context>, ApiServerVerifier, TestStores) {
    let (stores, writers) = Stores::new();
    let (ctx, verifier) = context_over_at(stores, now);
    (ctx, verifier, TestStores(writers))
}

/// A context over a new mock client and existing caches, its clock at [`test_now`].
pub fn context_over(stores: Stores) -> (Arc<Context>, ApiServerVerifier) {
    context_over_at(stores, test_now)
}

fn context_over_at(stores: Stores, now: fn() -> Timestamp) -> (Arc<Context>, ApiServerVerifier) {
    let (mock_service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock_service, "default");
    let mut ctx = Context::new(
        client,
        stores,
        Arc::new(Metrics::new()),
        TEST_NAMESPACE,
        Some("test-0".into()),
    );
    ctx.now = now;
    // no policy offers a pool by DRA unless a test says so: no DeviceClass calls
    ctx.device_classes.none();
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// A client over a mock service, and the verifier answering it (for code outside `Context`).
pub fn mock_client() -> (Client, ApiServerVerifier) {
    let (mock_service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Client::new(mock_service, "default"),
        ApiServerVerifier(handle),
    )
}

/// Awaits the verifier task for at most one second.
pub async fn timeout_after_1s(handle: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("timeout on mock apiserver")
        .expect("scenario succeeded");
}

/// What a test expects the reconciler to call, in order.
#[derive(Clone, Debug)]
pub enum Scenario {
    /// No call at all.
    RadioSilence,
    /// A network its namespace may not have: a warning event with `reason` whose note contains
    /// `says`, the deletion of its NAD, then a status with `Valid=True`, `Ready=False` (reason
    /// `reason`, the message containing `says`) and no NAD name.
    NetworkNamespaceRefused {
        /// Namespace.
        namespace: String,
        /// Network (and NAD) name.
        name: String,
        /// `NamespaceNotAllowed` or `NotInAllowList`.
        reason: String,
        /// A piece of the message.
        says: String,
    },
    /// Server-side apply of `nicnodestates/<node>` with exactly `spec`, then (when `label` is
    /// set) a server-side apply of the Node setting or removing the device-plugin label.
    NodeStateApply {
        /// Node name.
        node: String,
        /// The expected `spec`.
        spec: NicNodeStateSpec,
        /// The expected label call.
        label: Option<bool>,
    },
    /// The first request must be `method path`; it is answered with `code`.
    ServerError {
        /// Expected method.
        method: Method,
        /// Expected path (without query).
        path: String,
        /// HTTP status to answer.
        code: u16,
    },
    /// Server-side apply of the NAD `namespace/name` carrying the resourceName annotation and an
    /// owner reference to the network with `network_uid`, then the network status (Valid and
    /// Ready true).
    NadApply {
        /// Namespace of the network and NAD.
        namespace: String,
        /// Name of the network and NAD.
        name: String,
        /// Expected annotation value (`smartnic.io/<resource>`).
        resource: String,
        /// uid of the `NicNetwork`.
        network_uid: String,
    },
    /// Only the network status, with `Valid=False` and a message containing `field`.
    NetworkInvalid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// A field path the message must name.
        field: String,
    },
    /// Grant patches (`drain-grant=draining` with the object's resourceVersion) on exactly these
    /// `(node, resourceVersion)` in order, each followed by a `DrainGranted` event, then the pool
    /// status.
    DrainGrants {
        /// Expected grants in order.
        grants: Vec<(String, String)>,
        /// Pool whose status is applied after the grants.
        pool: String,
        /// Expected `status.nodes`.
        nodes: u32,
        /// Expected `status.draining`.
        draining: u32,
        /// Expected `status.maxUnavailableNodes`.
        max_unavailable: u32,
    },
    /// A node holding `draining` with pods to evict: cordon, list pods, one eviction per
    /// expected pod (answered `evict_codes[i]`), then the Draining condition and, when an
    /// eviction was refused with 429, an `EvictionBlocked` event.
    DrainEvict {
        /// Node name.
        node: String,
        /// Pods on the node, as returned by the list.
        pods: Vec<Value>,
        /// `(namespace, name, answer code)` of each expected eviction, in order.
        evictions: Vec<(String, String, u16)>,
        /// Expected Draining condition reason.
        reason: String,
        /// `(pool, nodes, draining, maxUnavailableNodes)` of the pool status applied last.
        pool: Option<(String, u32, u32, u32)>,
    },
    /// A node past its drain deadline: list pods, a dry-run eviction per expected pod (answered
    /// with its code), uncordon (when `uncordon`), grant back to `none` with the grant time
    /// removed and `drain-retry-after` set, `Draining=False` reason `DrainTimedOut` whose message
    /// contains each of `blocked`, a `DrainTimedOut` event, then the pool status when given.
    DrainTimeout {
        /// Node name.
        node: String,
        /// Pods on the node, as returned by the list.
        pods: Vec<Value>,
        /// `(namespace, name, answer code)` of each expected dry-run eviction, in order.
        dry_runs: Vec<(String, String, u16)>,
        /// Whether the node is uncordoned.
        uncordon: bool,
        /// Expected `drain-retry-after`.
        retry_after: String,
        /// Texts the condition message and the event note must contain.
        blocked: Vec<String>,
        /// `(pool, nodes, draining, maxUnavailableNodes)` of the pool status applied last.
        pool: Option<(String, u32, u32, u32)>,
    },
    /// A node whose agent finished: uncordon, grant back to `none`, Draining condition false.
    DrainRelease {
        /// Node name.
        node: String,
    },
    /// A merge patch of `nicnodestates/<node>` leaving only the `keep` finalizers, conditional
    /// on the resourceVersion.
    OrphanFinalizer {
        /// Node name.
        node: String,
        /// Finalizers that must remain.
        keep: Vec<String>,
    },
    /// The status singleton: one policy status apply (Valid false, message naming `field`).
    PolicyInvalidStatus {
        /// Policy name.
        policy: String,
        /// Field path the Valid message must name.
        field: String,
    },
}

/// A request as the test sees it.
pub struct Seen {
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// `Content-Type` header.
    pub content_type: String,
    /// Body as JSON (`Null` when empty).
    pub body: Value,
}

impl ApiServerVerifier {
    /// Runs `scenario` on a task; the test awaits it with [`timeout_after_1s`].
    pub fn run(self, scenario: Scenario) -> JoinHandle<()> {
        tokio::spawn(async move {
            match scenario {
                Scenario::RadioSilence => {}
                Scenario::NetworkNamespaceRefused {
                    namespace,
                    name,
                    reason,
                    says,
                } => {
                    self.handle_event_with(&reason, std::slice::from_ref(&says))
                        .await
                        .handle_network_refused(&namespace, &name, &reason, &says)
                        .await;
                }
                Scenario::NodeStateApply { node, spec, label } => {
                    let v = self.handle_node_state_apply(&node, &spec).await;
                    if let Some(on) = label {
                        v.handle_node_label(&node, on).await;
                    }
                }
                Scenario::ServerError { method, path, code } => {
                    self.handle_error(method, &path, code).await;
                }
                Scenario::NadApply {
                    namespace,
                    name,
                    resource,
                    network_uid,
                } => {
                    self.handle_nad_apply(&namespace, &name, &resource, &network_uid)
                        .await
                        .handle_network_status(&namespace, &name, true, None)
                        .await;
                }
                Scenario::NetworkInvalid {
                    namespace,
                    name,
                    field,
                } => {
                    self.handle_event("InvalidSpec")
                        .await
                        .handle_network_status(&namespace, &name, false, Some(&field))
                        .await;
                }
                Scenario::DrainGrants {
                    grants,
                    pool,
                    nodes,
                    draining,
                    max_unavailable,
                } => {
                    let mut v = self;
                    for (node, rv) in &grants {
                        v = v
                            .handle_grant(node, rv, "draining")
                            .await
                            .handle_event("DrainGranted")
                            .await;
                    }
                    v.handle_pool_status(&pool, nodes, draining, max_unavailable)
                        .await;
                }
                Scenario::DrainEvict {
                    node,
                    pods,
                    evictions,
                    reason,
                    pool,
                } => {
                    let mut v = self
                        .handle_cordon(&node, true)
                        .await
                        .handle_pod_list(&node, pods)
                        .await;
                    let mut blocked = false;
                    for (ns, name, code) in &evictions {
                        blocked |= *code == 429;
                        v = v.handle_eviction(ns, name, *code).await;
                    }
                    v = v.handle_draining_condition(&node, true, &reason, &[]).await;
                    if blocked {
                        v = v.handle_event("EvictionBlocked").await;
                    }
                    if let Some((pool, nodes, draining, max)) = pool {
                        v.handle_pool_status(&pool, nodes, draining, max).await;
                    }
                }
                Scenario::DrainTimeout {
                    node,
                    pods,
                    dry_runs,
                    uncordon,
                    retry_after,
                    blocked,
                    pool,
                } => {
                    let mut v = self.handle_pod_list(&node, pods).await;
                    for (ns, name, code) in &dry_runs {
                        v = v.handle_dry_run_eviction(ns, name, *code).await;
                    }
                    if uncordon {
                        v = v.handle_cordon(&node, false).await;
                    }
                    v = v
                        .handle_timeout_grant(&node, &retry_after)
                        .await
                        .handle_draining_condition(&node, false, "DrainTimedOut", &blocked)
                        .await
                        .handle_event_with("DrainTimedOut", &blocked)
                        .await;
                    if let Some((pool, nodes, draining, max)) = pool {
                        v.handle_pool_status(&pool, nodes, draining, max).await;
                    }
                }
                Scenario::DrainRelease { node } => {
                    self.handle_cordon(&node, false)
                        .await
                        .handle_grant(&node, "", "none")
                        .await
                        .handle_draining_condition(&node, false, "Idle", &[])
                        .await;
                }
                Scenario::OrphanFinalizer { node, keep } => {
                    self.handle_orphan_finalizer(&node, &keep).await;
                }
                Scenario::PolicyInvalidStatus { policy, field } => {
                    self.handle_policy_status(&policy, &field).await;
                }
            }
        })
    }

    /// Takes the next request without assertions (for tests where concurrent controllers call
    /// in any order).
    pub async fn next_any(&mut self) -> Option<(Method, String, Seen, Responder)> {
        let (request, send) = self.0.next_request().await?;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = request.into_body().collect_bytes().await.ok()?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).ok()?
        };
        Some((
            method,
            path,
            Seen {
                query: BTreeMap::new(),
                content_type,
                body,
            },
            send,
        ))
    }

    /// Takes the next request, asserting its method and path (query excluded).
    pub async fn expect(&mut self, method: Method, path: &str) -> (Seen, Responder) {
        let (request, send) = self.0.next_request().await.expect("service not called");
        assert_eq!(request.method(), method, "method of {}", request.uri());
        assert_eq!(request.uri().path(), path, "path");
        let query = request
            .uri()
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|kv| !kv.is_empty())
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                    .collect()
            })
            .unwrap_or_default();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (
            Seen {
                query,
                content_type,
                body,
            },
            send,
        )
    }

    /// Asserts a server-side apply by the operator's field manager (forced) and returns it.
    pub(crate) async fn expect_apply(&mut self, path: &str) -> (Seen, Responder) {
        let (seen, send) = self.expect(Method::PATCH, path).await;
        assert_eq!(
            seen.content_type, "application/apply-patch+yaml",
            "{path} must be server-side apply"
        );
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER_OPERATOR)
        );
        assert_eq!(
            seen.query.get("force").map(String::as_str),
            Some("true"),
            "{path} applies are forced"
        );
        (seen, send)
    }

    /// Asserts a JSON merge patch carrying the operator's field manager.
    async fn expect_merge(&mut self, path: &str) -> (Seen, Responder) {
        let (seen, send) = self.expect(Method::PATCH, path).await;
        assert_eq!(
            seen.content_type, "application/merge-patch+json",
            "{path} must be a merge patch"
        );
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER_OPERATOR)
        );
        (seen, send)
    }

    async fn handle_node_state_apply(mut self, node: &str, spec: &NicNodeStateSpec) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicnodestates/{node}");
        let (seen, send) = self.expect_apply(&path).await;
        let b = &seen.body;
        assert_eq!(b["apiVersion"], "smartnic.io/v1alpha1");
        assert_eq!(b["kind"], "NicNodeState");
        assert_eq!(b["metadata"]["name"], node);
        assert_eq!(b["metadata"]["labels"]["smartnic.io/node"], node);
        assert_eq!(
            b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "smartnic-operator"
        );
        assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(b["metadata"]["ownerReferences"][0]["name"], node);
        assert!(
            b["spec"]["devicePlugin"]["resourceList"].is_array(),
            "the device-plugin configuration is always part of the spec: {b}"
        );
        assert_eq!(
            b["spec"],
            serde_json::to_value(spec).unwrap(),
            "spec of {node}"
        );
        assert!(
            b.get("status").is_none(),
            "the operator never applies the agent's status"
        );
        reply(send, 200, with_rv(seen.body, "2"));
        self
    }

    async fn handle_node_label(mut self, node: &str, on: bool) -> Self {
        let (seen, send) = self.expect_apply(&format!("/api/v1/nodes/{node}")).await;
        let b = &seen.body;
        assert_eq!(b["kind"], "Node");
        assert_eq!(b["metadata"]["name"], node);
        if on {
            assert_eq!(
                b["metadata"]["labels"],
                json!({"smartnic.io/device-plugin": "true"})
            );
        } else {
            assert!(b["metadata"].get("labels").is_none(), "{b}");
        }
        assert!(b.get("spec").is_none(), "only the label is applied: {b}");
        reply(send, 200, with_rv(seen.body, "3"));
        self
    }

    async fn handle_error(mut self, method: Method, path: &str, code: u16) -> Self {
        let (_, send) = self.expect(method, path).await;
        reply(
            send,
            code,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcdserver: request timed out", "reason": "InternalError", "code": code}),
        );
        self
    }

    async fn handle_nad_apply(mut self, ns: &str, name: &str, resource: &str, uid: &str) -> Self {
        let path = format!(
            "/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}"
        );
        let (seen, send) = self.expect_apply(&path).await;
        let b = &seen.body;
        assert_eq!(b["apiVersion"], "k8s.cni.cncf.io/v1");
        assert_eq!(b["kind"], "NetworkAttachmentDefinition");
        assert_eq!(b["metadata"]["namespace"], ns);
        assert_eq!(
            b["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
            resource
        );
        assert_eq!(b["metadata"]["labels"]["smartnic.io/network"], name);
        let owner = &b["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "NicNetwork");
        assert_eq!(owner["uid"], uid);
        assert_eq!(owner["controller"], true);
        let config: Value =
            serde_json::from_str(b["spec"]["config"].as_str().expect("config string")).unwrap();
        assert_eq!(config["type"], "smartnic");
        assert_eq!(config["name"], name);
        reply(send, 200, with_rv(seen.body, "7"));
        self
    }

    async fn handle_network_status(
        mut self,
        ns: &str,
        name: &str,
        valid: bool,
        field: Option<&str>,
    ) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/namespaces/{ns}/nicnetworks/{name}/status");
        let (seen, send) = self.expect_apply(&path).await;
        let conds = seen.body["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let get = |t: &str| conds.iter().find(|c| c["type"] == t).cloned().expect(t);
        let v = get("Valid");
        assert_eq!(v["status"], if valid { "True" } else { "False" });
        assert_eq!(v["observedGeneration"], 1);
        assert_eq!(get("Ready")["status"], if valid { "True" } else { "False" });
        if let Some(f) = field {
            assert!(
                v["message"].as_str().unwrap().contains(f),
                "message names {f}: {v}"
            );
        }
        if valid {
            assert_eq!(seen.body["status"]["networkAttachmentDefinition"], name);
        }
        reply(
            send,
            200,
            with_rv(with_spec(seen.body, json!({"mode": "sriov"})), "8"),
        );
        self
    }

    async fn handle_network_refused(
        mut self,
        ns: &str,
        name: &str,
        reason: &str,
        says: &str,
    ) -> Self {
        let nad = format!(
            "/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}"
        );
        let (_, send) = self.expect(Method::DELETE, &nad).await;
        reply(
            send,
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
        let path = format!("/apis/smartnic.io/v1alpha1/namespaces/{ns}/nicnetworks/{name}/status");
        let (seen, send) = self.expect_apply(&path).await;
        let conds = seen.body["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let get = |t: &str| conds.iter().find(|c| c["type"] == t).cloned().expect(t);
        assert_eq!(get("Valid")["status"], "True");
        let ready = get("Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], reason);
        assert!(ready["message"].as_str().unwrap().contains(says), "{ready}");
        assert!(
            seen.body["status"]
                .get("networkAttachmentDefinition")
                .is_none()
        );
        reply(
            send,
            200,
            with_rv(with_spec(seen.body, json!({"mode": "sriov"})), "8"),
        );
        self
    }

    async fn handle_event(self, reason: &str) -> Self {
        self.handle_event_with(reason, &[]).await
    }

    /// An event with `reason` whose note contains each of `texts`.
    async fn handle_event_with(mut self, reason: &str, texts: &[String]) -> Self {
        let (request, send) = self.0.next_request().await.expect("event not published");
        assert_eq!(request.method(), Method::POST, "event for {reason}");
        let path = request.uri().path().to_owned();
        assert!(
            path.starts_with("/apis/events.k8s.io/v1/namespaces/") && path.ends_with("/events"),
            "event path {path}"
        );
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("event body");
        let body: Value = serde_json::from_slice(&bytes).expect("event JSON");
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["reportingController"], "smartnic-operator");
        for t in texts {
            assert!(
                body["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(t.as_str()),
                "event note names {t}: {body}"
            );
        }
        reply(send, 201, body);
        self
    }

    async fn handle_grant(mut self, node: &str, rv: &str, grant: &str) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicnodestates/{node}");
        let (seen, send) = self.expect_merge(&path).await;
        let b = &seen.body;
        assert_eq!(
            b["metadata"]["annotations"]["smartnic.io/drain-grant"], grant,
            "{b}"
        );
        if !rv.is_empty() {
            assert_eq!(
                b["metadata"]["resourceVersion"], rv,
                "grants are conditional on what was read"
            );
        }
        let a = &b["metadata"]["annotations"];
        match grant {
            "draining" => {
                assert!(
                    a["smartnic.io/drain-granted-at"]
                        .as_str()
                        .is_some_and(|t| t.parse::<Timestamp>().is_ok()),
                    "a grant records its time: {b}"
                );
                assert!(
                    a.get("smartnic.io/drain-retry-after")
                        .is_some_and(Value::is_null),
                    "a grant removes a former retry-after: {b}"
                );
            }
            "none" => assert!(
                a.get("smartnic.io/drain-granted-at")
                    .is_some_and(Value::is_null),
                "releasing removes the grant time: {b}"
            ),
            _ => {}
        }
        assert!(b.get("spec").is_none() && b.get("status").is_none(), "{b}");
        reply(
            send,
            200,
            json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState", "metadata": {"name": node, "resourceVersion": "100", "annotations": {"smartnic.io/drain-grant": grant}}, "spec": {"interfaces": []}}),
        );
        self
    }

    async fn handle_timeout_grant(mut self, node: &str, retry_after: &str) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicnodestates/{node}");
        let (seen, send) = self.expect_merge(&path).await;
        let b = &seen.body;
        assert_eq!(
            b["metadata"]["annotations"],
            json!({
                "smartnic.io/drain-grant": "none",
                "smartnic.io/drain-granted-at": null,
                "smartnic.io/drain-retry-after": retry_after,
            }),
            "{b}"
        );
        assert_eq!(b["metadata"]["resourceVersion"], format!("rv-{node}"));
        reply(
            send,
            200,
            json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState", "metadata": {"name": node, "resourceVersion": "100", "annotations": {"smartnic.io/drain-grant": "none"}}, "spec": {"interfaces": []}}),
        );
        self
    }

    async fn handle_dry_run_eviction(mut self, ns: &str, name: &str, code: u16) -> Self {
        let (seen, send) = self
            .expect(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
            )
            .await;
        assert_eq!(
            seen.query.get("dryRun").map(String::as_str),
            Some("All"),
            "at the deadline nothing is evicted any more"
        );
        assert_eq!(seen.body["metadata"]["name"], name);
        let status = if code < 300 { "Success" } else { "Failure" };
        reply(
            send,
            code,
            json!({"kind": "Status", "apiVersion": "v1", "status": status, "reason": "TooManyRequests", "message": "Cannot evict pod as it would violate the pod's disruption budget.", "code": code}),
        );
        self
    }

    async fn handle_pool_status(mut self, pool: &str, nodes: u32, draining: u32, max: u32) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicpools/{pool}/status");
        let (seen, send) = self.expect_apply(&path).await;
        let s = &seen.body["status"];
        assert_eq!(s["nodes"], nodes);
        assert_eq!(s["draining"], draining);
        assert_eq!(s["maxUnavailableNodes"], max);
        assert_eq!(s["conditions"][0]["type"], "Valid");
        assert_eq!(s["conditions"][0]["status"], "True", "{s}");
        reply(
            send,
            200,
            with_rv(with_spec(seen.body, json!({"nodeSelector": {}})), "9"),
        );
        self
    }

    async fn handle_cordon(mut self, node: &str, on: bool) -> Self {
        let (seen, send) = self.expect_merge(&format!("/api/v1/nodes/{node}")).await;
        let b = &seen.body;
        if on {
            assert_eq!(b["spec"]["unschedulable"], true, "{b}");
            assert_eq!(
                b["metadata"]["annotations"]["smartnic.io/cordoned"], "true",
                "{b}"
            );
        } else {
            assert_eq!(b["spec"]["unschedulable"], Value::Null, "{b}");
            assert_eq!(
                b["metadata"]["annotations"]["smartnic.io/cordoned"],
                Value::Null,
                "{b}"
            );
        }
        reply(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
        );
        self
    }

    async fn handle_pod_list(mut self, node: &str, pods: Vec<Value>) -> Self {
        let (seen, send) = self.expect(Method::GET, "/api/v1/pods").await;
        assert_eq!(
            seen.query.get("fieldSelector").map(String::as_str),
            Some(format!("spec.nodeName={node}").as_str())
        );
        reply(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": pods}),
        );
        self
    }

    async fn handle_eviction(mut self, ns: &str, name: &str, code: u16) -> Self {
        let (seen, send) = self
            .expect(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
            )
            .await;
        assert_eq!(seen.body["kind"], "Eviction");
        assert_eq!(seen.body["metadata"]["name"], name);
        if code < 300 {
            reply(
                send,
                code,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": code}),
            );
        } else {
            reply(
                send,
                code,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "message": "Cannot evict pod as it would violate the pod's disruption budget.", "code": code}),
            );
        }
        self
    }

    async fn handle_draining_condition(
        mut self,
        node: &str,
        on: bool,
        reason: &str,
        texts: &[String],
    ) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicnodestates/{node}/status");
        let (seen, send) = self.expect_merge(&path).await;
        let conds = seen.body["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let d = conds
            .iter()
            .find(|c| c["type"] == "Draining")
            .expect("Draining condition");
        assert_eq!(d["status"], if on { "True" } else { "False" });
        assert_eq!(d["reason"], reason, "{d}");
        for t in texts {
            assert!(
                d["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(t.as_str()),
                "message names {t}: {d}"
            );
        }
        assert!(
            seen.body["metadata"]["resourceVersion"].is_string(),
            "conditional on resourceVersion"
        );
        assert!(
            conds.iter().any(|c| c["type"] == "Synced"),
            "the agent's conditions are preserved: {conds:?}"
        );
        reply(
            send,
            200,
            with_rv(
                json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState", "metadata": {"name": node}, "spec": {"interfaces": []}}),
                "101",
            ),
        );
        self
    }

    async fn handle_orphan_finalizer(mut self, node: &str, keep: &[String]) -> Self {
        let (seen, send) = self
            .expect_merge(&format!("/apis/smartnic.io/v1alpha1/nicnodestates/{node}"))
            .await;
        assert_eq!(
            seen.body["metadata"]["finalizers"],
            json!(keep),
            "{}",
            seen.body
        );
        assert_eq!(
            seen.body["metadata"]["resourceVersion"],
            format!("rv-{node}")
        );
        reply(
            send,
            200,
            json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState", "metadata": {"name": node}, "spec": {}}),
        );
        self
    }

    async fn handle_policy_status(mut self, policy: &str, field: &str) -> Self {
        let path = format!("/apis/smartnic.io/v1alpha1/nicpolicies/{policy}/status");
        let (seen, send) = self.expect_apply(&path).await;
        let conds = seen.body["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let v = conds.iter().find(|c| c["type"] == "Valid").expect("Valid");
        assert_eq!(v["status"], "False");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
        let spec = json!({"nodeSelector": {}, "nicSelector": {}, "numVfs": 0, "resourceName": "x"});
        reply(send, 200, with_rv(with_spec(seen.body, spec), "5"));
        self
    }
}

/// A status apply echoed with the object's spec, as the API server returns the whole object.
pub(crate) fn with_spec(mut v: Value, spec: Value) -> Value {
    v["spec"] = spec;
    v
}

pub(crate) fn with_rv(mut v: Value, rv: &str) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(rv));
        m.entry("uid")
            .or_insert(json!("00000000-0000-0000-0000-000000000001"));
    }
    v
}

/// Answers a request with `code` and a JSON body.
pub fn reply(send: Responder, code: u16, body: Value) {
    let response = Response::builder()
        .status(StatusCode::from_u16(code).expect("status code"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(response);
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

// === builders ===

/// A Node with a uid and these labels.
pub fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.uid = Some(format!("uid-{name}"));
    n.metadata.resource_version = Some("1".into());
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

/// A `NicNodeState` as the operator would have created it for `node`.
pub fn node_state(name: &str, node: &Node, spec: NicNodeStateSpec) -> NicNodeState {
    let mut s = NicNodeState::new(name, spec);
    s.metadata.labels = Some(crate::controller::node_state::node_state_labels(name));
    s.metadata.owner_references = node.owner_ref(&()).map(|o| vec![o]);
    s.metadata.resource_version = Some(format!("rv-{name}"));
    s.metadata.generation = Some(1);
    s
}

/// `state` with this discovered inventory in its status.
pub fn with_inventory(mut state: NicNodeState, nics: Vec<Nic>) -> NicNodeState {
    state
        .status
        .get_or_insert_with(NicNodeStateStatus::default)
        .nics = nics;
    state
}
