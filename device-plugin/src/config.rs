//! The configuration file: the `DevicePluginConfig` of `crds` (what the operator renders and the
//! agent writes), in JSON or YAML, checked into a [`Config`] the rest of the plugin can trust.
//!
//! Every error names the file and the field (`resourceList[1].selectors[0].pfs[0].pciAddress`):
//! a bad file at start stops the plugin with that message; a bad file written later is refused,
//! logged, and the pools of the previous file keep serving ([`crate::watch`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crds::device_plugin::{DeviceLinkType, DevicePluginConfig, DeviceSelector, ResourcePool};
use crds::vf::{VfDeviceType, VfIndexRange};
use nic::pci::PciAddress;

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not JSON or YAML of the expected shape.
    #[error("{}{message}", file_prefix(path))]
    Parse {
        /// The file (empty when the text came from elsewhere).
        path: PathBuf,
        /// The parser's message, with the field path when known.
        message: String,
    },
    /// The file parses, but a value is not acceptable.
    #[error("{}{invalid}", file_prefix(invalid.path.as_deref().unwrap_or(Path::new(""))))]
    Invalid {
        /// The value and its field.
        invalid: Invalid,
    },
}

/// `"<file>: "`, or nothing for an empty path.
fn file_prefix(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

/// A value of the configuration that is not acceptable, with the field it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The file, when the configuration came from one.
    pub path: Option<PathBuf>,
    /// The field (`resourceList[0].selectors[1].vendors[0]`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A checked configuration: pools in file order (the first pool that matches a device gets it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The pools.
    pub pools: Vec<PoolSpec>,
}

/// One checked resource pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Resource prefix (`smartnic.io`).
    pub prefix: String,
    /// Resource name without prefix (`cx6_vf`).
    pub name: String,
    /// The driver the pool's devices must be bound to.
    pub device_type: VfDeviceType,
    /// Hand the devices' RDMA character devices to the container.
    pub is_rdma: bool,
    /// Send no NUMA topology.
    pub exclude_topology: bool,
    /// Also hand `/dev/vhost-net` and `/dev/net/tun` to every container given a device.
    pub need_vhost_net: bool,
    /// Which kubelet interface offers the pool: the device plugin serves only pools with
    /// [`crds::dra::Allocation::device_plugin`], `smartnic-dra` only those with
    /// [`crds::dra::Allocation::dra`]. Every pool still takes part in the first-match assignment
    /// of devices to pools, so a device never moves to another pool with the interface.
    pub allocation: crds::dra::Allocation,
    /// A device is in the pool when it matches any selector.
    pub selectors: Vec<Selector>,
}

impl PoolSpec {
    /// The extended resource name, `prefix/name`.
    pub fn resource(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }

    /// The socket file name in the plugin directory (`smartnic.io_cx6_vf.sock`).
    pub fn socket_name(&self) -> String {
        format!("{}_{}.sock", self.prefix, self.name)
    }
}

/// One checked selector; every non-empty field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// VFs of these PFs; an empty range list means every VF of the PF.
    pub pfs: Vec<(PciAddress, Vec<VfIndexRange>)>,
    /// Exact device addresses.
    pub pci_addresses: Vec<PciAddress>,
    /// PCI vendor ids.
    pub vendors: Vec<u16>,
    /// PCI device ids.
    pub devices: Vec<u16>,
    /// Names of bound drivers.
    pub drivers: Vec<String>,
    /// Link layers (`ether`, `infiniband`).
    pub link_types: Vec<DeviceLinkType>,
}

/// How the file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl Format {
    /// From the file name (`.json`, `.yaml`, `.yml`); otherwise from the content (JSON starts
    /// with `{`).
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Reads and checks the file; `Ok(None)` when it does not exist (no pools yet).
pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse_and_check(&text, Format::detect(path, &text))
        .map(Some)
        .map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            ConfigError::Invalid { mut invalid } => {
                invalid.path = Some(path.to_owned());
                ConfigError::Invalid { invalid }
            }
            other => other,
        })
}

/// Parses `text` and checks it (errors carry no file name; [`load`] adds it).
pub fn parse_and_check(text: &str, format: Format) -> Result<Config, ConfigError> {
    let raw = parse(text, format).map_err(|message| ConfigError::Parse {
        path: PathBuf::new(),
        message,
    })?;
    check(&raw).map_err(|invalid| ConfigError::Invalid { invalid })
}

