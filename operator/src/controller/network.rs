//! Network controller: one reconcile per `NicNetwork`, writing its
//! `NetworkAttachmentDefinition` and its status.
//!
//! The NAD ([`planner::render_nad`]) has the network's name and namespace, the
//! `k8s.v1.cni.cncf.io/resourceName: <prefix>/<resourceName>` annotation and a controller owner
//! reference to the network, so Kubernetes deletes it with the network (no finalizer). It is
//! server-side applied by `smartnic.io/operator` when the cached copy differs. Then the status
//! gets `Valid` and `Ready` conditions with `observedGeneration`.
//!
//! An invalid spec (the same checks as the webhook, for clusters without it) sets `Valid=False`
//! and `Ready=False` with the field path in the message and emits a warning event; the last good
//! NAD is left in place, so running pods keep working.

use std::{sync::Arc, time::Duration};

use crds::{
    CONDITION_READY, CONDITION_VALID, NetworkAttachmentDefinition, NicNetwork,
    network::NicNetworkStatus,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch},
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use serde_json::json;

use super::{ReconcileError, apply_params, is_conflict, publish, triggers::Change};
use planner::conditions::{self, Cond};
use planner::{
    NadError, REASON_NAMESPACE_NOT_ALLOWED, REASON_NOT_IN_ALLOW_LIST, network_host_access,
    network_may_use, render_nad_offered,
};

use crate::context::Context;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "network";

/// Requeue after a successful reconcile.
pub const RESYNC: Duration = Duration::from_secs(600);

/// Why a network could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network lacks name, namespace or uid, or its config cannot be serialised.
    #[error(transparent)]
    Render(NadError),
    /// Server-side apply of the NAD failed (is the Multus NAD CRD installed?).
    #[error("cannot apply NetworkAttachmentDefinition {namespace}/{name}: {source}")]
    ApplyNad {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting the NAD of a network whose namespace may not use its resource failed.
    #[error("cannot delete NetworkAttachmentDefinition {namespace}/{name}: {source}")]
    DeleteNad {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the network's status failed.
    #[error("cannot apply status of NicNetwork {namespace}/{name}: {source}")]
    PatchStatus {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label naming the failed call.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Render(_) => "render",
            Self::ApplyNad { .. } => "applynad",
            Self::DeleteNad { .. } => "deletenad",
            Self::PatchStatus { .. } => "patchstatus",
        }
    }
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }

    fn retry_base(&self) -> Duration {
        match self {
            Self::ApplyNad { source, .. }
            | Self::DeleteNad { source, .. }
            | Self::PatchStatus { source, .. }
                if is_conflict(source) =>
            {
                Duration::from_secs(1)
            }
            Self::Render(_) => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}

/// Reconciles one network. See the module documentation.
#[tracing::instrument(skip_all, fields(network = %format!("{}/{}", net.namespace().unwrap_or_default(), net.name_any())))]
pub async fn reconcile(net: Arc<NicNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let key = backoff_key(&net);
    let result = reconcile_network(&net, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

async fn reconcile_network(net: &NicNetwork, ctx: &Context) -> Result<Action, Error> {
    let prefix = ctx.stores.resource_prefix();
    let namespace = net.namespace().unwrap_or_default();
    let name = net.name_any();
    if let Some(resource) = &net.spec.resource_name {
        let policies = ctx.stores.policies.state();
        if let Err(denied) =
            network_may_use(&namespace, resource, policies.iter().map(|p| p.as_ref()))
        {
            let message = denied.to_string();
            return refuse(
                net,
                ctx,
                &namespace,
                &name,
                REASON_NAMESPACE_NOT_ALLOWED,
                message,
            )
            .await;
        }
    }
    let allow = ctx
        .stores
        .operator_config()
        .map(|c| c.spec.tenant_allow_list.clone())
        .unwrap_or_default();
    if let Err(denied) = network_host_access(&namespace, &net.spec, &allow) {
        let message = denied.to_string();
        return refuse(
            net,
            ctx,
            &namespace,
            &name,
            REASON_NOT_IN_ALLOW_LIST,
            message,
        )
        .await;
    }
    // how the policies offer the network's pool: a DRA-only pool's NAD has no resourceName
    // annotation (planner::render_nad_offered)
    let offer = net
        .spec
        .resource_name
        .as_ref()
        .and_then(|r| {
            let policies = ctx.stores.policies.state();
            planner::dra::pool_offers(policies.iter().map(|p| p.as_ref())).remove(r)
        })
        .unwrap_or_default();
    let (conds, nad_name) = match render_nad_offered(net, &prefix, offer) {
        Ok(nad) => {
            let cached = ctx
                .stores
                .nads
                .get(&ObjectRef::new(&name).within(&namespace));
            if cached.as_deref().is_none_or(|c| !nad_matches(c, &nad)) {
                tracing::info!("applying NetworkAttachmentDefinition");
                let api: Api<NetworkAttachmentDefinition> =
                    Api::namespaced(ctx.client.clone(), &namespace);
                api.patch(&name, &apply_params(), &Patch::Apply(&nad))
                    .await
                    .map_err(|source| Error::ApplyNad {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    })?;
            }
            let resource = net
                .spec
                .resource_name
                .as_ref()
                .map(|r| format!("{prefix}/{r}"));
            (
                vec![
                    Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
                    Cond::new(
                        CONDITION_READY,
                        true,
                        "NadApplied",
                        match resource {
                            Some(r) => format!(
                                "NetworkAttachmentDefinition {namespace}/{name} uses resource {r}"
                            ),
                            None => format!(
                                "NetworkAttachmentDefinition {namespace}/{name} is up to date"
                            ),
                        },
                    ),
                ],
                Some(name.clone()),
            )
        }
        Err(NadError::Invalid { message, .. }) => {
            let already = net.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == CONDITION_VALID && c.message == message)
            });
            if !already {
                publish(
                    ctx,
                    EventType::Warning,
                    "InvalidSpec",
                    message.clone(),
                    "Render",
                    &net.object_ref(&()),
                )
                .await;
            }
            (
                vec![
                    Cond::new(CONDITION_VALID, false, "InvalidSpec", message),
                    Cond::new(
                        CONDITION_READY,
                        false,
                        "InvalidSpec",
                        "the NetworkAttachmentDefinition is not updated while the spec is invalid",
                    ),
                ],
                net.status
                    .as_ref()
                    .and_then(|s| s.network_attachment_definition.clone()),
            )
        }
        Err(e) => return Err(Error::Render(e)),
    };
    write_status(ctx, net, &conds, nad_name).await?;
    Ok(Action::requeue(RESYNC))
}

