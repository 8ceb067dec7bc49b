//! Policies → how each resource pool is offered (device plugin, DRA or both) and the
//! `DeviceClass` (`resource.k8s.io/v1`) of every pool offered by DRA.
//!
//! A pool is offered by DRA when a valid policy with its `resourceName` says `allocation: dra`
//! or `both`, and by the device plugin when one says `devicePlugin` (the default) or `both`
//! (policies sharing a resource name must agree; without the webhook a disagreement offers the
//! pool both ways rather than hiding it).
//!
//! The DeviceClass of the pool `<resourceName>` under the prefix `<prefix>` is named
//! [`device_class_name`]: the resource name in lower case with every `_` written as `-`, then
//! `.` and the prefix (`cx6_vf` under `smartnic.io` → `cx6-vf.smartnic.io`), a DNS subdomain as
//! object names must be. Its one selector is the CEL expression [`selector_expression`], which
//! matches the devices of the `smartnic.io` driver whose `resourceName` attribute is the pool's
//! (the exact name, not the mapped one). The webhook refuses a policy whose DRA pool would share
//! its class name with another's (`cx6_vf` and `cx6-vf`); without the webhook, such pools get no
//! class at all and are reported in [`DeviceClasses::conflicts`]: a class must never select a
//! pool its name does not say.

use std::collections::BTreeMap;

use crds::{
    LABEL_MANAGED_BY, MANAGED_BY, NicPolicy,
    dra::{Allocation, DRIVER_NAME, attr},
    k8s::{CelDeviceSelector, DeviceClass, DeviceClassSpec, DraDeviceSelector, ObjectMeta},
};

use crate::validate::validate_policy_spec;

/// Label on every DeviceClass the operator renders: the pool's resource name as it is
/// (the class name maps `_`), so that the classes can be listed and told apart.
pub const LABEL_RESOURCE_NAME: &str = "smartnic.io/resource-name";

/// How one resource pool is offered, from all policies that name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolOffer {
    /// Some policy offers the pool through the device plugin.
    pub device_plugin: bool,
    /// Some policy offers the pool through DRA.
    pub dra: bool,
}

impl PoolOffer {
    /// Offered by DRA and not by the device plugin: no one advertises `<prefix>/<resource>`.
    pub fn dra_only(self) -> bool {
        self.dra && !self.device_plugin
    }

    fn add(&mut self, a: Allocation) {
        self.device_plugin |= a.device_plugin();
        self.dra |= a.dra();
    }
}

/// Per resource name (without prefix), how the valid policies offer the pool. A resource no
/// valid policy names is absent.
pub fn pool_offers<'a>(
    policies: impl IntoIterator<Item = &'a NicPolicy>,
) -> BTreeMap<String, PoolOffer> {
    let mut out: BTreeMap<String, PoolOffer> = BTreeMap::new();
    for p in policies {
        if validate_policy_spec(&p.spec).is_err() {
            continue;
        }
        out.entry(p.spec.resource_name.clone())
            .or_default()
            .add(p.spec.allocation);
    }
    out
}

/// The DeviceClass name of a pool: `<resourceName, lower case, '_' → '-'>.<prefix>`.
pub fn device_class_name(resource_name: &str, resource_prefix: &str) -> String {
    let mapped: String = resource_name
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    format!("{mapped}.{resource_prefix}")
}

/// The CEL selector of a pool's DeviceClass. The resource name is one the policy validation
/// accepted (letters, digits, `_`, `-`), so it needs no escaping inside the string literal.
pub fn selector_expression(resource_name: &str) -> String {
    format!(
        "device.driver == \"{DRIVER_NAME}\" && device.attributes[\"{DRIVER_NAME}\"].{} == \"{resource_name}\"",
        attr::RESOURCE_NAME
    )
}

/// The DeviceClasses the operator keeps, and the pools that get none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceClasses {
    /// One class per pool offered by DRA, sorted by name.
    pub classes: Vec<DeviceClass>,
    /// Pools offered by DRA that get no class, with the reason.
    pub conflicts: Vec<String>,
}