/// Parses JSON or YAML into the `crds` shape; the message names the field that failed.
pub fn parse(text: &str, format: Format) -> Result<DevicePluginConfig, String> {
    let value: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?,
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(DevicePluginConfig::default());
            }
            serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?
        }
    };
    if value.is_null() {
        return Ok(DevicePluginConfig::default());
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// Checks every value of a parsed configuration.
pub fn check(cfg: &DevicePluginConfig) -> Result<Config, Invalid> {
    let mut pools = Vec::with_capacity(cfg.resource_list.len());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in cfg.resource_list.iter().enumerate() {
        let field = format!("resourceList[{i}]");
        let pool = check_pool(&field, p)?;
        if let Some(first) = seen.insert(pool.resource(), i) {
            return Err(invalid(
                format!("{field}.resourceName"),
                format!(
                    "{} is already defined by resourceList[{first}]",
                    pool.resource()
                ),
            ));
        }
        pools.push(pool);
    }
    Ok(Config { pools })
}

fn invalid(field: String, message: String) -> Invalid {
    Invalid {
        path: None,
        field,
        message,
    }
}

fn check_pool(field: &str, p: &ResourcePool) -> Result<PoolSpec, Invalid> {
    check_resource_name(&p.resource_name)
        .map_err(|m| invalid(format!("{field}.resourceName"), m))?;
    check_prefix(&p.resource_prefix).map_err(|m| invalid(format!("{field}.resourcePrefix"), m))?;
    let selectors = p
        .selectors
        .iter()
        .enumerate()
        .map(|(j, s)| check_selector(&format!("{field}.selectors[{j}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PoolSpec {
        prefix: p.resource_prefix.clone(),
        name: p.resource_name.clone(),
        device_type: p.device_type,
        is_rdma: p.is_rdma,
        exclude_topology: p.exclude_topology,
        need_vhost_net: p.need_vhost_net,
        allocation: p.allocation,
        selectors,
    })
}

/// The name part of an extended resource: a Kubernetes qualified name (1..=63 characters,
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
fn check_resource_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars {
        return Err(format!(
            "{name:?} is not a resource name (1 to 63 letters, digits, '-', '_' or '.')"
        ));
    }
    if !ends_ok(name.bytes().next()) || !ends_ok(name.bytes().last()) {
        return Err(format!(
            "{name:?} is not a resource name (must start and end with a letter or digit)"
        ));
    }
    Ok(())
}

/// The prefix of an extended resource: a lowercase DNS subdomain outside `kubernetes.io`.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(label_ok) {
        return Err(format!(
            "{prefix:?} is not a resource prefix (a lowercase DNS name such as smartnic.io)"
        ));
    }
    if prefix == "kubernetes.io" || prefix.ends_with(".kubernetes.io") {
        return Err(format!(
            "{prefix:?} is reserved for Kubernetes' own resources"
        ));
    }
    Ok(())
}

fn check_selector(field: &str, s: &DeviceSelector) -> Result<Selector, Invalid> {
    if s.pfs.is_empty()
        && s.pci_addresses.is_empty()
        && s.vendors.is_empty()
        && s.devices.is_empty()
        && s.drivers.is_empty()
    {
        return Err(invalid(
            field.to_owned(),
            "empty selector: it would match every network device of the host; name pfs, \
             pciAddresses, vendors, devices or drivers"
                .into(),
        ));
    }
    for (k, d) in s.drivers.iter().enumerate() {
        // a sysfs directory name under /sys/bus/pci/drivers
        if d.is_empty() || d.len() > 64 || d.contains('/') || d.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{field}.drivers[{k}]"),
                format!("{d:?} is not a driver name (as in /sys/bus/pci/drivers, e.g. mlx5_core)"),
            ));
        }
    }
    let mut pfs = Vec::with_capacity(s.pfs.len());
    for (k, pf) in s.pfs.iter().enumerate() {
        let f = format!("{field}.pfs[{k}]");
        let addr = pci(&format!("{f}.pciAddress"), &pf.pci_address)?;
        for (r, range) in pf.vfs.iter().enumerate() {
            if range.first > range.last {
                return Err(invalid(
                    format!("{f}.vfs[{r}]"),
                    format!(
                        "first {} is after last {}: an empty VF range",
                        range.first, range.last
                    ),
                ));
            }
        }
        pfs.push((addr, pf.vfs.clone()));
    }
    let pci_addresses = s
        .pci_addresses
        .iter()
        .enumerate()
        .map(|(k, a)| pci(&format!("{field}.pciAddresses[{k}]"), a))
        .collect::<Result<_, _>>()?;
    let hex_ids = |name: &str, ids: &[String]| -> Result<Vec<u16>, Invalid> {
        ids.iter()
            .enumerate()
            .map(|(k, v)| hex_id(v).map_err(|m| invalid(format!("{field}.{name}[{k}]"), m)))
            .collect()
    };
    Ok(Selector {
        pfs,
        pci_addresses,
        vendors: hex_ids("vendors", &s.vendors)?,
        devices: hex_ids("devices", &s.devices)?,
        drivers: s.drivers.clone(),
        link_types: s.link_types.clone(),
    })
}

