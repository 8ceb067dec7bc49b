//! The network configuration on stdin: the operator's [`SmartnicNetConf`] plus the keys the
//! runtime adds (`deviceID`, `runtimeConfig`, `prevResult`, `args`, `cni.dev/*`).
//!
//! So that a sriov-cni configuration moves over by changing `type` and adding `mode`, sriov-cni's
//! spellings are read too and folded into ours before anything else looks at them:
//!
//! | sriov-cni | ours |
//! |---|---|
//! | `"spoofchk": "on"\|"off"` | `"spoofChk": true\|false` |
//! | `"trust": "on"\|"off"` | `"trust": true\|false` |
//! | `min_tx_rate`, `max_tx_rate`, `link_state` | `minTxRate`, `maxTxRate`, `linkState` |
//! | `mac` | (the plugin's own key: the pod interface MAC) |
//!
//! Unknown keys are ignored, as the spec requires. A key of the wrong type or value is an error
//! that names the key (`key vlan: invalid type: string "10", expected u16`).

use std::{net::IpAddr, path::PathBuf};

use crds::{
    cni::SmartnicNetConf,
    link::{NetworkMode, PluginLogLevel, VlanProto},
};
use nic::{
    netlink::{Guid, MacAddr},
    pci::PciAddress,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    cidr::Cidr,
    env::{CniEnv, Command},
    error::{CniError, code},
    result::AddResult,
    validate,
    version::{self, Version},
};

/// One attachment the runtime still knows (a GC request's `cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default, rename = "CNIDeviceInfoFile")]
    device_info_file: Option<String>,
    #[serde(default, rename = "infinibandGUID")]
    infiniband_guid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ArgsCni {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Args {
    #[serde(default)]
    cni: ArgsCni,
}

/// The runtime's keys and our plugin-only keys, next to the operator's shape.
#[derive(Debug, Default, Deserialize)]
struct RuntimeKeys {
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default, rename = "pciBusID")]
    pci_bus_id: Option<String>,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
    #[serde(default, rename = "prevResult")]
    prev_result: Option<Value>,
    #[serde(default)]
    args: Args,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(default, rename = "cni.dev/attachments")]
    attachments: Option<Vec<Attachment>>,
}

/// A parsed, checked network configuration.
#[derive(Clone, Debug)]
pub struct NetConf {
    /// The operator's shape.
    pub conf: SmartnicNetConf,
    /// The negotiated spec version (the configuration's `cniVersion`).
    pub version: Version,
    /// The pod interface MAC: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC=` > `mac`.
    pub mac: Option<MacAddr>,
    /// The device: `deviceID` (what Multus injects from the device plugin's allocation) >
    /// `runtimeConfig.deviceID` > `pciBusID`; a `runtimeConfig.deviceID` or `pciBusID` that
    /// disagrees with `deviceID` is refused.
    pub device_id: Option<PciAddress>,
    /// Multus' device-info file for this attachment (checked only as an absolute path: see
    /// [`crate::devinfo`] before it is used).
    pub device_info_file: Option<PathBuf>,
    /// The device came from a DRA claim of the pod, not from the device plugin (set by the
    /// binary, which finds out; never read from stdin).
    pub dra_claimed: bool,
    /// Mode ib: the GUID the pod asks for (`runtimeConfig.infinibandGUID`, from Multus'
    /// `infiniband-guid`); checked to be assignable (neither zero nor all ones).
    pub ib_guid: Option<Guid>,
    /// Addresses asked for by the runtime: `runtimeConfig.ips` > `args.cni.ips` > `CNI_ARGS IP=`.
    pub requested_ips: Vec<Cidr>,
    /// Same, as bare addresses where the runtime gave no prefix (host-local accepts those).
    pub requested_addrs: Vec<IpAddr>,
    /// The previous result (CHECK, chained ADD, DEL).
    pub prev_result: Option<AddResult>,
    /// Log file name (`logFile`, checked: a plain file name, opened inside the plugin's own log
    /// directory), when logging is asked for; the level is `conf.log_level` (`logLevel`:
    /// error|warning|info|debug, as the operator renders).
    pub log_file: Option<String>,
    /// GC: the attachments to keep (`cni.dev/valid-attachments` ∪ `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole configuration as received (handed to a delegated IPAM plugin).
    pub raw: Map<String, Value>,
    /// What was read past rather than refused (logged once logging is set up).
    pub warnings: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// `"on"`/`"off"` (sriov-cni) or a JSON boolean.
fn on_off(key: &str, v: &Value) -> Result<bool, CniError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "on" => Ok(true),
        Value::String(s) if s == "off" => Ok(false),
        other => Err(invalid(format!(
            "key {key}: {other} is neither a boolean nor \"on\"/\"off\""
        ))),
    }
}

