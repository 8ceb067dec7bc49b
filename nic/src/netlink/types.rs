//! Our own link and VF types: what the rest of the project sees instead of netlink-packet-route's.

use std::{fmt, str::FromStr};

pub use crds::guid::Guid;
use serde::{Serialize, Serializer};

use super::LinkDetails;
use crate::netns::NetnsRef;

/// A 6-byte Ethernet MAC address, printed as `02:00:00:00:00:01`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?} (expected six hex octets like 02:00:00:00:00:01)")]
pub struct MacAddrError(pub String);

impl MacAddr {
    /// The address in `bytes`, when it is exactly six bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Self)
    }

    /// All zeros (`00:00:00:00:00:00`, what the kernel reports for an unset VF MAC).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacAddrError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a request names a link: by name or by ifindex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkId {
    /// Interface name (`eth0`).
    Name(String),
    /// Interface index.
    Index(u32),
}

impl From<&str> for LinkId {
    fn from(s: &str) -> Self {
        Self::Name(s.to_string())
    }
}

impl From<String> for LinkId {
    fn from(s: String) -> Self {
        Self::Name(s)
    }
}

impl From<&String> for LinkId {
    fn from(s: &String) -> Self {
        Self::Name(s.clone())
    }
}

impl From<u32> for LinkId {
    fn from(i: u32) -> Self {
        Self::Index(i)
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Index(i) => write!(f, "ifindex {i}"),
        }
    }
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OperState {
    /// The driver does not say (`UNKNOWN`; loopback, many virtual devices).
    #[default]
    Unknown,
    /// Some component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because the lower device is down.
    LowerLayerDown,
    /// In a test mode.
    Testing,
    /// Waiting for an external event (802.1X, ...).
    Dormant,
    /// Up: carrier and admin up.
    Up,
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::NotPresent => "notpresent",
            Self::Down => "down",
            Self::LowerLayerDown => "lowerlayerdown",
            Self::Testing => "testing",
            Self::Dormant => "dormant",
            Self::Up => "up",
        })
    }
}

/// One network interface as `ip link show` sees it. It says nothing about its namespace: it is
/// whatever the netlink socket's namespace holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU in bytes.
    pub mtu: u32,
    /// Hardware address, when it is a 6-byte MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operational state.
    pub oper_state: OperState,
    /// `IFLA_INFO_KIND` for virtual links (`veth`, `dummy`, `vlan`, ...); `None` for hardware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Physical carrier (`IFLA_CARRIER`), when reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<bool>,
    /// Index of the master (`IFLA_MASTER`: a bridge, bond, VRF), when enslaved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<u32>,
    /// Index of the lower device (`IFLA_LINK`: a macvlan's, ipvlan's or vlan's parent; a veth's
    /// peer). It may be an index in another namespace, e.g. a veth peer moved into a pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// Kind-specific settings (macvlan mode, ipvlan mode, VLAN id), for the kinds we create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<LinkDetails>,
}

/// VLAN protocol of a VF port VLAN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VlanProto {
    /// 802.1Q (`0x8100`), the default.
    #[default]
    Dot1Q,
    /// 802.1ad (`0x88a8`, "QinQ" service tag).
    Dot1Ad,
}

impl VlanProto {
    /// The ethertype.
    pub fn ethertype(self) -> u16 {
        match self {
            Self::Dot1Q => 0x8100,
            Self::Dot1Ad => 0x88a8,
        }
    }
}

/// A string that is not `802.1Q` or `802.1ad`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid VLAN protocol {0:?} (expected 802.1Q or 802.1ad)")]
pub struct VlanProtoError(pub String);

impl FromStr for VlanProto {
    type Err = VlanProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(Self::Dot1Q),
            "802.1ad" => Ok(Self::Dot1Ad),
            _ => Err(VlanProtoError(s.to_string())),
        }
    }
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dot1Q => "802.1Q",
            Self::Dot1Ad => "802.1ad",
        })
    }
}