/// Renders the DeviceClass of every pool some valid policy offers by DRA.
pub fn render_device_classes<'a>(
    policies: impl IntoIterator<Item = &'a NicPolicy>,
    resource_prefix: &str,
) -> DeviceClasses {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (resource, offer) in pool_offers(policies) {
        if offer.dra {
            by_name
                .entry(device_class_name(&resource, resource_prefix))
                .or_default()
                .push(resource);
        }
    }
    let mut out = DeviceClasses::default();
    for (name, resources) in by_name {
        if let [resource] = resources.as_slice() {
            out.classes.push(device_class(name, resource));
        } else {
            out.conflicts.push(format!(
                "resources {} all map to DeviceClass {name}; none of them gets one: rename all but one",
                resources.join(", ")
            ));
        }
    }
    out
}

fn device_class(name: String, resource_name: &str) -> DeviceClass {
    DeviceClass {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                (LABEL_RESOURCE_NAME.to_owned(), resource_name.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(DeviceClassSpec {
            selectors: Some(vec![DraDeviceSelector {
                cel: Some(CelDeviceSelector {
                    expression: selector_expression(resource_name),
                }),
            }]),
            ..DeviceClassSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::policy;

    fn with(name: &str, resource: &str, a: Allocation) -> NicPolicy {
        let mut p = policy(name, 10, &["ens1f0"]);
        p.spec.resource_name = resource.into();
        p.spec.allocation = a;
        p
    }

    #[test]
    fn one_class_per_dra_pool_with_a_cel_selector_on_the_exact_resource_name() {
        let policies = [
            with("a", "cx6_vf", Allocation::Dra),
            with("b", "cx6_vf", Allocation::Dra),
            with("c", "Mixed", Allocation::Both),
            with("d", "plain", Allocation::DevicePlugin),
        ];
        let out = render_device_classes(&policies, "smartnic.io");
        assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
        let v = serde_json::to_value(&out.classes).unwrap();
        assert_eq!(
            v,
            json!([
                {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                 "metadata": {"name": "cx6-vf.smartnic.io", "labels": {
                     "app.kubernetes.io/managed-by": "smartnic-operator",
                     "smartnic.io/resource-name": "cx6_vf"}},
                 "spec": {"selectors": [{"cel": {"expression":
                     "device.driver == \"smartnic.io\" && device.attributes[\"smartnic.io\"].resourceName == \"cx6_vf\""}}]}},
                {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                 "metadata": {"name": "mixed.smartnic.io", "labels": {
                     "app.kubernetes.io/managed-by": "smartnic-operator",
                     "smartnic.io/resource-name": "Mixed"}},
                 "spec": {"selectors": [{"cel": {"expression":
                     "device.driver == \"smartnic.io\" && device.attributes[\"smartnic.io\"].resourceName == \"Mixed\""}}]}}
            ])
        );
        for c in &out.classes {
            assert!(crate::validate::is_dns_subdomain(
                c.metadata.name.as_deref().unwrap()
            ));
        }
    }

    #[test]
    fn names_that_map_to_one_class_get_none() {
        let policies = [
            with("a", "cx6_vf", Allocation::Dra),
            with("b", "cx6-vf", Allocation::Both),
            with("c", "other", Allocation::Dra),
        ];
        let out = render_device_classes(&policies, "example.com");
        assert_eq!(out.classes.len(), 1);
        assert_eq!(
            out.classes[0].metadata.name.as_deref(),
            Some("other.example.com")
        );
        assert_eq!(out.conflicts.len(), 1);
        assert!(
            out.conflicts[0].contains("cx6-vf, cx6_vf")
                && out.conflicts[0].contains("cx6-vf.example.com"),
            "{}",
            out.conflicts[0]
        );
    }

    #[test]
    fn offers_combine_and_invalid_policies_offer_nothing() {
        let mut bad = with("bad", "broken", Allocation::Dra);
        bad.spec.num_vfs = 0;
        let policies = [
            with("a", "x", Allocation::Dra),
            with("b", "x", Allocation::DevicePlugin),
            with("c", "y", Allocation::Dra),
            bad,
        ];
        let offers = pool_offers(&policies);
        assert_eq!(
            offers["x"],
            PoolOffer {
                device_plugin: true,
                dra: true
            }
        );
        assert!(!offers["x"].dra_only());
        assert!(offers["y"].dra_only());
        assert!(!offers.contains_key("broken"));
        assert!(
            render_device_classes(&policies[3..], "smartnic.io")
                .classes
                .is_empty()
        );
    }
}
