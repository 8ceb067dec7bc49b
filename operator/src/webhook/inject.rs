//! Network-resources injector (`POST /mutate-pods`): a pod whose `k8s.v1.cni.cncf.io/networks`
//! annotation names NADs carrying `k8s.v1.cni.cncf.io/resourceName` gets one unit of each such
//! resource per network, summed per resource, as requests and limits of its first container.
//!
//! The pod is never refused: an annotation that cannot be read, a NAD that is not there or a
//! resource name that is not an extended resource leaves the pod as it is (or without that
//! network's share) and says why in an admission warning, which `kubectl` prints. A request or
//! limit the pod already has for a resource is kept as written. Off when
//! `NicOperatorConfig.spec.features.networkResourcesInjector` is false; a namespace or pod
//! labelled `smartnic.io/network-resources-injector: disabled` is not sent here at all (the
//! selectors of the `MutatingWebhookConfiguration`), and a pod so labelled is skipped here too.

use std::collections::BTreeMap;

use crds::{ANNOTATION_NAD_RESOURCE_NAME, INJECTOR_DISABLED, LABEL_INJECTOR};
use k8s_openapi::api::core::v1::Pod;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use serde_json::{Map, Value, json};

/// The pod annotation naming its additional networks (Multus).
pub const ANNOTATION_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// Longest networks annotation read (bytes); a longer one is not parsed.
pub const MAX_ANNOTATION_BYTES: usize = 16 * 1024;
/// Most networks one pod may name for the injector to act.
pub const MAX_NETWORKS: usize = 64;

/// One network a pod names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetworkRef {
    /// Namespace of the NAD (the pod's when the annotation gives none).
    pub namespace: String,
    /// Name of the NAD.
    pub name: String,
}

impl std::fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the NAD cache says about one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The NAD carries this `k8s.v1.cni.cncf.io/resourceName`.
    Resource(String),
    /// The NAD exists and names no resource (a macvlan network, say).
    NoResource,
    /// No such NAD.
    Missing,
}

/// Reads the networks annotation: `net-a, other-ns/net-b@eth1` or a JSON list of
/// `{"name", "namespace", "interface"}` objects. Every entry is checked; the first problem is
/// returned, naming the entry.
pub fn parse_networks(annotation: &str, pod_namespace: &str) -> Result<Vec<NetworkRef>, String> {
    if annotation.len() > MAX_ANNOTATION_BYTES {
        return Err(format!(
            "is {} bytes long, more than the {MAX_ANNOTATION_BYTES} the injector reads",
            annotation.len()
        ));
    }
    let trimmed = annotation.trim();
    let raw: Vec<(Option<String>, String)> = if trimmed.starts_with('[') {
        let list: Vec<Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("is not a valid JSON list: {e}"))?;
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                let name = v
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("entry {i} has no string \"name\""))?;
                let namespace = match v.get("namespace") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(ns)) => Some(ns.clone()),
                    Some(_) => return Err(format!("entry {i}: \"namespace\" is not a string")),
                };
                Ok((namespace, name.to_owned()))
            })
            .collect::<Result<_, String>>()?
    } else {
        trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let s = s.split_once('@').map_or(s, |(net, _ifname)| net);
                match s.split_once('/') {
                    Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
                    None => (None, s.to_owned()),
                }
            })
            .collect()
    };
    if raw.len() > MAX_NETWORKS {
        return Err(format!(
            "names {} networks, more than the {MAX_NETWORKS} the injector handles",
            raw.len()
        ));
    }
    raw.into_iter()
        .map(|(ns, name)| {
            let namespace = ns.unwrap_or_else(|| pod_namespace.to_owned());
            if !is_dns_label(&namespace) {
                return Err(format!("{namespace:?} is not a valid namespace"));
            }
            if !is_dns_subdomain(&name) {
                return Err(format!("{name:?} is not a valid NAD name"));
            }
            Ok(NetworkRef { namespace, name })
        })
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `r` may be injected: `<domain>/<name>`, the domain a DNS subdomain outside
/// `kubernetes.io` (CPU, memory and the other built-in resources are never touched), the name at
/// most 63 characters of letters, digits, `-`, `_` and `.`.
pub fn is_extended_resource(r: &str) -> bool {
    let Some((domain, name)) = r.split_once('/') else {
        return false;
    };
    is_dns_subdomain(domain)
        && domain != "kubernetes.io"
        && !domain.ends_with(".kubernetes.io")
        && !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// The resources the networks need, one per network naming a resource, summed per resource;
/// with a warning for each network that contributes nothing although it might have.
pub fn wanted_resources(
    refs: &[NetworkRef],
    lookup: impl Fn(&NetworkRef) -> Lookup,
) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut wanted = BTreeMap::new();
    let mut warnings = Vec::new();
    for r in refs {
        match lookup(r) {
            Lookup::Resource(res) if is_extended_resource(&res) => {
                *wanted.entry(res).or_insert(0) += 1;
            }
            Lookup::Resource(res) => warnings.push(format!(
                "network {r}: NAD annotation {ANNOTATION_NAD_RESOURCE_NAME}={res:?} is not an extended resource name (<domain>/<name>); nothing injected for it"
            )),
            Lookup::NoResource => {}
            Lookup::Missing => warnings.push(format!(
                "network {r}: no such NetworkAttachmentDefinition; nothing injected for it"
            )),
        }
    }
    (wanted, warnings)
}

