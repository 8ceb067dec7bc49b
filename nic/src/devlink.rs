//! A devlink client on generic netlink: devices, eswitch mode, ports and representors, port
//! functions, device info, rate objects.
//!
//! ```text
//!   Devlink::connect() ─┬─ dev().list() / dev().info(DEV)          devlink dev [info DEV]
//!   (family "devlink"   ├─ eswitch(DEV).get() / .set()...         devlink dev eswitch show|set
//!    v1, NETLINK_EXT_   ├─ port().list(DEV?) / port().get(PORT)   devlink port show
//!    ACK socket)        ├─ port().function(PORT).hw_addr().state() devlink port function set
//!                       └─ rate().list() / rate().leaf(PORT).set() / rate().node(DEV, NAME).add()|del()|set()
//! ```
//!
//! No devlink crate exists, so the messages are ours ([`DevlinkMessage`], numbers from
//! include/uapi/linux/devlink.h). A kernel built without devlink (`CONFIG_NET_DEVLINK` off) has no
//! "devlink" family: [`Devlink::connect`] then fails with [`DevlinkError::Unavailable`] and
//! [`Devlink::connect_optional`] returns `Ok(None)`; neither is a malfunction.
//!
//! Kernel refusals keep the extack text, e.g. netdevsim's
//! "Port doesn't support function attributes" for a port function `hw_addr`.

mod message;

use std::{collections::BTreeMap, fmt, io, str::FromStr};

use genetlink::GenetlinkHandle;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};
use serde::{Serialize, Serializer};

pub use self::message::{DevlinkAttr, DevlinkMessage, PortFunctionAttr, attr, cmd, port_fn_attr};
use crate::netlink::{
    KernelError, MacAddr,
    genl::{self, GenlFailure},
};

/// Errors of the devlink client; each names the device or port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevlinkError {
    /// This kernel has no devlink generic netlink family.
    #[error("devlink is not available on this kernel (no generic netlink family \"devlink\")")]
    Unavailable,
    /// The generic netlink socket could not be opened.
    #[error("cannot open a generic netlink socket: {0}")]
    Connect(io::Error),
    /// The kernel refused a request, e.g. "set port function hw_addr 02:00:00:00:00:01 on
    /// netdevsim/netdevsim10/128: Port doesn't support function attributes: Operation not
    /// supported (os error 95)".
    #[error("{op}: {kernel}")]
    Kernel {
        /// What was asked, naming the device or port.
        op: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The kernel answered something unexpected, or the connection went away.
    #[error("{op}: unexpected devlink reply: {detail}")]
    Unexpected {
        /// What was asked, naming the device or port.
        op: String,
        /// What went wrong.
        detail: String,
    },
    /// A device or port handle that does not parse.
    #[error("invalid devlink {what} {input:?}: expected {expected}")]
    Parse {
        /// "device", "port", "eswitch mode", ...
        what: &'static str,
        /// The text given.
        input: String,
        /// The accepted form.
        expected: &'static str,
    },
}

impl DevlinkError {
    /// The kernel errno, when this error is a kernel answer.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { kernel, .. } => Some(kernel.errno),
            _ => None,
        }
    }

    /// The extack message, when the kernel gave one.
    pub fn extack(&self) -> Option<&str> {
        match self {
            Self::Kernel { kernel, .. } => kernel.message.as_deref(),
            _ => None,
        }
    }

    /// The kernel has no devlink at all.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable)
    }

    /// The driver does not implement the operation: `EOPNOTSUPP`.
    pub fn is_not_supported(&self) -> bool {
        self.errno() == Some(nix::libc::EOPNOTSUPP)
    }

    /// No such device, port or rate node: `ENODEV` / `ENOENT` / `EINVAL` on a bad index.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(nix::libc::ENODEV) | Some(nix::libc::ENOENT)
        )
    }

    fn from_failure(op: String, failure: GenlFailure) -> Self {
        match failure {
            GenlFailure::NoFamily => Self::Unavailable,
            GenlFailure::Kernel(kernel) => Self::Kernel { op, kernel },
            GenlFailure::Other(detail) => Self::Unexpected { op, detail },
        }
    }
}

