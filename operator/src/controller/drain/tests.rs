//! Tests of the drain arbiter against a mock API server.

use crds::{
    NicNetwork, NicNodeStateSpec, k8s::IntOrString, node_state::NicNodeStateStatus,
    pool::NicPoolSpec,
};
use planner::fixtures::labels;

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::controller::fixtures::{
    Scenario, node, node_state, test_context, test_context_at, timeout_after_1s,
};

fn requesting(
    name: &str,
    n: &Node,
    request: DrainRequest,
    at: &str,
    grant: DrainGrant,
) -> NicNodeState {
    let mut s = node_state(name, n, NicNodeStateSpec::default());
    s.metadata.annotations = Some(BTreeMap::from([
        (
            ANNOTATION_DRAIN_REQUEST.to_owned(),
            request.as_str().to_owned(),
        ),
        (ANNOTATION_DRAIN_REQUESTED_AT.to_owned(), at.to_owned()),
        (ANNOTATION_DRAIN_GRANT.to_owned(), grant.as_str().to_owned()),
    ]));
    if grant != DrainGrant::None {
        // granted when asked, in these tests
        s.annotations_mut()
            .insert(ANNOTATION_DRAIN_GRANTED_AT.to_owned(), at.to_owned());
    }
    s.status = Some(NicNodeStateStatus {
        conditions: conditions::merge(
            &[],
            &[Cond::new("Synced", false, "WaitingForDrain", "")],
            Some(1),
            Timestamp::now(),
        ),
        ..Default::default()
    });
    s
}

fn pool(name: &str, max: IntOrString) -> NicPool {
    let mut p = NicPool::new(
        name,
        NicPoolSpec {
            node_selector: crds::k8s::LabelSelector {
                match_labels: Some(labels(&[("rack", name)])),
                ..Default::default()
            },
            max_unavailable: Some(max),
            drain_timeout_seconds: None,
            rdma_mode: None,
        },
    );
    p.metadata.generation = Some(1);
    p
}

#[tokio::test]
async fn pools_sharing_a_node_both_get_valid_false_on_the_injected_clock() {
    let (ctx, mut fakeserver, mut stores) = test_context();
    stores.pool(pool("r1", IntOrString::Int(1)));
    let mut twin = pool("r1", IntOrString::Int(1));
    twin.metadata.name = Some("r1-twin".into());
    stores.pool(twin);
    stores.node(node("n1", &[("rack", "r1")]));
    let mocksrv = tokio::spawn(async move {
        let mut seen_pools = Vec::new();
        for _ in 0..2 {
            let (method, path, seen, send) = fakeserver.next_any().await.expect("a request");
            assert_eq!(method, http::Method::PATCH, "{path}");
            let name = path
                .strip_prefix("/apis/smartnic.io/v1alpha1/nicpools/")
                .and_then(|p| p.strip_suffix("/status"))
                .unwrap_or_else(|| panic!("unexpected call {path}"))
                .to_owned();
            let conds = seen.body["status"]["conditions"]
                .as_array()
                .unwrap()
                .clone();
            let valid = conds.iter().find(|c| c["type"] == "Valid").unwrap();
            assert_eq!(valid["status"], "False", "{name}");
            let msg = valid["message"].as_str().unwrap();
            assert!(
                msg.contains("n1") && msg.contains("one pool only"),
                "{name}: {msg}"
            );
            assert_eq!(
                valid["lastTransitionTime"],
                serde_json::to_value(Time(crate::controller::fixtures::test_now())).unwrap()
            );
            // a node in two pools counts in neither: it is never granted a drain
            assert_eq!(seen.body["status"]["nodes"], 0);
            let spec = json!({"nodeSelector": {}});
            crate::controller::fixtures::reply(
                send,
                200,
                crate::controller::fixtures::with_rv(
                    crate::controller::fixtures::with_spec(seen.body, spec),
                    "3",
                ),
            );
            seen_pools.push(name);
        }
        seen_pools.sort();
        assert_eq!(seen_pools, ["r1", "r1-twin"]);
    });
    reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
}

