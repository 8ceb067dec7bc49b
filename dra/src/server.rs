//! The kubelet's side: the plugin-registration service (the socket in the kubelet's
//! `plugins_registry`) and the `v1.DRAPlugin` service (the endpoint it names), thin shells over
//! [`crate::claims`].
//!
//! Kubelet 1.37 picks the newest DRAPlugin service both sides know from `supported_versions`
//! (`v1.DRAPlugin`, `v1beta1.DRAPlugin`) and calls the optional `DRAResourceHealth` service only
//! when a plugin lists it; this plugin lists `v1.DRAPlugin` alone, so nothing else is ever called
//! on its endpoint. Device health reaches the scheduler through the ResourceSlices instead (an
//! unhealthy device leaves them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use k8s_openapi::api::resource::v1::ResourceClaim;
use tonic::{Request, Response, Status};

use crate::claims::{ClaimRef, PrepareError, Store, answer};
use crate::devices::DraDevice;
use crate::dra_api::{
    Device, NodePrepareResourceResponse, NodePrepareResourcesRequest, NodePrepareResourcesResponse,
    NodeUnprepareResourceResponse, NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse,
    dra_plugin_server::DraPlugin,
};
use crate::registration_api::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
    registration_server::Registration,
};

/// The plugin type the kubelet's plugin manager routes to its DRA manager.
pub const PLUGIN_TYPE: &str = "DRAPlugin";
/// The gRPC services this plugin offers, as kubelet 1.37 expects them in `supported_versions`
/// (`<proto package's last part>.<service>`).
pub const SUPPORTED_SERVICES: &[&str] = &["v1.DRAPlugin"];

/// Reads a ResourceClaim (the API server; a fake in tests).
pub trait ClaimReader: Send + Sync + 'static {
    /// The claim `namespace/name`; the error is a message.
    fn get(&self, namespace: &str, name: &str)
    -> BoxFuture<'static, Result<ResourceClaim, String>>;
}

impl ClaimReader for kube::Client {
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<ResourceClaim, String>> {
        let api: kube::Api<ResourceClaim> = kube::Api::namespaced(self.clone(), namespace);
        let name = name.to_owned();
        Box::pin(async move { api.get(&name).await.map_err(|e| e.to_string()) })
    }
}

/// What both services share.
pub struct Driver {
    /// This node (the pool name).
    pub node: String,
    /// Records and CDI specs.
    pub store: Store,
    /// The devices known now, by name (replaced by the publishing loop).
    pub known: RwLock<Arc<BTreeMap<String, DraDevice>>>,
    /// The API.
    pub claims: Box<dyn ClaimReader>,
    /// The kubelet's device-plugin directory (its checkpoint); `None`: not read.
    pub device_plugin_dir: Option<PathBuf>,
    /// One prepare or unprepare batch at a time: the kubelet rarely sends two, and the files
    /// of one claim must never be written by two at once.
    pub lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("node", &self.node)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// The devices known now.
    pub fn known(&self) -> Arc<BTreeMap<String, DraDevice>> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the known devices.
    pub fn set_known(&self, known: BTreeMap<String, DraDevice>) {
        *self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(known);
    }

