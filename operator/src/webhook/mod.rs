//! Validating admission webhook for `NicPolicy`, `NicNetwork`, `NicPool` and
//! `NicOperatorConfig`, served over HTTPS (rustls with the ring provider, through axum-server).
//!
//! | path | checks |
//! |---|---|
//! | `POST /validate-nicpolicy` | [`validate_policy`]: the spec alone, then against the other policies (VF ranges of one PF claimed twice, PF-level settings that disagree, one resource name for two kinds of device) and against every node's discovered inventory (`numVfs` above `sriov_totalvfs`, switchdev without an eswitch, ...) |
//! | `POST /validate-nicnetwork` | [`validate_network`]; refuses a network whose namespace the policies offering its resource do not admit (`NicPolicy.spec.networkNamespaces`), or that names a host interface, bridge, IPAM `dataDir` or `resolvConf` the administrator's allow-list (`NicOperatorConfig.spec.tenantAllowList`) does not grant its namespace; warns when no policy provides the resource |
//! | `POST /validate-nicpool` | [`validate_pool`]: selector, `maxUnavailable`, no node in two pools |
//! | `POST /validate-nicoperatorconfig` | [`validate_operator_config`] |
//! | `POST /mutate-pods` | the network-resources injector ([`inject`]): extended-resource requests and limits for the networks a pod names |
//!
//! A denial's message lists every problem as `field.path: what is wrong` (the API server shows
//! it to `kubectl` as is). The cross-object checks read the same watch caches as the
//! controllers, on every replica. Updates that leave the spec unchanged are always allowed, so
//! metadata edits (labels, finalizers) never get stuck on a conflict that arose later.
//! The controllers run the same single-object checks and report them in status, so a cluster
//! without this webhook still rejects bad input, only later.

pub mod inject;
pub mod limits;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, future::Future, net::SocketAddr, path::Path, time::Duration};

use axum::{Json, Router, body::Bytes, extract::State, routing::post};
use axum_server::tls_rustls::RustlsConfig;
use crds::{
    ANNOTATION_NAD_RESOURCE_NAME, NicNetwork, NicOperatorConfig, NicPolicy, NicPool,
    inventory::NicInventory, policy::NicPolicySpec,
};
use kube::{
    ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
    },
    runtime::reflector::ObjectRef,
};
use serde::de::DeserializeOwned;

use planner::network_may_use;
use planner::validate::{
    FieldError, NodeFacts, PolicyContext, to_message, validate_network, validate_operator_config,
    validate_policy,
};

use crate::context::Stores;

/// The kinds this webhook validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `NicPolicy`.
    Policy,
    /// `NicNetwork`.
    Network,
    /// `NicPool`.
    Pool,
    /// `NicOperatorConfig`.
    OperatorConfig,
}

impl Kind {
    /// The `kind` of the objects.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Policy => "NicPolicy",
            Self::Network => "NicNetwork",
            Self::Pool => "NicPool",
            Self::OperatorConfig => "NicOperatorConfig",
        }
    }
}

/// Why the webhook server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key could not be read or used.
    #[error("cannot load the webhook TLS certificate {cert} / key {key}: {source}")]
    Tls {
        /// Certificate path.
        cert: String,
        /// Key path.
        key: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen for the webhook on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("webhook server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Loads a PEM certificate chain and private key (as mounted from a cert-manager Secret).
pub async fn load_tls(cert: &Path, key: &Path) -> Result<RustlsConfig, Error> {
    RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|source| Error::Tls {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })
}

/// Reloads the certificate every `period` (cert-manager rotates the mounted Secret in place;
/// the kubelet updates the files within a minute or so).
pub async fn reload_tls_every(tls: RustlsConfig, cert: &Path, key: &Path, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        if let Err(error) = tls.reload_from_pem_file(cert, key).await {
            tracing::warn!(%error, cert = %cert.display(), "cannot reload the webhook certificate; keeping the previous one");
        }
    }
}

/// `/validate-*` and `/mutate-pods` routes over the given caches.
pub fn router(stores: Stores) -> Router {
    Router::new()
        .route(
            "/validate-nicpolicy",
            post(|s, b| handle(Kind::Policy, s, b)),
        )
        .route(
            "/validate-nicnetwork",
            post(|s, b| handle(Kind::Network, s, b)),
        )
        .route("/validate-nicpool", post(|s, b| handle(Kind::Pool, s, b)))
        .route(
            "/validate-nicoperatorconfig",
            post(|s, b| handle(Kind::OperatorConfig, s, b)),
        )
        .route("/mutate-pods", post(handle_pod))
        .with_state(stores)
}

async fn handle_pod(
    State(stores): State<Stores>,
    body: Bytes,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(review_pod(&body, &stores))
}

