//! The agent's side of the Kubernetes API, all on its own node's `NicNodeState` and under its own
//! field manager (`smartnic.io/agent`):
//!
//! - [`NodeApi::ensure_node_state`]: the agent creates its node's `NicNodeState` (labels and an
//!   owner reference to the Node, the same values the operator sets), so that every node running
//!   an agent has one with its inventory whether or not a policy selects it; the operator keeps
//!   creating one for a selected node whose agent has not started yet. Both apply the same
//!   metadata server-side, so whoever comes first creates it and neither conflicts.
//! - [`NodeApi::report_status`]: inventory, sync status, `Synced` condition, by server-side apply
//!   of the status subresource, only when it changed.
//! - The drain handshake ([`drain_decision`], [`NodeApi::request_drain`]): before a disruptive
//!   plan the agent sets `smartnic.io/drain-request` (and `drain-requested-at` the first time),
//!   waits for `smartnic.io/drain-grant=drained`, applies, then sets the request back to `none`.
//! - [`NodeApi::plan_event`]: one Kubernetes event per plan, on the `NicNodeState`.

use std::collections::BTreeMap;

use crds::{
    ANNOTATION_DRAIN_GRANT, ANNOTATION_DRAIN_REQUEST, ANNOTATION_DRAIN_REQUESTED_AT,
    CONDITION_SYNCED, CONDITION_TUNNEL_ENDPOINT, DrainGrant, DrainRequest, FIELD_MANAGER_AGENT,
    LABEL_MANAGED_BY, LABEL_NODE, MANAGED_BY, NicNodeState,
    inventory::Nic,
    k8s::jiff::Timestamp,
    node_state::{NicNodeStateStatus, SyncStatus},
};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use planner::{
    ChangeClass,
    conditions::{Cond, merge},
};
use serde_json::json;

use crate::run::decide::SyncReport;
use crate::run::overlay_decide::TunnelReport;