    async fn prepare_one(&self, want: ClaimRef) -> NodePrepareResourceResponse {
        let fail = |error: String| {
            tracing::warn!(claim = %format!("{}/{}", want.namespace, want.name), uid = %want.uid, "prepare failed: {error}");
            NodePrepareResourceResponse {
                devices: Vec::new(),
                error,
            }
        };
        if let Err(e) = want.checked_uid() {
            return fail(e.to_string());
        }
        // read the claim only when there is no record yet (a prepared claim is answered from it)
        let fetched = if self.store.record(&want.uid).is_some() {
            None
        } else {
            match self.claims.get(&want.namespace, &want.name).await {
                Ok(c) => Some(c),
                Err(e) => {
                    return fail(format!(
                        "cannot read claim {}/{}: {e}",
                        want.namespace, want.name
                    ));
                }
            }
        };
        let store = self.store.clone();
        let node = self.node.clone();
        let known = self.known();
        let w = want.clone();
        let dp_dir = self.device_plugin_dir.clone();
        let r = tokio::task::spawn_blocking(move || {
            let held = dp_dir
                .map(|d| crate::devices::held_in_checkpoint(known.values().map(|k| &k.pool), &d))
                .unwrap_or_default();
            store.prepare(&w, &node, &known, &held, || {
                fetched.ok_or_else(|| "the claim's record vanished; call again".to_owned())
            })
        })
        .await;
        match r {
            Ok(Ok(rec)) => {
                tracing::info!(claim = %format!("{}/{}", rec.namespace, rec.name), uid = %rec.claim_uid,
                    devices = ?rec.devices.iter().map(|d| d.pci_address.as_str()).collect::<Vec<_>>(), "prepared");
                NodePrepareResourceResponse {
                    devices: answer(&rec)
                        .into_iter()
                        .map(
                            |(request_names, pool_name, device_name, cdi_device_ids)| Device {
                                request_names,
                                pool_name,
                                device_name,
                                cdi_device_ids,
                                share_id: None,
                            },
                        )
                        .collect(),
                    error: String::new(),
                }
            }
            Ok(Err(PrepareError::Fetch(e))) => fail(e),
            Ok(Err(PrepareError::Claim(e))) => fail(e.to_string()),
            Err(e) => fail(format!("internal error: {e}")),
        }
    }

    async fn unprepare_one(&self, want: ClaimRef) -> NodeUnprepareResourceResponse {
        let store = self.store.clone();
        let w = want.clone();
        let r = tokio::task::spawn_blocking(move || store.unprepare(&w)).await;
        let error = match r {
            Ok(Ok(())) => {
                tracing::info!(claim = %format!("{}/{}", want.namespace, want.name), uid = %want.uid, "unprepared");
                String::new()
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("internal error: {e}"),
        };
        if !error.is_empty() {
            tracing::warn!(uid = %want.uid, "unprepare failed: {error}");
        }
        NodeUnprepareResourceResponse { error }
    }
}

fn claim_ref(c: crate::dra_api::Claim) -> ClaimRef {
    ClaimRef {
        namespace: c.namespace,
        name: c.name,
        uid: c.uid,
    }
}

/// The `v1.DRAPlugin` service.
#[derive(Clone, Debug)]
pub struct DraService(pub Arc<Driver>);

#[tonic::async_trait]
impl DraPlugin for DraService {
    async fn node_prepare_resources(
        &self,
        request: Request<NodePrepareResourcesRequest>,
    ) -> Result<Response<NodePrepareResourcesResponse>, Status> {
        let _guard = self.0.lock.lock().await;
        let mut claims = std::collections::HashMap::new();
        for c in request.into_inner().claims {
            let uid = c.uid.clone();
            let r = self.0.prepare_one(claim_ref(c)).await;
            claims.insert(uid, r);
        }
        Ok(Response::new(NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<NodeUnprepareResourcesRequest>,
    ) -> Result<Response<NodeUnprepareResourcesResponse>, Status> {
        let _guard = self.0.lock.lock().await;
        let mut claims = std::collections::HashMap::new();
        for c in request.into_inner().claims {
            let uid = c.uid.clone();
            let r = self.0.unprepare_one(claim_ref(c)).await;
            claims.insert(uid, r);
        }
        Ok(Response::new(NodeUnprepareResourcesResponse { claims }))
    }
}

/// The registration service: tells the kubelet who we are and where the DRA service listens.
#[derive(Clone, Debug)]
pub struct RegistrationService {
    /// Absolute path of the DRA service socket.
    pub endpoint: PathBuf,
}

/// The registration answer.
pub fn plugin_info(endpoint: &std::path::Path) -> PluginInfo {
    PluginInfo {
        r#type: PLUGIN_TYPE.to_owned(),
        name: crds::dra::DRIVER_NAME.to_owned(),
        endpoint: endpoint.display().to_string(),
        supported_versions: SUPPORTED_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(plugin_info(&self.endpoint)))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let s = request.into_inner();
        if s.plugin_registered {
            tracing::info!("registered with the kubelet");
        } else {
            tracing::error!("the kubelet refused the registration: {}", s.error);
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}