/// A network its namespace may not have: one whose resource the policies do not offer the
/// namespace (reason `NamespaceNotAllowed`), or that names a host interface or path the
/// administrator's allow-list does not grant it (reason `NotInAllowList`). `Ready=False` with
/// `reason`, a warning event, and no NAD: one this network owns is deleted, so no new pod can
/// attach (running pods keep their interfaces).
async fn refuse(
    net: &NicNetwork,
    ctx: &Context,
    namespace: &str,
    name: &str,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let already = net.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == CONDITION_READY && c.message == message)
    });
    if !already {
        publish(
            ctx,
            EventType::Warning,
            reason,
            message.clone(),
            "Render",
            &net.object_ref(&()),
        )
        .await;
    }
    let cached = ctx.stores.nads.get(&ObjectRef::new(name).within(namespace));
    let uid = net.uid();
    if let Some(nad) = cached
        && nad
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref())
    {
        tracing::info!(%message, "deleting NetworkAttachmentDefinition");
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(ctx.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if super::api_code(&e) == Some(404) => {}
            Err(source) => {
                return Err(Error::DeleteNad {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                });
            }
        }
    }
    let conds = [
        Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
        Cond::new(CONDITION_READY, false, reason, message),
    ];
    write_status(ctx, net, &conds, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// Whether the cached NAD already carries everything the rendered one sets.
fn has_resource_annotation(nad: &NetworkAttachmentDefinition) -> bool {
    nad.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crds::ANNOTATION_NAD_RESOURCE_NAME))
}

fn nad_matches(cached: &NetworkAttachmentDefinition, want: &NetworkAttachmentDefinition) -> bool {
    let subset = |want: Option<&std::collections::BTreeMap<String, String>>,
                  have: Option<&std::collections::BTreeMap<String, String>>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    };
    cached.spec == want.spec
        && subset(
            want.metadata.labels.as_ref(),
            cached.metadata.labels.as_ref(),
        )
        && subset(
            want.metadata.annotations.as_ref(),
            cached.metadata.annotations.as_ref(),
        )
        // a resourceName annotation the NAD must no longer carry (its pool went DRA-only)
        && (has_resource_annotation(want) || !has_resource_annotation(cached))
        && want
            .owner_references()
            .iter()
            .all(|o| cached.owner_references().iter().any(|c| c.uid == o.uid))
}

