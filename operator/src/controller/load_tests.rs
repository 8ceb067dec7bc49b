//! The controllers under agents that write status: status writes plan nothing and write
//! nothing, one node's inventory change writes only that node's state, a policy change plans
//! only the nodes it selects, and a lost lease stops every write.

use std::{collections::BTreeSet, time::Duration};

use crds::{
    NicNodeState, NicNodeStateSpec, NicPolicy,
    node_state::{NicNodeStateStatus, SyncStatus},
};
use serde_json::json;
use tokio::{sync::watch, time::Instant};

use planner::fixtures::{cx6, policy};

use super::{
    node_state, run,
    triggers::{Change, Triggers},
    watches::{Fingerprints, node_state_changes, policy_change},
};
use crate::{
    context::Context,
    controller::fixtures::{
        ApiServerVerifier, TestStores, node, reply, test_context, with_inventory,
    },
    leader::while_leader,
};

/// The node state of `name` with one cx6 PF offering `total_vfs` VFs.
fn state(name: &str, total_vfs: u32) -> NicNodeState {
    let mut nic = cx6("0000:3b:00.0", "ens1f0");
    nic.total_vfs = total_vfs;
    let n = node(name, &[("gpu", "true")]);
    with_inventory(
        crate::controller::fixtures::node_state(name, &n, NicNodeStateSpec::default()),
        vec![nic],
    )
}

fn cluster(
    names: &[&str],
) -> (
    std::sync::Arc<Context>,
    ApiServerVerifier,
    TestStores,
    NicPolicy,
) {
    let (ctx, fake, mut stores) = test_context();
    for name in names {
        stores.node(node(name, &[("gpu", "true")]));
        stores.node_state(state(name, 16));
    }
    let mut p = policy("p1", 10, &["ens1f0"]);
    p.metadata.generation = Some(1);
    p.metadata.uid = Some("uid-p1".into());
    stores.policy(p.clone());
    stores.mark_ready();
    (ctx, fake, stores, p)
}

/// Answers every call until none came for `quiet`, returning `METHOD path` of each. A node
/// state's applied spec goes back into the cache, as its watch would deliver it.
async fn serve_until_quiet(
    fake: &mut ApiServerVerifier,
    stores: &mut TestStores,
    ctx: &Context,
    quiet: Duration,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(Some((method, path, s, send))) = tokio::time::timeout(quiet, fake.next_any()).await
    {
        assert!(Instant::now() < deadline, "controllers never went quiet");
        let mut body = s.body;
        body["metadata"]["resourceVersion"] = json!("2");
        if path.starts_with("/apis/smartnic.io/v1alpha1/nicpolicies/") {
            body["spec"] =
                json!({"nodeSelector": {}, "nicSelector": {}, "numVfs": 8, "resourceName": "x"});
        }
        if let Some(name) = path.strip_prefix("/apis/smartnic.io/v1alpha1/nicnodestates/")
            && let Some(cached) = ctx
                .stores
                .node_states
                .get(&kube::runtime::reflector::ObjectRef::new(name))
        {
            let mut updated = (*cached).clone();
            updated.spec = serde_json::from_value(body["spec"].clone()).expect("applied spec");
            stores.node_state(updated);
        }
        reply(send, 200, body);
        seen.insert(format!("{method} {path}"));
    }
    seen
}

/// The cached node state of `name` after `f` changed it (what the agent's status write does).
fn cached_with(ctx: &Context, name: &str, f: impl FnOnce(&mut NicNodeStateStatus)) -> NicNodeState {
    let mut s = (*ctx
        .stores
        .node_states
        .get(&kube::runtime::reflector::ObjectRef::new(name))
        .expect("cached"))
    .clone();
    f(s.status.get_or_insert_with(NicNodeStateStatus::default));
    s
}

