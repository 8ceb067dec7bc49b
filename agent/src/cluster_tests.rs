//! Agent ↔ API tests on a `tower_test` mock API server: the node state creation, the status
//! apply (only when changed), the drain handshake and the plan event. Each test lists the calls
//! it expects in order; the verifier asserts method, path and body and answers.

use std::time::Duration;

use crds::{
    DrainGrant, DrainRequest, NicNodeState,
    inventory::Nic,
    k8s::jiff::Timestamp,
    node_state::{NicNodeStateStatus, SyncStatus},
};
use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use planner::ChangeClass;
use serde_json::{Value, json};

use crate::cluster::{DrainDecision, NodeApi, build_status, drain_annotations, drain_decision};

pub(crate) type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Checks the query string and the JSON body of a request.
pub(crate) type Check = Box<dyn Fn(&str, &Value) + Send>;

/// One expected call: method, path (without the query), a check of the query and the body, and
/// the reply.
pub(crate) struct Call {
    method: Method,
    path: String,
    check: Check,
    reply: Value,
}

pub(crate) fn call(
    method: Method,
    path: &str,
    check: impl Fn(&str, &Value) + Send + 'static,
    reply: Value,
) -> Call {
    Call {
        method,
        path: path.to_owned(),
        check: Box::new(check),
        reply,
    }
}

pub(crate) fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Serves `calls` in order, then drops the handle (an extra call fails in the client).
pub(crate) fn serve(mut handle: Handle, calls: Vec<Call>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for c in calls {
            let (req, send) = handle.next_request().await.expect("a request");
            assert_eq!(req.method(), c.method, "{}", req.uri());
            assert_eq!(req.uri().path(), c.path);
            let query = req.uri().query().unwrap_or_default().to_owned();
            let bytes = req.into_body().collect_bytes().await.expect("body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("json body")
            };
            (c.check)(&query, &body);
            send.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(serde_json::to_vec(&c.reply).expect("reply")))
                    .expect("response"),
            );
        }
    })
}

pub(crate) async fn done(task: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the expected calls came")
        .expect("every call matched");
}

pub(crate) const STATE_PATH: &str = "/apis/smartnic.io/v1alpha1/nicnodestates/n1";

fn state_json(annotations: Value) -> Value {
    json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
        "metadata": {"name": "n1", "uid": "s-uid", "resourceVersion": "7", "generation": 3, "annotations": annotations},
        "spec": {},
    })
}

pub(crate) fn by_agent(query: &str) {
    assert!(
        query.contains("fieldManager=smartnic.io%2Fagent"),
        "{query}"
    );
}

#[tokio::test]
async fn the_agent_creates_its_node_state_with_the_operators_labels_and_owner() {
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            call(
                Method::GET,
                "/api/v1/nodes/n1",
                |_, _| {},
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "node-uid"}}),
            ),
            call(
                Method::PATCH,
                STATE_PATH,
                |q, body| {
                    by_agent(q);
                    assert!(
                        !q.contains("force"),
                        "metadata is shared with the operator: {q}"
                    );
                    assert_eq!(
                        body["metadata"]["labels"],
                        json!({"app.kubernetes.io/managed-by": "smartnic-operator", "smartnic.io/node": "n1"})
                    );
                    let owner = &body["metadata"]["ownerReferences"][0];
                    assert_eq!(owner["kind"], "Node");
                    assert_eq!(owner["uid"], "node-uid");
                    assert_eq!(body["spec"], json!({}));
                    assert!(body.get("status").is_none());
                },
                state_json(json!({})),
            ),
        ],
    );
    let api = NodeApi::new(client, "n1");
    let state = api.ensure_node_state().await.expect("created");
    assert_eq!(state.metadata.generation, Some(3));
    done(task).await;
}

fn status(n: u32, sync: SyncStatus) -> NicNodeStateStatus {
    build_status(
        None,
        vec![Nic {
            pci_address: "0000:01:00.0".into(),
            vendor_id: "8086".into(),
            device_id: "10c9".into(),
            total_vfs: 7,
            num_vfs: n,
            ..Default::default()
        }],
        sync,
        None,
        Some(3),
        Some(3),
        Timestamp::from_second(1_700_000_000).expect("time"),
    )
}

#[tokio::test]
async fn status_is_applied_by_the_agent_only_when_it_changed() {
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![call(
            Method::PATCH,
            &format!("{STATE_PATH}/status"),
            |q, body| {
                by_agent(q);
                assert!(q.contains("force=true"), "{q}");
                let st = &body["status"];
                assert_eq!(st["nics"][0]["numVfs"], 7);
                assert_eq!(st["syncStatus"], "Succeeded");
                assert_eq!(st["appliedGeneration"], 3);
                assert_eq!(st["conditions"][0]["type"], "Synced");
                assert_eq!(st["conditions"][0]["status"], "True");
                assert_eq!(st["conditions"][0]["observedGeneration"], 3);
            },
            state_json(json!({})),
        )],
    );
    let api = NodeApi::new(client, "n1");
    let first = status(7, SyncStatus::Succeeded);
    assert!(api.report_status(&first, None).await.expect("applied"));
    // same content, later clock: no call (the verifier would fail an extra one)
    let mut again = status(7, SyncStatus::Succeeded);
    again.conditions[0].last_transition_time =
        crds::k8s::Time(Timestamp::from_second(1_800_000_000).expect("time"));
    assert!(
        !api.report_status(&again, Some(&first))
            .await
            .expect("skipped")
    );
    done(task).await;
}