type Result<T, E = DevlinkError> = std::result::Result<T, E>;

// === handles and enums ===

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

    fn handle_attrs(&self) -> Vec<DevlinkAttr> {
        vec![
            DevlinkAttr::BusName(self.bus.clone()),
            DevlinkAttr::DevName(self.name.clone()),
        ]
    }

    fn from_message(msg: &DevlinkMessage) -> Option<Self> {
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
    fn handle_attrs(&self) -> Vec<DevlinkAttr> {
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

// === our views ===

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
    fn from_message(dev: &DevlinkDev, msg: &DevlinkMessage) -> Self {
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
        let mut port = Self {
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
        };
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

// === client ===

/// A devlink client in the calling thread's network namespace.
#[derive(Clone, Debug)]
pub struct Devlink {
    handle: GenetlinkHandle,
}

impl Devlink {
    /// Opens the socket and resolves the "devlink" family. Must be called inside a tokio
    /// runtime. A kernel without devlink gives [`DevlinkError::Unavailable`].
    pub async fn connect() -> Result<Self> {
        let handle = genl::connect().map_err(DevlinkError::Connect)?;
        genl::resolve::<DevlinkMessage>(&handle)
            .await
            .map_err(|f| DevlinkError::from_failure("resolve the devlink family".into(), f))?;
        Ok(Self { handle })
    }

    /// Like [`Devlink::connect`], with "no devlink on this kernel" as `Ok(None)`.
    pub async fn connect_optional() -> Result<Option<Self>> {
        match Self::connect().await {
            Ok(d) => Ok(Some(d)),
            Err(DevlinkError::Unavailable) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn request(
        &self,
        op: impl FnOnce() -> String,
        cmd: u8,
        attrs: Vec<DevlinkAttr>,
        flags: u16,
    ) -> Result<Vec<DevlinkMessage>> {
        genl::request(&self.handle, DevlinkMessage::new(cmd, attrs), flags)
            .await
            .map_err(|f| DevlinkError::from_failure(op(), f))
    }

    async fn request_one(
        &self,
        op: String,
        cmd: u8,
        attrs: Vec<DevlinkAttr>,
    ) -> Result<DevlinkMessage> {
        let mut replies = self.request(|| op.clone(), cmd, attrs, NLM_F_ACK).await?;
        if replies.is_empty() {
            return Err(DevlinkError::Unexpected {
                op,
                detail: "no reply message".into(),
            });
        }
        Ok(replies.swap_remove(0))
    }

    /// Device requests.
    pub fn dev(&self) -> DevHandle<'_> {
        DevHandle { dl: self }
    }

    /// Eswitch requests for `dev`.
    pub fn eswitch(&self, dev: &DevlinkDev) -> EswitchHandle<'_> {
        EswitchHandle {
            dl: self,
            dev: dev.clone(),
        }
    }

    /// Port requests.
    pub fn port(&self) -> PortHandle<'_> {
        PortHandle { dl: self }
    }

    /// Rate object requests.
    pub fn rate(&self) -> RateHandle<'_> {
        RateHandle { dl: self }
    }
}

/// Device requests.
pub struct DevHandle<'a> {
    dl: &'a Devlink,
}

impl<'a> DevHandle<'a> {
    /// `devlink dev show`: every devlink instance.
    pub async fn list(&self) -> Result<Vec<DevlinkDev>> {
        let replies = self
            .dl
            .request(
                || "list devlink devices".into(),
                cmd::GET,
                vec![],
                NLM_F_DUMP,
            )
            .await?;
        let mut devs: Vec<_> = replies
            .iter()
            .filter_map(DevlinkDev::from_message)
            .collect();
        devs.sort();
        Ok(devs)
    }