async fn write_status(
    ctx: &Context,
    net: &NicNetwork,
    conds: &[Cond],
    nad: Option<String>,
) -> Result<(), Error> {
    let generation = net.metadata.generation;
    let current = net.status.clone().unwrap_or_default();
    if conditions::up_to_date(&current.conditions, conds, generation)
        && current.network_attachment_definition == nad
    {
        return Ok(());
    }
    let status = NicNetworkStatus {
        conditions: conditions::merge(&current.conditions, conds, generation, (ctx.now)()),
        network_attachment_definition: nad,
    };
    let namespace = net.namespace().unwrap_or_default();
    let name = net.name_any();
    let body = json!({"apiVersion": crds::API_VERSION, "kind": "NicNetwork", "metadata": {"name": name, "namespace": namespace}, "status": status});
    let api: Api<NicNetwork> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::PatchStatus {
            namespace,
            name,
            source,
        })?;
    Ok(())
}

fn backoff_key(net: &NicNetwork) -> String {
    format!(
        "{CONTROLLER}/{}/{}",
        net.namespace().unwrap_or_default(),
        net.name_any()
    )
}

/// Counts the failure and requeues the network with per-object exponential backoff.
pub fn error_policy(net: Arc<NicNetwork>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    let delay = ctx
        .backoff
        .failed(&backoff_key(&net), ReconcileError::retry_base(error));
    tracing::warn!(network = %backoff_key(&net), %error, ?delay, "network reconcile failed");
    Action::requeue(delay)
}