impl Serialize for VlanProto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Administrative link state of a VF (`ip link set $PF vf N state ...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    /// Follow the PF's link.
    #[default]
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// A string that is not `auto`, `enable` or `disable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid VF link state {0:?} (expected auto, enable or disable)")]
pub struct VfLinkStateError(pub String);

impl FromStr for VfLinkState {
    type Err = VfLinkStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "enable" => Ok(Self::Enable),
            "disable" => Ok(Self::Disable),
            _ => Err(VfLinkStateError(s.to_string())),
        }
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Enable => "enable",
            Self::Disable => "disable",
        })
    }
}

/// One row of a PF's VF table (`IFLA_VF_INFO`, read with `RTEXT_FILTER_VF`). Fields the kernel did
/// not report are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VfInfo {
    /// VF index.
    pub vf: u32,
    /// Administrative MAC (all zeros when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Port VLAN (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Port VLAN priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// Port VLAN protocol (from `IFLA_VF_VLAN_LIST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_proto: Option<VlanProto>,
    /// MAC anti-spoof check. netlink-packet-route folds "not supported" (-1) into `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
    /// Trusted VF (may change its MAC, enter promiscuous mode). Unsupported reads as `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// Guaranteed TX rate in Mbit/s (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// TX rate limit in Mbit/s (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// Administrative link state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// InfiniBand node GUID (`IFLA_VF_IB_NODE_GUID`; reported by IB PFs only, zero while unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_guid: Option<Guid>,
    /// InfiniBand port GUID (`IFLA_VF_IB_PORT_GUID`; reported by IB PFs only, zero while unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_guid: Option<Guid>,
}

impl VfInfo {
    /// A VF row as a freshly created VF on most drivers reports it: no MAC, no VLAN, spoof
    /// check on, not trusted, no rate limits, link state auto.
    pub fn new_default(vf: u32) -> Self {
        Self {
            vf,
            mac: Some(MacAddr::default()),
            vlan: Some(0),
            qos: Some(0),
            vlan_proto: Some(VlanProto::Dot1Q),
            spoofchk: Some(true),
            trust: Some(false),
            min_tx_rate: Some(0),
            max_tx_rate: Some(0),
            link_state: Some(VfLinkState::Auto),
            node_guid: None,
            port_guid: None,
        }
    }
}

/// One VF setting, sent through the PF in its own request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VfSetting {
    /// `ip link set $PF vf N mac MAC`.
    Mac(MacAddr),
    /// `ip link set $PF vf N vlan ID qos Q proto PROTO`; VLAN 0 removes the port VLAN.
    Vlan {
        /// VLAN id (0-4095).
        vlan: u16,
        /// Priority (0-7).
        qos: u8,
        /// Protocol; 802.1ad goes out in the `IFLA_VF_VLAN_LIST` form.
        proto: VlanProto,
    },
    /// `ip link set $PF vf N spoofchk on|off`.
    SpoofCheck(bool),
    /// `ip link set $PF vf N trust on|off`.
    Trust(bool),
    /// `ip link set $PF vf N min_tx_rate MBPS`; the max rate is kept as it is.
    MinTxRate(u32),
    /// `ip link set $PF vf N max_tx_rate MBPS`; the min rate is kept as it is.
    MaxTxRate(u32),
    /// `ip link set $PF vf N state auto|enable|disable`.
    LinkState(VfLinkState),
    /// `ip link set $PF vf N node_guid G` (InfiniBand PFs).
    IbNodeGuid(Guid),
    /// `ip link set $PF vf N port_guid G` (InfiniBand PFs).
    IbPortGuid(Guid),
}