    /// `devlink dev info DEV`.
    pub async fn info(&self, dev: &DevlinkDev) -> Result<DevInfo> {
        let msg = self
            .dl
            .request_one(
                format!("get info of {dev}"),
                cmd::INFO_GET,
                dev.handle_attrs(),
            )
            .await?;
        Ok(DevInfo::from_message(dev, &msg))
    }
}

/// Eswitch requests for one device.
pub struct EswitchHandle<'a> {
    dl: &'a Devlink,
    dev: DevlinkDev,
}

impl<'a> EswitchHandle<'a> {
    /// `devlink dev eswitch show DEV`.
    pub async fn get(&self) -> Result<Eswitch> {
        let op = format!("get eswitch of {}", self.dev);
        let msg = self
            .dl
            .request_one(op, cmd::ESWITCH_GET, self.dev.handle_attrs())
            .await?;
        Ok(Eswitch::from_message(&self.dev, &msg))
    }

    /// `devlink dev eswitch set DEV [mode M] [inline-mode M] [encap-mode M]`.
    pub fn set(&self) -> EswitchSetRequest<'a> {
        EswitchSetRequest {
            dl: self.dl,
            dev: self.dev.clone(),
            mode: None,
            inline: None,
            encap: None,
        }
    }
}

/// `devlink dev eswitch set DEV ...`, sent as one request.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct EswitchSetRequest<'a> {
    dl: &'a Devlink,
    dev: DevlinkDev,
    mode: Option<EswitchMode>,
    inline: Option<InlineMode>,
    encap: Option<EncapMode>,
}

impl EswitchSetRequest<'_> {
    /// `mode legacy|switchdev`.
    pub fn mode(mut self, mode: EswitchMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// `inline-mode none|link|network|transport`.
    pub fn inline_mode(mut self, mode: InlineMode) -> Self {
        self.inline = Some(mode);
        self
    }

    /// `encap-mode none|basic`.
    pub fn encap_mode(mut self, mode: EncapMode) -> Self {
        self.encap = Some(mode);
        self
    }

    /// The request's attributes (for inspection and tests).
    pub fn message(&self) -> DevlinkMessage {
        let mut attrs = self.dev.handle_attrs();
        if let Some(m) = self.mode {
            attrs.push(DevlinkAttr::EswitchMode(m.raw()));
        }
        if let Some(m) = self.inline {
            attrs.push(DevlinkAttr::EswitchInlineMode(m.raw()));
        }
        if let Some(m) = self.encap {
            attrs.push(DevlinkAttr::EswitchEncapMode(m.raw()));
        }
        DevlinkMessage::new(cmd::ESWITCH_SET, attrs)
    }

    /// Sends the request (nothing when no setting was given).
    pub async fn execute(self) -> Result<()> {
        let mut what = Vec::new();
        if let Some(m) = self.mode {
            what.push(format!("mode {m}"));
        }
        if let Some(m) = self.inline {
            what.push(format!("inline-mode {m}"));
        }
        if let Some(m) = self.encap {
            what.push(format!("encap-mode {m}"));
        }
        if what.is_empty() {
            return Ok(());
        }
        let op = || format!("set eswitch {} on {}", what.join(" "), self.dev);
        let msg = self.message();
        self.dl.request(op, msg.cmd, msg.attrs, NLM_F_ACK).await?;
        Ok(())
    }
}

/// Port requests.
pub struct PortHandle<'a> {
    dl: &'a Devlink,
}

