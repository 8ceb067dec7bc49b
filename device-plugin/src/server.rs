//! The `DevicePlugin` gRPC service of one pool: a thin shell over [`crate::allocate`],
//! [`crate::preferred`] and the pool's `watch` channel from [`crate::index`].

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::allocate::{self, AllocError};
use crate::api::{
    AllocateRequest, AllocateResponse, ContainerPreferredAllocationResponse, Device,
    DevicePluginOptions, Empty, ListAndWatchResponse, NumaNode, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
    TopologyInfo, device_plugin_server::DevicePlugin,
};
use crate::index::PoolState;
use crate::metrics::Metrics;
use crate::preferred::{Strategy, preferred};

/// What every pool server shares.
#[derive(Debug)]
pub struct Shared {
    /// Where device-info files go.
    pub devinfo_dir: PathBuf,
    /// Answer Allocate with CDI annotations instead of device specs.
    pub cdi: bool,
    /// Preferred-allocation placement.
    pub strategy: Strategy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The service of one pool.
#[derive(Debug, Clone)]
pub struct PoolService {
    resource: String,
    pool: watch::Receiver<Arc<PoolState>>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
}

impl PoolService {
    /// The service for `resource` reading `pool`; its ListAndWatch streams end when `stop`
    /// becomes true or the pool is removed.
    pub fn new(
        resource: String,
        pool: watch::Receiver<Arc<PoolState>>,
        stop: watch::Receiver<bool>,
        shared: Arc<Shared>,
    ) -> Self {
        PoolService {
            resource,
            pool,
            stop,
            shared,
        }
    }
}

/// The ListAndWatch message for a pool state.
pub fn list_response(state: &PoolState) -> ListAndWatchResponse {
    ListAndWatchResponse {
        devices: state
            .devices
            .iter()
            .map(|d| Device {
                id: d.id(),
                health: d.health.as_kubelet().to_owned(),
                topology: match (state.spec.exclude_topology, d.numa_node) {
                    (false, Some(n)) => Some(TopologyInfo {
                        nodes: vec![NumaNode { id: i64::from(n) }],
                    }),
                    _ => None,
                },
            })
            .collect(),
    }
}

fn status(e: &AllocError) -> Status {
    match e {
        AllocError::Unknown { .. } => Status::invalid_argument(e.to_string()),
        AllocError::Unhealthy { .. } | AllocError::NoIommuGroup { .. } => {
            Status::failed_precondition(e.to_string())
        }
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PoolService {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = ListStream;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let resource = self.resource.clone();
        tracing::debug!(%resource, "ListAndWatch opened");
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let stream = WatchStream::new(self.pool.clone())
            .map(|state| Ok(list_response(&state)))
            .take_until(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        req: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let state = self.pool.borrow().clone();
        let idx = allocate::index(&state.devices);
        let container_responses = req
            .into_inner()
            .container_requests
            .iter()
            .map(|c| ContainerPreferredAllocationResponse {
                device_i_ds: preferred(
                    &idx,
                    &c.available_device_i_ds,
                    &c.must_include_device_i_ds,
                    usize::try_from(c.allocation_size).unwrap_or(0),
                    self.shared.strategy,
                ),
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        req: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let state = self.pool.borrow().clone();
        let idx = allocate::index(&state.devices);
        let mut responses = Vec::new();
        let mut files = Vec::new();
        let mut count = 0;
        for c in &req.get_ref().container_requests {
            match allocate::allocate(&state.spec, &idx, &c.devices_ids, self.shared.cdi) {
                Ok(a) => {
                    count += c.devices_ids.len();
                    responses.push(a.response);
                    files.extend(a.devinfo);
                }
                Err(e) => {
                    tracing::warn!(resource = %self.resource, "Allocate refused: {e}");
                    self.shared.metrics.allocation_failed(&self.resource);
                    return Err(status(&e));
                }
            }
        }
        let dir = self.shared.devinfo_dir.clone();
        let written = tokio::task::spawn_blocking(move || write_devinfo(&dir, &files))
            .await
            .map_err(|e| Status::internal(format!("device-info writer failed: {e}")))?;
        if let Err(e) = written {
            self.shared.metrics.allocation_failed(&self.resource);
            tracing::warn!(resource = %self.resource, "Allocate failed: {e}");
            return Err(Status::internal(e));
        }
        self.shared.metrics.allocated(&self.resource, count);
        tracing::info!(resource = %self.resource, devices = ?req.get_ref().container_requests.iter().map(|c| c.devices_ids.join(",")).collect::<Vec<_>>(), "allocated");
        Ok(Response::new(AllocateResponse {
            container_responses: responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// Writes device-info files (replacing them atomically: a CNI plugin may be reading).
fn write_devinfo(dir: &std::path::Path, files: &[(String, String)]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create device-info directory {}: {e}", dir.display()))?;
    for (name, content) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write device-info file {}: {e}", path.display()))?;
    }
    Ok(())
}