#[tokio::test]
async fn pool_with_max_unavailable_2_grants_exactly_the_two_oldest_of_5_requests() {
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool("r1", IntOrString::Int(2)));
    // request times deliberately not in name order: n4 and n2 asked first
    let times = [
        ("n1", "2026-11-26T10:00:05Z"),
        ("n2", "2026-11-26T10:00:02Z"),
        ("n3", "2026-11-26T10:00:04Z"),
        ("n4", "2026-11-26T10:00:01Z"),
        ("n5", "2026-11-26T10:00:03Z"),
    ];
    for (name, at) in times {
        let n = node(name, &[("rack", "r1")]);
        stores.node(n.clone());
        stores.node_state(requesting(
            name,
            &n,
            DrainRequest::EvictVfPods,
            at,
            DrainGrant::None,
        ));
    }
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![("n4".into(), "rv-n4".into()), ("n2".into(), "rv-n2".into())],
        pool: "r1".into(),
        nodes: 5,
        draining: 2,
        max_unavailable: 2,
    });
    let next = reconcile(ctx.clone()).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, WHILE_DRAINING);
    assert!(
        ctx.metrics
            .render()
            .contains("smartnic_operator_drains_granted{pool=\"r1\"} 2")
    );
}

#[tokio::test]
async fn percentage_counts_every_node_of_the_pool_not_only_those_with_a_node_state() {
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool("r2", IntOrString::String("50%".into())));
    for (name, at) in [
        ("a", "2026-11-26T10:00:03Z"),
        ("b", "2026-11-26T10:00:01Z"),
        ("c", "2026-11-26T10:00:02Z"),
    ] {
        let n = node(name, &[("rack", "r2")]);
        stores.node(n.clone());
        stores.node_state(requesting(
            name,
            &n,
            DrainRequest::EvictVfPods,
            at,
            DrainGrant::None,
        ));
    }
    // a fourth node of the pool without any node state: 50% of 4 is 2, not 50% of 3
    stores.node(node("d", &[("rack", "r2")]));
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![("b".into(), "rv-b".into()), ("c".into(), "rv-c".into())],
        pool: "r2".into(),
        nodes: 4,
        draining: 2,
        max_unavailable: 2,
    });
    reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
}

fn pod(ns: &str, name: &str, resource: Option<&str>, owner_kind: Option<&str>) -> Value {
    let mut p = json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"}
    });
    if let Some(r) = resource {
        p["spec"]["containers"][0]["resources"] = json!({"requests": {r: "1"}, "limits": {r: "1"}});
    }
    if let Some(k) = owner_kind {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": k, "name": "o", "uid": "u", "controller": true}]);
    }
    p
}

#[tokio::test]
async fn draining_node_is_cordoned_and_only_vf_pods_are_evicted_with_pdb_429_reported() {
    let (ctx, fakeserver, mut stores) = test_context();
    let n1 = node("n1", &[]);
    stores.node(n1.clone());
    stores.node_state(requesting(
        "n1",
        &n1,
        DrainRequest::EvictVfPods,
        "2026-11-26T10:00:00Z",
        DrainGrant::Draining,
    ));
    let pods = vec![
        pod(
            "app",
            "dpdk-0",
            Some("smartnic.io/cx6_vf"),
            Some("ReplicaSet"),
        ),
        pod("app", "web-0", None, Some("ReplicaSet")),
        pod(
            "app",
            "dpdk-1",
            Some("smartnic.io/cx6_vf"),
            Some("StatefulSet"),
        ),
        pod(
            "kube-system",
            "ds-vf",
            Some("smartnic.io/cx6_vf"),
            Some("DaemonSet"),
        ),
        pod("app", "other-vendor", Some("intel.com/sriov"), None),
    ];
    let mocksrv = fakeserver.run(Scenario::DrainEvict {
        node: "n1".into(),
        pods,
        evictions: vec![
            ("app".into(), "dpdk-0".into(), 201),
            ("app".into(), "dpdk-1".into(), 429),
        ],
        reason: "Evicting".into(),
        pool: None,
    });
    let next = reconcile(ctx.clone())
        .await
        .expect("a PDB refusal is not an error");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, WHILE_DRAINING, "retry the blocked eviction soon");
}