#[test]
fn drain_decisions_follow_the_handshake() {
    use ChangeClass::*;
    assert_eq!(
        drain_decision(NonDisruptive, DrainRequest::None, DrainGrant::None),
        DrainDecision::Proceed
    );
    assert_eq!(
        drain_decision(EvictVfPods, DrainRequest::None, DrainGrant::None),
        DrainDecision::Request(DrainRequest::EvictVfPods)
    );
    assert_eq!(
        drain_decision(EvictVfPods, DrainRequest::EvictVfPods, DrainGrant::Draining),
        DrainDecision::Wait
    );
    assert_eq!(
        drain_decision(EvictVfPods, DrainRequest::EvictVfPods, DrainGrant::Drained),
        DrainDecision::Proceed
    );
    // a reboot needs more than the eviction already granted: the request is raised
    assert_eq!(
        drain_decision(Reboot, DrainRequest::EvictVfPods, DrainGrant::Drained),
        DrainDecision::Request(DrainRequest::Reboot)
    );
    // a lesser need under a larger grant proceeds
    assert_eq!(
        drain_decision(EvictVfPods, DrainRequest::Reboot, DrainGrant::Drained),
        DrainDecision::Proceed
    );
}

#[tokio::test]
async fn drain_handshake_requests_waits_for_drained_then_releases() {
    let (client, handle) = mock();
    let at = Timestamp::from_second(1_700_000_000).expect("time");
    let task = serve(
        handle,
        vec![
            // 1. ask
            call(
                Method::PATCH,
                STATE_PATH,
                |q, body| {
                    by_agent(q);
                    assert_eq!(
                        body["metadata"]["annotations"],
                        json!({"smartnic.io/drain-request": "evict-vf-pods", "smartnic.io/drain-requested-at": "2023-11-14T22:13:20Z"})
                    );
                    assert!(body.get("spec").is_none());
                },
                state_json(json!({"smartnic.io/drain-request": "evict-vf-pods"})),
            ),
            // 2. the operator granted and drained
            call(
                Method::GET,
                STATE_PATH,
                |_, _| {},
                state_json(
                    json!({"smartnic.io/drain-request": "evict-vf-pods", "smartnic.io/drain-grant": "drained"}),
                ),
            ),
            // 3. applied: release
            call(
                Method::PATCH,
                STATE_PATH,
                |_, body| {
                    assert_eq!(
                        body["metadata"]["annotations"],
                        json!({"smartnic.io/drain-request": "none"})
                    );
                },
                state_json(
                    json!({"smartnic.io/drain-request": "none", "smartnic.io/drain-grant": "drained"}),
                ),
            ),
        ],
    );
    let api = NodeApi::new(client, "n1");
    let DrainDecision::Request(req) = drain_decision(
        ChangeClass::EvictVfPods,
        DrainRequest::None,
        DrainGrant::None,
    ) else {
        panic!("a request");
    };
    api.request_drain(req, Some(at)).await.expect("asked");
    let state: NicNodeState = api.get().await.expect("read");
    let (request, grant) = drain_annotations(&state);
    assert_eq!(
        drain_decision(ChangeClass::EvictVfPods, request, grant),
        DrainDecision::Proceed
    );
    api.request_drain(DrainRequest::None, None)
        .await
        .expect("released");
    done(task).await;
}

#[tokio::test]
async fn one_event_per_plan_on_the_node_state() {
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![call(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            |_, body| {
                assert_eq!(body["reason"], "ApplyFailed");
                assert_eq!(body["type"], "Warning");
                assert_eq!(body["action"], "Apply");
                assert_eq!(body["regarding"]["kind"], "NicNodeState");
                assert_eq!(body["regarding"]["name"], "n1");
                assert_eq!(body["reportingController"], "smartnic-agent");
                assert!(
                    body["note"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("unbind VFs 0-5")
                );
            },
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
        )],
    );
    let api = NodeApi::new(client, "n1");
    let state: NicNodeState = serde_json::from_value(state_json(json!({}))).expect("state");
    api.plan_event(
        &state,
        false,
        "12 steps, disruption none, 1.2 s: PF ens1f0np0 (0000:3b:00.0): unbind VFs 0-5: EBUSY"
            .into(),
    )
    .await;
    done(task).await;
}