const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn agent_status_writes_plan_nothing_and_one_node_change_writes_only_that_node() {
    let (ctx, mut fake, mut stores, p) = cluster(&["n1", "n2"]);
    let (mut planning, mut drain) = (Fingerprints::default(), Fingerprints::default());
    let mut policies = Default::default();
    for name in ["n1", "n2"] {
        node_state_changes(&mut planning, &mut drain, &state(name, 16), false);
    }
    policy_change(&mut policies, &p, false);
    let triggers = Triggers::new();
    let controllers = tokio::spawn(run(ctx.clone(), triggers.clone()));
    let first = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    for want in [
        "PATCH /apis/smartnic.io/v1alpha1/nicnodestates/n1",
        "PATCH /apis/smartnic.io/v1alpha1/nicnodestates/n2",
        "PATCH /apis/smartnic.io/v1alpha1/nicpolicies/p1/status",
    ] {
        assert!(first.contains(want), "{want} in {first:?}");
    }

    // every agent reports its sync status, conditions and VFs; the operator writes the
    // policy's status: none of it is a change the controllers act on
    for name in ["n1", "n2"] {
        let s = cached_with(&ctx, name, |st| {
            st.sync_status = Some(SyncStatus::Succeeded);
            st.applied_generation = Some(1);
            st.nics[0].num_vfs = 0;
            st.nics[0].oper_state = Some("up".into());
            st.nics[0].vfs = vec![crds::inventory::Vf {
                vf_id: 0,
                pci_address: "0000:3b:00.2".into(),
                mac: Some("02:00:00:00:00:01".into()),
                ..Default::default()
            }];
        });
        stores.node_state(s.clone());
        let changes = node_state_changes(&mut planning, &mut drain, &s, false);
        assert!(changes.is_empty(), "{changes:?}");
    }
    let mut with_status = p.clone();
    with_status.metadata.resource_version = Some("2".into());
    with_status.status = Some(Default::default());
    stores.policy(with_status.clone());
    assert!(policy_change(&mut policies, &with_status, false).is_empty());
    let none = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    assert!(none.is_empty(), "status writes caused {none:?}");
    let planned = ctx.metrics.render();

    // n2's PF now offers 4 VFs (the policy wants 8): n2's state is rewritten, n1 is not planned
    let smaller = cached_with(&ctx, "n2", |st| st.nics[0].total_vfs = 4);
    stores.node_state(smaller.clone());
    for c in node_state_changes(&mut planning, &mut drain, &smaller, false) {
        triggers.send(c);
    }
    let second = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    assert!(
        second.contains("PATCH /apis/smartnic.io/v1alpha1/nicnodestates/n2"),
        "{second:?}"
    );
    assert!(
        second.iter().all(|c| !c.contains("/n1")),
        "n1 untouched: {second:?}"
    );
    controllers.abort();
    let count = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("smartnic_operator_reconcile_total{controller=\"node-state\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        count(&ctx.metrics.render()),
        count(&planned) + 1,
        "one node planned for one node's change"
    );
}

#[tokio::test]
async fn policy_change_plans_only_the_nodes_it_selects_before_and_after() {
    let (ctx, _fake, mut stores, p) = cluster(&["n1", "n2"]);
    stores.node(node("other", &[("role", "storage")]));
    stores.node(node("gpu3", &[("gpu", "true"), ("zone", "b")]));
    let mut policies = Default::default();
    policy_change(&mut policies, &p, false);
    let names = |c: Change| -> BTreeSet<String> {
        node_state::affected(c, &ctx)
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    // a new generation narrowing the selector to zone b: the gpu nodes before, gpu3 after
    let mut narrowed = p.clone();
    narrowed.metadata.generation = Some(2);
    narrowed.spec.node_selector.match_labels = Some([("zone".to_owned(), "b".to_owned())].into());
    let changes = policy_change(&mut policies, &narrowed, false);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        names(changes[0].clone()),
        ["gpu3", "n1", "n2"].map(String::from).into()
    );
    // the same generation again (a status write): nothing
    assert!(policy_change(&mut policies, &narrowed, false).is_empty());
    // deleted: the nodes it selected
    let changes = policy_change(&mut policies, &narrowed, true);
    assert_eq!(names(changes[0].clone()), ["gpu3".to_owned()].into());
}

#[tokio::test]
async fn lost_leadership_stops_every_write_and_regained_leadership_resumes() {
    let (ctx, mut fake, mut stores, _) = cluster(&["n1"]);
    let triggers = Triggers::new();
    let (leader_tx, leader_rx) = watch::channel(true);
    let work = {
        let (ctx, triggers) = (ctx.clone(), triggers.clone());
        move || run(ctx.clone(), triggers.clone())
    };
    let elected = tokio::spawn(while_leader(leader_rx, work));
    let first = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    assert!(
        first.contains("PATCH /apis/smartnic.io/v1alpha1/nicnodestates/n1"),
        "{first:?}"
    );

    leader_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // a change that needs a write, and a resync: nobody acts on them
    stores.node_state(cached_with(&ctx, "n1", |st| st.nics[0].total_vfs = 4));
    triggers.send(Change::NodeState("n1".into()));
    triggers.send(Change::Resync);
    let none = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    assert!(none.is_empty(), "wrote without the lease: {none:?}");

    leader_tx.send_replace(true);
    let resumed = serve_until_quiet(&mut fake, &mut stores, &ctx, QUIET).await;
    assert!(
        resumed.contains("PATCH /apis/smartnic.io/v1alpha1/nicnodestates/n1"),
        "{resumed:?}"
    );
    drop(leader_tx);
    tokio::time::timeout(Duration::from_secs(2), elected)
        .await
        .expect("while_leader ends with its sender")
        .unwrap();
}
