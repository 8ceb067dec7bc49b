//! Syntax checks shared by the validators.

use std::collections::BTreeMap;

use crds::k8s::LabelSelector;

use super::FieldError;
use crate::selector::CompiledSelector;

/// Four hexadecimal digits, as PCI vendor and device ids are written in sysfs (`15b3`).
pub fn is_hex4(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

pub use crds::dra::is_pci_address;

/// A Linux netdev name: 1-15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub fn is_netdev_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|c| c == b'/' || c == b':' || c.is_ascii_whitespace() || c == 0)
}

/// A host interface or bridge a tenant's network may name (the schema's
/// `HOST_IFNAME_PATTERN`): 1-15 letters, digits, `_`, `.`, `-`, `@`, so no shell or log syntax.
pub fn is_host_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'))
}

/// A DNS subdomain (RFC 1123): lowercase alphanumerics, `-` and `.`, at most 253 characters,
/// starting and ending with an alphanumeric.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A DNS label (RFC 1123), what namespace names are: 1-63 lowercase alphanumerics and `-`,
/// starting and ending with an alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// The name part of a label key or a non-empty label value: at most 63 characters,
/// alphanumerics, `-`, `_`, `.`, starting and ending with an alphanumeric.
fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain.
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// A label value: empty, or a qualified name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// Why `name` is not a valid device-plugin resource name (without prefix), or `None`.
pub fn resource_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if let Some((prefix, rest)) = name.split_once('/') {
        return Some(format!(
            "\"{name}\" must be the bare name without prefix: write \"{rest}\"; the prefix \"{prefix}/\" comes from NicOperatorConfig.spec.resourcePrefix"
        ));
    }
    if name.len() > 63 {
        return Some(format!(
            "\"{name}\" is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let b = name.as_bytes();
    if let Some(c) = name.chars().find(|c| !c.is_ascii() || !ok_char(*c as u8)) {
        return Some(format!(
            "\"{name}\" contains '{c}'; use letters, digits, '_' and '-' only"
        ));
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some(format!(
            "\"{name}\" must start and end with a letter or digit"
        ));
    }
    None
}

/// Checks a label selector's syntax; `path` is the selector's field path.
pub(crate) fn check_selector(sel: &LabelSelector, path: &str, errors: &mut Vec<FieldError>) {
    let labels: &BTreeMap<String, String> = match &sel.match_labels {
        Some(m) => m,
        None => &BTreeMap::new(),
    };
    for (k, v) in labels {
        if !is_label_key(k) {
            errors.push(FieldError::new(
                format!("{path}.matchLabels"),
                format!("\"{k}\" is not a valid label key (write key and value separately: matchLabels: {{gpu: \"true\"}})"),
            ));
        } else if !is_label_value(v) {
            errors.push(FieldError::new(
                format!("{path}.matchLabels.{k}"),
                format!("\"{v}\" is not a valid label value"),
            ));
        }
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        if !is_label_key(&e.key) {
            errors.push(FieldError::new(
                format!("{path}.matchExpressions[{i}].key"),
                format!("\"{}\" is not a valid label key", e.key),
            ));
        }
    }
    if let Err(e) = CompiledSelector::compile(sel) {
        errors.push(FieldError::new(
            format!("{path}.{}", e.relative_path()),
            e.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_helpers() {
        assert!(is_pci_address("0000:3b:00.0"));
        assert!(is_pci_address("0000:AF:1f.7"));
        assert!(!is_pci_address("0000:3b:20.0"));
        assert!(!is_pci_address("0000:3b:00.8"));
        assert!(!is_pci_address("3b:00.0"));
        assert!(is_hex4("15b3") && !is_hex4("0x15b3") && !is_hex4("15g3"));
        assert!(
            is_netdev_name("ens1f0")
                && !is_netdev_name("a/b")
                && !is_netdev_name("sixteen-chars-xx")
        );
        assert!(
            is_dns_subdomain("smartnic.io")
                && !is_dns_subdomain("Smartnic.io")
                && !is_dns_subdomain("a..b")
        );
        assert!(is_label_key("node-role.kubernetes.io/worker") && !is_label_key("gpu=true"));
        assert!(is_label_value("") && is_label_value("true") && !is_label_value("-x"));
        assert_eq!(resource_name_error("cx6_vf"), None);
        assert!(resource_name_error("cx6.vf").unwrap().contains("'.'"));
        assert!(
            resource_name_error("smartnic.io/cx6")
                .unwrap()
                .contains("write \"cx6\"")
        );
        assert!(resource_name_error("_x").is_some());
    }
}