/// A failed API call, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Reading the Node failed.
    #[error("cannot read Node {node}: {source}")]
    GetNode {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An apply on the `NicNodeState` failed.
    #[error(
        "cannot apply {what} of NicNodeState {node} (field manager {FIELD_MANAGER_AGENT}): {source}"
    )]
    Apply {
        /// Node name.
        node: String,
        /// `metadata`, `status` or `drain request`.
        what: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Reading the `NicNodeState` failed.
    #[error("cannot read NicNodeState {node}: {source}")]
    Get {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// What the agent does about a drain before applying a plan of class `class`, given the
/// annotations on its `NicNodeState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainDecision {
    /// Apply now.
    Proceed,
    /// Set `drain-request` to this value, then wait.
    Request(DrainRequest),
    /// The request is set; wait for `drain-grant=drained`.
    Wait,
}

/// The drain step of the handshake in `crds::consts`: a non-disruptive plan proceeds at once;
/// a disruptive one first asks (`evict-vf-pods` or `reboot`) and proceeds once the operator says
/// `drained`. A request for a lesser class than the one set is raised, never lowered, while a
/// drain is under way.
pub fn drain_decision(
    class: ChangeClass,
    request: DrainRequest,
    grant: DrainGrant,
) -> DrainDecision {
    let need = class.drain_request();
    if need == DrainRequest::None {
        return DrainDecision::Proceed;
    }
    if request < need {
        return DrainDecision::Request(need);
    }
    if grant == DrainGrant::Drained {
        DrainDecision::Proceed
    } else {
        DrainDecision::Wait
    }
}

/// The drain annotations of a `NicNodeState` (unknown values read as `none`).
pub fn drain_annotations(state: &NicNodeState) -> (DrainRequest, DrainGrant) {
    let a = state.metadata.annotations.clone().unwrap_or_default();
    (
        a.get(ANNOTATION_DRAIN_REQUEST)
            .and_then(|v| DrainRequest::from_annotation(v))
            .unwrap_or_default(),
        a.get(ANNOTATION_DRAIN_GRANT)
            .and_then(|v| DrainGrant::from_annotation(v))
            .unwrap_or_default(),
    )
}

/// The status the agent reports: the inventory, the result of the last apply, and the `Synced`
/// condition at `generation`. Only the agent's fields are in it: with server-side apply the
/// conditions are a map keyed by type, so the operator's `Draining` stays the operator's.
pub fn build_status(
    current: Option<&NicNodeStateStatus>,
    nics: Vec<Nic>,
    sync: SyncStatus,
    error: Option<String>,
    applied_generation: Option<i64>,
    generation: Option<i64>,
    now: Timestamp,
) -> NicNodeStateStatus {
    let report = match sync {
        SyncStatus::Succeeded => SyncReport::applied(applied_generation),
        SyncStatus::InProgress => SyncReport {
            status: sync,
            reason: "Applying",
            message: "applying the spec".to_owned(),
            error: error.clone(),
            applied_generation,
        },
        SyncStatus::Failed => SyncReport {
            status: sync,
            reason: "Failed",
            message: error.clone().unwrap_or_default(),
            error: error.clone(),
            applied_generation,
        },
    };
    status_of(current, nics, &report, None, generation, now)
}

/// The status the agent applies: `nics`, what `report` says (sync status, `Synced` condition
/// at `generation`), and, when the agent runs the overlay (`tunnel`), the node's tunnel endpoint
/// and the `TunnelEndpoint` condition (the agent owns `status` as a whole under its field
/// manager: a field left out of an apply is removed, so both go into every apply).
pub fn status_of(
    current: Option<&NicNodeStateStatus>,
    nics: Vec<Nic>,
    report: &SyncReport,
    tunnel: Option<&TunnelReport>,
    generation: Option<i64>,
    now: Timestamp,
) -> NicNodeStateStatus {
    let mut conds = vec![Cond::new(
        CONDITION_SYNCED,
        report.status == SyncStatus::Succeeded,
        report.reason,
        report.message.clone(),
    )];
    conds.extend(tunnel.map(|t| t.condition.clone()));
    let existing: Vec<_> = current
        .map(|c| c.conditions.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|c| conds.iter().any(|n| n.type_ == c.type_))
        .cloned()
        .collect();
    NicNodeStateStatus {
        nics,
        sync_status: Some(report.status),
        last_sync_error: report.error.clone(),
        applied_generation: report.applied_generation,
        conditions: merge(&existing, &conds, generation, now),
        tunnel_endpoint: tunnel.and_then(|t| t.endpoint.clone()),
    }
}

/// The part of a status the agent owns (its `Synced` and `TunnelEndpoint` conditions, not the
/// operator's ones), to compare with what it would write.
pub fn agent_part(status: &NicNodeStateStatus) -> NicNodeStateStatus {
    let mut s = status.clone();
    s.conditions
        .retain(|c| c.type_ == CONDITION_SYNCED || c.type_ == CONDITION_TUNNEL_ENDPOINT);
    s
}

/// Whether the agent's field manager owns `status.tunnelEndpoint` of `state` (from its
/// `managedFields`): an agent run without `--tunnel-uplink` then removes the endpoint an
/// earlier run published, and leaves alone one that another manager set.
pub fn agent_owns_tunnel_endpoint(state: &NicNodeState) -> bool {
    state
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER_AGENT))
        .filter_map(|m| m.fields_v1.as_ref())
        .any(|f| f.0.pointer("/f:status/f:tunnelEndpoint").is_some())
}

/// Whether two statuses say the same thing (condition timestamps aside).
pub fn same_status(a: &NicNodeStateStatus, b: &NicNodeStateStatus) -> bool {
    let strip = |s: &NicNodeStateStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = crds::k8s::Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// The agent's handle on its node's objects.
pub struct NodeApi {
    client: Client,
    node: String,
    recorder: Recorder,
}

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER_AGENT)
}

