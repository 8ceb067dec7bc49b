//! Data types shared across smartnic-operator: the `smartnic.io/v1alpha1` custom resources and the
//! NIC inventory shape that node discovery produces.
//!
//! This crate is data only: no I/O, no Kubernetes client, no planning logic.
//!
//! ```text
//!   nic (host discovery) ──► inventory::NicInventory ──► NicNodeState.status (operator)
//!                                                     └─► smartnicctl discover -o json
//! ```

pub mod inventory;

/// The API group of every smartnic-operator custom resource.
pub const GROUP: &str = "smartnic.io";
/// The API version served by this crate.
pub const VERSION: &str = "v1alpha1";
/// Prefix of every extended resource the device plugin advertises (`smartnic.io/<resourceName>`).
pub const RESOURCE_PREFIX: &str = "smartnic.io";
