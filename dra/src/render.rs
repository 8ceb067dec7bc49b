//! ResourceSlices from the offered devices: pure.
//!
//! - One pool per node, named after the node, driver [`DRIVER_NAME`], `spec.nodeName` set.
//! - Devices sorted by name, at most [`MAX_DEVICES_PER_SLICE`] per slice; every slice carries
//!   the pool's `resourceSliceCount` and `generation`.
//! - [`Rendered::next`] bumps the generation whenever the content changes, so that the scheduler
//!   never mixes slices of two states of the pool.
//! - No DRA pool on the node (or none configured): no slice at all. DRA pools with no offerable
//!   device: one empty slice, so that the pool exists and its generation moves on.

use std::collections::BTreeMap;

use crds::dra::DRIVER_NAME;
use crds::dra::attr;
use k8s_openapi::api::resource::v1::{
    Device, DeviceAttribute, DeviceCapacity, ResourcePool, ResourceSliceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::devices::{Attr, DraDevice};

/// The API's limit of devices in one ResourceSlice.
pub const MAX_DEVICES_PER_SLICE: usize = 128;

/// The longest object name the API accepts.
const MAX_NAME: usize = 253;

/// The name of the node's `i`th slice: `<node>-smartnic.io-<i>` (the node part shortened when
/// the whole would exceed 253 characters).
pub fn slice_name(node: &str, i: usize) -> String {
    let suffix = format!("-{DRIVER_NAME}-{i}");
    let keep = MAX_NAME.saturating_sub(suffix.len()).min(node.len());
    let mut head = &node[..keep];
    // a DNS subdomain: the part kept must end alphanumeric
    while head.ends_with(['-', '.']) {
        head = &head[..head.len() - 1];
    }
    format!("{head}{suffix}")
}

/// A whole number as the API server writes a quantity back (canonical decimal SI form:
/// `25000` → `25k`), so that a published capacity compares equal to the one read back and an
/// unchanged state publishes nothing.
pub fn canonical_quantity(mut n: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while n != 0 && n.is_multiple_of(1000) && i + 1 < SUFFIXES.len() {
        n /= 1000;
        i += 1;
    }
    format!("{n}{}", SUFFIXES[i])
}

fn attribute(a: &Attr) -> DeviceAttribute {
    match a {
        Attr::Str(s) => DeviceAttribute {
            string: Some(s.clone()),
            ..Default::default()
        },
        Attr::Int(i) => DeviceAttribute {
            int: Some(*i),
            ..Default::default()
        },
        Attr::Bool(b) => DeviceAttribute {
            bool: Some(*b),
            ..Default::default()
        },
    }
}

/// A device as the slice lists it.
pub fn slice_device(d: &DraDevice) -> Device {
    let attributes: BTreeMap<String, DeviceAttribute> = d
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect();
    let capacity = d.max_rate_mbps.map(|m| {
        BTreeMap::from([(
            attr::MAX_RATE.to_owned(),
            DeviceCapacity {
                value: Quantity(canonical_quantity(u64::from(m))),
                ..Default::default()
            },
        )])
    });
    Device {
        name: d.name.clone(),
        attributes: Some(attributes),
        capacity,
        ..Default::default()
    }
}

/// The node's slice specs for `offered` (sorted by name) at `generation`. `dra_pools`: whether
/// the node has any DRA pool at all.
pub fn render(
    node: &str,
    offered: &[&DraDevice],
    dra_pools: bool,
    generation: i64,
) -> Vec<ResourceSliceSpec> {
    if !dra_pools {
        return Vec::new();
    }
    let mut devices: Vec<Device> = offered.iter().map(|d| slice_device(d)).collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    let chunks: Vec<Vec<Device>> = if devices.is_empty() {
        vec![Vec::new()]
    } else {
        devices
            .chunks(MAX_DEVICES_PER_SLICE)
            .map(<[Device]>::to_vec)
            .collect()
    };
    let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
    chunks
        .into_iter()
        .map(|devices| ResourceSliceSpec {
            driver: DRIVER_NAME.to_owned(),
            node_name: Some(node.to_owned()),
            pool: ResourcePool {
                name: node.to_owned(),
                generation,
                resource_slice_count: count,
            },
            devices: Some(devices),
            ..Default::default()
        })
        .collect()
}

/// The last content published and its generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// The pool generation.
    pub generation: i64,
    /// The slices (with `generation`).
    pub slices: Vec<ResourceSliceSpec>,
}

impl Rendered {
    /// Adopts what is in the cluster: its highest generation and its content.
    pub fn adopt(existing: Vec<ResourceSliceSpec>) -> Rendered {
        let generation = existing
            .iter()
            .map(|s| s.pool.generation)
            .max()
            .unwrap_or(0);
        Rendered {
            generation,
            slices: existing,
        }
    }