impl<'a> PortHandle<'a> {
    /// `devlink port show [DEV]`: every port, or those of one device, sorted.
    pub async fn list(&self, dev: Option<&DevlinkDev>) -> Result<Vec<Port>> {
        // Newer kernels filter the dump by the handle; older ones ignore it, so filter here too.
        let attrs = dev.map(DevlinkDev::handle_attrs).unwrap_or_default();
        let op = || match dev {
            Some(d) => format!("list ports of {d}"),
            None => "list devlink ports".into(),
        };
        let replies = self
            .dl
            .request(op, cmd::PORT_GET, attrs, NLM_F_DUMP)
            .await?;
        let mut ports: Vec<Port> = replies
            .iter()
            .filter_map(Port::from_message)
            .filter(|p| dev.is_none_or(|d| &p.dev == d))
            .collect();
        ports.sort_by(|a, b| (&a.dev, a.index).cmp(&(&b.dev, b.index)));
        Ok(ports)
    }

    /// `devlink port show DEV/INDEX`.
    pub async fn get(&self, port: &PortRef) -> Result<Port> {
        let op = format!("get port {port}");
        let msg = self
            .dl
            .request_one(op.clone(), cmd::PORT_GET, port.handle_attrs())
            .await?;
        Port::from_message(&msg).ok_or_else(|| DevlinkError::Unexpected {
            op,
            detail: "reply without a port handle".into(),
        })
    }

    /// `devlink port function set DEV/INDEX ...`.
    pub fn function(&self, port: &PortRef) -> PortFunctionSetRequest<'a> {
        PortFunctionSetRequest {
            dl: self.dl,
            port: port.clone(),
            hw_addr: None,
            state: None,
        }
    }
}

/// `devlink port function set DEV/INDEX [hw_addr MAC] [state active|inactive]`; one request per
/// setting, hw_addr first, so an error names the one the driver refused.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct PortFunctionSetRequest<'a> {
    dl: &'a Devlink,
    port: PortRef,
    hw_addr: Option<MacAddr>,
    state: Option<PortFunctionState>,
}

impl PortFunctionSetRequest<'_> {
    /// `hw_addr MAC`.
    pub fn hw_addr(mut self, mac: MacAddr) -> Self {
        self.hw_addr = Some(mac);
        self
    }

    /// `state active|inactive`.
    pub fn state(mut self, state: PortFunctionState) -> Self {
        self.state = Some(state);
        self
    }

    /// The messages this request sends (for inspection and tests).
    pub fn messages(&self) -> Vec<DevlinkMessage> {
        let with = |f: PortFunctionAttr| {
            let mut attrs = self.port.handle_attrs();
            attrs.push(DevlinkAttr::PortFunction(vec![f]));
            DevlinkMessage::new(cmd::PORT_SET, attrs)
        };
        let mut out = Vec::new();
        if let Some(mac) = self.hw_addr {
            out.push(with(PortFunctionAttr::HwAddr(mac.0.to_vec())));
        }
        if let Some(s) = self.state {
            out.push(with(PortFunctionAttr::State(s.raw())));
        }
        out
    }

    /// Sends the settings.
    pub async fn execute(self) -> Result<()> {
        let mut whats = Vec::new();
        if let Some(mac) = self.hw_addr {
            whats.push(format!("hw_addr {mac}"));
        }
        if let Some(s) = self.state {
            whats.push(format!("state {s}"));
        }
        for (msg, what) in self.messages().into_iter().zip(whats) {
            let op = || format!("set port function {what} on {}", self.port);
            self.dl.request(op, msg.cmd, msg.attrs, NLM_F_ACK).await?;
        }
        Ok(())
    }
}

/// Rate object requests.
pub struct RateHandle<'a> {
    dl: &'a Devlink,
}

impl<'a> RateHandle<'a> {
    /// `devlink port function rate show [DEV]`.
    pub async fn list(&self, dev: Option<&DevlinkDev>) -> Result<Vec<Rate>> {
        let attrs = dev.map(DevlinkDev::handle_attrs).unwrap_or_default();
        let replies = self
            .dl
            .request(
                || "list devlink rates".into(),
                cmd::RATE_GET,
                attrs,
                NLM_F_DUMP,
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(Rate::from_message)
            .filter(|r| dev.is_none_or(|d| &r.dev == d))
            .collect())
    }