fn pci(field: &str, s: &str) -> Result<PciAddress, Invalid> {
    s.parse()
        .map_err(|e: nic::pci::PciAddressError| invalid(field.to_owned(), e.to_string()))
}

/// A PCI id: four hex digits, with or without `0x` (`15b3`, `0x8086`).
fn hex_id(s: &str) -> Result<u16, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a PCI id (four hex digits, e.g. 15b3)"
        ));
    }
    u16::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"resourceList": [
        {"resourceName": "cx6_dpdk", "resourcePrefix": "smartnic.io", "deviceType": "vfio-pci",
         "isRdma": false, "excludeTopology": true,
         "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0", "name": "ens1f0", "vfs": [{"first": 4, "last": 7}]}]}]},
        {"resourceName": "cx6_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
         "isRdma": true,
         "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.1"}], "vendors": ["15b3"], "devices": ["0x101e"]}]}
    ]}"#;

    #[test]
    fn parses_what_the_operator_renders() {
        let cfg = parse_and_check(GOOD, Format::Json).unwrap();
        assert_eq!(cfg.pools.len(), 2);
        let p = &cfg.pools[0];
        assert_eq!(p.resource(), "smartnic.io/cx6_dpdk");
        assert_eq!(p.socket_name(), "smartnic.io_cx6_dpdk.sock");
        assert_eq!(p.device_type, VfDeviceType::VfioPci);
        assert!(p.exclude_topology);
        assert_eq!(
            p.selectors[0].pfs,
            vec![(
                "0000:3b:00.0".parse().unwrap(),
                vec![VfIndexRange { first: 4, last: 7 }]
            )]
        );
        let q = &cfg.pools[1];
        assert!(q.is_rdma && !q.exclude_topology);
        assert_eq!(q.selectors[0].vendors, vec![0x15b3]);
        assert_eq!(q.selectors[0].devices, vec![0x101e]);
    }

    #[test]
    fn yaml_is_the_same_config() {
        let yaml = r#"
resourceList:
  - resourceName: cx6_dpdk
    resourcePrefix: smartnic.io
    deviceType: vfio-pci
    excludeTopology: true
    selectors:
      - pfs:
          - pciAddress: "0000:3b:00.0"
            name: ens1f0
            vfs: [{first: 4, last: 7}]
  - resourceName: cx6_vf
    resourcePrefix: smartnic.io
    deviceType: netdevice
    isRdma: true
    selectors:
      - pfs: [{pciAddress: "0000:3b:00.1"}]
        vendors: ["15b3"]
        devices: ["0x101e"]
"#;
        assert_eq!(
            parse_and_check(yaml, Format::Yaml).unwrap(),
            parse_and_check(GOOD, Format::Json).unwrap()
        );
        assert_eq!(
            parse_and_check("", Format::Yaml).unwrap(),
            Config::default()
        );
        assert_eq!(
            parse_and_check("{}", Format::Json).unwrap(),
            Config::default()
        );
    }

    fn err(text: &str) -> String {
        parse_and_check(text, Format::Json).unwrap_err().to_string()
    }

    fn one_pool(fields: &str) -> String {
        format!(
            r#"{{"resourceList": [{{"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice", {fields}}}]}}"#
        )
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(&one_pool(
            r#""selectors": [{"pfs": [{"pciAddress": "0000:3b:00"}]}]"#,
        ));
        assert!(
            e.contains("resourceList[0].selectors[0].pfs[0].pciAddress")
                && e.contains("\"0000:3b:00\" is not a PCI address"),
            "{e}"
        );
        let e = err(&one_pool(r#""selectors": [{"vendors": ["mellanox"]}]"#));
        assert!(e.contains("resourceList[0].selectors[0].vendors[0]"), "{e}");
        let e = err(&one_pool(
            r#""selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0", "vfs": [{"first": 5, "last": 2}]}]}]"#,
        ));
        assert!(e.contains("pfs[0].vfs[0]: first 5 is after last 2"), "{e}");
        let e = err(&one_pool(r#""selectors": [{"drivers": ["a/b"]}]"#));
        assert!(
            e.contains("resourceList[0].selectors[0].drivers[0]: \"a/b\" is not a driver name"),
            "{e}"
        );
        let e = err(&one_pool(r#""selectors": [{}]"#));
        assert!(
            e.contains("resourceList[0].selectors[0]: empty selector"),
            "{e}"
        );
        let e = err(&one_pool(
            r#""selectors": [{"vendors": ["15b3"], "linkTypes": ["ib"]}]"#,
        ));
        assert!(e.contains("linkTypes"), "{e}");
        let ok = parse_and_check(
            &one_pool(r#""selectors": [{"vendors": ["15b3"], "linkTypes": ["infiniband"]}]"#),
            Format::Json,
        )
        .unwrap();
        assert_eq!(
            ok.pools[0].selectors[0].link_types,
            [DeviceLinkType::Infiniband]
        );
        // type errors from the parser name the field too
        let e = err(&one_pool(r#""isRdma": "yes", "selectors": []"#));
        assert!(e.contains("resourceList[0].isRdma: invalid type"), "{e}");
        let e = err(
            r#"{"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "dpdk", "selectors": []}]}"#,
        );
        assert!(
            e.contains("resourceList[0].deviceType: unknown variant `dpdk`"),
            "{e}"
        );
        let e = err(r#"{"resourceList": [{"resourceName": "vf"}]}"#);
        assert!(
            e.contains("resourceList[0]") && e.contains("resourcePrefix"),
            "{e}"
        );
        let e = err("{\"resourceList\": [");
        assert!(e.starts_with("not JSON"), "{e}");
    }

    #[test]
    fn names_and_prefixes_are_checked() {
        let pool = |name: &str, prefix: &str| {
            format!(
                r#"{{"resourceList": [{{"resourceName": "{name}", "resourcePrefix": "{prefix}", "deviceType": "netdevice", "selectors": []}}]}}"#
            )
        };
        assert!(parse_and_check(&pool("cx6_vf", "smartnic.io"), Format::Json).is_ok());
        for (name, prefix, field) in [
            ("", "smartnic.io", "resourceName"),
            ("a/b", "smartnic.io", "resourceName"),
            ("_x", "smartnic.io", "resourceName"),
            ("vf", "", "resourcePrefix"),
            ("vf", "SmartNIC.io", "resourcePrefix"),
            ("vf", "kubernetes.io", "resourcePrefix"),
        ] {
            let e = err(&pool(name, prefix));
            assert!(e.contains(&format!("resourceList[0].{field}")), "{e}");
        }
        let twice = r#"{"resourceList": [
            {"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice", "selectors": []},
            {"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "vfio-pci", "selectors": []}]}"#;
        let e = err(twice);
        assert!(
            e.contains(
                "resourceList[1].resourceName: smartnic.io/vf is already defined by resourceList[0]"
            ),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file_and_treats_missing_as_no_pools() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-plugin.json");
        assert_eq!(load(&path).unwrap(), None);
        std::fs::write(&path, one_pool(r#""selectors": [{"devices": ["zz"]}]"#)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&path.display().to_string())
                && e.contains("resourceList[0].selectors[0].devices[0]"),
            "{e}"
        );
        std::fs::write(&path, GOOD).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().pools.len(), 2);
    }
}
