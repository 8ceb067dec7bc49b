//! The overlay in the agent against the mock API server: the tunnel endpoint in the pass's one
//! status apply (and no write when it did not change), an uplink without an address as a
//! condition, and the node states listed and watched → the endpoints handed to the peer sync
//! (a recording applier in place of OVS), with a failed apply retried.

use std::net::IpAddr;
use std::time::Duration;

use crds::{
    NicNodeState,
    node_state::{NicNodeStateSpec, NicNodeStateStatus, TunnelEndpoint},
};
use futures::{StreamExt, future::BoxFuture, stream};
use http::{Method, Request, Response, StatusCode};
use kube::{client::Body, runtime::watcher};
use offload::overlay::{NodeEndpoint, PeerChange, PeerSyncOutcome, peers_from_endpoints};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cluster_tests::{STATE_PATH, by_agent, call, done, mock, serve};
use crate::run::Agent;
use crate::run::decide::{Backoff, PassOutcome};
use crate::run::overlay::{EndpointReader, PeerApplier, PeerLoopConfig, TunnelConfig, run_peers};
use crate::run::overlay_decide::tunnel_report;
use crate::run::tests::{agent, applied_status, get_state, igb, setup, state, status_path};

struct FixedEndpoint(Result<IpAddr, String>);

impl EndpointReader for FixedEndpoint {
    fn read<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<IpAddr, String>> {
        Box::pin(async move { self.0.clone() })
    }
}

fn tunnel(read: Result<IpAddr, String>) -> TunnelConfig {
    TunnelConfig {
        uplink: "eth1".into(),
        reader: Box::new(FixedEndpoint(read)),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn with_tunnel(a: Agent, read: Result<IpAddr, String>) -> Agent {
    a.with_tunnel(tunnel(read))
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn the_tunnel_endpoint_goes_into_the_status_apply_and_is_not_written_again_unchanged() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
    let published = tunnel_report("eth1", Ok(ip("10.0.0.1")));
    let written = applied_status(vec![igb()], Some(&published));
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&empty, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                |q, body| {
                    by_agent(q);
                    assert!(q.contains("force=true"), "{q}");
                    let st = &body["status"];
                    // the inventory and the endpoint in one apply
                    assert_eq!(st["nics"][0]["pciAddress"], "0000:01:00.0");
                    assert_eq!(
                        st["tunnelEndpoint"],
                        json!({"ip": "10.0.0.1", "interface": "eth1"})
                    );
                    assert_eq!(condition(st, "Synced")["status"], "True");
                    let t = condition(st, "TunnelEndpoint");
                    assert_eq!(t["status"], "True");
                    assert_eq!(t["reason"], "Published");
                    assert_eq!(t["observedGeneration"], 3);
                },
                state(&empty, json!({}), None),
            ),
            // what was written, read back: nothing to write
            get_state(&empty, json!({}), Some(&written)),
        ],
    );
    let mut a = with_tunnel(agent(client, &s), Ok(ip("10.0.0.1")));
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
}

#[tokio::test]
async fn an_uplink_without_an_address_withdraws_the_endpoint_with_a_condition_naming_it() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
    // published by an earlier pass
    let before = applied_status(
        vec![igb()],
        Some(&tunnel_report("eth1", Ok(ip("10.0.0.1")))),
    );
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&empty, json!({}), Some(&before)),
            call(
                Method::PATCH,
                &status_path(),
                |_, body| {
                    let st = &body["status"];
                    assert!(st.get("tunnelEndpoint").is_none(), "withdrawn: {st}");
                    let t = condition(st, "TunnelEndpoint");
                    assert_eq!(t["status"], "False");
                    assert_eq!(t["reason"], "UplinkUnavailable");
                    let m = t["message"].as_str().unwrap_or_default();
                    assert!(m.contains("uplink eth1") && m.contains("no global"), "{m}");
                    // the NIC side is unaffected
                    assert_eq!(condition(st, "Synced")["status"], "True");
                },
                state(&empty, json!({}), None),
            ),
        ],
    );
    let mut a = with_tunnel(
        agent(client, &s),
        Err("uplink eth1 has no global IPv4 or IPv6 address to be the tunnel endpoint".into()),
    );
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
}