    /// The leaf rate object of a port.
    pub fn leaf(&self, port: &PortRef) -> RateSetRequest<'a> {
        RateSetRequest::new(self.dl, RateTarget::Leaf(port.clone()))
    }

    /// A rate node of a device.
    pub fn node(&self, dev: &DevlinkDev, name: &str) -> RateNodeHandle<'a> {
        RateNodeHandle {
            dl: self.dl,
            dev: dev.clone(),
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum RateTarget {
    Leaf(PortRef),
    Node(DevlinkDev, String),
}

impl RateTarget {
    fn attrs(&self) -> Vec<DevlinkAttr> {
        match self {
            Self::Leaf(p) => p.handle_attrs(),
            Self::Node(d, n) => {
                let mut a = d.handle_attrs();
                a.push(DevlinkAttr::RateNodeName(n.clone()));
                a
            }
        }
    }
}

impl fmt::Display for RateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf(p) => write!(f, "port {p}"),
            Self::Node(d, n) => write!(f, "rate node {d}/{n}"),
        }
    }
}

/// A rate node: add, delete, set.
pub struct RateNodeHandle<'a> {
    dl: &'a Devlink,
    dev: DevlinkDev,
    name: String,
}

impl<'a> RateNodeHandle<'a> {
    /// `devlink port function rate add DEV/NAME [tx_share N] [tx_max N]`.
    pub fn add(&self) -> RateSetRequest<'a> {
        let mut r = RateSetRequest::new(
            self.dl,
            RateTarget::Node(self.dev.clone(), self.name.clone()),
        );
        r.cmd = cmd::RATE_NEW;
        r
    }

    /// `devlink port function rate set DEV/NAME ...`.
    pub fn set(&self) -> RateSetRequest<'a> {
        RateSetRequest::new(
            self.dl,
            RateTarget::Node(self.dev.clone(), self.name.clone()),
        )
    }

    /// `devlink port function rate del DEV/NAME` (children must be unparented first).
    pub async fn del(&self) -> Result<()> {
        let target = RateTarget::Node(self.dev.clone(), self.name.clone());
        let op = || format!("delete {target}");
        self.dl
            .request(op, cmd::RATE_DEL, target.attrs(), NLM_F_ACK)
            .await?;
        Ok(())
    }
}

/// `devlink port function rate set|add ... [tx_share N] [tx_max N] [parent NODE | noparent]`,
/// one request. Rates are bytes per second.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct RateSetRequest<'a> {
    dl: &'a Devlink,
    target: RateTarget,
    cmd: u8,
    tx_share: Option<u64>,
    tx_max: Option<u64>,
    parent: Option<String>,
}

impl<'a> RateSetRequest<'a> {
    fn new(dl: &'a Devlink, target: RateTarget) -> Self {
        Self {
            dl,
            target,
            cmd: cmd::RATE_SET,
            tx_share: None,
            tx_max: None,
            parent: None,
        }
    }

    /// `tx_share BYTES_PER_SEC`.
    pub fn tx_share(mut self, bytes_per_sec: u64) -> Self {
        self.tx_share = Some(bytes_per_sec);
        self
    }

    /// `tx_max BYTES_PER_SEC`.
    pub fn tx_max(mut self, bytes_per_sec: u64) -> Self {
        self.tx_max = Some(bytes_per_sec);
        self
    }

    /// `parent NODE`.
    pub fn parent(mut self, node: &str) -> Self {
        self.parent = Some(node.to_string());
        self
    }

    /// `noparent` (the kernel takes an empty parent name as "detach").
    pub fn no_parent(mut self) -> Self {
        self.parent = Some(String::new());
        self
    }