/// The networks a change concerns.
pub(crate) fn affected(change: Change, ctx: &Context) -> Vec<ObjectRef<NicNetwork>> {
    match change {
        Change::Network(r) | Change::Nad(r) => vec![r],
        // a policy can open or close a resource to namespaces
        Change::OperatorConfig | Change::Policy(_) | Change::Resync => ctx
            .stores
            .networks
            .state()
            .iter()
            .map(|n| ObjectRef::from_obj(&**n))
            .collect(),
        Change::Node(_) | Change::NodeState(_) | Change::NodeDrain(_) | Change::Pool => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crds::{NicNetworkSpec, network::NetworkMode};

    use super::*;
    use crate::controller::fixtures::{
        Scenario, reply, test_context, timeout_after_1s, with_rv, with_spec,
    };
    use planner::render_nad;

    fn network(ns: &str, name: &str, spec: NicNetworkSpec) -> NicNetwork {
        let mut n = NicNetwork::new(name, spec);
        n.metadata.namespace = Some(ns.into());
        n.metadata.uid = Some(format!("uid-{name}"));
        n.metadata.generation = Some(1);
        n.metadata.resource_version = Some("1".into());
        n
    }

    fn sriov(resource: &str, vlan: u16) -> NicNetworkSpec {
        NicNetworkSpec {
            mode: NetworkMode::Sriov,
            resource_name: Some(resource.into()),
            vlan: Some(vlan),
            ipam: Some(json!({"type": "host-local", "subnet": "10.56.0.0/24"})),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn network_causes_nad_apply_in_its_namespace_with_resource_annotation_and_owner() {
        let (ctx, fakeserver, mut stores) = test_context();
        let net = network("tenant-a", "fast-net", sriov("cx6_vf", 100));
        stores.network(net.clone());
        let mocksrv = fakeserver.run(Scenario::NadApply {
            namespace: "tenant-a".into(),
            name: "fast-net".into(),
            resource: "smartnic.io/cx6_vf".into(),
            network_uid: "uid-fast-net".into(),
        });
        let action = reconcile(Arc::new(net), ctx).await.expect("reconcile");
        assert_eq!(action, Action::requeue(RESYNC));
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn resource_prefix_comes_from_the_operator_config() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut cfg = crds::NicOperatorConfig::new("default", Default::default());
        cfg.spec.resource_prefix = "nics.example.com".into();
        stores.config(cfg);
        let net = network("tenant-b", "n2", sriov("e810_vf", 0));
        let mocksrv = fakeserver.run(Scenario::NadApply {
            namespace: "tenant-b".into(),
            name: "n2".into(),
            resource: "nics.example.com/e810_vf".into(),
            network_uid: "uid-n2".into(),
        });
        reconcile(Arc::new(net), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn a_dra_only_pool_takes_the_resource_annotation_off_the_nad() {
        let (ctx, mut fake, mut stores) = test_context();
        let mut p = planner::fixtures::policy("dra", 10, &["ens1f0"]);
        p.spec.allocation = crds::dra::Allocation::Dra;
        stores.policy(p);
        let net = network("tenant-a", "fast-net", sriov("cx6_vf", 100));
        // the NAD as rendered while the pool was the device plugin's
        stores.nad(render_nad(&net, "smartnic.io").unwrap());
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fake
                .expect_apply(
                    "/apis/k8s.cni.cncf.io/v1/namespaces/tenant-a/network-attachment-definitions/fast-net",
                )
                .await;
            assert_eq!(
                seen.body["metadata"].get("annotations"),
                None,
                "{}",
                seen.body
            );
            let config: serde_json::Value =
                serde_json::from_str(seen.body["spec"]["config"].as_str().unwrap()).unwrap();
            assert_eq!(config["resourceName"], "smartnic.io/cx6_vf");
            reply(send, 200, with_rv(seen.body, "7"));
            let (seen, send) = fake
                .expect_apply(
                    "/apis/smartnic.io/v1alpha1/namespaces/tenant-a/nicnetworks/fast-net/status",
                )
                .await;
            reply(
                send,
                200,
                with_rv(with_spec(seen.body, json!({"mode": "sriov"})), "8"),
            );
        });
        reconcile(Arc::new(net), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn up_to_date_nad_and_status_cause_no_calls() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut net = network("tenant-a", "fast-net", sriov("cx6_vf", 100));
        let nad = render_nad(&net, "smartnic.io").unwrap();
        stores.nad(nad);
        net.status = Some(NicNetworkStatus {
            conditions: conditions::merge(
                &[],
                &[
                    Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
                    Cond::new(
                        CONDITION_READY,
                        true,
                        "NadApplied",
                        "NetworkAttachmentDefinition tenant-a/fast-net uses resource smartnic.io/cx6_vf",
                    ),
                ],
                Some(1),
                crds::k8s::jiff::Timestamp::now(),
            ),
            network_attachment_definition: Some("fast-net".into()),
        });
        let mocksrv = fakeserver.run(Scenario::RadioSilence);
        reconcile(Arc::new(net), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn network_outside_the_policy_namespaces_gets_no_nad_and_ready_false() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut p = planner::fixtures::policy("p1", 10, &["ens1f0"]);
        p.spec.network_namespaces = Some(vec!["tenant-a".into()]);
        stores.policy(p);
        let net = network("tenant-b", "fast-net", sriov("cx6_vf", 100));
        // rendered while the namespace was still allowed
        stores.nad(render_nad(&net, "smartnic.io").unwrap());
        let mocksrv = fakeserver.run(Scenario::NetworkNamespaceRefused {
            namespace: "tenant-b".into(),
            name: "fast-net".into(),
            reason: "NamespaceNotAllowed".into(),
            says: "tenant-b".into(),
        });
        reconcile(Arc::new(net), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn network_naming_a_host_interface_not_granted_gets_no_nad_and_ready_false() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut cfg = crds::NicOperatorConfig::new("default", Default::default());
        cfg.spec.tenant_allow_list.masters = vec![crds::cni::HostInterfaceGrant {
            name: "eth1".into(),
            namespaces: Some(vec!["tenant-a".into()]),
        }];
        stores.config(cfg);
        let net = network(
            "tenant-b",
            "mac-net",
            NicNetworkSpec {
                mode: NetworkMode::Macvlan,
                master: Some("eth1".into()),
                ..Default::default()
            },
        );
        stores.nad(render_nad(&net, "smartnic.io").unwrap());
        let mocksrv = fakeserver.run(Scenario::NetworkNamespaceRefused {
            namespace: "tenant-b".into(),
            name: "mac-net".into(),
            reason: "NotInAllowList".into(),
            says: "master \"eth1\" is not allowed for namespace tenant-b".into(),
        });
        reconcile(Arc::new(net), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn invalid_network_gets_valid_false_naming_the_field_and_a_warning_event() {
        let (ctx, fakeserver, _stores) = test_context();
        let net = network("tenant-a", "bad", sriov("cx6_vf", 5000));
        let mocksrv = fakeserver.run(Scenario::NetworkInvalid {
            namespace: "tenant-a".into(),
            name: "bad".into(),
            field: "spec.vlan".into(),
        });
        reconcile(Arc::new(net), ctx)
            .await
            .expect("an invalid spec is not a reconcile error");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn missing_nad_crd_fails_with_applynad_and_is_counted() {
        let (ctx, fakeserver, _stores) = test_context();
        let net = network("tenant-a", "fast-net", sriov("cx6_vf", 1));
        let mocksrv = fakeserver.run(Scenario::ServerError {
            method: http::Method::PATCH,
            path: "/apis/k8s.cni.cncf.io/v1/namespaces/tenant-a/network-attachment-definitions/fast-net".into(),
            code: 404,
        });
        let err = reconcile(Arc::new(net.clone()), ctx.clone())
            .await
            .expect_err("must fail");
        timeout_after_1s(mocksrv).await;
        assert!(
            err.to_string()
                .contains("NetworkAttachmentDefinition tenant-a/fast-net"),
            "{err}"
        );
        error_policy(Arc::new(net), &err, ctx.clone());
        assert_eq!(
            ctx.metrics.reconcile_errors_count(CONTROLLER, "applynad"),
            1
        );
    }
}