    /// The state for `slices` (rendered at any generation): unchanged content keeps the
    /// generation, anything else is the next one.
    pub fn next(&self, mut slices: Vec<ResourceSliceSpec>) -> Rendered {
        let at = |slices: &mut Vec<ResourceSliceSpec>, g: i64| {
            for s in slices.iter_mut() {
                s.pool.generation = g;
            }
        };
        at(&mut slices, self.generation);
        if slices == self.slices {
            return self.clone();
        }
        let generation = self.generation + 1;
        at(&mut slices, generation);
        Rendered { generation, slices }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crds::inventory::EswitchMode;
    use device_plugin::host::scan;
    use nic::fixtures::HostBuilder;

    use super::*;
    use crate::devices::{Facts, devices, offered, tests::config};

    fn many(n: usize) -> Vec<DraDevice> {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let one = devices(&config("dra"), &state, &Facts::default()).remove(0);
        (0..n)
            .map(|i| {
                let mut d = one.clone();
                d.name = format!("pci-0000-{:02x}-{:02x}-0", i / 256, i % 256);
                d
            })
            .collect()
    }

    #[test]
    fn at_most_128_devices_per_slice_and_a_count_on_each() {
        let devs = many(300);
        let refs: Vec<&DraDevice> = devs.iter().collect();
        let slices = render("node-1", &refs, true, 7);
        assert_eq!(slices.len(), 3);
        let sizes: Vec<usize> = slices
            .iter()
            .map(|s| s.devices.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, [128, 128, 44]);
        for s in &slices {
            assert_eq!(s.driver, "smartnic.io");
            assert_eq!(s.node_name.as_deref(), Some("node-1"));
            assert_eq!(s.pool.name, "node-1");
            assert_eq!(s.pool.generation, 7);
            assert_eq!(s.pool.resource_slice_count, 3);
        }
        // every device once, in order
        let names: Vec<&str> = slices
            .iter()
            .flat_map(|s| s.devices.as_ref().unwrap())
            .map(|d| d.name.as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 300);
        // an empty DRA pool is one empty slice; no DRA pool, no slice
        let empty = render("node-1", &[], true, 1);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].pool.resource_slice_count, 1);
        assert!(render("node-1", &refs, false, 1).is_empty());
    }

    #[test]
    fn attributes_are_typed_and_capacity_is_the_pf_speed() {
        let mut d = many(1).remove(0);
        d.max_rate_mbps = Some(25000);
        let dev = slice_device(&d);
        let attrs = dev.attributes.unwrap();
        assert_eq!(attrs["vendor"].string.as_deref(), Some("15b3"));
        assert_eq!(attrs["vfIndex"].int, Some(0));
        assert_eq!(attrs["rdma"].bool, Some(false));
        assert_eq!(attrs["numaNode"].int, Some(0));
        assert_eq!(
            dev.capacity.unwrap()["maxRate"].value,
            Quantity("25k".into())
        );
        for (n, q) in [
            (0, "0"),
            (1000, "1k"),
            (2500, "2500"),
            (100_000, "100k"),
            (1_000_000, "1M"),
        ] {
            assert_eq!(canonical_quantity(n), q);
        }
        d.max_rate_mbps = None;
        assert!(slice_device(&d).capacity.is_none());
    }

    #[test]
    fn the_generation_moves_on_every_change_and_only_then() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let render_now = || {
            let state = scan(&host.sysfs()).unwrap();
            let devs = devices(&config("dra"), &state, &Facts::default());
            let none = BTreeSet::new();
            let refs: Vec<&DraDevice> = offered(&devs, &none).collect();
            render("n", &refs, true, 0)
        };
        let r0 = Rendered::default().next(render_now());
        assert_eq!(r0.generation, 1);
        assert_eq!(r0.next(render_now()), r0);
        // the PF's link goes down: its VFs leave the slice, a new generation
        let pf = host.device_dir("0000:3b:00.0").join("net/ens1f0np0");
        std::fs::write(pf.join("operstate"), "down\n").unwrap();
        let r1 = r0.next(render_now());
        assert_eq!(r1.generation, 2);
        assert!(r1.slices[0].devices.as_ref().unwrap().is_empty());
        // adopting what a previous run published keeps its generation when nothing changed
        let adopted = Rendered::adopt(r1.slices.clone());
        assert_eq!(adopted.next(render_now()).generation, 2);
        std::fs::write(pf.join("operstate"), "up\n").unwrap();
        assert_eq!(adopted.next(render_now()).generation, 3);
    }

    #[test]
    fn slice_names_fit_the_api() {
        assert_eq!(slice_name("node-1", 0), "node-1-smartnic.io-0");
        let long = format!("{}-.x", "a".repeat(250));
        let n = slice_name(&long, 12);
        assert!(n.len() <= 253, "{}", n.len());
        assert!(n.ends_with("a-smartnic.io-12"), "{n}");
    }
}