/// The JSON patch adding `wanted` to the requests and limits of the pod's first container,
/// except resources the container already requests or limits (kept as written); empty when
/// there is nothing to add.
pub fn resources_patch(pod: &Pod, wanted: &BTreeMap<String, u64>) -> Vec<Value> {
    let Some(container) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
        return Vec::new();
    };
    let res = container.resources.as_ref();
    let requests = res.and_then(|r| r.requests.clone()).unwrap_or_default();
    let limits = res.and_then(|r| r.limits.clone()).unwrap_or_default();
    let mut new_requests: Map<String, Value> = requests
        .iter()
        .map(|(k, q)| (k.clone(), Value::String(q.0.clone())))
        .collect();
    let mut new_limits: Map<String, Value> = limits
        .iter()
        .map(|(k, q)| (k.clone(), Value::String(q.0.clone())))
        .collect();
    let mut added = false;
    for (r, n) in wanted {
        if requests.contains_key(r) || limits.contains_key(r) {
            continue;
        }
        new_requests.insert(r.clone(), Value::String(n.to_string()));
        new_limits.insert(r.clone(), Value::String(n.to_string()));
        added = true;
    }
    if !added {
        return Vec::new();
    }
    const PATH: &str = "/spec/containers/0/resources";
    if res.is_none() {
        return vec![json!({"op": "add", "path": PATH, "value": {
            "requests": new_requests, "limits": new_limits}})];
    }
    // `add` on an existing member replaces it; the maps carry the container's own entries
    vec![
        json!({"op": "add", "path": format!("{PATH}/requests"), "value": new_requests}),
        json!({"op": "add", "path": format!("{PATH}/limits"), "value": new_limits}),
    ]
}

/// The injector's answer to one pod admission request: allowed always, with a JSON patch when
/// resources were added and warnings for what could not be done.
pub fn mutate(
    req: &AdmissionRequest<DynamicObject>,
    enabled: bool,
    lookup: impl Fn(&NetworkRef) -> Lookup,
) -> AdmissionResponse {
    let allow = AdmissionResponse::from(req);
    if !enabled || req.operation != Operation::Create {
        return allow;
    }
    let Some(obj) = &req.object else { return allow };
    let pod: Pod = match serde_json::to_value(obj).and_then(serde_json::from_value) {
        Ok(p) => p,
        Err(e) => return warn(allow, format!("cannot read the pod: {e}")),
    };
    let labels = pod.metadata.labels.as_ref();
    if labels
        .and_then(|l| l.get(LABEL_INJECTOR))
        .map(String::as_str)
        == Some(INJECTOR_DISABLED)
    {
        return allow;
    }
    let Some(annotation) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_NETWORKS))
    else {
        return allow;
    };
    let namespace = req
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let refs = match parse_networks(annotation, &namespace) {
        Ok(r) => r,
        Err(e) => {
            return warn(
                allow,
                format!("annotation {ANNOTATION_NETWORKS} {e}; no network resources injected"),
            );
        }
    };
    let (wanted, mut warnings) = wanted_resources(&refs, lookup);
    let ops = resources_patch(&pod, &wanted);
    if !wanted.is_empty() && pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        warnings.push("the pod has no container; no network resources injected".to_owned());
    }
    let mut resp = allow;
    if !ops.is_empty() {
        match serde_json::from_value::<json_patch::Patch>(Value::Array(ops))
            .map_err(|e| e.to_string())
            .and_then(|p| resp.clone().with_patch(p).map_err(|e| e.to_string()))
        {
            Ok(r) => resp = r,
            Err(e) => warnings.push(format!("cannot build the patch: {e}")),
        }
    }
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

fn warn(mut resp: AdmissionResponse, message: String) -> AdmissionResponse {
    tracing::info!(%message, "network-resources injector left a pod unchanged");
    resp.warnings = Some(vec![message]);
    resp
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