/// Answers one pod `AdmissionReview` body for the network-resources injector, looking the NADs
/// up in the cache of every NAD.
pub fn review_pod(body: &[u8], stores: &Stores) -> AdmissionReview<DynamicObject> {
    let request = match read_request(body) {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(e).into_review(),
    };
    inject::mutate(&request, stores.injector_enabled(), |net| {
        let key = ObjectRef::new(&net.name).within(&net.namespace);
        match stores.all_nads.get(&key) {
            None => inject::Lookup::Missing,
            Some(nad) => match nad.annotations().get(ANNOTATION_NAD_RESOURCE_NAME) {
                Some(r) => inject::Lookup::Resource(r.trim().to_owned()),
                None => inject::Lookup::NoResource,
            },
        }
    })
    .into_review()
}

fn read_request(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("cannot read the AdmissionReview: {e}"))?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_owned())
}

async fn handle(
    kind: Kind,
    State(stores): State<Stores>,
    body: Bytes,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(review(kind, &body, &stores))
}

/// Serves [`router`] over TLS on `listener` until `shutdown` resolves (then drains connections
/// for up to 10 s), with the limits of [`limits`]: TLS handshake and request-header timeouts,
/// a first-request timeout and a cap on open connections.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: RustlsConfig,
    stores: Stores,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the admission webhook over TLS");
    }
    listener.set_nonblocking(true).map_err(Error::Serve)?;
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .handshake_timeout(limits::HANDSHAKE_TIMEOUT)
        .acceptor(limits::ConnectionLimit::new(limits::MAX_CONNECTIONS));
    let mut server = axum_server::from_tcp(listener)
        .map_err(Error::Serve)?
        .acceptor(acceptor)
        .first_request_timeout(limits::FIRST_REQUEST_TIMEOUT)
        .handle(handle);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits::HEADER_TIMEOUT);
    server
        .serve(router(stores).into_make_service())
        .await
        .map_err(Error::Serve)
}

/// Binds `addr` for [`serve`].
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, Error> {
    std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })
}

/// Answers one `AdmissionReview` body (the HTTP handler without HTTP).
pub fn review(kind: Kind, body: &[u8], stores: &Stores) -> AdmissionReview<DynamicObject> {
    let request = match read_request(body) {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(e).into_review(),
    };
    decide(kind, &request, stores).into_review()
}

/// The admission decision for one request.
pub fn decide(
    kind: Kind,
    req: &AdmissionRequest<DynamicObject>,
    stores: &Stores,
) -> AdmissionResponse {
    let allow = AdmissionResponse::from(req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return allow;
    }
    let Some(obj) = &req.object else { return allow };
    let name = if req.name.is_empty() {
        obj.name_any()
    } else {
        req.name.clone()
    };
    let old = req.old_object.as_ref();
    let result: Result<Vec<String>, Verdict> = match kind {
        Kind::Policy => check::<NicPolicy>(obj, old, |p| json(&p.spec))
            .and_then(|p| policy_errors(&name, &p.spec, stores)),
        Kind::Network => check::<NicNetwork>(obj, old, |n| json(&n.spec)).and_then(|n| {
            let namespace = req
                .namespace
                .clone()
                .or_else(|| n.metadata.namespace.clone())
                .unwrap_or_default();
            network_errors(&n, &namespace, stores)
        }),
        Kind::Pool => check::<NicPool>(obj, old, |p| json(&p.spec))
            .and_then(|p| pool_errors(&name, &p, stores)),
        Kind::OperatorConfig => {
            check::<NicOperatorConfig>(obj, old, |c| json(&c.spec)).and_then(|c| {
                validate_operator_config(&name, &c.spec)
                    .map(|()| Vec::new())
                    .map_err(Verdict::Deny)
            })
        }
    };
    match result {
        Ok(warnings) => with_warnings(allow, warnings),
        Err(Verdict::Unchanged) => allow,
        Err(Verdict::Deny(errors)) => {
            tracing::info!(kind = kind.name(), %name, message = %to_message(&errors), "denied");
            deny(allow, to_message(&errors))
        }
    }
}

/// Why a request is answered before (or instead of) the full checks.
enum Verdict {
    /// An update that leaves the spec as it was.
    Unchanged,
    /// Rejected, with these errors.
    Deny(Vec<FieldError>),
}

