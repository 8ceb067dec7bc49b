//! `static` IPAM: fixed addresses from the configuration, or the ones the runtime asks for
//! (capability `ips` > `args.cni.ips` > `CNI_ARGS IP=`, with `CNI_ARGS GATEWAY=`). No state.

use std::net::IpAddr;

use serde::Deserialize;

use crate::{
    cidr::Cidr,
    error::{CniError, code},
    result::{AddResult, Dns, IpConfig, Route},
};

#[derive(Debug, Deserialize)]
struct AddressConf {
    address: Cidr,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct RouteConf {
    dst: Cidr,
    #[serde(default)]
    gw: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    addresses: Vec<AddressConf>,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    dns: Option<Dns>,
}

/// The result of a `static` IPAM section. `requested` are the runtime's addresses (they replace
/// the configured ones); `gateway` is `CNI_ARGS GATEWAY=`.
pub fn result(
    ipam: &serde_json::Value,
    requested: &[Cidr],
    requested_bare: usize,
    gateway: Option<IpAddr>,
) -> Result<AddResult, CniError> {
    let conf: Conf = serde_path_to_error::deserialize(ipam).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("key ipam.{}: {}", e.path(), e.inner()),
        )
    })?;
    if requested_bare > requested.len() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "static IPAM needs the requested addresses with a prefix length (10.1.0.5/24)",
        ));
    }
    let ips: Vec<IpConfig> = if requested.is_empty() {
        conf.addresses
            .iter()
            .map(|a| IpConfig {
                address: a.address,
                gateway: a.gateway,
                interface: None,
            })
            .collect()
    } else {
        requested
            .iter()
            .map(|c| IpConfig {
                address: *c,
                gateway: gateway.filter(|g| g.is_ipv4() == c.is_ipv4()),
                interface: None,
            })
            .collect()
    };
    if ips.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "key ipam.addresses: static IPAM has no address (none configured and none requested)",
        ));
    }
    Ok(AddResult {
        interfaces: Vec::new(),
        ips,
        routes: conf
            .routes
            .iter()
            .map(|r| Route::new(r.dst, r.gw))
            .collect(),
        dns: conf.dns.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_or_requested() {
        let ipam = serde_json::json!({"type": "static",
            "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}],
            "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.10.0.53"]}});
        let r = result(&ipam, &[], 0, None).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.10.0.1/24");
        assert_eq!(r.dns.nameservers, vec!["10.10.0.53"]);
        let r = result(
            &ipam,
            &["10.10.0.9/24".parse().unwrap()],
            1,
            Some("10.10.0.1".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.10.0.9/24");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.10.0.1");
        assert!(result(&serde_json::json!({"type": "static"}), &[], 0, None).is_err());
        let err = result(
            &serde_json::json!({"type": "static", "addresses": [{"address": "10.0.0.1"}]}),
            &[],
            0,
            None,
        )
        .unwrap_err();
        assert!(err.msg.contains("ipam.addresses[0].address"), "{}", err.msg);
    }
}
