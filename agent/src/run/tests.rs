//! Whole passes of the agent's loop against the mock API server and a fake host: the status
//! apply (and none when nothing changed), the drain handshake around the apply, the plan event,
//! a failed step as a condition naming the PF and the step, a drain that is not granted in time.

use std::sync::Arc;
use std::time::Duration;

use crds::{
    inventory::{Nic, NicInventory},
    k8s::jiff::Timestamp,
    node_state::{InterfaceSpec, NicNodeStateSpec, NicNodeStateStatus, VfGroup, VfIndexRange},
    policy::VfDeviceType,
};
use http::Method;
use kube::Client;
use serde_json::{Value, json};

use crate::cluster::NodeApi;
use crate::cluster_tests::{Call, STATE_PATH, by_agent, call, done, mock, serve};
use crate::fake::FakeHost;
use crate::handoff::DevicePluginFile;
use crate::metrics::AgentMetrics;
use crate::run::decide::{Backoff, PassOutcome, SyncReport};
use crate::run::{Agent, Health, HostSide, LoopConfig};
use crate::state::{AgentState, StateFile};

const IGB: &str = "0000:01:00.0";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

pub(crate) fn igb() -> Nic {
    Nic {
        pci_address: IGB.into(),
        name: Some("enp1s0".into()),
        vendor_id: "8086".into(),
        device_id: "10c9".into(),
        driver: Some("igb".into()),
        mtu: Some(1500),
        mac: Some("52:54:00:12:34:56".into()),
        total_vfs: 7,
        ..Default::default()
    }
}

