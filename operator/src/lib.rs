//! The cluster controller of smartnic-operator.
//!
//! The decisions live in the pure `planner` crate (per-node desired state, NADs, device-plugin
//! configuration, drain arbitration, admission checks, status conditions); this crate reads the
//! cluster into watch caches, calls the planners and writes their results.

pub mod app;
pub mod client;
pub mod context;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod telemetry;
pub mod webhook;