/// Reads the object as `K`; an update whose spec equals the old one short-circuits.
fn check<K: DeserializeOwned>(
    obj: &DynamicObject,
    old: Option<&DynamicObject>,
    spec: impl Fn(&K) -> serde_json::Value,
) -> Result<K, Verdict> {
    let new: K = typed(obj).map_err(Verdict::Deny)?;
    if let Some(old) = old
        && let Ok(old) = typed::<K>(old)
        && spec(&old) == spec(&new)
    {
        return Err(Verdict::Unchanged);
    }
    Ok(new)
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, Vec<FieldError>> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|e| vec![FieldError::new("spec", format!("cannot be read: {e}"))])
}

fn deny(resp: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut resp = resp.deny(message);
    resp.result.code = 422;
    resp.result.reason = "Invalid".into();
    resp
}

fn with_warnings(mut resp: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

/// Node facts for the cross-object checks: nodes with a reported inventory.
struct KnownNodes {
    entries: Vec<(String, BTreeMap<String, String>, NicInventory)>,
}

impl KnownNodes {
    fn read(stores: &Stores) -> Self {
        let nodes: BTreeMap<String, BTreeMap<String, String>> = stores
            .nodes
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect();
        let entries = stores
            .node_states
            .state()
            .iter()
            .filter_map(|s| {
                let nics = s
                    .status
                    .as_ref()
                    .map(|st| st.nics.clone())
                    .filter(|n| !n.is_empty())?;
                let name = s.name_any();
                let labels = nodes.get(&name).cloned().unwrap_or_default();
                Some((name, labels, NicInventory { nics }))
            })
            .collect();
        Self { entries }
    }

    fn facts(&self) -> Vec<NodeFacts<'_>> {
        self.entries
            .iter()
            .map(|(name, labels, inventory)| NodeFacts {
                name,
                labels,
                inventory,
            })
            .collect()
    }
}

fn policy_errors(
    name: &str,
    spec: &NicPolicySpec,
    stores: &Stores,
) -> Result<Vec<String>, Verdict> {
    let policies: Vec<NicPolicy> = stores
        .policies
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let known = KnownNodes::read(stores);
    let facts = known.facts();
    let ctx = PolicyContext {
        policies: &policies,
        nodes: &facts,
    };
    validate_policy(name, spec, &ctx).map_err(Verdict::Deny)?;
    let mut warnings = Vec::new();
    if let Ok(sel) = planner::selector::CompiledSelector::compile(&spec.node_selector)
        && !stores.nodes.state().is_empty()
        && !stores.nodes.state().iter().any(|n| sel.matches(n.labels()))
    {
        warnings.push("spec.nodeSelector matches no node at present".to_owned());
    }
    Ok(warnings)
}

fn network_errors(
    net: &NicNetwork,
    namespace: &str,
    stores: &Stores,
) -> Result<Vec<String>, Verdict> {
    validate_network(&net.spec).map_err(Verdict::Deny)?;
    let allow = stores
        .operator_config()
        .map(|c| c.spec.tenant_allow_list.clone())
        .unwrap_or_default();
    if let Err(denied) = planner::network_host_access(namespace, &net.spec, &allow) {
        return Err(Verdict::Deny(vec![FieldError::new(
            &denied.field,
            denied.message,
        )]));
    }
    let mut warnings = Vec::new();
    if let Some(r) = &net.spec.resource_name {
        let policies = stores.policies.state();
        if let Err(denied) = network_may_use(namespace, r, policies.iter().map(|p| p.as_ref())) {
            return Err(Verdict::Deny(vec![FieldError::new(
                "spec.resourceName",
                denied.to_string(),
            )]));
        }
        let providers: Vec<_> = stores
            .policies
            .state()
            .into_iter()
            .filter(|p| &p.spec.resource_name == r)
            .collect();
        if providers.is_empty() {
            warnings.push(format!(
                "spec.resourceName: no NicPolicy provides resource {r} yet; pods using this network stay Pending until one does"
            ));
        } else if net.spec.mode == crds::network::NetworkMode::Ovs
            && !providers
                .iter()
                .any(|p| p.spec.eswitch_mode == Some(crds::inventory::EswitchMode::Switchdev))
        {
            warnings.push(format!(
                "spec.mode: ovs needs VFs in switchdev mode, but no NicPolicy providing {r} sets eswitchMode: switchdev"
            ));
        } else if net.spec.mode == crds::network::NetworkMode::Ib
            && !providers
                .iter()
                .any(|p| p.spec.link_type == Some(crds::inventory::LinkType::Ib))
        {
            warnings.push(format!(
                "spec.mode: ib needs InfiniBand VFs, but no NicPolicy providing {r} sets linkType: ib"
            ));
        }
    }
    Ok(warnings)
}

fn pool_errors(name: &str, pool: &NicPool, stores: &Stores) -> Result<Vec<String>, Verdict> {
    stores.check_pool(name, &pool.spec).map_err(Verdict::Deny)?;
    Ok(Vec::new())
}
