//! Devlink names and views: device and port handles (`pci/0000:01:00.0`, `pci/0000:01:00.0/1`),
//! the kernel's enums with the names `devlink` prints, and what a port, an eswitch, a device's
//! info and a rate object look like once decoded.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Serialize, Serializer};

use super::{DevlinkAttr, DevlinkError, DevlinkMessage, PortFunctionAttr, Result};
use crate::netlink::MacAddr;

/// A devlink instance: `BUS/NAME`, e.g. `pci/0000:01:00.0`, `netdevsim/netdevsim10`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevlinkDev {
    /// Bus name ("pci", "auxiliary", "netdevsim").
    pub bus: String,
    /// Device name on that bus ("0000:01:00.0").
    pub name: String,
}

impl DevlinkDev {
    /// `bus/name`.
    pub fn new(bus: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            bus: bus.into(),
            name: name.into(),
        }
    }

    /// The PCI device `pci/<bdf>`.
    pub fn pci(bdf: impl fmt::Display) -> Self {
        Self::new("pci", bdf.to_string())
    }

    pub(crate) fn handle_attrs(&self) -> Vec<DevlinkAttr> {
        vec![
            DevlinkAttr::BusName(self.bus.clone()),
            DevlinkAttr::DevName(self.name.clone()),
        ]
    }

    pub(crate) fn from_message(msg: &DevlinkMessage) -> Option<Self> {
        let bus = msg.find(|a| {
            if let DevlinkAttr::BusName(s) = a {
                Some(s)
            } else {
                None
            }
        })?;
        let name = msg.find(|a| {
            if let DevlinkAttr::DevName(s) = a {
                Some(s)
            } else {
                None
            }
        })?;
        Some(Self::new(bus.clone(), name.clone()))
    }
}

impl FromStr for DevlinkDev {
    type Err = DevlinkError;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('/') {
            Some((bus, name)) if !bus.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::new(bus, name))
            }
            _ => Err(DevlinkError::Parse {
                what: "device",
                input: s.to_string(),
                expected: "BUS/NAME, e.g. pci/0000:01:00.0",
            }),
        }
    }
}

impl fmt::Display for DevlinkDev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.bus, self.name)
    }
}

impl Serialize for DevlinkDev {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A devlink port: `BUS/NAME/INDEX`, e.g. `netdevsim/netdevsim10/128`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// The devlink instance.
    pub dev: DevlinkDev,
    /// Port index.
    pub index: u32,
}

impl PortRef {
    pub(crate) fn handle_attrs(&self) -> Vec<DevlinkAttr> {
        let mut a = self.dev.handle_attrs();
        a.push(DevlinkAttr::PortIndex(self.index));
        a
    }
}

impl FromStr for PortRef {
    type Err = DevlinkError;