#[tokio::test]
async fn finished_agent_gets_node_uncordoned_and_slot_released() {
    let (ctx, fakeserver, mut stores) = test_context();
    let mut n1 = node("n1", &[]);
    n1.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_CORDONED.to_owned(),
        "true".to_owned(),
    )]));
    n1.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        unschedulable: Some(true),
        ..Default::default()
    });
    stores.node(n1.clone());
    stores.node_state(requesting(
        "n1",
        &n1,
        DrainRequest::None,
        "2026-11-26T10:00:00Z",
        DrainGrant::Drained,
    ));
    let mocksrv = fakeserver.run(Scenario::DrainRelease { node: "n1".into() });
    let next = reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, IDLE);
}

#[tokio::test]
async fn conflict_on_a_grant_is_an_error_retried_after_one_second() {
    let (ctx, fakeserver, mut stores) = test_context();
    let n = node("n1", &[]);
    stores.node(n.clone());
    stores.node_state(requesting(
        "n1",
        &n,
        DrainRequest::Reboot,
        "2026-11-26T10:00:00Z",
        DrainGrant::None,
    ));
    let mocksrv = fakeserver.run(Scenario::ServerError {
        method: http::Method::PATCH,
        path: "/apis/smartnic.io/v1alpha1/nicnodestates/n1".into(),
        code: 409,
    });
    let err = reconcile(ctx.clone()).await.expect_err("conflict");
    timeout_after_1s(mocksrv).await;
    assert_eq!(err.metric_label(), "grant");
    assert_eq!(ReconcileError::retry_base(&err), Duration::from_secs(1));
}

/// Pool `r1` of one node at a time with this drain timeout.
fn pool_with_timeout(seconds: u32) -> NicPool {
    let mut p = pool("r1", IntOrString::Int(1));
    p.spec.drain_timeout_seconds = Some(seconds);
    p
}

fn cordoned_by_operator(name: &str) -> Node {
    let mut n = node(name, &[("rack", "r1")]);
    n.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_CORDONED.to_owned(),
        "true".to_owned(),
    )]));
    n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        unschedulable: Some(true),
        ..Default::default()
    });
    n
}

#[tokio::test]
async fn drain_past_its_deadline_uncordons_frees_the_slot_and_names_the_blocking_pods() {
    // the test clock is 10:05:00; granted at 10:00:00 with a 300 s timeout: just expired
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool_with_timeout(300));
    let n1 = cordoned_by_operator("n1");
    stores.node(n1.clone());
    stores.node_state(requesting(
        "n1",
        &n1,
        DrainRequest::EvictVfPods,
        "2026-11-26T10:00:00Z",
        DrainGrant::Draining,
    ));
    let mut leaving = pod("app", "dpdk-1", Some("smartnic.io/cx6_vf"), None);
    leaving["metadata"]["deletionTimestamp"] = json!("2026-11-26T10:04:00Z");
    let pods = vec![
        pod(
            "app",
            "dpdk-0",
            Some("smartnic.io/cx6_vf"),
            Some("ReplicaSet"),
        ),
        leaving,
        pod("app", "web-0", None, Some("ReplicaSet")),
    ];
    let mocksrv = fakeserver.run(Scenario::DrainTimeout {
        node: "n1".into(),
        pods,
        dry_runs: vec![("app".into(), "dpdk-0".into(), 429)],
        uncordon: true,
        retry_after: "2026-11-26T10:10:00Z".into(),
        blocked: vec![
            "app/dpdk-0: eviction refused by a PodDisruptionBudget (429)".into(),
            "app/dpdk-1: still terminating".into(),
            "within 300s".into(),
        ],
        pool: Some(("r1".into(), 1, 1, 1)),
    });
    let next = reconcile(ctx.clone()).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, WHILE_DRAINING);
    assert!(
        ctx.metrics
            .render()
            .contains("smartnic_operator_drain_timeouts_total{pool=\"r1\"} 1")
    );
}

