//! Draining one node that holds `draining`: cordon, evictions, the deadline, and the
//! Eviction and cordon calls.

use std::{collections::BTreeSet, sync::Arc};

use crds::{
    ANNOTATION_DRAIN_GRANTED_AT, ANNOTATION_DRAIN_RETRY_AFTER, CONDITION_DRAINING,
    DEFAULT_DRAIN_TIMEOUT_SECONDS, DrainGrant, DrainRequest, NicNetwork, NicNodeState,
    k8s::{Time, jiff::Timestamp},
};
use k8s_openapi::api::{
    core::v1::{Node, Pod},
    policy::v1::Eviction,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PostParams},
    runtime::events::EventType,
};
use serde_json::{Value, json};

use crate::controller::{api_code, merge_params, publish};
use planner::conditions::Cond;
use planner::{HolderPool, drain_timed_out, retry_after};

use super::{
    ANNOTATION_CORDONED, Error, NicUsers, drain_times, must_leave_for, set_draining_condition,
    set_grant,
};
use crate::{context::Context, metrics::PoolLabels};

/// What [`progress`] needs besides the node.
pub(super) struct Step<'a> {
    pub(super) request: DrainRequest,
    pub(super) prefix: &'a str,
    pub(super) drain_enabled: bool,
    pub(super) holder: Option<&'a HolderPool>,
    pub(super) now: Timestamp,
}

/// One step of draining a node holding `draining`.
pub(super) async fn progress(
    ctx: &Context,
    s: &NicNodeState,
    node: Option<&Arc<Node>>,
    step: Step<'_>,
) -> Result<(), Error> {
    let Step {
        request,
        prefix,
        drain_enabled,
        holder,
        now,
    } = step;
    let name = s.name_any();
    let mut rv = s.resource_version();
    if !drain_enabled {
        set_grant(ctx, &name, DrainGrant::Drained, json!({}), rv.as_deref()).await?;
        return Ok(());
    }
    let timeout = holder.map_or(DEFAULT_DRAIN_TIMEOUT_SECONDS, |h| h.drain_timeout_seconds);
    let granted_at = match drain_times(s).0 {
        Some(at) => at,
        None => {
            // granted before grant times were recorded: the deadline counts from now
            rv = set_grant(
                ctx,
                &name,
                DrainGrant::Draining,
                json!({ ANNOTATION_DRAIN_GRANTED_AT: now.to_string() }),
                rv.as_deref(),
            )
            .await?;
            Time(now)
        }
    };
    let expired = drain_timed_out(Some(&granted_at), timeout, now);
    let cordoned = node
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let mut ours = node.is_some_and(|n| n.annotations().contains_key(ANNOTATION_CORDONED));
    if node.is_some() && !cordoned {
        cordon(ctx, &name, true).await?;
        ours = true;
    }
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|source| Error::ListPods {
            node: name.clone(),
            source,
        })?;
    let networks: Vec<NicNetwork> = ctx
        .stores
        .networks
        .state()
        .iter()
        .map(|n| (**n).clone())
        .collect();
    let pfs: BTreeSet<String> = s
        .spec
        .interfaces
        .iter()
        .filter_map(|i| i.name.clone())
        .collect();
    let users = NicUsers {
        prefix,
        networks: &networks,
        pfs: &pfs,
    };
    let leaving: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| must_leave_for(p, request, &users))
        .collect();
    if leaving.is_empty() {
        let msg = match request {
            DrainRequest::Reboot => {
                "node drained; the agent may apply the change and reboot".to_owned()
            }
            _ => {
                format!(
                    "no pod uses {prefix}/* resources or a macvlan/ipvlan network on the node's PFs any more; the agent may apply the change"
                )
            }
        };
        rv = set_draining_condition(
            ctx,
            s,
            rv,
            Cond::new(CONDITION_DRAINING, true, "Drained", msg),
        )
        .await?;
        set_grant(ctx, &name, DrainGrant::Drained, json!({}), rv.as_deref()).await?;
        publish(
            ctx,
            EventType::Normal,
            "DrainComplete",
            "drain finished".into(),
            "Drain",
            &s.object_ref(&()),
        )
        .await;
        return Ok(());
    }
    if expired {
        let deadline = Deadline {
            timeout,
            pool: holder.and_then(|h| h.pool.clone()).unwrap_or_default(),
            uncordon: ours,
            now,
        };
        return time_out(ctx, s, rv, &leaving, deadline).await;
    }
    let mut evicting = 0usize;
    let mut terminating = 0usize;
    let mut blocked: Vec<String> = Vec::new();
    let mut failed: Option<Error> = None;
    for pod in &leaving {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        if pod.metadata.deletion_timestamp.is_some() {
            terminating += 1;
            continue;
        }
        match evict(ctx, &ns, &pod_name).await {
            Ok(()) => evicting += 1,
            Err(e) if api_code(&e) == Some(429) => blocked.push(format!("{ns}/{pod_name}")),
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => {
                failed.get_or_insert(Error::Evict {
                    namespace: ns,
                    pod: pod_name,
                    node: name.clone(),
                    source,
                });
            }
        }
    }
    let mut msg = format!(
        "{} pod(s) must leave ({evicting} evicted now, {terminating} terminating)",
        leaving.len()
    );
    if !blocked.is_empty() {
        msg.push_str(&format!(
            "; blocked by a PodDisruptionBudget: {}",
            blocked.join(", ")
        ));
    }
    set_draining_condition(
        ctx,
        s,
        rv,
        Cond::new(CONDITION_DRAINING, true, "Evicting", msg.clone()),
    )
    .await?;
    if !blocked.is_empty() {
        publish(
            ctx,
            EventType::Warning,
            "EvictionBlocked",
            msg,
            "Evict",
            &s.object_ref(&()),
        )
        .await;
    }
    failed.map_or(Ok(()), Err)
}

