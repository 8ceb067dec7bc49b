//! `NicOperatorConfig` checks.

use crds::{OPERATOR_CONFIG_NAME, operator_config::NicOperatorConfigSpec};

use super::{FieldError, common::is_dns_subdomain, finish};

/// Checks the operator configuration: the singleton name and the resource prefix.
pub fn validate_operator_config(
    name: &str,
    spec: &NicOperatorConfigSpec,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if name != OPERATOR_CONFIG_NAME {
        errors.push(FieldError::new(
            "metadata.name",
            format!(
                "\"{name}\": only the object named \"{OPERATOR_CONFIG_NAME}\" is read; name it so"
            ),
        ));
    }
    if !is_dns_subdomain(&spec.resource_prefix) {
        errors.push(FieldError::new(
            "spec.resourcePrefix",
            format!(
                "\"{}\" is not a DNS subdomain like smartnic.io",
                spec.resource_prefix
            ),
        ));
    }
    finish(errors)
}
