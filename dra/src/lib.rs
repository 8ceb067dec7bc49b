//! `smartnic-dra`: the kubelet DRA plugin (`resource.k8s.io/v1`, driver `smartnic.io`).
//!
//! ```text
//!   devices.rs  pure: DRA pools' devices with their attributes (inventory + applied file + health)
//!   render.rs   pure: ResourceSlices (≤128 devices each, one pool per node, generation)
//!   claims.rs   prepare/unprepare bookkeeping: CDI specs and PreparedClaim records, crash-safe
//!   publish.rs  the node's ResourceSlices in the API (adopt, update, create, delete)
//!   server.rs   Registration and v1.DRAPlugin gRPC services (thin)
//!   app.rs      arguments, wiring, sockets, SIGTERM
//! ```

pub mod app;
pub mod claims;
pub mod devices;
pub mod publish;
pub mod render;
pub mod server;

/// The kubelet DRA plugin API v1, generated from `proto/dra/v1/api.proto`.
#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
pub mod dra_api {
    tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");
}

/// The kubelet plugin-registration API v1, generated from `proto/pluginregistration/v1/api.proto`.
#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
pub mod registration_api {
    tonic::include_proto!("pluginregistration");
}