impl VfSetting {
    /// The setting's name as on the `smartnicctl vf set` command line (used in errors).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mac(_) => "mac",
            Self::Vlan { .. } => "vlan",
            Self::SpoofCheck(_) => "spoofchk",
            Self::Trust(_) => "trust",
            Self::MinTxRate(_) => "min-tx-rate",
            Self::MaxTxRate(_) => "max-tx-rate",
            Self::LinkState(_) => "link-state",
            Self::IbNodeGuid(_) => "node-guid",
            Self::IbPortGuid(_) => "port-guid",
        }
    }

    /// Applies this setting to a VF row (what the kernel would report afterwards).
    pub fn apply_to(&self, info: &mut VfInfo) {
        match *self {
            Self::Mac(m) => info.mac = Some(m),
            Self::Vlan { vlan, qos, proto } => {
                info.vlan = Some(vlan);
                info.qos = Some(qos);
                info.vlan_proto = Some(proto);
            }
            Self::SpoofCheck(on) => info.spoofchk = Some(on),
            Self::Trust(on) => info.trust = Some(on),
            Self::MinTxRate(r) => info.min_tx_rate = Some(r),
            Self::MaxTxRate(r) => info.max_tx_rate = Some(r),
            Self::LinkState(s) => info.link_state = Some(s),
            Self::IbNodeGuid(g) => info.node_guid = Some(g),
            Self::IbPortGuid(g) => info.port_guid = Some(g),
        }
    }
}

/// One change to a link, sent in its own `RTM_SETLINK` (or `RTM_DELLINK`) request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// `ip link set DEV up`.
    Up,
    /// `ip link set DEV down`.
    Down,
    /// `ip link set DEV mtu N`.
    Mtu(u32),
    /// `ip link set DEV name NEW` (the link must be down).
    Name(String),
    /// `ip link set DEV address MAC`.
    Mac(MacAddr),
    /// `ip link set DEV netns NS`.
    Netns(NetnsRef),
    /// `ip link set DEV netns NS name NEW`: moved and renamed in one request, so that the link
    /// never appears in `NS` under its old name (where it could collide with `eth0`).
    NetnsRename {
        /// The target namespace.
        netns: NetnsRef,
        /// The name in the target namespace.
        name: String,
    },
    /// `ip link set DEV master MASTER`.
    Master(LinkId),
    /// `ip link set DEV nomaster`.
    NoMaster,
}

impl LinkChange {
    /// Words for errors, naming the link: "set mtu 9000 on veth0", "rename veth0 to eth1".
    pub fn describe(&self, link: &str) -> String {
        match self {
            Self::Up => format!("set {link} up"),
            Self::Down => format!("set {link} down"),
            Self::Mtu(m) => format!("set mtu {m} on {link}"),
            Self::Name(n) => format!("rename {link} to {n}"),
            Self::Mac(m) => format!("set address {m} on {link}"),
            Self::Netns(ns) => format!("move {link} to network namespace {ns}"),
            Self::NetnsRename { netns, name } => {
                format!("move {link} to network namespace {netns} as {name}")
            }
            Self::Master(m) => format!("set master {m} on {link}"),
            Self::NoMaster => format!("set nomaster on {link}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:AB:0c:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:0c:00:00:01");
        assert_eq!("02-ab-0c-00-00-01".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:ab",
            "02:ab:0c:00:00:01:02",
            "zz:00:00:00:00:00",
            "002:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"02:ab:0c:00:00:01\"");
    }

    #[test]
    fn vf_info_json_omits_unreported_fields() {
        let mut vf = VfInfo {
            vf: 0,
            ..Default::default()
        };
        VfSetting::Vlan {
            vlan: 10,
            qos: 0,
            proto: VlanProto::Dot1Q,
        }
        .apply_to(&mut vf);
        VfSetting::MaxTxRate(100).apply_to(&mut vf);
        let json = serde_json::to_value(&vf).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"vf":0,"vlan":10,"qos":0,"vlanProto":"802.1Q","maxTxRate":100})
        );
        let full = serde_json::to_value(VfInfo::new_default(2)).unwrap();
        assert_eq!(full["linkState"], "auto");
        assert_eq!(full["spoofchk"], true);
    }

    #[test]
    fn enums_parse_like_the_cli() {
        assert_eq!("802.1ad".parse::<VlanProto>().unwrap(), VlanProto::Dot1Ad);
        assert_eq!("802.1Q".parse::<VlanProto>().unwrap().ethertype(), 0x8100);
        assert!("qinq".parse::<VlanProto>().is_err());
        assert_eq!(
            "disable".parse::<VfLinkState>().unwrap(),
            VfLinkState::Disable
        );
        assert!("off".parse::<VfLinkState>().is_err());
    }
}
