//! The ADD result, our own types. One shape inside (the 1.1.0 one); [`AddResult::to_json`]
//! writes it for the version the runtime asked for, and [`AddResult::from_json`] reads any
//! version we speak (a `prevResult`, a delegate's answer).
//!
//! | version | differences |
//! |---|---|
//! | 0.4.0 | `ips[].version` ("4"/"6") required; no interface `mtu`/`socketPath`/`pciID`, no route extras |
//! | 1.0.0 | no `ips[].version`; no 1.1 fields |
//! | 1.1.0 | `interfaces[].mtu`, `.socketPath`, `.pciID`; route `mtu`, `advmss`, `priority`, `table`, `scope` |

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{
    cidr::Cidr,
    error::{CniError, code},
    version::Version,
};

/// `interfaces[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Network namespace path; empty or absent for a host interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// vhost-user or memif socket (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI address of the device (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// `ips[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: Cidr,
    /// Default gateway for this subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// `routes[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Destination.
    pub dst: Cidr,
    /// Next hop; absent means the IP's gateway (IPAM) or on-link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// TCP advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Route metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Route scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A plain route to `dst` via `gw`.
    pub fn new(dst: Cidr, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// `dns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A whole ADD result (or an IPAM result, which has no interfaces).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    /// Interfaces created or used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl AddResult {
    /// The result as the spec writes it for `version`.
    pub fn to_json(&self, version: Version) -> serde_json::Value {
        let mut this = self.clone();
        if version < Version::V1_1_0 {
            for i in &mut this.interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
            for r in &mut this.routes {
                *r = Route::new(r.dst, r.gw);
            }
        }
        let mut v = serde_json::to_value(&this).unwrap_or_default();
        v["cniVersion"] = version.to_string().into();
        if version < Version::V1_0_0
            && let Some(ips) = v.get_mut("ips").and_then(|i| i.as_array_mut())
        {
            for (ip, ours) in ips.iter_mut().zip(&this.ips) {
                ip["version"] = if ours.address.is_ipv4() { "4" } else { "6" }.into();
            }
        }
        v
    }

    /// Reads a result of any version we speak (`ips[].version` of 0.4.0 is ignored).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, CniError> {
        let version = value
            .get("cniVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("1.0.0");
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(value);
        parsed.map_err(|e| {
            CniError::new(
                code::DECODE,
                format!(
                    "cannot decode a {version} result: key {}: {}",
                    e.path(),
                    e.inner()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AddResult {
        AddResult {
            interfaces: vec![Interface {
                name: "net1".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/var/run/netns/p".into()),
                socket_path: None,
                pci_id: Some("0000:3b:02.1".into()),
            }],
            ips: vec![
                IpConfig {
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![Route {
                mtu: Some(1400),
                ..Route::new("0.0.0.0/0".parse().unwrap(), None)
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn each_version_gets_its_own_shape() {
        let r = sample();
        let v11 = r.to_json(Version::V1_1_0);
        assert_eq!(v11["cniVersion"], "1.1.0");
        assert_eq!(v11["interfaces"][0]["pciID"], "0000:3b:02.1");
        assert_eq!(v11["interfaces"][0]["mtu"], 1500);
        assert_eq!(v11["routes"][0]["mtu"], 1400);
        assert!(v11["ips"][0].get("version").is_none());
        let v10 = r.to_json(Version::V1_0_0);
        assert!(v10["interfaces"][0].get("pciID").is_none());
        assert!(v10["interfaces"][0].get("mtu").is_none());
        assert!(v10["routes"][0].get("mtu").is_none());
        let v04 = r.to_json(Version::V0_4_0);
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["ips"][1]["version"], "6");
        assert!(v04.get("dns").is_none());
        for v in [v04, v10, v11] {
            let back = AddResult::from_json(&v).unwrap();
            assert_eq!(back.ips, r.ips);
        }
    }

    #[test]
    fn bad_results_name_the_key() {
        let err = AddResult::from_json(&serde_json::json!({
            "cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]
        }))
        .unwrap_err();
        assert_eq!(err.code, code::DECODE);
        assert!(err.msg.contains("ips[0].address"), "{}", err.msg);
    }
}