/// Folds sriov-cni's spellings into ours; both spellings with different values is an error.
fn fold_spellings(map: &mut Map<String, Value>) -> Result<(), CniError> {
    for key in ["spoofchk", "spoofChk", "trust"] {
        if let Some(v) = map.get(key) {
            let b = on_off(key, v)?;
            map.insert(key.into(), Value::Bool(b));
        }
    }
    for (theirs, ours) in [
        ("spoofchk", "spoofChk"),
        ("min_tx_rate", "minTxRate"),
        ("max_tx_rate", "maxTxRate"),
        ("link_state", "linkState"),
    ] {
        if let Some(v) = map.remove(theirs) {
            if let Some(existing) = map.get(ours).filter(|e| **e != v) {
                return Err(invalid(format!(
                    "keys {theirs} and {ours} say different things ({v} and {existing}); give one"
                )));
            }
            map.insert(ours.into(), v);
        }
    }
    Ok(())
}

fn de<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, CniError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // serde says "missing field `x`" at the parent path; say which key is missing.
        if path == "." {
            invalid(inner)
        } else {
            invalid(format!("key {path}: {inner}"))
        }
    })
}

fn parse_mac(key: &str, s: &str) -> Result<MacAddr, CniError> {
    s.parse().map_err(|e| invalid(format!("key {key}: {e}")))
}

fn parse_ip_request(key: &str, s: &str) -> Result<(Option<Cidr>, IpAddr), CniError> {
    if let Ok(c) = s.parse::<Cidr>() {
        return Ok((Some(c), c.addr));
    }
    s.parse::<IpAddr>()
        .map(|a| (None, a))
        .map_err(|_| invalid(format!("key {key}: {s:?} is not an IP address")))
}

impl NetConf {
    /// The most verbose level to log at, `None` when the configuration asks for no logging
    /// (neither `logLevel` nor `logFile`); `logFile` alone logs at `info`.
    pub fn log_level(&self) -> Option<tracing::Level> {
        if self.conf.log_level.is_none() && self.log_file.is_none() {
            return None;
        }
        Some(match self.conf.log_level.unwrap_or_default() {
            PluginLogLevel::Error => tracing::Level::ERROR,
            PluginLogLevel::Warning => tracing::Level::WARN,
            PluginLogLevel::Info => tracing::Level::INFO,
            PluginLogLevel::Debug => tracing::Level::DEBUG,
        })
    }

