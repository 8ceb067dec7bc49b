//! `NicOperatorConfig` checks.

use crds::{OPERATOR_CONFIG_NAME, operator_config::NicOperatorConfigSpec};

use super::{
    FieldError,
    common::{is_dns_label, is_dns_subdomain, is_host_ifname},
    finish,
};

/// Checks the operator configuration: the singleton name, the resource prefix and the tenant
/// allow-list.
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
    let allow = &spec.tenant_allow_list;
    let paths = [
        ("ipamDataDirs", &allow.ipam_data_dirs),
        ("resolvConfs", &allow.resolv_confs),
    ];
    for (key, list) in paths {
        for (i, p) in list.iter().enumerate() {
            if !p.starts_with('/') || p.contains('\0') || p.len() > 1024 {
                errors.push(FieldError::new(
                    format!("spec.tenantAllowList.{key}[{i}]"),
                    format!("\"{p}\" is not an absolute path"),
                ));
            }
        }
    }
    let grants = [("masters", &allow.masters), ("bridges", &allow.bridges)];
    for (key, list) in grants {
        for (i, g) in list.iter().enumerate() {
            let at = format!("spec.tenantAllowList.{key}[{i}]");
            if !is_host_ifname(&g.name) {
                errors.push(FieldError::new(
                    format!("{at}.name"),
                    format!(
                        "\"{}\" is not an interface name of 1-15 letters, digits, '_', '.', '-' or '@'",
                        g.name
                    ),
                ));
            }
            for (j, ns) in g.namespaces.iter().flatten().enumerate() {
                if !is_dns_label(ns) {
                    errors.push(FieldError::new(
                        format!("{at}.namespaces[{j}]"),
                        format!("\"{ns}\" is not a namespace name"),
                    ));
                }
            }
        }
    }
    finish(errors)
}