/// What [`time_out`] needs besides the node.
pub(super) struct Deadline {
    timeout: u32,
    /// Pool label of the metric (`""` for the default pool).
    pool: String,
    /// Whether the operator cordoned the node.
    uncordon: bool,
    now: Timestamp,
}

/// The drain ran out of time with `leaving` still on the node: give the slot up. See the module
/// documentation.
pub(super) async fn time_out(
    ctx: &Context,
    s: &NicNodeState,
    rv: Option<String>,
    leaving: &[&Pod],
    deadline: Deadline,
) -> Result<(), Error> {
    let name = s.name_any();
    let mut why = Vec::new();
    for pod in leaving {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let reason = if pod.metadata.deletion_timestamp.is_some() {
            "still terminating".to_owned()
        } else {
            // a dry run tells why without evicting: the drain is over
            match evict_with(ctx, &ns, &pod_name, true).await {
                Ok(()) => "evictable now, but not gone before the deadline".to_owned(),
                Err(e) if api_code(&e) == Some(429) => {
                    "eviction refused by a PodDisruptionBudget (429)".to_owned()
                }
                Err(e) if api_code(&e) == Some(404) => continue,
                Err(e) => format!("eviction fails: {e}"),
            }
        };
        why.push(format!("{ns}/{pod_name}: {reason}"));
    }
    if deadline.uncordon {
        cordon(ctx, &name, false).await?;
    }
    let until = retry_after(deadline.now, deadline.timeout);
    let rv = set_grant(
        ctx,
        &name,
        DrainGrant::None,
        json!({
            ANNOTATION_DRAIN_GRANTED_AT: null,
            ANNOTATION_DRAIN_RETRY_AFTER: until.to_string(),
        }),
        rv.as_deref(),
    )
    .await?;
    ctx.metrics
        .drain_timeouts
        .get_or_create(&PoolLabels {
            pool: deadline.pool,
        })
        .inc();
    let msg = format!(
        "drain did not finish within {}s; gave up{}, the change is not applied; retry after {until}; blocked by {}",
        deadline.timeout,
        if deadline.uncordon {
            " and uncordoned the node"
        } else {
            ""
        },
        if why.is_empty() {
            "no pod any more".to_owned()
        } else {
            why.join(", ")
        }
    );
    tracing::warn!(node = %name, %msg, "drain timed out");
    set_draining_condition(
        ctx,
        s,
        rv,
        Cond::new(CONDITION_DRAINING, false, "DrainTimedOut", msg.clone()),
    )
    .await?;
    publish(
        ctx,
        EventType::Warning,
        "DrainTimedOut",
        msg,
        "Drain",
        &s.object_ref(&()),
    )
    .await;
    Ok(())
}

/// `kubectl drain` uses the same call: POST `pods/<name>/eviction` (policy/v1 Eviction), which
/// honours PodDisruptionBudgets (429 when one forbids it now).
pub(super) async fn evict(ctx: &Context, namespace: &str, pod: &str) -> Result<(), kube::Error> {
    evict_with(ctx, namespace, pod, false).await
}

/// [`evict`], or with `dry_run` (`?dryRun=All`) only asks whether the eviction would be allowed.
pub(super) async fn evict_with(
    ctx: &Context,
    namespace: &str,
    pod: &str,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut eviction = Eviction::default();
    eviction.metadata.name = Some(pod.to_owned());
    eviction.metadata.namespace = Some(namespace.to_owned());
    tracing::info!(%namespace, %pod, dry_run, "evicting pod");
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    let _: Value = api
        .create_subresource("eviction", pod, &params, &eviction)
        .await?;
    Ok(())
}

/// `kubectl cordon`/`uncordon`, recording in [`ANNOTATION_CORDONED`] that the operator did it.
pub(super) async fn cordon(ctx: &Context, node: &str, on: bool) -> Result<(), Error> {
    let body = if on {
        json!({"spec": {"unschedulable": true}, "metadata": {"annotations": {ANNOTATION_CORDONED: "true"}}})
    } else {
        json!({"spec": {"unschedulable": null}, "metadata": {"annotations": {ANNOTATION_CORDONED: null}}})
    };
    tracing::info!(%node, cordon = on, "changing node schedulability");
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.patch(node, &merge_params(), &Patch::Merge(&body))
        .await
        .map_err(|source| {
            if on {
                Error::Cordon {
                    node: node.to_owned(),
                    source,
                }
            } else {
                Error::Uncordon {
                    node: node.to_owned(),
                    source,
                }
            }
        })?;
    Ok(())
}