fn spec(n: u32) -> NicNodeStateSpec {
    let spec = NicNodeStateSpec {
        interfaces: vec![InterfaceSpec {
            pci_address: IGB.into(),
            name: Some("enp1s0".into()),
            num_vfs: n,
            policy: "igb".into(),
            vf_groups: vec![VfGroup {
                policy: "igb".into(),
                resource_name: "igb_vf".into(),
                vfs: vec![VfIndexRange {
                    first: 0,
                    last: n - 1,
                }],
                device_type: VfDeviceType::Netdevice,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    planner::with_device_plugin_config(spec, "smartnic.io")
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("time")
}

/// The node state `n1` at generation 3 with `spec`, `annotations` and `status`.
pub(crate) fn state(
    spec: &NicNodeStateSpec,
    annotations: Value,
    status: Option<&NicNodeStateStatus>,
) -> Value {
    let mut v = json!({
        "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
        "metadata": {"name": "n1", "uid": "s-uid", "resourceVersion": "7", "generation": 3, "annotations": annotations},
        "spec": serde_json::to_value(spec).expect("spec"),
    });
    if let Some(s) = status {
        v["status"] = serde_json::to_value(s).expect("status");
    }
    v
}

/// The status a pass writes after applying generation 3 to `nics` (with `tunnel`, the
/// overlay's endpoint report).
pub(crate) fn applied_status(
    nics: Vec<Nic>,
    tunnel: Option<&crate::run::overlay_decide::TunnelReport>,
) -> NicNodeStateStatus {
    crate::cluster::status_of(
        None,
        nics,
        &SyncReport::applied(Some(3)),
        tunnel,
        Some(3),
        now(),
    )
}

/// The expected `GET` of the node state, answered with [`state`].
pub(crate) fn get_state(
    spec: &NicNodeStateSpec,
    annotations: Value,
    status: Option<&NicNodeStateStatus>,
) -> Call {
    call(
        Method::GET,
        STATE_PATH,
        |_, _| {},
        state(spec, annotations, status),
    )
}

pub(crate) struct Setup {
    pub(crate) host: Arc<FakeHost>,
    handoff: std::path::PathBuf,
    pub(crate) state: Arc<StateFile>,
    _dir: tempfile::TempDir,
}

pub(crate) fn setup(nics: Vec<Nic>) -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let handoff = dir.path().join("device-plugin.json");
    Setup {
        host: Arc::new(FakeHost::new(NicInventory { nics }, Some(handoff.clone()))),
        state: Arc::new(StateFile::new(dir.path().join("state.json"))),
        handoff,
        _dir: dir,
    }
}

pub(crate) fn agent(client: Client, s: &Setup) -> Agent {
    Agent::new(
        NodeApi::new(client, "n1"),
        HostSide {
            host: s.host.clone(),
            firmware: None,
            state: s.state.clone(),
            handoff: Arc::new(DevicePluginFile::new(&s.handoff)),
            boot_id: "b1".into(),
            applying: Default::default(),
        },
        Arc::new(AgentMetrics::new()),
        Arc::new(Health::default()),
        LoopConfig {
            drain_wait: Duration::from_millis(25),
            drain_poll: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(10),
            },
            ..LoopConfig::default()
        },
    )
    .with_clock(now)
}

pub(crate) fn status_path() -> String {
    format!("{STATE_PATH}/status")
}

/// Checks a status apply by the agent: forced, the inventory, sync status and `Synced`.
fn status_check(
    num_vfs: u32,
    sync: &'static str,
    reason: &'static str,
) -> impl Fn(&str, &Value) + Send {
    move |q, body| {
        by_agent(q);
        assert!(q.contains("force=true"), "{q}");
        assert_eq!(body["apiVersion"], "smartnic.io/v1alpha1");
        assert_eq!(body["kind"], "NicNodeState");
        let st = &body["status"];
        assert_eq!(st["nics"][0]["pciAddress"], IGB);
        assert_eq!(st["nics"][0]["numVfs"], num_vfs, "{st}");
        assert_eq!(st["syncStatus"], sync, "{st}");
        let c = &st["conditions"];
        assert_eq!(c.as_array().map(Vec::len), Some(1), "only Synced: {c}");
        assert_eq!(c[0]["type"], "Synced");
        assert_eq!(c[0]["reason"], reason, "{c}");
        assert_eq!(c[0]["observedGeneration"], 3);
        assert!(body.get("spec").is_none());
        assert!(body["metadata"].get("annotations").is_none());
    }
}

#[tokio::test]
async fn a_first_pass_reports_the_inventory_then_a_pass_without_change_writes_nothing() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
    // what the first pass writes is what the second reads back
    let written = applied_status(vec![igb()], None);
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&empty, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                move |q, body| {
                    status_check(0, "Succeeded", "Applied")(q, body);
                    assert_eq!(body["status"]["appliedGeneration"], 3);
                    assert_eq!(body["status"]["conditions"][0]["status"], "True");
                },
                state(&empty, json!({}), None),
            ),
            // the operator's Draining condition besides ours: not the agent's, not compared
            call(Method::GET, STATE_PATH, |_, _| {}, {
                let mut with_operators = written.clone();
                with_operators.conditions.push(crds::k8s::Condition {
                    type_: "Draining".into(),
                    status: "False".into(),
                    reason: "Idle".into(),
                    message: String::new(),
                    observed_generation: Some(3),
                    last_transition_time: crds::k8s::Time(now()),
                });
                state(&empty, json!({}), Some(&with_operators))
            }),
        ],
    );
    let mut a = agent(client, &s);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
    assert!(s.host.calls().is_empty());
    // in sync without a step: recorded as applied (the post-boot re-apply uses it)
    let st = s.state.load().expect("state");
    assert_eq!(
        (st.applied, st.applied_generation, st.boot_id.as_deref()),
        (Some(empty), Some(3), Some("b1"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_disruptive_plan_asks_for_a_drain_applies_once_drained_then_releases() {
    let s = setup(vec![igb()]);
    // a pod holds a macvlan on the PF: recreating its VFs resets the PF under it
    s.host
        .set_upper_users(IGB, vec!["default/macvlan-pod".into()]);
    let want = spec(4);
    let (client, handle) = mock();
    let ann = |grant: &str| json!({"smartnic.io/drain-request": "evict-vf-pods", "smartnic.io/drain-grant": grant});
    let task = serve(
        handle,
        vec![
            get_state(&want, json!({}), None),
            call(
                Method::PATCH,
                STATE_PATH,
                |q, body| {
                    by_agent(q);
                    assert_eq!(
                        body["metadata"]["annotations"],
                        json!({"smartnic.io/drain-request": "evict-vf-pods", "smartnic.io/drain-requested-at": "2023-11-14T22:13:20Z"})
                    );
                    assert!(body.get("status").is_none());
                },
                state(&want, ann("none"), None),
            ),
            call(
                Method::PATCH,
                &status_path(),
                |q, body| {
                    status_check(0, "InProgress", "WaitingForDrain")(q, body);
                    assert!(
                        body["status"]["conditions"][0]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("drain-request=evict-vf-pods"))
                    );
                },
                state(&want, ann("none"), None),
            ),
            get_state(&want, ann("draining"), None),
            get_state(&want, ann("drained"), None),
            call(
                Method::PATCH,
                &status_path(),
                status_check(0, "InProgress", "Applying"),
                state(&want, ann("drained"), None),
            ),
            call(
                Method::POST,
                EVENTS,
                |_, body| {
                    assert_eq!(body["reason"], "Applied");
                    assert_eq!(body["type"], "Normal");
                    assert_eq!(body["regarding"]["name"], "n1");
                    let note = body["note"].as_str().unwrap_or_default();
                    assert!(
                        note.contains("disruption evict-vf-pods") && note.ends_with(": applied"),
                        "{note}"
                    );
                },
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
            ),
            call(
                Method::PATCH,
                &status_path(),
                |q, body| {
                    status_check(4, "Succeeded", "Applied")(q, body);
                    assert_eq!(body["status"]["appliedGeneration"], 3);
                },
                state(&want, ann("drained"), None),
            ),
            call(
                Method::PATCH,
                STATE_PATH,
                |q, body| {
                    by_agent(q);
                    assert_eq!(
                        body["metadata"]["annotations"],
                        json!({"smartnic.io/drain-request": "none"})
                    );
                },
                state(&want, json!({}), None),
            ),
        ],
    );
    let mut a = agent(client, &s);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
    let calls = s.host.calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("0000:01:00.0: sriov_numvfs 4, no driver yet (drivers_autoprobe 0)"),
        "{calls:?}"
    );
    assert!(s.host.violations().is_empty(), "{:?}", s.host.violations());
    // the VFs are in place: the pool is handed to the device plugin, the spec recorded
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(&s.handoff).expect("hand-off")).expect("json");
    assert_eq!(cfg["resourceList"][0]["resourceName"], "igb_vf", "{cfg}");
    let st: AgentState = s.state.load().expect("state");
    assert_eq!(st.applied_generation, Some(3));
    assert!(st.in_progress.is_none());
    assert!(a.ready());
    // what the PF was before this first change, for the uninstall
    let original = st.originals.get(IGB).expect("the PF's original recorded");
    assert_eq!(
        (original.num_vfs, original.mtu, original.driver.as_deref()),
        (0, Some(1500), Some("igb"))
    );
}