    fn from_str(s: &str) -> Result<Self> {
        let err = || DevlinkError::Parse {
            what: "port",
            input: s.to_string(),
            expected: "BUS/NAME/INDEX, e.g. pci/0000:01:00.0/1",
        };
        let (dev, index) = s.rsplit_once('/').ok_or_else(err)?;
        Ok(Self {
            dev: dev.parse().map_err(|_| err())?,
            index: index.parse().map_err(|_| err())?,
        })
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dev, self.index)
    }
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident : $raw:ty { $($(#[$vm:meta])* $var:ident = $num:literal => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// A value this code does not know.
            Other($raw),
        }

        impl $name {
            /// The kernel's number.
            pub fn raw(self) -> $raw {
                match self { $(Self::$var => $num,)+ Self::Other(v) => v }
            }

            /// From the kernel's number.
            pub fn from_raw(v: $raw) -> Self {
                match v { $($num => Self::$var,)+ other => Self::Other(other) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $(Self::$var => f.write_str($text),)+ Self::Other(v) => write!(f, "{v}") }
            }
        }

        impl FromStr for $name {
            type Err = DevlinkError;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok(Self::$var),)+
                    _ => Err(DevlinkError::Parse {
                        what: stringify!($name),
                        input: s.to_string(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

named_enum! {
    /// `enum devlink_eswitch_mode`.
    EswitchMode: u16 {
        /// VFs switched by the NIC's legacy VEB, no representors.
        Legacy = 0 => "legacy",
        /// Representors; flows programmed through tc.
        Switchdev = 1 => "switchdev",
        /// Switchdev without traffic (newer kernels).
        SwitchdevInactive = 2 => "switchdev_inactive",
    }
}

impl EswitchMode {
    /// The inventory's view of the mode (`None` for modes it does not model).
    pub fn to_inventory(self) -> Option<crds::inventory::EswitchMode> {
        match self {
            Self::Legacy => Some(crds::inventory::EswitchMode::Legacy),
            Self::Switchdev | Self::SwitchdevInactive => {
                Some(crds::inventory::EswitchMode::Switchdev)
            }
            Self::Other(_) => None,
        }
    }
}

named_enum! {
    /// `enum devlink_eswitch_inline_mode`: how much of the packet the VF driver copies inline.
    InlineMode: u8 {
        /// None.
        None = 0 => "none",
        /// L2 header.
        Link = 1 => "link",
        /// Up to the L3 header.
        Network = 2 => "network",
        /// Up to the L4 header.
        Transport = 3 => "transport",
    }
}

named_enum! {
    /// `enum devlink_eswitch_encap_mode`: tunnel encap/decap offload in the eswitch.
    EncapMode: u8 {
        /// Off.
        None = 0 => "none",
        /// On.
        Basic = 1 => "basic",
    }
}

named_enum! {
    /// `enum devlink_port_flavour`, printed as `devlink port show` does.
    PortFlavour: u16 {
        /// A port facing the wire (uplink).
        Physical = 0 => "physical",
        /// CPU port of a switch.
        Cpu = 1 => "cpu",
        /// Switch interconnect.
        Dsa = 2 => "dsa",
        /// Eswitch port of a PCI PF.
        PciPf = 3 => "pcipf",
        /// Eswitch port of a PCI VF (its netdev is the VF representor).
        PciVf = 4 => "pcivf",
        /// Virtual port.
        Virtual = 5 => "virtual",
        /// Unused port.
        Unused = 6 => "unused",
        /// Eswitch port of a subfunction.
        PciSf = 7 => "pcisf",
    }
}

named_enum! {
    /// Port function admin state (`DEVLINK_PORT_FN_STATE_*`).
    PortFunctionState: u8 {
        /// Not usable by the host.
        Inactive = 0 => "inactive",
        /// Usable.
        Active = 1 => "active",
    }
}

named_enum! {
    /// Port function operational state (`DEVLINK_PORT_FN_OPSTATE_*`).
    PortFunctionOpState: u8 {
        /// No driver attached.
        Detached = 0 => "detached",
        /// A driver is attached.
        Attached = 1 => "attached",
    }
}

/// `devlink dev eswitch show DEV`; modes the driver does not report are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eswitch {
    /// The device.
    pub dev: DevlinkDev,
    /// Eswitch mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<EswitchMode>,
    /// Inline mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_mode: Option<InlineMode>,
    /// Encap mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encap_mode: Option<EncapMode>,
}

impl Eswitch {
    /// Reads an `ESWITCH_GET` reply.
    pub fn from_message(dev: &DevlinkDev, msg: &DevlinkMessage) -> Self {
        Self {
            dev: dev.clone(),
            mode: msg.find(|a| match a {
                DevlinkAttr::EswitchMode(m) => Some(EswitchMode::from_raw(*m)),
                _ => None,
            }),
            inline_mode: msg.find(|a| match a {
                DevlinkAttr::EswitchInlineMode(m) => Some(InlineMode::from_raw(*m)),
                _ => None,
            }),
            encap_mode: msg.find(|a| match a {
                DevlinkAttr::EswitchEncapMode(m) => Some(EncapMode::from_raw(*m)),
                _ => None,
            }),
        }
    }
}

/// The function behind an eswitch port (the VF/SF as the eswitch manager sees it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortFunction {
    /// Hardware address the function will use, as colon-separated hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hw_addr: Option<String>,
    /// Admin state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<PortFunctionState>,
    /// Operational state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opstate: Option<PortFunctionOpState>,
}

/// One devlink port (`devlink port show`). Absent attributes are `None` (JSON `null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// The device.
    pub dev: DevlinkDev,
    /// Port index.
    pub index: u32,
    /// Flavour.
    pub flavour: Option<PortFlavour>,
    /// Netdev of the port: the uplink for `physical`, the representor for `pcivf`/`pcisf`.
    pub netdev: Option<String>,
    /// Ifindex of that netdev.
    pub netdev_ifindex: Option<u32>,
    /// Physical port number.
    pub port_number: Option<u32>,
    /// PCI PF number.
    pub pf_number: Option<u16>,
    /// PCI VF number (for `pcivf` ports).
    pub vf_number: Option<u16>,
    /// Subfunction number (for `pcisf` ports).
    pub sf_number: Option<u32>,
    /// Controller number (0 = this host).
    pub controller: Option<u32>,
    /// The function sits on an external controller.
    pub external: Option<bool>,
    /// The port function, when the driver reports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<PortFunction>,
}

fn hex_colon(bytes: &[u8]) -> String {
    match MacAddr::from_slice(bytes) {
        Some(mac) => mac.to_string(),
        None => bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

impl Port {
    /// Port `index` of `dev` with no attribute known yet.
    pub fn new(dev: DevlinkDev, index: u32) -> Self {
        Self {
            dev,
            index,
            flavour: None,
            netdev: None,
            netdev_ifindex: None,
            port_number: None,
            pf_number: None,
            vf_number: None,
            sf_number: None,
            controller: None,
            external: None,
            function: None,
        }
    }

    /// Reads a `PORT_GET` reply; `None` without a device handle and port index.
    pub fn from_message(msg: &DevlinkMessage) -> Option<Self> {
        let dev = DevlinkDev::from_message(msg)?;
        let index = msg.find(|a| {
            if let DevlinkAttr::PortIndex(i) = a {
                Some(*i)
            } else {
                None
            }
        })?;
        let mut port = Self::new(dev, index);
        for a in &msg.attrs {
            match a {
                DevlinkAttr::PortFlavour(f) => port.flavour = Some(PortFlavour::from_raw(*f)),
                DevlinkAttr::PortNetdevName(n) => port.netdev = Some(n.clone()),
                DevlinkAttr::PortNetdevIfindex(i) => port.netdev_ifindex = Some(*i),
                DevlinkAttr::PortNumber(n) => port.port_number = Some(*n),
                DevlinkAttr::PortPciPfNumber(n) => port.pf_number = Some(*n),
                DevlinkAttr::PortPciVfNumber(n) => port.vf_number = Some(*n),
                DevlinkAttr::PortPciSfNumber(n) => port.sf_number = Some(*n),
                DevlinkAttr::PortControllerNumber(n) => port.controller = Some(*n),
                DevlinkAttr::PortExternal(e) => port.external = Some(*e != 0),
                DevlinkAttr::PortFunction(attrs) => {
                    let mut f = PortFunction::default();
                    for fa in attrs {
                        match fa {
                            PortFunctionAttr::HwAddr(a) => f.hw_addr = Some(hex_colon(a)),
                            PortFunctionAttr::State(s) => {
                                f.state = Some(PortFunctionState::from_raw(*s))
                            }
                            PortFunctionAttr::OpState(s) => {
                                f.opstate = Some(PortFunctionOpState::from_raw(*s))
                            }
                            PortFunctionAttr::Other(_) => {}
                        }
                    }
                    port.function = Some(f);
                }
                _ => {}
            }
        }
        Some(port)
    }

    /// This port's handle.
    pub fn port_ref(&self) -> PortRef {
        PortRef {
            dev: self.dev.clone(),
            index: self.index,
        }
    }
}

/// Firmware/hardware versions of `devlink dev info`, by version name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// Fixed (hardware) versions, e.g. `board.id`.
    pub fixed: BTreeMap<String, String>,
    /// Running firmware.
    pub running: BTreeMap<String, String>,
    /// Stored (flashed, active after reset).
    pub stored: BTreeMap<String, String>,
}

/// `devlink dev info DEV`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevInfo {
    /// The device.
    pub dev: DevlinkDev,
    /// Driver name.
    pub driver: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Board serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board_serial: Option<String>,
    /// Versions.
    pub versions: Versions,
}

impl DevInfo {
    /// Reads an `INFO_GET` reply.
    pub fn from_message(dev: &DevlinkDev, msg: &DevlinkMessage) -> Self {
        let mut info = Self {
            dev: dev.clone(),
            driver: None,
            serial: None,
            board_serial: None,
            versions: Versions::default(),
        };
        for a in &msg.attrs {
            let (map, nest) = match a {
                DevlinkAttr::InfoDriverName(d) => {
                    info.driver = Some(d.clone());
                    continue;
                }
                DevlinkAttr::InfoSerialNumber(s) => {
                    info.serial = Some(s.clone());
                    continue;
                }
                DevlinkAttr::InfoBoardSerialNumber(s) => {
                    info.board_serial = Some(s.clone());
                    continue;
                }
                DevlinkAttr::InfoVersionFixed(n) => (&mut info.versions.fixed, n),
                DevlinkAttr::InfoVersionRunning(n) => (&mut info.versions.running, n),
                DevlinkAttr::InfoVersionStored(n) => (&mut info.versions.stored, n),
                _ => continue,
            };
            let name = nest.iter().find_map(|a| match a {
                DevlinkAttr::InfoVersionName(s) => Some(s.clone()),
                _ => None,
            });
            let value = nest.iter().find_map(|a| match a {
                DevlinkAttr::InfoVersionValue(s) => Some(s.clone()),
                _ => None,
            });
            if let (Some(name), Some(value)) = (name, value) {
                map.insert(name, value);
            }
        }
        info
    }
}

/// What a rate object is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RateObject {
    /// A leaf: the rate of one port (`devlink port function rate set DEV/PORT`).
    Leaf {
        /// Port index.
        port: u32,
    },
    /// A node that groups leaves (`devlink port function rate add DEV/NAME`).
    Node {
        /// Node name.
        name: String,
    },
}

/// One devlink rate object (`devlink port function rate show`). Rates are bytes per second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// The device.
    pub dev: DevlinkDev,
    /// Leaf or node.
    pub object: RateObject,
    /// Guaranteed rate.
    pub tx_share: Option<u64>,
    /// Rate limit.
    pub tx_max: Option<u64>,
    /// Parent node.
    pub parent: Option<String>,
}

impl Rate {
    /// Reads a `RATE_GET` reply.
    pub fn from_message(msg: &DevlinkMessage) -> Option<Self> {
        let dev = DevlinkDev::from_message(msg)?;
        let node = msg.find(|a| match a {
            DevlinkAttr::RateNodeName(n) => Some(n.clone()),
            _ => None,
        });
        let port = msg.find(|a| {
            if let DevlinkAttr::PortIndex(i) = a {
                Some(*i)
            } else {
                None
            }
        });
        let object = match (node, port) {
            (Some(name), _) => RateObject::Node { name },
            (None, Some(port)) => RateObject::Leaf { port },
            (None, None) => return None,
        };
        Some(Self {
            dev,
            object,
            tx_share: msg.find(|a| {
                if let DevlinkAttr::RateTxShare(v) = a {
                    Some(*v)
                } else {
                    None
                }
            }),
            tx_max: msg.find(|a| {
                if let DevlinkAttr::RateTxMax(v) = a {
                    Some(*v)
                } else {
                    None
                }
            }),
            parent: msg.find(|a| match a {
                DevlinkAttr::RateParentNodeName(n) => Some(n.clone()),
                _ => None,
            }),
        })
    }
}
