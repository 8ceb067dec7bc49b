//! The node agent `smartnic-agent`: discovers the node's NICs, reports them, and applies the
//! node's desired state (`NicNodeState.spec`) in each vendor's order, crash-safe.
//!
//! - The plan is pure ([`planner::apply::plan_host`]): desired spec vs live host → ordered steps
//!   per PF and the disruption class.
//! - [`executor`] carries a plan out through the [`executor::HostOps`] seam, each PF on its own
//!   thread, recording progress in the [`state`] file and keeping the device-plugin hand-off
//!   file ([`handoff`]) limited to VFs that are in place.
//! - [`firmware`] is the firmware step (NVIDIA NV-config) with its reboot-loop guard.
//! - [`run`] is the cluster loop; [`run::overlay`] (opt-in, `--tunnel-uplink`) publishes the
//!   node's Geneve tunnel endpoint and keeps the overlay's peers from the other nodes'.
//! - [`uninstall`]: on SIGTERM, whether this is an uninstall; if so, each PF back as it was
//!   and our files removed from the host.

pub mod allow_list;
pub mod cluster;
pub mod executor;
pub mod failpoint;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod files;
pub mod firmware;
pub mod handoff;
pub mod host;
pub mod metrics;
pub mod rdma;
pub mod run;
pub mod state;
pub mod uninstall;
pub mod users;
pub mod vf_metrics;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