/// n1 (asked first) timed out and may retry at 10:10:00; n2 waits behind it.
fn after_timeout(stores: &mut crate::controller::fixtures::TestStores) {
    stores.pool(pool("r1", IntOrString::Int(1)));
    let n1 = node("n1", &[("rack", "r1")]);
    let mut s1 = requesting(
        "n1",
        &n1,
        DrainRequest::EvictVfPods,
        "2026-11-26T09:00:00Z",
        DrainGrant::None,
    );
    s1.annotations_mut().insert(
        ANNOTATION_DRAIN_RETRY_AFTER.to_owned(),
        "2026-11-26T10:10:00Z".to_owned(),
    );
    let n2 = node("n2", &[("rack", "r1")]);
    stores.node(n1);
    stores.node(n2.clone());
    stores.node_state(s1);
    stores.node_state(requesting(
        "n2",
        &n2,
        DrainRequest::EvictVfPods,
        "2026-11-26T09:30:00Z",
        DrainGrant::None,
    ));
}

#[tokio::test]
async fn after_a_timeout_the_next_waiting_node_gets_the_slot() {
    let (ctx, fakeserver, mut stores) = test_context();
    after_timeout(&mut stores);
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![("n2".into(), "rv-n2".into())],
        pool: "r1".into(),
        nodes: 2,
        draining: 1,
        max_unavailable: 1,
    });
    reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
}

#[tokio::test]
async fn once_retry_after_has_passed_the_timed_out_node_is_granted_again() {
    fn at_retry_time() -> Timestamp {
        Timestamp::constant(1_795_687_800, 0) // 2026-11-26T10:10:00Z
    }
    let (ctx, fakeserver, mut stores) = test_context_at(at_retry_time);
    after_timeout(&mut stores);
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![("n1".into(), "rv-n1".into())],
        pool: "r1".into(),
        nodes: 2,
        draining: 1,
        max_unavailable: 1,
    });
    reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
}

#[tokio::test]
async fn a_deferred_node_alone_brings_the_next_pass_forward_to_its_retry_time() {
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool("r1", IntOrString::Int(1)));
    let n1 = node("n1", &[("rack", "r1")]);
    let mut s1 = requesting(
        "n1",
        &n1,
        DrainRequest::EvictVfPods,
        "2026-11-26T09:00:00Z",
        DrainGrant::None,
    );
    s1.annotations_mut().insert(
        ANNOTATION_DRAIN_RETRY_AFTER.to_owned(),
        "2026-11-26T10:05:30Z".to_owned(),
    );
    stores.node(n1);
    stores.node_state(s1);
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![],
        pool: "r1".into(),
        nodes: 1,
        draining: 0,
        max_unavailable: 1,
    });
    let next = reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, Duration::from_secs(30));
}

#[tokio::test]
async fn drain_timeout_zero_keeps_evicting_forever() {
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool_with_timeout(0));
    let n1 = node("n1", &[("rack", "r1")]);
    stores.node(n1.clone());
    stores.node_state(requesting(
        "n1",
        &n1,
        DrainRequest::EvictVfPods,
        "2026-01-01T00:00:00Z",
        DrainGrant::Draining,
    ));
    let mocksrv = fakeserver.run(Scenario::DrainEvict {
        node: "n1".into(),
        pods: vec![pod("app", "dpdk-0", Some("smartnic.io/cx6_vf"), None)],
        evictions: vec![("app".into(), "dpdk-0".into(), 429)],
        reason: "Evicting".into(),
        pool: Some(("r1".into(), 1, 1, 1)),
    });
    let next = reconcile(ctx.clone()).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, WHILE_DRAINING);
    assert!(!ctx.metrics.render().contains("drain_timeouts_total{"));
}