#[tokio::test]
async fn without_tunnel_uplink_an_endpoint_the_agent_published_before_is_removed() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
    let before = applied_status(
        vec![igb()],
        Some(&tunnel_report("eth1", Ok(ip("10.0.0.1")))),
    );
    let mut obj = state(&empty, json!({}), Some(&before));
    obj["metadata"]["managedFields"] = json!([{
        "manager": "smartnic.io/agent", "operation": "Apply", "subresource": "status",
        "apiVersion": "smartnic.io/v1alpha1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:tunnelEndpoint": {"f:ip": {}, "f:interface": {}}}},
    }]);
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            call(Method::GET, STATE_PATH, |_, _| {}, obj),
            call(
                Method::PATCH,
                &status_path(),
                |_, body| {
                    let st = &body["status"];
                    assert!(st.get("tunnelEndpoint").is_none(), "{st}");
                    assert_eq!(st["conditions"].as_array().map(Vec::len), Some(1));
                },
                state(&empty, json!({}), None),
            ),
        ],
    );
    let mut a = agent(client, &s);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
}

/// Records what the peer loop hands to the peer sync; the first `fail` applies fail.
struct Recording {
    tx: mpsc::UnboundedSender<(Option<IpAddr>, Vec<NodeEndpoint>)>,
    fail: u32,
    resets: u32,
}

impl PeerApplier for Recording {
    fn apply<'a>(
        &'a mut self,
        self_ip: Option<IpAddr>,
        nodes: &'a [NodeEndpoint],
    ) -> BoxFuture<'a, Result<PeerSyncOutcome, String>> {
        Box::pin(async move {
            let _ = self.tx.send((self_ip, nodes.to_vec()));
            if self.fail > 0 {
                self.fail -= 1;
                return Err("cannot connect to OVSDB at /run/openvswitch/db.sock".into());
            }
            Ok(PeerSyncOutcome {
                set: peers_from_endpoints("n1", self_ip, nodes),
                change: Some(PeerChange::default()),
            })
        })
    }

    fn reset(&mut self) {
        self.resets += 1;
    }
}

fn node_state(name: &str, endpoint: Option<&str>) -> Value {
    let mut v = json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
        "metadata": {"name": name, "resourceVersion": "10"},
        "spec": {},
    });
    if let Some(e) = endpoint {
        let st = NicNodeStateStatus {
            tunnel_endpoint: Some(TunnelEndpoint {
                ip: e.into(),
                interface: "eth1".into(),
            }),
            ..Default::default()
        };
        v["status"] = serde_json::to_value(st).expect("status");
    }
    v
}

fn ep(node: &str, ip: Option<&str>) -> NodeEndpoint {
    NodeEndpoint::new(node, ip)
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

async fn answer(handle: &mut Handle, check: impl Fn(&str), reply: &Value) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), "/apis/smartnic.io/v1alpha1/nicnodestates");
    check(req.uri().query().unwrap_or_default());
    send.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(reply).expect("reply")))
            .expect("response"),
    );
}