    /// The request (for inspection and tests).
    pub fn message(&self) -> DevlinkMessage {
        let mut attrs = self.target.attrs();
        if let Some(v) = self.tx_share {
            attrs.push(DevlinkAttr::RateTxShare(v));
        }
        if let Some(v) = self.tx_max {
            attrs.push(DevlinkAttr::RateTxMax(v));
        }
        if let Some(p) = &self.parent {
            attrs.push(DevlinkAttr::RateParentNodeName(p.clone()));
        }
        DevlinkMessage::new(self.cmd, attrs)
    }

    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        let mut what = Vec::new();
        if let Some(v) = self.tx_share {
            what.push(format!("tx_share {v}"));
        }
        if let Some(v) = self.tx_max {
            what.push(format!("tx_max {v}"));
        }
        match self.parent.as_deref() {
            Some("") => what.push("noparent".into()),
            Some(p) => what.push(format!("parent {p}")),
            None => {}
        }
        let verb = if self.cmd == cmd::RATE_NEW {
            "add"
        } else {
            "set rate"
        };
        let op = || format!("{verb} {} of {}", what.join(" "), self.target).replace("  ", " ");
        let msg = self.message();
        self.dl.request(op, msg.cmd, msg.attrs, NLM_F_ACK).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NLA_F_NESTED, ParseableParametrized};
    use netlink_packet_generic::GenlHeader;

    use super::*;

    /// A hand-rolled attribute, independent of the encoder under test.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn parse(buf: &[u8], cmd: u8) -> DevlinkMessage {
        DevlinkMessage::parse_with_param(buf, GenlHeader { cmd, version: 1 }).unwrap()
    }

    fn emit(msg: &DevlinkMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    /// Reply to `devlink port show netdevsim/netdevsim10/129` for a VF representor, the
    /// attributes in the order devlink_nl_port_fill() puts them.
    fn vf_rep_port_reply() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(nla(1, &cstr("netdevsim")));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(3, &129u32.to_ne_bytes()));
        b.extend(nla(4, &2u16.to_ne_bytes()));
        b.extend(nla(6, &7u32.to_ne_bytes()));
        b.extend(nla(7, &cstr("eth4")));
        b.extend(nla(77, &4u16.to_ne_bytes()));
        b.extend(nla(150, &0u32.to_ne_bytes()));
        b.extend(nla(127, &0u16.to_ne_bytes()));
        b.extend(nla(128, &1u16.to_ne_bytes()));
        b.extend(nla(149, &[0]));
        let mut f = nla(1, &[0x02, 0, 0, 0, 0, 0x11]);
        f.extend(nla(2, &[1]));
        f.extend(nla(3, &[1]));
        b.extend(nla(145 | NLA_F_NESTED, &f));
        b.extend(nla(200, &[1, 2, 3, 4])); // an attribute from a newer kernel
        b
    }

    #[test]
    fn port_reply_decodes_to_a_representor_port() {
        let msg = parse(&vf_rep_port_reply(), cmd::PORT_GET);
        let port = Port::from_message(&msg).unwrap();
        assert_eq!(port.port_ref().to_string(), "netdevsim/netdevsim10/129");
        assert_eq!(port.flavour, Some(PortFlavour::PciVf));
        assert_eq!(port.netdev.as_deref(), Some("eth4"));
        assert_eq!(port.netdev_ifindex, Some(7));
        assert_eq!(
            (port.pf_number, port.vf_number, port.sf_number),
            (Some(0), Some(1), None)
        );
        assert_eq!((port.controller, port.external), (Some(0), Some(false)));
        let f = port.function.clone().unwrap();
        assert_eq!(f.hw_addr.as_deref(), Some("02:00:00:00:00:11"));
        assert_eq!(f.state, Some(PortFunctionState::Active));
        assert_eq!(f.opstate, Some(PortFunctionOpState::Attached));
        let json = serde_json::to_value(&port).unwrap();
        assert_eq!(json["dev"], "netdevsim/netdevsim10");
        assert_eq!(json["flavour"], "pcivf");
        assert_eq!(json["vfNumber"], 1);
        assert_eq!(json["sfNumber"], serde_json::Value::Null);
        // and the decoded message encodes back to the same bytes
        assert_eq!(emit(&msg), vf_rep_port_reply());
    }

    #[test]
    fn eswitch_set_request_bytes() {
        let dev: DevlinkDev = "pci/0000:01:00.0".parse().unwrap();
        let req = EswitchSetRequest {
            dl: &Devlink {
                handle: dummy_handle(),
            },
            dev,
            mode: Some(EswitchMode::Switchdev),
            inline: Some(InlineMode::Transport),
            encap: Some(EncapMode::Basic),
        };
        let mut want = nla(1, &cstr("pci"));
        want.extend(nla(2, &cstr("0000:01:00.0")));
        want.extend(nla(25, &1u16.to_ne_bytes()));
        want.extend(nla(26, &[3]));
        want.extend(nla(62, &[1]));
        let msg = req.message();
        assert_eq!(msg.cmd, 30);
        assert_eq!(emit(&msg), want);
    }

    #[test]
    fn eswitch_reply_without_inline_and_encap() {
        let mut b = nla(1, &cstr("netdevsim"));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(25, &0u16.to_ne_bytes()));
        let dev = DevlinkDev::new("netdevsim", "netdevsim10");
        let e = Eswitch::from_message(&dev, &parse(&b, cmd::ESWITCH_GET));
        assert_eq!(e.mode, Some(EswitchMode::Legacy));
        assert_eq!(
            e.mode.and_then(EswitchMode::to_inventory),
            Some(crds::inventory::EswitchMode::Legacy)
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"dev": "netdevsim/netdevsim10", "mode": "legacy"})
        );
    }

    #[test]
    fn port_function_set_nests_the_function_attributes() {
        let port: PortRef = "netdevsim/netdevsim10/128".parse().unwrap();
        let req = PortFunctionSetRequest {
            dl: &Devlink {
                handle: dummy_handle(),
            },
            port,
            hw_addr: Some("02:00:00:00:00:01".parse().unwrap()),
            state: Some(PortFunctionState::Inactive),
        };
        let msgs = req.messages();
        assert_eq!(msgs.len(), 2);
        let mut want = nla(1, &cstr("netdevsim"));
        want.extend(nla(2, &cstr("netdevsim10")));
        want.extend(nla(3, &128u32.to_ne_bytes()));
        want.extend(nla(145 | NLA_F_NESTED, &nla(1, &[2, 0, 0, 0, 0, 1])));
        assert_eq!(msgs[0].cmd, 6);
        assert_eq!(emit(&msgs[0]), want);
        assert_eq!(
            msgs[1].attrs[3],
            DevlinkAttr::PortFunction(vec![PortFunctionAttr::State(0)])
        );
    }

    #[test]
    fn info_reply_collects_versions() {
        let version = |name: &str, value: &str| {
            let mut v = nla(103, &cstr(name));
            v.extend(nla(104, &cstr(value)));
            v
        };
        let mut b = nla(1, &cstr("pci"));
        b.extend(nla(2, &cstr("0000:03:00.0")));
        b.extend(nla(98, &cstr("mlx5_core")));
        b.extend(nla(99, &cstr("MT2034X12345")));
        b.extend(nla(
            100 | NLA_F_NESTED,
            &version("board.id", "MT_0000000013"),
        ));
        b.extend(nla(
            101 | NLA_F_NESTED,
            &version("fw.version", "22.36.1010"),
        ));
        b.extend(nla(
            101 | NLA_F_NESTED,
            &version("fw.psid", "MT_0000000013"),
        ));
        b.extend(nla(
            102 | NLA_F_NESTED,
            &version("fw.version", "22.37.1014"),
        ));
        let dev = DevlinkDev::pci("0000:03:00.0");
        let info = DevInfo::from_message(&dev, &parse(&b, cmd::INFO_GET));
        assert_eq!(info.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(info.serial.as_deref(), Some("MT2034X12345"));
        assert_eq!(info.versions.fixed["board.id"], "MT_0000000013");
        assert_eq!(info.versions.running.len(), 2);
        assert_eq!(info.versions.stored["fw.version"], "22.37.1014");
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["versions"]["running"]["fw.version"], "22.36.1010");
        assert!(json.get("boardSerial").is_none());
    }

    #[test]
    fn rate_replies_and_requests() {
        // A leaf as devlink_nl_rate_fill() sends it: u64 rates behind DEVLINK_ATTR_PAD.
        let mut b = nla(1, &cstr("netdevsim"));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(165, &0u16.to_ne_bytes()));
        b.extend(nla(3, &128u32.to_ne_bytes()));
        b.extend(nla(61, &[]));
        b.extend(nla(166, &1_000_000u64.to_ne_bytes()));
        b.extend(nla(61, &[]));
        b.extend(nla(167, &5_000_000u64.to_ne_bytes()));
        b.extend(nla(169, &cstr("group1")));
        let rate = Rate::from_message(&parse(&b, cmd::RATE_GET)).unwrap();
        assert_eq!(rate.object, RateObject::Leaf { port: 128 });
        assert_eq!(
            (rate.tx_share, rate.tx_max),
            (Some(1_000_000), Some(5_000_000))
        );
        assert_eq!(rate.parent.as_deref(), Some("group1"));

        let dl = Devlink {
            handle: dummy_handle(),
        };
        let dev = DevlinkDev::new("netdevsim", "netdevsim10");
        let add = dl
            .rate()
            .node(&dev, "group1")
            .add()
            .tx_max(10_000_000)
            .message();
        assert_eq!(add.cmd, cmd::RATE_NEW);
        let mut want = nla(1, &cstr("netdevsim"));
        want.extend(nla(2, &cstr("netdevsim10")));
        want.extend(nla(168, &cstr("group1")));
        want.extend(nla(167, &10_000_000u64.to_ne_bytes()));
        assert_eq!(emit(&add), want);
        let port = PortRef { dev, index: 128 };
        let unparent = dl.rate().leaf(&port).no_parent().message();
        assert_eq!(unparent.cmd, cmd::RATE_SET);
        assert_eq!(
            unparent.attrs.last(),
            Some(&DevlinkAttr::RateParentNodeName(String::new()))
        );
    }

    #[test]
    fn handles_parse_and_print() {
        let d: DevlinkDev = "pci/0000:01:00.0".parse().unwrap();
        assert_eq!((d.bus.as_str(), d.name.as_str()), ("pci", "0000:01:00.0"));
        let p: PortRef = "auxiliary/mlx5_core.sf.2/65535".parse().unwrap();
        assert_eq!(p.index, 65535);
        assert_eq!(p.to_string(), "auxiliary/mlx5_core.sf.2/65535");
        for bad in ["", "pci", "pci/", "/x", "pci/a/b/c"] {
            assert!(bad.parse::<DevlinkDev>().is_err(), "{bad}");
        }
        for bad in ["pci/0000:01:00.0", "pci/0000:01:00.0/x", "1"] {
            assert!(bad.parse::<PortRef>().is_err(), "{bad}");
        }
        assert_eq!(
            "switchdev".parse::<EswitchMode>().unwrap(),
            EswitchMode::Switchdev
        );
        assert!("offload".parse::<EswitchMode>().is_err());
        assert_eq!(PortFlavour::from_raw(7).to_string(), "pcisf");
        assert_eq!(PortFlavour::from_raw(42).to_string(), "42");
    }

    #[test]
    fn truncated_replies_do_not_panic() {
        let full = vf_rep_port_reply();
        for cut in 0..full.len() {
            let _ =
                DevlinkMessage::parse_with_param(&full[..cut], GenlHeader { cmd: 5, version: 1 });
        }
    }

    /// A handle for building requests in tests; nothing is sent through it.
    fn dummy_handle() -> GenetlinkHandle {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { genl::connect().unwrap() })
    }
}
