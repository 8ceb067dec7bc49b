//! `smartnic-device-plugin`: the kubelet Device Plugin API v1beta1 for smartnic.io VF pools.
//!
//! ```text
//!   config.rs    the DevicePluginConfig file, checked (errors name the field)
//!   host.rs      one sysfs pass: network functions, VF indices, PF link state, RDMA
//!   pool.rs      pure: devices per pool, health, vanished devices
//!   allocate.rs  pure: env, device specs, device-info files, CDI
//!   preferred.rs pure: GetPreferredAllocation (NUMA, then pack/spread over PFs)
//!   index.rs     config + host -> one watch channel per pool
//!   source.rs    HostSource: link events + uevents (host), polling (fixtures, fallback)
//!   server.rs    the DevicePlugin gRPC service of a pool (thin)
//!   kubelet.rs   Register, socket inodes
//!   dirwatch.rs  inotify on a directory -> watch counter
//!   plugin.rs    one pool's life: serve, register, re-register, clean up
//!   app.rs       arguments, wiring, config reloads, SIGTERM
//! ```

pub mod allocate;
pub mod app;
pub mod config;
pub mod dirwatch;
pub mod host;
pub mod index;
pub mod kubelet;
pub mod metrics;
pub mod plugin;
pub mod pool;
pub mod preferred;
pub mod server;
pub mod source;
pub mod telemetry;

/// The kubelet Device Plugin API v1beta1, generated from `proto/api.proto`.
#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
pub mod api {
    tonic::include_proto!("v1beta1");
}