    /// Parses stdin for any command but VERSION. `env` supplies `CNI_ARGS`.
    pub fn parse(stdin: &[u8], env: &CniEnv) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("cannot decode the network configuration: {e}"),
            )
        })?;
        let Value::Object(mut map) = value else {
            return Err(CniError::new(
                code::DECODE,
                "the network configuration is not a JSON object",
            ));
        };
        let raw = map.clone();
        let cni_version = map
            .get("cniVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("key cniVersion: missing or not a string"))?
            .to_string();
        let version = version::negotiate(&cni_version)?;
        fold_spellings(&mut map)?;
        let rt: RuntimeKeys = de(Value::Object(map.clone()))?;
        let conf: SmartnicNetConf = de(Value::Object(map))?;
        validate::network_name(&conf.name)?;
        check_values(&conf)?;

        let mac = if let Some(m) = &rt.runtime_config.mac {
            Some(parse_mac("runtimeConfig.mac", m)?)
        } else if let Some(m) = &rt.args.cni.mac {
            Some(parse_mac("args.cni.mac", m)?)
        } else if let Some(m) = env.arg("MAC") {
            Some(parse_mac("CNI_ARGS MAC", m)?)
        } else if let Some(m) = &rt.mac {
            Some(parse_mac("mac", m)?)
        } else {
            None
        };
        let device_id = device_id(&rt)?;
        let device_info_file = rt
            .runtime_config
            .device_info_file
            .as_deref()
            .map(|p| validate::abs_path(p, "runtimeConfig.CNIDeviceInfoFile", code::INVALID_CONFIG))
            .transpose()?;
        let ib_guid = rt
            .runtime_config
            .infiniband_guid
            .as_deref()
            .filter(|_| conf.mode == NetworkMode::Ib)
            .map(|g| {
                let guid = g
                    .parse::<Guid>()
                    .map_err(|e| invalid(format!("key runtimeConfig.infinibandGUID: {e}")))?;
                assignable_guid(guid, "runtimeConfig.infinibandGUID")
            })
            .transpose()?;
        let (ips, key): (Vec<String>, &str) = if !rt.runtime_config.ips.is_empty() {
            (rt.runtime_config.ips.clone(), "runtimeConfig.ips")
        } else if !rt.args.cni.ips.is_empty() {
            (rt.args.cni.ips.clone(), "args.cni.ips")
        } else if let Some(ip) = env.arg("IP") {
            (ip.split(',').map(str::to_string).collect(), "CNI_ARGS IP")
        } else {
            (Vec::new(), "")
        };
        let mut requested_ips = Vec::new();
        let mut requested_addrs = Vec::new();
        for ip in &ips {
            let (cidr, addr) = parse_ip_request(key, ip)?;
            requested_ips.extend(cidr);
            requested_addrs.push(addr);
        }
        let mut warnings = Vec::new();
        let prev_result = match rt.prev_result.as_ref().filter(|v| !v.is_null()) {
            None => None,
            Some(v) => match AddResult::from_json(v) {
                Ok(r) => Some(r),
                // DEL and GC clean up with what they know: a result they cannot read must not
                // keep them failing for ever (the journal says what the ADD did).
                Err(e) if matches!(env.command, Command::Del | Command::Gc) => {
                    warnings.push(format!("prevResult ignored: {}", e.msg));
                    None
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(f) = &conf.log_file {
            validate::log_file_name(f)?;
        }
        let log_file = conf.log_file.clone();
        let valid_attachments = match (rt.valid_attachments, rt.attachments) {
            (None, None) => None,
            (a, b) => {
                let mut all: Vec<Attachment> = a.into_iter().chain(b).flatten().collect();
                all.sort();
                all.dedup();
                Some(all)
            }
        };
        Ok(Self {
            conf,
            version,
            mac,
            device_id,
            device_info_file,
            dra_claimed: false,
            ib_guid,
            requested_ips,
            requested_addrs,
            prev_result,
            log_file,
            valid_attachments,
            raw,
            warnings,
        })
    }

    /// The IPAM section, unless absent or `{}` (L2 only).
    pub fn ipam(&self) -> Option<&Value> {
        self.conf
            .ipam
            .as_ref()
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    }
}

/// `guid` when a VF can have it; a zero GUID (unset) or the all-ones one (reserved) is refused
/// in the words users of the InfiniBand CNIs know, naming where it came from.
pub fn assignable_guid(guid: Guid, from: &str) -> Result<Guid, CniError> {
    if guid.is_assignable() {
        return Ok(guid);
    }
    Err(invalid(format!(
        "VF GUID {guid} is not valid ({from}): a zero or all-ones GUID cannot address the VF on the fabric; give the pod an infiniband-guid or give the VFs GUIDs (NicPolicy linkType ib)"
    )))
}

/// The device an attachment takes. Multus writes the device plugin's allocation into
/// `deviceID`; the other two keys may come from the pod's annotation or the tenant's own
/// configuration, so they may only repeat it, never name another VF.
fn device_id(rt: &RuntimeKeys) -> Result<Option<PciAddress>, CniError> {
    let mut chosen: Option<(PciAddress, &str)> = None;
    for (key, value) in [
        ("deviceID", &rt.device_id),
        ("runtimeConfig.deviceID", &rt.runtime_config.device_id),
        ("pciBusID", &rt.pci_bus_id),
    ] {
        let Some(v) = value else { continue };
        let addr = validate::device_id(v, key)?;
        match chosen {
            None => chosen = Some((addr, key)),
            Some((first, by)) if first != addr => {
                return Err(invalid(format!(
                    "key {key}: {addr} disagrees with {by} {first}, the device allocated to this pod"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(chosen.map(|(a, _)| a))
}

/// Range checks the types alone do not make.
fn check_values(c: &SmartnicNetConf) -> Result<(), CniError> {
    if let Some(v) = c.vlan
        && v > 4094
    {
        return Err(invalid(format!("key vlan: {v} is not a VLAN id (0-4094)")));
    }
    if let Some(q) = c.vlan_qos {
        if q > 7 {
            return Err(invalid(format!("key vlanQoS: {q} is not a priority (0-7)")));
        }
        if q != 0 && c.vlan.unwrap_or(0) == 0 {
            return Err(invalid(format!("key vlanQoS: {q} needs a non-zero vlan")));
        }
    }
    if c.vlan_proto == Some(VlanProto::Dot1Ad) && c.vlan.unwrap_or(0) == 0 {
        return Err(invalid("key vlanProto: 802.1ad needs a non-zero vlan"));
    }
    if let (Some(min), Some(max)) = (c.min_tx_rate, c.max_tx_rate)
        && max != 0
        && min > max
    {
        return Err(invalid(format!(
            "key minTxRate: {min} is above maxTxRate {max}"
        )));
    }
    if let Some(mtu) = c.mtu
        && !(68..=65535).contains(&mtu)
    {
        return Err(invalid(format!("key mtu: {mtu} is not an MTU (68-65535)")));
    }
    if let Some(m) = &c.master {
        validate::host_ifname(m, "master")?;
    }
    let source = c.macvlan_mode == Some(crds::link::MacvlanMode::Source);
    if !c.macvlan_source_macs.is_empty() && !source {
        return Err(invalid(
            "key macvlanSourceMacs: only with macvlanMode source",
        ));
    }
    if source && c.macvlan_source_macs.is_empty() {
        return Err(invalid(
            "key macvlanMode: source needs at least one MAC in macvlanSourceMacs",
        ));
    }
    for (i, m) in c.macvlan_source_macs.iter().enumerate() {
        if m.parse::<MacAddr>().is_err() {
            return Err(invalid(format!(
                "key macvlanSourceMacs[{i}]: {m:?} is not a MAC address"
            )));
        }
    }
    if let Some(pkey) = c.pkey {
        if c.mode != NetworkMode::Ib {
            return Err(invalid(format!(
                "key pkey: only for mode ib, not {}",
                c.mode.as_str()
            )));
        }
        if pkey & 0x7fff == 0 {
            return Err(invalid(format!(
                "key pkey: {pkey:#06x} names the reserved partition 0"
            )));
        }
    }
    if matches!(c.mode, NetworkMode::Macvlan | NetworkMode::Ipvlan) && c.master.is_none() {
        return Err(invalid(format!(
            "key master: mode {} needs a master interface",
            c.mode.as_str()
        )));
    }
    if let Some(b) = &c.bridge {
        validate::host_ifname(b, "bridge")?;
    }
    for r in &c.trunk {
        if r.min_id == 0 || r.max_id > 4094 || r.min_id > r.max_id {
            return Err(invalid(format!(
                "key trunk: {}-{} is not a VLAN range (1-4094, minId <= maxId)",
                r.min_id, r.max_id
            )));
        }
    }
    if !c.trunk.is_empty() && c.vlan.unwrap_or(0) != 0 {
        return Err(invalid(
            "key trunk: a port is either an access port (vlan) or a trunk, not both",
        ));
    }
    if let Some(g) = &c.geneve
        && g.vni > offload::overlay::MAX_VNI
    {
        return Err(invalid(format!(
            "key geneve.vni: {} is above {} (24 bits)",
            g.vni,
            offload::overlay::MAX_VNI
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CniEnv {
        CniEnv {
            command: Command::Add,
            container_id: "c1".into(),
            netns: Some("/var/run/netns/p".into()),
            ifname: "net1".into(),
            args: vec![],
            path: vec![],
        }
    }

    fn parse(v: Value) -> Result<NetConf, CniError> {
        NetConf::parse(v.to_string().as_bytes(), &env())
    }

    #[test]
    fn macvlan_source_mode_needs_its_macs_and_only_it_takes_them() {
        let base = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic",
            "mode": "macvlan", "master": "eth0"});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(v)
        };
        let ok = with(serde_json::json!({"macvlanMode": "source",
            "macvlanSourceMacs": ["02:00:00:00:5e:01", "02:00:00:00:5e:02"]}))
        .unwrap();
        assert_eq!(ok.conf.macvlan_source_macs.len(), 2);
        let e = with(serde_json::json!({"macvlanMode": "source"})).unwrap_err();
        assert!(e.msg.contains("needs at least one MAC"), "{}", e.msg);
        let e = with(serde_json::json!({"macvlanMode": "bridge",
            "macvlanSourceMacs": ["02:00:00:00:5e:01"]}))
        .unwrap_err();
        assert!(e.msg.contains("only with macvlanMode source"), "{}", e.msg);
        let e = with(serde_json::json!({"macvlanMode": "source", "macvlanSourceMacs": ["nope"]}))
            .unwrap_err();
        assert!(e.msg.contains("macvlanSourceMacs[0]"), "{}", e.msg);
    }

    #[test]
    fn the_operators_shape_parses() {
        let c = parse(serde_json::json!({
            "cniVersion": "1.1.0", "name": "net-a", "type": "smartnic", "mode": "sriov",
            "vlan": 10, "vlanQoS": 3, "spoofChk": false, "trust": true, "linkState": "enable",
            "minTxRate": 10, "maxTxRate": 100, "ipam": {"type": "static"},
            "deviceID": "0000:3b:02.1", "runtimeConfig": {"mac": "02:00:00:00:00:09", "ips": ["10.0.0.9/24"]},
            "unknownKey": {"anything": 1}
        }))
        .unwrap();
        assert_eq!(c.conf.vlan, Some(10));
        assert_eq!(c.conf.spoof_chk, Some(false));
        assert_eq!(c.device_id.unwrap().to_string(), "0000:3b:02.1");
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:09");
        assert_eq!(c.requested_ips[0].to_string(), "10.0.0.9/24");
        assert_eq!(c.version, Version::V1_1_0);
    }

    #[test]
    fn sriov_cni_spellings_are_accepted() {
        let c = parse(serde_json::json!({
            "cniVersion": "1.0.0", "name": "n", "type": "smartnic", "mode": "sriov",
            "spoofchk": "off", "trust": "on", "min_tx_rate": 5, "max_tx_rate": 50,
            "link_state": "disable", "mac": "02:00:00:00:00:01", "pciBusID": "0000:3b:02.2"
        }))
        .unwrap();
        assert_eq!(c.conf.spoof_chk, Some(false));
        assert_eq!(c.conf.trust, Some(true));
        assert_eq!(
            (c.conf.min_tx_rate, c.conf.max_tx_rate),
            (Some(5), Some(50))
        );
        assert_eq!(c.conf.link_state, Some(crds::link::VfLinkState::Disable));
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(c.device_id.unwrap().to_string(), "0000:3b:02.2");
    }

    #[test]
    fn errors_name_the_key() {
        let base = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov"});
        for (key, value, expect) in [
            ("vlan", serde_json::json!("10"), "key vlan"),
            ("vlan", serde_json::json!(5000), "key vlan"),
            ("trust", serde_json::json!("maybe"), "key trust"),
            ("spoofchk", serde_json::json!(1), "key spoofchk"),
            ("mode", serde_json::json!("bridge"), "key mode"),
            ("linkState", serde_json::json!("up"), "key linkState"),
            ("deviceID", serde_json::json!("../../etc"), "key deviceID"),
            ("mtu", serde_json::json!(10), "key mtu"),
            ("vlanQoS", serde_json::json!(2), "key vlanQoS"),
            (
                "runtimeConfig",
                serde_json::json!({"mac": "zz"}),
                "key runtimeConfig.mac",
            ),
            ("logFile", serde_json::json!("/var/log/../x"), "logFile"),
        ] {
            let mut v = base.clone();
            v[key] = value;
            let err = parse(v).unwrap_err();
            assert_eq!(err.code, code::INVALID_CONFIG, "{key}: {}", err.msg);
            assert!(err.msg.contains(expect), "{key}: {}", err.msg);
        }
        let err =
            parse(serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic"}))
                .unwrap_err();
        assert!(err.msg.contains("mode"), "{}", err.msg);
        let err = parse(serde_json::json!({"cniVersion": "0.2.0", "name": "n", "type": "smartnic", "mode": "sriov"}))
            .unwrap_err();
        assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
        assert_eq!(NetConf::parse(b"{", &env()).unwrap_err().code, code::DECODE);
        assert_eq!(
            NetConf::parse(b"[]", &env()).unwrap_err().code,
            code::DECODE
        );
    }

    #[test]
    fn logging_keys_as_the_operator_renders_them() {
        let base = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov"});
        assert_eq!(parse(base.clone()).unwrap().log_level(), None);
        // the operator's shape, serialized as the NAD carries it
        let mut shape: SmartnicNetConf = serde_json::from_value(base.clone()).unwrap();
        shape.log_level = Some(PluginLogLevel::Warning);
        shape.log_file = Some("net-a.log".into());
        let rendered = serde_json::to_value(&shape).unwrap();
        assert_eq!(rendered["logLevel"], "warning");
        assert_eq!(rendered["logFile"], "net-a.log");
        let c = parse(rendered).unwrap();
        assert_eq!(c.log_level(), Some(tracing::Level::WARN));
        assert_eq!(c.log_file.as_deref(), Some("net-a.log"));
        for (value, level) in [
            ("error", tracing::Level::ERROR),
            ("warning", tracing::Level::WARN),
            ("info", tracing::Level::INFO),
            ("debug", tracing::Level::DEBUG),
        ] {
            let mut v = base.clone();
            v["logLevel"] = value.into();
            assert_eq!(parse(v).unwrap().log_level(), Some(level), "{value}");
        }
        let mut v = base.clone();
        v["logFile"] = "cni.log".into();
        assert_eq!(parse(v).unwrap().log_level(), Some(tracing::Level::INFO));
        for (key, value) in [
            ("logLevel", "trace"),
            ("logLevel", "WARNING"),
            ("logFile", "/var/log/smartnic-cni.log"),
            ("logFile", "/etc/cron.d/x"),
            ("logFile", "var/log/cni.log"),
            ("logFile", "/var/log/../../etc/shadow"),
            ("logFile", "/var/log/./cni.log"),
        ] {
            let mut v = base.clone();
            v[key] = value.into();
            let err = parse(v).unwrap_err();
            assert_eq!(err.code, code::INVALID_CONFIG, "{value}: {}", err.msg);
            assert!(err.msg.contains(key), "{value}: {}", err.msg);
        }
    }

    #[test]
    fn the_allocated_device_wins_and_a_disagreeing_one_is_refused() {
        let base = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov",
            "deviceID": "0000:3b:02.1"});
        let mut same = base.clone();
        same["runtimeConfig"] = serde_json::json!({"deviceID": "0000:3b:02.1"});
        assert_eq!(
            parse(same).unwrap().device_id.unwrap().to_string(),
            "0000:3b:02.1"
        );
        for (key, value) in [
            (
                "runtimeConfig",
                serde_json::json!({"deviceID": "0000:3b:02.2"}),
            ),
            ("pciBusID", serde_json::json!("0000:3b:02.3")),
        ] {
            let mut v = base.clone();
            v[key] = value;
            let e = parse(v).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG);
            assert!(
                e.msg.contains("disagrees with deviceID 0000:3b:02.1"),
                "{}",
                e.msg
            );
        }
    }

    #[test]
    fn an_unreadable_prev_result_blocks_neither_del_nor_gc() {
        let v = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov",
            "prevResult": {"ips": "not a list", "interfaces": 7}});
        assert!(parse(v.clone()).is_err(), "ADD refuses it");
        for command in [Command::Del, Command::Gc] {
            let e = CniEnv { command, ..env() };
            let c = NetConf::parse(v.to_string().as_bytes(), &e).unwrap();
            assert!(c.prev_result.is_none());
            assert!(
                c.warnings[0].contains("prevResult ignored"),
                "{:?}",
                c.warnings
            );
        }
        let check = CniEnv {
            command: Command::Check,
            ..env()
        };
        assert!(NetConf::parse(v.to_string().as_bytes(), &check).is_err());
    }

    #[test]
    fn gc_reads_both_attachment_keys() {
        let c = parse(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov",
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "net1"}],
            "cni.dev/attachments": [{"containerID": "a", "ifname": "net1"}, {"containerID": "b", "ifname": "net2"}]
        }))
        .unwrap();
        assert_eq!(c.valid_attachments.unwrap().len(), 2);
    }
}