#[tokio::test]
async fn a_failed_step_is_a_condition_naming_the_pf_and_the_step() {
    let s = setup(vec![igb()]);
    s.host.fail_at(IGB, 0);
    let want = spec(4);
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&want, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                status_check(0, "InProgress", "Applying"),
                state(&want, json!({}), None),
            ),
            call(
                Method::POST,
                EVENTS,
                |_, body| {
                    assert_eq!(body["reason"], "ApplyFailed");
                    assert_eq!(body["type"], "Warning");
                },
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
            ),
            call(
                Method::PATCH,
                &status_path(),
                |q, body| {
                    status_check(0, "Failed", "Failed")(q, body);
                    let st = &body["status"];
                    let want = "PF enp1s0 (0000:01:00.0): sriov_numvfs 4, no driver yet (drivers_autoprobe 0): injected failure";
                    assert_eq!(st["lastSyncError"], want);
                    assert_eq!(st["conditions"][0]["status"], "False");
                    assert_eq!(st["conditions"][0]["message"], want);
                    assert!(st.get("appliedGeneration").is_none(), "{st}");
                },
                state(&want, json!({}), None),
            ),
        ],
    );
    let mut a = agent(client, &s);
    let outcome = a.pass().await.expect("a failed step is not an agent error");
    assert!(
        matches!(outcome, PassOutcome::Failed(ref e) if e.len() == 1),
        "{outcome:?}"
    );
    done(task).await;
    // the pool of the PF is not advertised
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(&s.handoff).expect("hand-off")).expect("json");
    assert_eq!(cfg["resourceList"], json!([]), "{cfg}");
}

#[tokio::test(start_paused = true)]
async fn a_drain_not_granted_in_time_ends_the_pass_in_a_condition_and_keeps_the_request() {
    let s = setup(vec![igb()]);
    s.host
        .set_upper_users(IGB, vec!["default/macvlan-pod".into()]);
    let want = spec(4);
    let asked = json!({"smartnic.io/drain-request": "evict-vf-pods", "smartnic.io/drain-grant": "draining"});
    let (client, handle) = mock();
    let mut calls = vec![
        get_state(
            &want,
            json!({"smartnic.io/drain-request": "evict-vf-pods"}),
            None,
        ),
        call(
            Method::PATCH,
            &status_path(),
            status_check(0, "InProgress", "WaitingForDrain"),
            state(&want, asked.clone(), None),
        ),
    ];
    // 25 ms at 10, 10, then 5 ms
    for _ in 0..3 {
        calls.push(get_state(&want, asked.clone(), None));
    }
    calls.push(call(
        Method::PATCH,
        &status_path(),
        |q, body| {
            status_check(0, "InProgress", "DrainTimedOut")(q, body);
            assert!(
                body["status"]["lastSyncError"]
                    .as_str()
                    .is_some_and(|m| m.contains("drain-request=evict-vf-pods not granted"))
            );
        },
        state(&want, asked.clone(), None),
    ));
    let task = serve(handle, calls);
    let mut a = agent(client, &s);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::DrainTimedOut);
    done(task).await;
    assert!(
        s.host.calls().is_empty(),
        "nothing applied without the grant"
    );
}

