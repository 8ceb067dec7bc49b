//! The devlink generic netlink message: `DevlinkMessage { cmd, attrs }` and the attributes we
//! use, with their encoding. Numbers are from include/uapi/linux/devlink.h (ABI, never
//! reordered).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, emit_u16, emit_u32, emit_u64, parse_string, parse_u8, parse_u16,
    parse_u32, parse_u64,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::netlink::genl::emit_cstr;

/// `DEVLINK_GENL_NAME`.
pub const FAMILY_NAME: &str = "devlink";
/// `DEVLINK_GENL_VERSION`.
pub const FAMILY_VERSION: u8 = 1;

/// `enum devlink_command` values used here.
pub mod cmd {
    /// `DEVLINK_CMD_GET` (dump: every instance).
    pub const GET: u8 = 1;
    /// `DEVLINK_CMD_PORT_GET` (dump: every port).
    pub const PORT_GET: u8 = 5;
    /// `DEVLINK_CMD_PORT_SET`.
    pub const PORT_SET: u8 = 6;
    /// `DEVLINK_CMD_ESWITCH_GET`.
    pub const ESWITCH_GET: u8 = 29;
    /// `DEVLINK_CMD_ESWITCH_SET`.
    pub const ESWITCH_SET: u8 = 30;
    /// `DEVLINK_CMD_INFO_GET`.
    pub const INFO_GET: u8 = 51;
    /// `DEVLINK_CMD_RATE_GET` (dump: every rate object).
    pub const RATE_GET: u8 = 74;
    /// `DEVLINK_CMD_RATE_SET`.
    pub const RATE_SET: u8 = 75;
    /// `DEVLINK_CMD_RATE_NEW` (a rate node).
    pub const RATE_NEW: u8 = 76;
    /// `DEVLINK_CMD_RATE_DEL` (a rate node).
    pub const RATE_DEL: u8 = 77;
}

/// `enum devlink_attr` values used here.
pub mod attr {
    #![allow(missing_docs)]
    pub const BUS_NAME: u16 = 1;
    pub const DEV_NAME: u16 = 2;
    pub const PORT_INDEX: u16 = 3;
    pub const PORT_TYPE: u16 = 4;
    pub const PORT_NETDEV_IFINDEX: u16 = 6;
    pub const PORT_NETDEV_NAME: u16 = 7;
    pub const PORT_IBDEV_NAME: u16 = 8;
    pub const ESWITCH_MODE: u16 = 25;
    pub const ESWITCH_INLINE_MODE: u16 = 26;
    pub const ESWITCH_ENCAP_MODE: u16 = 62;
    pub const PORT_FLAVOUR: u16 = 77;
    pub const PORT_NUMBER: u16 = 78;
    pub const INFO_DRIVER_NAME: u16 = 98;
    pub const INFO_SERIAL_NUMBER: u16 = 99;
    pub const INFO_VERSION_FIXED: u16 = 100;
    pub const INFO_VERSION_RUNNING: u16 = 101;
    pub const INFO_VERSION_STORED: u16 = 102;
    pub const INFO_VERSION_NAME: u16 = 103;
    pub const INFO_VERSION_VALUE: u16 = 104;
    pub const PORT_PCI_PF_NUMBER: u16 = 127;
    pub const PORT_PCI_VF_NUMBER: u16 = 128;
    pub const PORT_FUNCTION: u16 = 145;
    pub const INFO_BOARD_SERIAL_NUMBER: u16 = 146;
    pub const PORT_EXTERNAL: u16 = 149;
    pub const PORT_CONTROLLER_NUMBER: u16 = 150;
    pub const PORT_PCI_SF_NUMBER: u16 = 164;
    pub const RATE_TYPE: u16 = 165;
    pub const RATE_TX_SHARE: u16 = 166;
    pub const RATE_TX_MAX: u16 = 167;
    pub const RATE_NODE_NAME: u16 = 168;
    pub const RATE_PARENT_NODE_NAME: u16 = 169;
}

/// `DEVLINK_PORT_FUNCTION_ATTR_*` (inside `DEVLINK_ATTR_PORT_FUNCTION`).
pub mod port_fn_attr {
    /// Binary MAC.
    pub const HW_ADDR: u16 = 1;
    /// u8: inactive 0, active 1.
    pub const STATE: u16 = 2;
    /// u8: detached 0, attached 1.
    pub const OPSTATE: u16 = 3;
}