impl NodeApi {
    /// For node `node`.
    pub fn new(client: Client, node: impl Into<String>) -> Self {
        let node = node.into();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "smartnic-agent".into(),
                instance: Some(node.clone()),
            },
        );
        Self {
            client,
            node,
            recorder,
        }
    }

    fn states(&self) -> Api<NicNodeState> {
        Api::all(self.client.clone())
    }

    /// Creates (or adopts) the node's `NicNodeState`: labels and the Node owner reference, by
    /// server-side apply. Returns the object.
    pub async fn ensure_node_state(&self) -> Result<NicNodeState, ClusterError> {
        let node: Node = Api::<Node>::all(self.client.clone())
            .get(&self.node)
            .await
            .map_err(|source| ClusterError::GetNode {
                node: self.node.clone(),
                source,
            })?;
        let owner = node.controller_owner_ref(&()).map(|mut o| {
            o.controller = None;
            o.block_owner_deletion = None;
            o
        });
        let body = json!({
            "apiVersion": crds::API_VERSION,
            "kind": "NicNodeState",
            "metadata": {
                "name": self.node,
                "labels": BTreeMap::from([
                    (LABEL_MANAGED_BY, MANAGED_BY),
                    (LABEL_NODE, self.node.as_str()),
                ]),
                "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
            },
            "spec": {},
        });
        self.states()
            .patch(&self.node, &params(), &Patch::Apply(&body))
            .await
            .map_err(|source| ClusterError::Apply {
                node: self.node.clone(),
                what: "metadata",
                source,
            })
    }

    /// Reads the node's `NicNodeState`.
    pub async fn get(&self) -> Result<NicNodeState, ClusterError> {
        self.states()
            .get(&self.node)
            .await
            .map_err(|source| ClusterError::Get {
                node: self.node.clone(),
                source,
            })
    }

    /// Applies `status` unless `last` (what the agent wrote or read last) already says it.
    /// Returns whether it wrote.
    pub async fn report_status(
        &self,
        status: &NicNodeStateStatus,
        last: Option<&NicNodeStateStatus>,
    ) -> Result<bool, ClusterError> {
        if last.is_some_and(|l| same_status(&agent_part(l), status)) {
            return Ok(false);
        }
        let body = json!({
            "apiVersion": crds::API_VERSION,
            "kind": "NicNodeState",
            "metadata": {"name": self.node},
            "status": status,
        });
        self.states()
            .patch_status(&self.node, &params().force(), &Patch::Apply(&body))
            .await
            .map_err(|source| ClusterError::Apply {
                node: self.node.clone(),
                what: "status",
                source,
            })?;
        Ok(true)
    }

    /// Sets `drain-request` (and, when a request starts, `drain-requested-at`).
    pub async fn request_drain(
        &self,
        request: DrainRequest,
        requested_at: Option<Timestamp>,
    ) -> Result<(), ClusterError> {
        let mut annotations =
            BTreeMap::from([(ANNOTATION_DRAIN_REQUEST, request.as_str().to_owned())]);
        if let Some(at) = requested_at {
            annotations.insert(ANNOTATION_DRAIN_REQUESTED_AT, at.to_string());
        }
        let body = json!({
            "apiVersion": crds::API_VERSION,
            "kind": "NicNodeState",
            "metadata": {"name": self.node, "annotations": annotations},
        });
        self.states()
            .patch(&self.node, &params().force(), &Patch::Apply(&body))
            .await
            .map_err(|source| ClusterError::Apply {
                node: self.node.clone(),
                what: "drain request",
                source,
            })?;
        Ok(())
    }

    /// One event per plan on the `NicNodeState`: `Applied` (Normal) or `ApplyFailed` (Warning),
    /// with the step count, the disruption and the time. Failures to publish are logged only.
    pub async fn plan_event(&self, state: &NicNodeState, ok: bool, note: String) {
        let ev = Event {
            type_: if ok {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: if ok { "Applied" } else { "ApplyFailed" }.into(),
            note: Some(note),
            action: "Apply".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, &state.object_ref(&())).await {
            tracing::warn!(%error, "cannot publish the plan event");
        }
    }

    /// An event on the `NicNodeState` with `reason` and `note` (Warning or Normal). Failures
    /// to publish are logged only.
    pub async fn event(&self, state: &NicNodeState, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, &state.object_ref(&())).await {
            tracing::warn!(%error, reason, "cannot publish the event");
        }
    }
}