#[tokio::test]
async fn after_a_reboot_the_last_spec_is_reapplied_before_the_agent_is_ready() {
    let s = setup(vec![igb()]);
    s.state
        .store(&AgentState {
            boot_id: Some("b0".into()),
            applied: Some(spec(2)),
            applied_generation: Some(2),
            ..Default::default()
        })
        .expect("state");
    let (client, _handle) = mock();
    let mut a = agent(client, &s);
    assert!(a.ready());
    let outcome = a.start().await.expect("start");
    assert_eq!(outcome, Some(PassOutcome::InSync));
    assert!(a.ready());
    let calls = s.host.calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("0000:01:00.0: sriov_numvfs 2, no driver yet (drivers_autoprobe 0)"),
        "{calls:?}"
    );
    let st = s.state.load().expect("state");
    assert_eq!(st.boot_id.as_deref(), Some("b1"));

    // the same boot again: nothing to re-apply
    let (client, _handle) = mock();
    let mut again = agent(client, &s);
    assert_eq!(again.start().await.expect("start"), None);
    assert_eq!(s.host.calls().len(), calls.len());
}

#[tokio::test]
async fn a_spec_naming_a_pf_not_on_the_host_fails_without_an_apply_or_an_event() {
    let s = setup(vec![igb()]);
    let mut want = spec(2);
    want.interfaces[0].pci_address = "0000:09:00.0".into();
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&want, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                |q, body| {
                    status_check(0, "Failed", "Failed")(q, body);
                    assert_eq!(
                        body["status"]["lastSyncError"],
                        "PF 0000:09:00.0 is not on this host (removed or renumbered?)"
                    );
                },
                state(&want, json!({}), None),
            ),
        ],
    );
    let mut a = agent(client, &s);
    assert!(matches!(
        a.pass().await.expect("pass"),
        PassOutcome::Failed(_)
    ));
    done(task).await;
    assert!(s.host.calls().is_empty());
}

#[tokio::test]
async fn once_creates_the_node_state_then_runs_one_pass() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
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
                    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "node-uid");
                },
                state(&empty, json!({}), None),
            ),
            get_state(&empty, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                status_check(0, "Succeeded", "Applied"),
                state(&empty, json!({}), None),
            ),
        ],
    );
    let outcome = agent(client.clone(), &s)
        .run(client, "n1", true, std::future::pending())
        .await
        .expect("one pass");
    assert_eq!(outcome, Some(PassOutcome::InSync));
    done(task).await;
}

#[tokio::test]
async fn a_pass_writes_the_specs_cni_allow_list_and_one_without_leaves_the_file() {
    let s = setup(vec![igb()]);
    let list = crds::cni::TenantAllowList {
        bridges: vec![crds::cni::HostInterfaceGrant {
            name: "br-tenant".into(),
            namespaces: None,
        }],
        ..Default::default()
    };
    let with = NicNodeStateSpec {
        cni_allow_list: Some(list.clone()),
        ..NicNodeStateSpec::default()
    };
    let without = NicNodeStateSpec::default();
    let written = applied_status(vec![igb()], None);
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&with, json!({}), None),
            call(
                Method::PATCH,
                &status_path(),
                |_, _| {},
                state(&with, json!({}), None),
            ),
            get_state(&without, json!({}), Some(&written)),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("cni-allow-list.json");
    let mut a = agent(client, &s).with_cni_allow_list(crate::allow_list::AllowListFile::new(&path));
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    let read: crds::cni::TenantAllowList =
        serde_json::from_slice(&std::fs::read(&path).expect("written")).expect("json");
    assert_eq!(read, list);
    // the operator config gone: the node's file stays as it was
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
    let read: crds::cni::TenantAllowList =
        serde_json::from_slice(&std::fs::read(&path).expect("kept")).expect("json");
    assert_eq!(read, list);
}