/// One devlink attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevlinkAttr {
    /// `BUS_NAME` ("pci", "netdevsim", "auxiliary").
    BusName(String),
    /// `DEV_NAME` ("0000:01:00.0", "netdevsim10").
    DevName(String),
    /// `PORT_INDEX`.
    PortIndex(u32),
    /// `PORT_TYPE` (notset 0, auto 1, eth 2, ib 3).
    PortType(u16),
    /// `PORT_NETDEV_IFINDEX`.
    PortNetdevIfindex(u32),
    /// `PORT_NETDEV_NAME` (the representor or uplink netdev).
    PortNetdevName(String),
    /// `PORT_IBDEV_NAME`.
    PortIbdevName(String),
    /// `ESWITCH_MODE` (legacy 0, switchdev 1, switchdev_inactive 2).
    EswitchMode(u16),
    /// `ESWITCH_INLINE_MODE` (none 0, link 1, network 2, transport 3).
    EswitchInlineMode(u8),
    /// `ESWITCH_ENCAP_MODE` (none 0, basic 1).
    EswitchEncapMode(u8),
    /// `PORT_FLAVOUR`.
    PortFlavour(u16),
    /// `PORT_NUMBER` (physical port number).
    PortNumber(u32),
    /// `INFO_DRIVER_NAME`.
    InfoDriverName(String),
    /// `INFO_SERIAL_NUMBER`.
    InfoSerialNumber(String),
    /// `INFO_VERSION_FIXED` nest of `InfoVersionName`/`InfoVersionValue`.
    InfoVersionFixed(Vec<DevlinkAttr>),
    /// `INFO_VERSION_RUNNING` nest.
    InfoVersionRunning(Vec<DevlinkAttr>),
    /// `INFO_VERSION_STORED` nest.
    InfoVersionStored(Vec<DevlinkAttr>),
    /// `INFO_VERSION_NAME`.
    InfoVersionName(String),
    /// `INFO_VERSION_VALUE`.
    InfoVersionValue(String),
    /// `PORT_PCI_PF_NUMBER`.
    PortPciPfNumber(u16),
    /// `PORT_PCI_VF_NUMBER`.
    PortPciVfNumber(u16),
    /// `PORT_FUNCTION` nest.
    PortFunction(Vec<PortFunctionAttr>),
    /// `INFO_BOARD_SERIAL_NUMBER`.
    InfoBoardSerialNumber(String),
    /// `PORT_EXTERNAL` (the function sits on an external controller, e.g. a DPU's host).
    PortExternal(u8),
    /// `PORT_CONTROLLER_NUMBER`.
    PortControllerNumber(u32),
    /// `PORT_PCI_SF_NUMBER`.
    PortPciSfNumber(u32),
    /// `RATE_TYPE` (leaf 0, node 1).
    RateType(u16),
    /// `RATE_TX_SHARE` in bytes per second.
    RateTxShare(u64),
    /// `RATE_TX_MAX` in bytes per second.
    RateTxMax(u64),
    /// `RATE_NODE_NAME`.
    RateNodeName(String),
    /// `RATE_PARENT_NODE_NAME` (empty string: no parent).
    RateParentNodeName(String),
    /// Anything else, kept as raw bytes.
    Other(DefaultNla),
}

/// One attribute inside `DEVLINK_ATTR_PORT_FUNCTION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortFunctionAttr {
    /// `HW_ADDR` (6-byte MAC for Ethernet).
    HwAddr(Vec<u8>),
    /// `STATE`.
    State(u8),
    /// `OPSTATE`.
    OpState(u8),
    /// Anything else.
    Other(DefaultNla),
}

/// A devlink generic netlink message: the command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevlinkMessage {
    /// `DEVLINK_CMD_*` (replies carry the same command, or `*_NEW` for dumps of objects).
    pub cmd: u8,
    /// Attributes, in order.
    pub attrs: Vec<DevlinkAttr>,
}

impl DevlinkMessage {
    /// A message with these attributes.
    pub fn new(cmd: u8, attrs: Vec<DevlinkAttr>) -> Self {
        Self { cmd, attrs }
    }

    /// The first attribute `pick` accepts.
    pub fn find<'a, T>(&'a self, pick: impl Fn(&'a DevlinkAttr) -> Option<T>) -> Option<T> {
        self.attrs.iter().find_map(pick)
    }
}

impl GenlFamily for DevlinkMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for DevlinkMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for DevlinkMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Self {
            cmd: header.cmd,
            attrs: parse_attrs(buf)?,
        })
    }
}

fn parse_attrs(buf: &[u8]) -> Result<Vec<DevlinkAttr>, DecodeError> {
    let mut attrs = Vec::new();
    for nla in NlasIterator::new(buf) {
        attrs.push(DevlinkAttr::parse(&nla?)?);
    }
    Ok(attrs)
}

