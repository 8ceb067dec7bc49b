//! Admission checks for `NicPolicy`, `NicNetwork`, `NicPool` and `NicOperatorConfig`.
//!
//! Pure functions: the validating webhook calls them on every CREATE/UPDATE, and the controller
//! calls the same functions (the planner calls [`validate_policy_spec`]) so that a cluster without
//! the webhook still reports bad input, in the object's `Valid` condition. Every error names the
//! field by its path (`spec.nicSelector.pfNames[0]`).
//!
//! Single-object checks need nothing but the spec. Cross-object checks take a context: the other
//! objects of the kind and, where useful, the known nodes (labels + discovered inventory from
//! their `NicNodeState`).

mod common;
mod config;
mod network;
mod policy;
mod pool;

use std::fmt;

pub use common::{
    is_dns_subdomain, is_hex4, is_label_key, is_label_value, is_netdev_name, is_pci_address,
    resource_name_error,
};
pub use config::validate_operator_config;
pub use network::validate_network;
pub use policy::{NodeFacts, PolicyContext, validate_policy, validate_policy_spec};
pub use pool::{PoolContext, pool_max_unavailable, validate_pool};

#[cfg(test)]
mod tests;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field (`spec.numVfs`, `spec.nicSelector.pfNames[1]`).
    pub field: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl FieldError {
    /// A new error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The errors of one object, displayable as one admission message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Joins errors into one admission message: `spec.a: ...; spec.b: ...`.
pub fn to_message(errors: &[FieldError]) -> String {
    FieldErrors(errors.to_vec()).to_string()
}

/// `Ok(())` when there is no error.
fn finish(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