#[tokio::test]
async fn a_drained_node_is_never_timed_out() {
    let (ctx, fakeserver, mut stores) = test_context();
    stores.pool(pool_with_timeout(60));
    let n1 = cordoned_by_operator("n1");
    stores.node(n1.clone());
    stores.node_state(requesting(
        "n1",
        &n1,
        DrainRequest::Reboot,
        "2026-01-01T00:00:00Z",
        DrainGrant::Drained,
    ));
    let mocksrv = fakeserver.run(Scenario::DrainGrants {
        grants: vec![],
        pool: "r1".into(),
        nodes: 1,
        draining: 1,
        max_unavailable: 1,
    });
    let next = reconcile(ctx).await.expect("reconcile");
    timeout_after_1s(mocksrv).await;
    assert_eq!(next, WHILE_DRAINING, "the agent is applying");
}

#[test]
fn reboot_drains_everything_but_daemonsets_mirrors_and_finished_pods() {
    let p = |v: Value| serde_json::from_value::<Pod>(v).unwrap();
    let mut done = pod("a", "done", None, None);
    done["status"]["phase"] = json!("Succeeded");
    let mut mirror = pod("kube-system", "etcd", None, None);
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    assert!(must_leave(
        &p(pod("a", "web", None, Some("ReplicaSet"))),
        DrainRequest::Reboot,
        "smartnic.io"
    ));
    assert!(!must_leave(
        &p(pod("a", "ds", None, Some("DaemonSet"))),
        DrainRequest::Reboot,
        "smartnic.io"
    ));
    assert!(!must_leave(&p(done), DrainRequest::Reboot, "smartnic.io"));
    assert!(!must_leave(&p(mirror), DrainRequest::Reboot, "smartnic.io"));
    assert!(!must_leave(
        &p(pod("a", "web", None, None)),
        DrainRequest::EvictVfPods,
        "smartnic.io"
    ));
    assert!(must_leave(
        &p(pod("a", "vf", Some("smartnic.io/x"), None)),
        DrainRequest::EvictVfPods,
        "smartnic.io"
    ));
    assert!(!must_leave(
        &p(pod("a", "vf", Some("smartnic.io/x"), None)),
        DrainRequest::None,
        "smartnic.io"
    ));
}

#[test]
fn evict_vf_pods_takes_pods_on_a_macvlan_of_a_configured_pf() {
    let p = |v: Value| serde_json::from_value::<Pod>(v).unwrap();
    let mut mv = NicNetwork::new(
        "mv",
        crds::NicNetworkSpec {
            mode: crds::link::NetworkMode::Macvlan,
            master: Some("ens1f0".into()),
            ..Default::default()
        },
    );
    mv.metadata.namespace = Some("a".into());
    let networks = [mv];
    let pfs: BTreeSet<String> = ["ens1f0".to_owned()].into();
    let users = NicUsers {
        prefix: "smartnic.io",
        networks: &networks,
        pfs: &pfs,
    };
    let on = |owner: Option<&str>| {
        let mut v = pod("a", "web", None, owner);
        v["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/networks": "mv@net1"});
        p(v)
    };
    assert!(must_leave_for(&on(None), DrainRequest::EvictVfPods, &users));
    assert!(!must_leave(
        &on(None),
        DrainRequest::EvictVfPods,
        "smartnic.io"
    ));
    assert!(!must_leave_for(
        &on(Some("DaemonSet")),
        DrainRequest::EvictVfPods,
        &users
    ));
    assert!(!must_leave_for(&on(None), DrainRequest::None, &users));
    let other_pf: BTreeSet<String> = ["ens2f0".to_owned()].into();
    let elsewhere = NicUsers {
        pfs: &other_pf,
        ..users
    };
    assert!(!must_leave_for(
        &on(None),
        DrainRequest::EvictVfPods,
        &elsewhere
    ));
    assert!(must_leave_for(
        &p(pod("a", "vf", Some("smartnic.io/x"), None)),
        DrainRequest::EvictVfPods,
        &elsewhere
    ));
}