fn nested(attrs: &[DevlinkAttr]) -> usize {
    attrs.buffer_len()
}

impl Nla for DevlinkAttr {
    fn value_len(&self) -> usize {
        use DevlinkAttr::*;
        match self {
            BusName(s)
            | DevName(s)
            | PortNetdevName(s)
            | PortIbdevName(s)
            | InfoDriverName(s)
            | InfoSerialNumber(s)
            | InfoVersionName(s)
            | InfoVersionValue(s)
            | InfoBoardSerialNumber(s)
            | RateNodeName(s)
            | RateParentNodeName(s) => s.len() + 1,
            EswitchInlineMode(_) | EswitchEncapMode(_) | PortExternal(_) => 1,
            PortType(_) | EswitchMode(_) | PortFlavour(_) | PortPciPfNumber(_)
            | PortPciVfNumber(_) | RateType(_) => 2,
            PortIndex(_)
            | PortNetdevIfindex(_)
            | PortNumber(_)
            | PortControllerNumber(_)
            | PortPciSfNumber(_) => 4,
            RateTxShare(_) | RateTxMax(_) => 8,
            InfoVersionFixed(a) | InfoVersionRunning(a) | InfoVersionStored(a) => nested(a),
            PortFunction(a) => a.as_slice().buffer_len(),
            Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use DevlinkAttr::*;
        match self {
            BusName(_) => attr::BUS_NAME,
            DevName(_) => attr::DEV_NAME,
            PortIndex(_) => attr::PORT_INDEX,
            PortType(_) => attr::PORT_TYPE,
            PortNetdevIfindex(_) => attr::PORT_NETDEV_IFINDEX,
            PortNetdevName(_) => attr::PORT_NETDEV_NAME,
            PortIbdevName(_) => attr::PORT_IBDEV_NAME,
            EswitchMode(_) => attr::ESWITCH_MODE,
            EswitchInlineMode(_) => attr::ESWITCH_INLINE_MODE,
            EswitchEncapMode(_) => attr::ESWITCH_ENCAP_MODE,
            PortFlavour(_) => attr::PORT_FLAVOUR,
            PortNumber(_) => attr::PORT_NUMBER,
            InfoDriverName(_) => attr::INFO_DRIVER_NAME,
            InfoSerialNumber(_) => attr::INFO_SERIAL_NUMBER,
            InfoVersionFixed(_) => attr::INFO_VERSION_FIXED | NLA_F_NESTED,
            InfoVersionRunning(_) => attr::INFO_VERSION_RUNNING | NLA_F_NESTED,
            InfoVersionStored(_) => attr::INFO_VERSION_STORED | NLA_F_NESTED,
            InfoVersionName(_) => attr::INFO_VERSION_NAME,
            InfoVersionValue(_) => attr::INFO_VERSION_VALUE,
            PortPciPfNumber(_) => attr::PORT_PCI_PF_NUMBER,
            PortPciVfNumber(_) => attr::PORT_PCI_VF_NUMBER,
            PortFunction(_) => attr::PORT_FUNCTION | NLA_F_NESTED,
            InfoBoardSerialNumber(_) => attr::INFO_BOARD_SERIAL_NUMBER,
            PortExternal(_) => attr::PORT_EXTERNAL,
            PortControllerNumber(_) => attr::PORT_CONTROLLER_NUMBER,
            PortPciSfNumber(_) => attr::PORT_PCI_SF_NUMBER,
            RateType(_) => attr::RATE_TYPE,
            RateTxShare(_) => attr::RATE_TX_SHARE,
            RateTxMax(_) => attr::RATE_TX_MAX,
            RateNodeName(_) => attr::RATE_NODE_NAME,
            RateParentNodeName(_) => attr::RATE_PARENT_NODE_NAME,
            Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        use DevlinkAttr::*;
        // The emit_* helpers fail only on a short buffer, and value_len() sized it.
        match self {
            BusName(s)
            | DevName(s)
            | PortNetdevName(s)
            | PortIbdevName(s)
            | InfoDriverName(s)
            | InfoSerialNumber(s)
            | InfoVersionName(s)
            | InfoVersionValue(s)
            | InfoBoardSerialNumber(s)
            | RateNodeName(s)
            | RateParentNodeName(s) => emit_cstr(s, buffer),
            EswitchInlineMode(v) | EswitchEncapMode(v) | PortExternal(v) => buffer[0] = *v,
            PortType(v) | EswitchMode(v) | PortFlavour(v) | PortPciPfNumber(v)
            | PortPciVfNumber(v) | RateType(v) => {
                let _ = emit_u16(buffer, *v);
            }
            PortIndex(v)
            | PortNetdevIfindex(v)
            | PortNumber(v)
            | PortControllerNumber(v)
            | PortPciSfNumber(v) => {
                let _ = emit_u32(buffer, *v);
            }
            RateTxShare(v) | RateTxMax(v) => {
                let _ = emit_u64(buffer, *v);
            }
            InfoVersionFixed(a) | InfoVersionRunning(a) | InfoVersionStored(a) => {
                a.as_slice().emit(buffer)
            }
            PortFunction(a) => a.as_slice().emit(buffer),
            Other(o) => o.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DevlinkAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        use DevlinkAttr::*;
        let v = buf.value();
        let s = || parse_string(v);
        Ok(match buf.kind() {
            attr::BUS_NAME => BusName(s()?),
            attr::DEV_NAME => DevName(s()?),
            attr::PORT_INDEX => PortIndex(parse_u32(v)?),
            attr::PORT_TYPE => PortType(parse_u16(v)?),
            attr::PORT_NETDEV_IFINDEX => PortNetdevIfindex(parse_u32(v)?),
            attr::PORT_NETDEV_NAME => PortNetdevName(s()?),
            attr::PORT_IBDEV_NAME => PortIbdevName(s()?),
            attr::ESWITCH_MODE => EswitchMode(parse_u16(v)?),
            attr::ESWITCH_INLINE_MODE => EswitchInlineMode(parse_u8(v)?),
            attr::ESWITCH_ENCAP_MODE => EswitchEncapMode(parse_u8(v)?),
            attr::PORT_FLAVOUR => PortFlavour(parse_u16(v)?),
            attr::PORT_NUMBER => PortNumber(parse_u32(v)?),
            attr::INFO_DRIVER_NAME => InfoDriverName(s()?),
            attr::INFO_SERIAL_NUMBER => InfoSerialNumber(s()?),
            attr::INFO_VERSION_FIXED => InfoVersionFixed(parse_attrs(v)?),
            attr::INFO_VERSION_RUNNING => InfoVersionRunning(parse_attrs(v)?),
            attr::INFO_VERSION_STORED => InfoVersionStored(parse_attrs(v)?),
            attr::INFO_VERSION_NAME => InfoVersionName(s()?),
            attr::INFO_VERSION_VALUE => InfoVersionValue(s()?),
            attr::PORT_PCI_PF_NUMBER => PortPciPfNumber(parse_u16(v)?),
            attr::PORT_PCI_VF_NUMBER => PortPciVfNumber(parse_u16(v)?),
            attr::PORT_FUNCTION => {
                let mut fns = Vec::new();
                for nla in NlasIterator::new(v) {
                    fns.push(PortFunctionAttr::parse(&nla?)?);
                }
                PortFunction(fns)
            }
            attr::INFO_BOARD_SERIAL_NUMBER => InfoBoardSerialNumber(s()?),
            attr::PORT_EXTERNAL => PortExternal(parse_u8(v)?),
            attr::PORT_CONTROLLER_NUMBER => PortControllerNumber(parse_u32(v)?),
            attr::PORT_PCI_SF_NUMBER => PortPciSfNumber(parse_u32(v)?),
            attr::RATE_TYPE => RateType(parse_u16(v)?),
            attr::RATE_TX_SHARE => RateTxShare(parse_u64(v)?),
            attr::RATE_TX_MAX => RateTxMax(parse_u64(v)?),
            attr::RATE_NODE_NAME => RateNodeName(s()?),
            attr::RATE_PARENT_NODE_NAME => RateParentNodeName(s()?),
            _ => Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for PortFunctionAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::HwAddr(a) => a.len(),
            Self::State(_) | Self::OpState(_) => 1,
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::HwAddr(_) => port_fn_attr::HW_ADDR,
            Self::State(_) => port_fn_attr::STATE,
            Self::OpState(_) => port_fn_attr::OPSTATE,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::HwAddr(a) => buffer.copy_from_slice(a),
            Self::State(v) | Self::OpState(v) => buffer[0] = *v,
            Self::Other(o) => o.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for PortFunctionAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        Ok(match buf.kind() {
            port_fn_attr::HW_ADDR => Self::HwAddr(buf.value().to_vec()),
            port_fn_attr::STATE => Self::State(parse_u8(buf.value())?),
            port_fn_attr::OPSTATE => Self::OpState(parse_u8(buf.value())?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