#[tokio::test]
async fn the_listed_and_watched_node_states_become_the_endpoints_of_the_peer_sync() {
    let (client, mut handle) = mock();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let peers = tokio::spawn(async move {
        run_peers(
            "n1",
            crate::run::overlay::node_states(client),
            Recording {
                tx,
                fail: 0,
                resets: 0,
            },
            PeerLoopConfig {
                settle: Duration::ZERO,
                ..PeerLoopConfig::default()
            },
            async {
                let _ = stopped.await;
            },
        )
        .await;
    });
    // every node, cluster-wide, from the API server's cache
    let list = json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeStateList",
        "metadata": {"resourceVersion": "10"},
        "items": [node_state("n2", Some("10.0.0.2")), node_state("n1", Some("10.0.0.1")), node_state("n3", None)],
    });
    answer(
        &mut handle,
        |q| {
            assert!(
                !q.contains("watch=true") && !q.contains("fieldSelector"),
                "{q}"
            );
            assert!(q.contains("resourceVersion=0"), "{q}");
        },
        &list,
    )
    .await;
    let (self_ip, nodes) = rx.recv().await.expect("the first apply");
    assert_eq!(self_ip, Some(ip("10.0.0.1")), "its own published endpoint");
    assert_eq!(
        nodes,
        [
            ep("n1", Some("10.0.0.1")),
            ep("n2", Some("10.0.0.2")),
            ep("n3", None)
        ]
    );
    // a node publishes its endpoint; another one goes away
    let events = [
        json!({"type": "MODIFIED", "object": node_state("n3", Some("10.0.0.3"))}),
        json!({"type": "DELETED", "object": node_state("n2", Some("10.0.0.2"))}),
    ];
    let (req, send) = handle.next_request().await.expect("the watch");
    assert!(
        req.uri().query().is_some_and(|q| q.contains("watch=true")),
        "{}",
        req.uri()
    );
    let body: Vec<u8> = events
        .iter()
        .flat_map(|e| {
            let mut line = serde_json::to_vec(e).expect("event");
            line.push(b'\n');
            line
        })
        .collect();
    send.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("response"),
    );
    let mut last = None;
    while let Ok(Some(got)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        let done = got.1 == [ep("n1", Some("10.0.0.1")), ep("n3", Some("10.0.0.3"))];
        last = Some(got);
        if done {
            break;
        }
    }
    assert_eq!(
        last.map(|l| l.1),
        Some(vec![ep("n1", Some("10.0.0.1")), ep("n3", Some("10.0.0.3"))])
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(2), peers)
        .await
        .expect("the loop stops")
        .expect("no panic");
}

fn event(e: watcher::Event<NicNodeState>) -> Result<watcher::Event<NicNodeState>, watcher::Error> {
    Ok(e)
}

fn typed(name: &str, endpoint: Option<&str>) -> NicNodeState {
    serde_json::from_value(node_state(name, endpoint)).expect("node state")
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_ovs_is_retried_with_backoff_and_an_unchanged_update_applies_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = stream::iter([
        event(watcher::Event::Init),
        event(watcher::Event::InitApply(typed("n1", Some("10.0.0.1")))),
        event(watcher::Event::InitApply(typed("n2", Some("10.0.0.2")))),
        event(watcher::Event::InitDone),
        // an update of n2 that does not touch its endpoint
        event(watcher::Event::Apply(typed("n2", Some("10.0.0.2")))),
    ])
    .chain(stream::pending());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let peers = tokio::spawn(async move {
        run_peers(
            "n1",
            events,
            Recording {
                tx,
                fail: 2,
                resets: 0,
            },
            PeerLoopConfig {
                settle: Duration::ZERO,
                retry: Backoff {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(60),
                },
                resync: Duration::from_secs(300),
            },
            async {
                let _ = stopped.await;
            },
        )
        .await;
    });
    let want = vec![ep("n1", Some("10.0.0.1")), ep("n2", Some("10.0.0.2"))];
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        let (_, nodes) = rx.recv().await.expect("an apply");
        assert_eq!(nodes, want);
        at.push(start.elapsed());
    }
    // two failures: tries after 1 s and 2 s more
    assert_eq!(
        at,
        [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(3)
        ]
    );
    // nothing more until the resync, which applies again (flows restored after a vswitchd
    // restart)
    let (_, nodes) = rx.recv().await.expect("the resync");
    assert_eq!(nodes, want);
    assert!(
        start.elapsed() >= Duration::from_secs(300),
        "{:?}",
        start.elapsed()
    );
    let _ = stop.send(());
    peers.await.expect("no panic");
}
