//! `smartnic-dra`: the kubelet DRA plugin (`resource.k8s.io/v1`, driver `smartnic.io`).
//!
//! It publishes the node's devices of the pools whose `allocation` includes DRA as
//! ResourceSlices and prepares the claims the scheduler allocated them to: a CDI spec for the
//! runtime and a [`crds::dra::PreparedClaim`] record for the CNI plugin.
//!
//! ## Design
//!
//! - **Its own binary**, not a mode of the device plugin: it needs an API client (ResourceSlices,
//!   ResourceClaims) and RBAC, which the device plugin deliberately has not (no token, no
//!   rules), and it serves different kubelet sockets. It is a library user of the device plugin
//!   for everything below the API: the applied file ([`device_plugin::config`]), the one-pass
//!   sysfs scan ([`device_plugin::host`]), pool membership and health ([`device_plugin::pool`])
//!   and the live host source (link events and uevents, [`device_plugin::source`]). A device is
//!   therefore in the same pool, with the same health, whichever interface offers it.
//! - **Health**: an unhealthy device leaves the slices (no taints: they need a feature gate
//!   that a cluster may not have). The host source re-reads within 20 ms of a kernel event, the
//!   publisher waits 50 ms for the rest of a burst, then writes; the api suite measures the
//!   PF-link-down-to-slice time (`hw-tests/api/85-dra.sh`, ≤ 1 s).
//! - **Slow facts** (PF names of whole PFs, eswitch modes, link speeds, PCIe roots) come from a
//!   full [`nic::discovery`] pass, run when the set of functions or their drivers change and
//!   every minute, never on the health path: a link speed read waits for the RTNL lock. The
//!   eswitch mode is discovery's inference from sysfs (devlink is the agent's business).
//! - **`allocation: both`**: a device is offered by both interfaces until one takes it. The
//!   slices leave out what the kubelet's device-plugin checkpoint assigns to containers; the
//!   device plugin reports devices of prepared claims unhealthy; NodePrepareResources refuses a
//!   device the checkpoint shows taken (the window between the two is about a second).
//! - **Crash safety**: see [`claims`]. Records are the truth; CDI specs are derived from them
//!   and reconciled at start.
//! - **The kubelet protocol**: registration type `DRAPlugin`, name `smartnic.io`, endpoint the
//!   absolute path of `dra.sock`, `supported_versions` `["v1.DRAPlugin"]` (kubelet 1.37 reads it
//!   as a list of gRPC services). The optional `DRAResourceHealth` service is not listed, so the
//!   kubelet never calls it.
//!
//! ```text
//!   devices.rs  pure: DRA pools' devices with their attributes (inventory + applied file + health)
//!   render.rs   pure: ResourceSlices (≤128 devices each, one pool per node, generation)
//!   claims.rs   prepare/unprepare bookkeeping: CDI specs and PreparedClaim records, crash-safe
//!   publish.rs  the node's ResourceSlices in the API (adopt, update, create, delete)
//!   server.rs   Registration and v1.DRAPlugin gRPC services (thin)
//!   authority.rs the registration socket's HTTP/2 front (the kubelet's `:authority`)
//!   app.rs      arguments, wiring, sockets, SIGTERM
//! ```

pub mod app;
pub mod authority;
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
