//! The cluster controller and the node agent of smartnic-operator.
//!
//! - [`planner`]: pure functions from policies, networks, pools and discovered inventories to
//!   per-node desired state, NetworkAttachmentDefinitions, device-plugin configuration and drain
//!   decisions.
//! - [`validate`]: admission checks with field paths, shared by the webhook and the controller.

pub mod planner;
pub mod validate;

pub mod app;
pub mod context;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod telemetry;
pub mod webhook;
