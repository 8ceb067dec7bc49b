//! Which pods a drain removes from a node (pure).

use std::collections::BTreeSet;

use crds::{DrainRequest, NicNetwork};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Whether a drain may evict the pod at all: not finished, not a mirror pod, not a DaemonSet's.
pub(super) fn evictable(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror")
    {
        return false;
    }
    // kubectl drain --ignore-daemonsets: the DaemonSet controller would recreate them at once
    !pod.owner_references().iter().any(|o| o.kind == "DaemonSet")
}

/// Which pods a drain removes from a node, counting as VF users only the pods that request
/// `<prefix>/*` resources (see [`must_leave_for`] for the PF users too).
pub fn must_leave(pod: &Pod, request: DrainRequest, prefix: &str) -> bool {
    if !evictable(pod) {
        return false;
    }
    match request {
        DrainRequest::None => false,
        DrainRequest::Reboot => true,
        DrainRequest::EvictVfPods => uses_resources_with_prefix(pod, prefix),
    }
}

/// What makes a pod a user of a node's NICs for an `evict-vf-pods` drain.
pub struct NicUsers<'a> {
    /// Extended-resource prefix: pods requesting `<prefix>/*` use VFs.
    pub prefix: &'a str,
    /// Every `NicNetwork`: a pod naming a `macvlan`/`ipvlan` one whose master is in `pfs` uses
    /// that PF.
    pub networks: &'a [NicNetwork],
    /// Netdev names of the PFs the drain is for (those the node's spec configures).
    pub pfs: &'a BTreeSet<String>,
}

/// Which pods a drain removes from a node: [`must_leave`], and for `evict-vf-pods` also the
/// pods whose `macvlan`/`ipvlan` interfaces hang off one of the node's configured PFs
/// ([`planner::uses_pf_through_networks`]): changing the PF takes their link away too.
pub fn must_leave_for(pod: &Pod, request: DrainRequest, users: &NicUsers<'_>) -> bool {
    must_leave(pod, request, users.prefix)
        || (matches!(request, DrainRequest::EvictVfPods)
            && evictable(pod)
            && planner::uses_pf_through_networks(
                pod.annotations()
                    .get(planner::ANNOTATION_NETWORKS)
                    .map(String::as_str),
                pod.namespace().as_deref().unwrap_or_default(),
                users.networks,
                users.pfs,
            ))
}

/// Whether a container of the pod requests or limits a `<prefix>/...` extended resource.
pub fn uses_resources_with_prefix(pod: &Pod, prefix: &str) -> bool {
    let p = format!("{prefix}/");
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| {
                c.resources.as_ref().is_some_and(|r| {
                    r.requests
                        .iter()
                        .chain(r.limits.iter())
                        .flatten()
                        .any(|(k, _)| k.starts_with(&p))
                })
            })
    })
}
