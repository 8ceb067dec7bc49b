//! ethtool offload features over generic netlink (`ethtool -k` / `ethtool -K`).
//!
//! ```text
//!   Ethtool::connect() ──features()──► FeaturesHandle ──get(dev)──► FeaturesGetRequest::execute()
//!                                                      └─set(dev)──► FeaturesSetRequest::execute()
//!        ETHTOOL_MSG_FEATURES_GET / _SET  (family "ethtool" v1, include/uapi/linux/ethtool_netlink*.h)
//! ```
//!
//! The `ethtool` crate (0.3) reads features but cannot set them (its bitset encoder is a
//! `todo!()`), and its reader drops feature bit 0 (`tx-scatter-gather`). So both directions are
//! built here on genetlink, in the verbose bitset form: bits named, not indexed, which is what a
//! SET wants and what lets a GET be read without the strings table.
//!
//! Feature names are the kernel's (`hw-tc-offload`, `l2-fwd-offload`, `rx-gro`, ...). The legacy
//! names of `ethtool -K` are accepted too and expanded the way ethtool does: `tx-checksumming` (or
//! `tx`) is every `tx-checksum-*` bit the device reports, `tso` is `tx-tcp*-segmentation`, and so
//! on. As with `ethtool -K`, a request fails only when none of the requested bits reached the
//! requested state (a fixed feature, or one the driver refused); a partial result is reported in
//! [`FeatureChange::not_applied`].

use std::{collections::BTreeMap, fmt::Debug, io};

use genetlink::GenetlinkHandle;
use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, NLM_F_ACK, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized, emit_u32, parse_string, parse_u32,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use serde::Serialize;

use crate::netlink::{
    KernelError,
    genl::{self, GenlFailure, emit_cstr},
};

/// `ETHTOOL_MSG_FEATURES_GET` (request and reply share the number).
pub const ETHTOOL_MSG_FEATURES_GET: u8 = 11;
/// `ETHTOOL_MSG_FEATURES_SET` (request); `ETHTOOL_MSG_FEATURES_SET_REPLY` is 12 as well.
pub const ETHTOOL_MSG_FEATURES_SET: u8 = 12;

const A_HEADER_DEV_INDEX: u16 = 1;
const A_HEADER_DEV_NAME: u16 = 2;
const A_HEADER_FLAGS: u16 = 3;

const A_FEATURES_HEADER: u16 = 1;
const A_FEATURES_HW: u16 = 2;
const A_FEATURES_WANTED: u16 = 3;
const A_FEATURES_ACTIVE: u16 = 4;
const A_FEATURES_NOCHANGE: u16 = 5;

const A_BITSET_NOMASK: u16 = 1;
const A_BITSET_SIZE: u16 = 2;
const A_BITSET_BITS: u16 = 3;
const A_BITSET_VALUE: u16 = 4;
const A_BITSET_MASK: u16 = 5;
const A_BITSET_BITS_BIT: u16 = 1;
const A_BITSET_BIT_INDEX: u16 = 1;
const A_BITSET_BIT_NAME: u16 = 2;
const A_BITSET_BIT_VALUE: u16 = 3;

/// `ethtool -K` legacy names: (short, long, kernel name pattern with at most one `*`), from
/// `off_flag_def` in ethtool's common.c.
const LEGACY_NAMES: &[(&str, &str, &str)] = &[
    ("rx", "rx-checksumming", "rx-checksum"),
    ("tx", "tx-checksumming", "tx-checksum-*"),
    ("sg", "scatter-gather", "tx-scatter-gather*"),
    ("tso", "tcp-segmentation-offload", "tx-tcp*-segmentation"),
    ("ufo", "udp-fragmentation-offload", "tx-udp-fragmentation"),
    (
        "gso",
        "generic-segmentation-offload",
        "tx-generic-segmentation",
    ),
    ("gro", "generic-receive-offload", "rx-gro"),
    ("lro", "large-receive-offload", "rx-lro"),
    ("rxvlan", "rx-vlan-offload", "rx-vlan-hw-parse"),
    ("txvlan", "tx-vlan-offload", "tx-vlan-hw-insert"),
    ("ntuple", "ntuple-filters", "rx-ntuple-filter"),
    ("rxhash", "receive-hashing", "rx-hashing"),
];

/// Errors of the ethtool client; each names the interface.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EthtoolError {
    /// The kernel has no ethtool netlink interface (`CONFIG_ETHTOOL_NETLINK` off).
    #[error(
        "ethtool netlink is not available on this kernel (no generic netlink family \"ethtool\")"
    )]
    Unavailable,
    /// The generic netlink socket could not be opened.
    #[error("cannot open a generic netlink socket: {0}")]
    Connect(io::Error),
    /// The kernel refused a request, e.g. "get features of eth9: no device matches name: No such
    /// device (os error 19)".
    #[error("{op} {ifname}: {kernel}")]
    Kernel {
        /// What was asked: "get features of", "set features on".
        op: &'static str,
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The device reports no feature of that name (nor is it a legacy `ethtool -K` name).
    #[error("{ifname} has no feature {feature:?}")]
    UnknownFeature {
        /// The interface.
        ifname: String,
        /// The name asked for.
        feature: String,
    },
    /// None of the requested bits reached the requested state: the feature is fixed on this
    /// device or the driver refused it (`ethtool -K`: "Could not change any device features").
    #[error("cannot set {} on {ifname}: fixed on this device or refused by the driver", list(.features))]
    NotChanged {
        /// The interface.
        ifname: String,
        /// The requested bits and the values asked for.
        features: Vec<(String, bool)>,
    },
    /// The kernel answered something unexpected, or the connection went away.
    #[error("{op} {ifname}: unexpected ethtool reply: {detail}")]
    Unexpected {
        /// What was asked.
        op: &'static str,
        /// The interface.
        ifname: String,
        /// What went wrong.
        detail: String,
    },
}

fn list(features: &[(String, bool)]) -> String {
    features
        .iter()
        .map(|(n, on)| format!("{n}={}", if *on { "on" } else { "off" }))
        .collect::<Vec<_>>()
        .join(", ")
}

impl EthtoolError {
    /// The kernel errno, when this error is a kernel answer.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { kernel, .. } => Some(kernel.errno),
            _ => None,
        }
    }

    fn from_failure(op: &'static str, ifname: &str, failure: GenlFailure) -> Self {
        match failure {
            GenlFailure::NoFamily => Self::Unavailable,
            GenlFailure::Kernel(kernel) => Self::Kernel {
                op,
                ifname: ifname.to_string(),
                kernel,
            },
            GenlFailure::Other(detail) => Self::Unexpected {
                op,
                ifname: ifname.to_string(),
                detail,
            },
        }
    }
}

// === messages ===

/// One bit of a bitset in the verbose form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitsetBit {
    /// Bit index.
    pub index: Option<u32>,
    /// Bit name (`hw-tc-offload`).
    pub name: Option<String>,
    /// `ETHTOOL_A_BITSET_BIT_VALUE` present.
    pub value: bool,
}

/// An ethtool bitset (`ETHTOOL_A_BITSET_*`), verbose (listed bits) or compact (value/mask words).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitset {
    /// `ETHTOOL_A_BITSET_NOMASK`: listed bits are the set ones; otherwise listed bits are the
    /// mask and `value` says which are set.
    pub nomask: bool,
    /// `ETHTOOL_A_BITSET_SIZE`.
    pub size: Option<u32>,
    /// `ETHTOOL_A_BITSET_BITS` (verbose form).
    pub bits: Vec<BitsetBit>,
    /// `ETHTOOL_A_BITSET_VALUE` (compact form, u32 words).
    pub value: Option<Vec<u8>>,
    /// `ETHTOOL_A_BITSET_MASK` (compact form, u32 words).
    pub mask: Option<Vec<u8>>,
}

impl Bitset {
    /// A verbose bitset that sets the named bits to the given values and leaves the rest
    /// unchanged (the listed bits are the mask), the form `ethtool -K` sends.
    pub fn named(bits: &[(String, bool)]) -> Self {
        Self {
            bits: bits
                .iter()
                .map(|(name, on)| BitsetBit {
                    index: None,
                    name: Some(name.clone()),
                    value: *on,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The listed bits that are set (all of them in the nomask form).
    pub fn set_names(&self) -> impl Iterator<Item = &str> {
        self.bits
            .iter()
            .filter(|b| self.nomask || b.value)
            .filter_map(|b| b.name.as_deref())
    }

    /// (name, value) of every listed bit.
    pub fn named_values(&self) -> impl Iterator<Item = (&str, bool)> {
        self.bits
            .iter()
            .filter_map(|b| b.name.as_deref().map(|n| (n, self.nomask || b.value)))
    }
}

/// A top-level attribute of a features message (`ETHTOOL_A_FEATURES_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeaturesAttr {
    /// `ETHTOOL_A_FEATURES_HEADER`: device and flags.
    Header(Vec<HeaderAttr>),
    /// `ETHTOOL_A_FEATURES_HW`: changeable features (value), all named features (mask).
    Hw(Bitset),
    /// `ETHTOOL_A_FEATURES_WANTED`: requested features (in a SET: the bits to change).
    Wanted(Bitset),
    /// `ETHTOOL_A_FEATURES_ACTIVE`: active features.
    Active(Bitset),
    /// `ETHTOOL_A_FEATURES_NOCHANGE`: features that can never change.
    NoChange(Bitset),
    /// Anything else.
    Other(DefaultNla),
}

/// An attribute of the common request header (`ETHTOOL_A_HEADER_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderAttr {
    /// `ETHTOOL_A_HEADER_DEV_INDEX`.
    DevIndex(u32),
    /// `ETHTOOL_A_HEADER_DEV_NAME`.
    DevName(String),
    /// `ETHTOOL_A_HEADER_FLAGS` (`ETHTOOL_FLAG_COMPACT_BITSETS` = 1, `_OMIT_REPLY` = 2).
    Flags(u32),
    /// Anything else.
    Other(DefaultNla),
}

/// A features message of the "ethtool" generic netlink family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeaturesMessage {
    /// `ETHTOOL_MSG_FEATURES_GET` or `_SET` (replies use the same numbers).
    pub cmd: u8,
    /// Attributes.
    pub attrs: Vec<FeaturesAttr>,
}

impl FeaturesMessage {
    /// `ETHTOOL_MSG_FEATURES_GET` for `ifname`.
    pub fn get(ifname: &str) -> Self {
        Self {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![FeaturesAttr::Header(vec![HeaderAttr::DevName(
                ifname.to_string(),
            )])],
        }
    }

    /// `ETHTOOL_MSG_FEATURES_SET` for `ifname`, changing only the named bits.
    pub fn set(ifname: &str, bits: &[(String, bool)]) -> Self {
        Self {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                FeaturesAttr::Header(vec![HeaderAttr::DevName(ifname.to_string())]),
                FeaturesAttr::Wanted(Bitset::named(bits)),
            ],
        }
    }

    fn bitset(&self, pick: fn(&FeaturesAttr) -> Option<&Bitset>) -> Option<&Bitset> {
        self.attrs.iter().find_map(pick)
    }
}

impl GenlFamily for FeaturesMessage {
    fn family_name() -> &'static str {
        "ethtool"
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for FeaturesMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for FeaturesMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            attrs.push(FeaturesAttr::parse(&nla?)?);
        }
        Ok(Self {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// Attributes of a bitset nest, as emitted.
enum BitsetNla<'a> {
    NoMask,
    Size(u32),
    Bits(&'a [BitsetBit]),
    Words(u16, &'a [u8]),
}

/// `ETHTOOL_A_BITSET_BITS_BIT` nest.
struct BitNla<'a>(&'a BitsetBit);

/// One attribute inside a `_BIT` nest.
enum BitFieldNla<'a> {
    Index(u32),
    Name(&'a str),
    Value,
}

impl Nla for BitFieldNla<'_> {
    fn value_len(&self) -> usize {
        match self {
            Self::Index(_) => 4,
            Self::Name(n) => n.len() + 1,
            Self::Value => 0,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Index(_) => A_BITSET_BIT_INDEX,
            Self::Name(_) => A_BITSET_BIT_NAME,
            Self::Value => A_BITSET_BIT_VALUE,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Index(i) => {
                let _ = emit_u32(buffer, *i);
            }
            Self::Name(n) => emit_cstr(n, buffer),
            Self::Value => {}
        }
    }
}

impl BitNla<'_> {
    fn fields(&self) -> Vec<BitFieldNla<'_>> {
        let mut v = Vec::new();
        if let Some(i) = self.0.index {
            v.push(BitFieldNla::Index(i));
        }
        if let Some(n) = &self.0.name {
            v.push(BitFieldNla::Name(n));
        }
        if self.0.value {
            v.push(BitFieldNla::Value);
        }
        v
    }
}

impl Nla for BitNla<'_> {
    fn value_len(&self) -> usize {
        self.fields().as_slice().buffer_len()
    }

    fn kind(&self) -> u16 {
        A_BITSET_BITS_BIT | NLA_F_NESTED
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        self.fields().as_slice().emit(buffer)
    }
}

impl Nla for BitsetNla<'_> {
    fn value_len(&self) -> usize {
        match self {
            Self::NoMask => 0,
            Self::Size(_) => 4,
            Self::Bits(bits) => bits.iter().map(|b| BitNla(b).buffer_len()).sum(),
            Self::Words(_, w) => w.len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::NoMask => A_BITSET_NOMASK,
            Self::Size(_) => A_BITSET_SIZE,
            Self::Bits(_) => A_BITSET_BITS | NLA_F_NESTED,
            Self::Words(kind, _) => *kind,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::NoMask => {}
            Self::Size(s) => {
                let _ = emit_u32(buffer, *s);
            }
            Self::Bits(bits) => {
                let mut at = 0;
                for bit in bits.iter() {
                    let nla = BitNla(bit);
                    let len = nla.buffer_len();
                    nla.emit(&mut buffer[at..at + len]);
                    at += len;
                }
            }
            Self::Words(_, w) => buffer.copy_from_slice(w),
        }
    }
}

impl Bitset {
    fn nlas(&self) -> Vec<BitsetNla<'_>> {
        let mut v = Vec::new();
        if self.nomask {
            v.push(BitsetNla::NoMask);
        }
        if let Some(s) = self.size {
            v.push(BitsetNla::Size(s));
        }
        if !self.bits.is_empty() {
            v.push(BitsetNla::Bits(&self.bits));
        }
        if let Some(w) = &self.value {
            v.push(BitsetNla::Words(A_BITSET_VALUE, w));
        }
        if let Some(w) = &self.mask {
            v.push(BitsetNla::Words(A_BITSET_MASK, w));
        }
        v
    }

    fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut set = Self::default();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            match nla.kind() {
                A_BITSET_NOMASK => set.nomask = true,
                A_BITSET_SIZE => set.size = Some(parse_u32(nla.value())?),
                A_BITSET_VALUE => set.value = Some(nla.value().to_vec()),
                A_BITSET_MASK => set.mask = Some(nla.value().to_vec()),
                A_BITSET_BITS => {
                    for bit in NlasIterator::new(nla.value()) {
                        let bit = bit?;
                        if bit.kind() != A_BITSET_BITS_BIT {
                            continue;
                        }
                        let mut b = BitsetBit::default();
                        for field in NlasIterator::new(bit.value()) {
                            let field = field?;
                            match field.kind() {
                                A_BITSET_BIT_INDEX => b.index = Some(parse_u32(field.value())?),
                                A_BITSET_BIT_NAME => b.name = Some(parse_string(field.value())?),
                                A_BITSET_BIT_VALUE => b.value = true,
                                _ => {}
                            }
                        }
                        set.bits.push(b);
                    }
                }
                _ => {}
            }
        }
        Ok(set)
    }
}

impl Nla for HeaderAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::DevIndex(_) | Self::Flags(_) => 4,
            Self::DevName(n) => n.len() + 1,
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::DevIndex(_) => A_HEADER_DEV_INDEX,
            Self::DevName(_) => A_HEADER_DEV_NAME,
            Self::Flags(_) => A_HEADER_FLAGS,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::DevIndex(v) | Self::Flags(v) => {
                let _ = emit_u32(buffer, *v);
            }
            Self::DevName(n) => emit_cstr(n, buffer),
            Self::Other(o) => o.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for HeaderAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        Ok(match buf.kind() {
            A_HEADER_DEV_INDEX => Self::DevIndex(parse_u32(buf.value())?),
            A_HEADER_DEV_NAME => Self::DevName(parse_string(buf.value())?),
            A_HEADER_FLAGS => Self::Flags(parse_u32(buf.value())?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl FeaturesAttr {
    fn bitset_kind(&self) -> Option<(u16, &Bitset)> {
        match self {
            Self::Hw(b) => Some((A_FEATURES_HW, b)),
            Self::Wanted(b) => Some((A_FEATURES_WANTED, b)),
            Self::Active(b) => Some((A_FEATURES_ACTIVE, b)),
            Self::NoChange(b) => Some((A_FEATURES_NOCHANGE, b)),
            _ => None,
        }
    }
}

impl Nla for FeaturesAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Header(h) => h.as_slice().buffer_len(),
            Self::Other(o) => o.value_len(),
            other => other
                .bitset_kind()
                .map_or(0, |(_, b)| b.nlas().as_slice().buffer_len()),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Header(_) => A_FEATURES_HEADER | NLA_F_NESTED,
            Self::Other(o) => o.kind(),
            other => other.bitset_kind().map_or(0, |(k, _)| k | NLA_F_NESTED),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Header(h) => h.as_slice().emit(buffer),
            Self::Other(o) => o.emit_value(buffer),
            other => {
                if let Some((_, b)) = other.bitset_kind() {
                    b.nlas().as_slice().emit(buffer)
                }
            }
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for FeaturesAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        Ok(match buf.kind() {
            A_FEATURES_HEADER => {
                let mut h = Vec::new();
                for nla in NlasIterator::new(buf.value()) {
                    h.push(HeaderAttr::parse(&nla?)?);
                }
                Self::Header(h)
            }
            A_FEATURES_HW => Self::Hw(Bitset::parse(buf.value())?),
            A_FEATURES_WANTED => Self::Wanted(Bitset::parse(buf.value())?),
            A_FEATURES_ACTIVE => Self::Active(Bitset::parse(buf.value())?),
            A_FEATURES_NOCHANGE => Self::NoChange(Bitset::parse(buf.value())?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

// === our view ===

/// One feature as `ethtool -k` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeatureState {
    /// On now.
    pub active: bool,
    /// Cannot be changed (`[fixed]`): not in the device's changeable set, or never changeable.
    pub fixed: bool,
    /// What was last asked for (differs from `active` when the kernel could not honour it).
    #[serde(skip)]
    pub requested: bool,
}

/// The features of one interface, by kernel name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Features {
    /// The interface.
    pub ifname: String,
    /// Every named feature of the device.
    pub features: BTreeMap<String, FeatureState>,
}

impl Features {
    /// Reads a `ETHTOOL_MSG_FEATURES_GET` reply in the verbose form.
    pub fn from_reply(ifname: &str, reply: &FeaturesMessage) -> Self {
        let names = |pick: fn(&FeaturesAttr) -> Option<&Bitset>| -> Vec<String> {
            reply
                .bitset(pick)
                .map(|b| b.set_names().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let active = names(|a| {
            if let FeaturesAttr::Active(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let wanted = names(|a| {
            if let FeaturesAttr::Wanted(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let nochange = names(|a| {
            if let FeaturesAttr::NoChange(b) = a {
                Some(b)
            } else {
                None
            }
        });
        let mut features = BTreeMap::new();
        if let Some(hw) = reply.bitset(|a| {
            if let FeaturesAttr::Hw(b) = a {
                Some(b)
            } else {
                None
            }
        }) {
            // The kernel's strings table has unnamed (reserved) bits; they are not features.
            for (name, changeable) in hw.named_values().filter(|(n, _)| !n.is_empty()) {
                let has = |list: &[String]| list.iter().any(|n| n == name);
                features.insert(
                    name.to_string(),
                    FeatureState {
                        active: has(&active),
                        fixed: !changeable || has(&nochange),
                        requested: has(&wanted),
                    },
                );
            }
        }
        Self {
            ifname: ifname.to_string(),
            features,
        }
    }
}

/// The kernel's answer to a features SET (`ethtool -K`'s "Actual changes").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureChange {
    /// The bits that were requested, after legacy names were expanded.
    pub requested: Vec<(String, bool)>,
    /// Requested bits that did not reach the requested value (with the value asked for).
    pub not_applied: Vec<(String, bool)>,
    /// Bits whose active state changed, with their new value (may include bits not requested,
    /// which the kernel switched as dependencies).
    pub changed: Vec<(String, bool)>,
}

impl FeatureChange {
    /// Reads a `ETHTOOL_MSG_FEATURES_SET_REPLY`: its WANTED bitset lists the requested bits
    /// that differ from the result, its ACTIVE bitset the bits that changed.
    pub fn from_reply(requested: Vec<(String, bool)>, reply: Option<&FeaturesMessage>) -> Self {
        let pairs = |b: Option<&Bitset>| -> Vec<(String, bool)> {
            b.map(|b| b.named_values().map(|(n, v)| (n.to_string(), v)).collect())
                .unwrap_or_default()
        };
        let (not_applied, changed) = match reply {
            Some(r) => (
                pairs(r.bitset(|a| {
                    if let FeaturesAttr::Wanted(b) = a {
                        Some(b)
                    } else {
                        None
                    }
                })),
                pairs(r.bitset(|a| {
                    if let FeaturesAttr::Active(b) = a {
                        Some(b)
                    } else {
                        None
                    }
                })),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Self {
            requested,
            not_applied,
            changed,
        }
    }

    /// No requested bit reached its requested value.
    pub fn nothing_changed(&self) -> bool {
        !self.requested.is_empty()
            && self
                .requested
                .iter()
                .all(|(n, _)| self.not_applied.iter().any(|(m, _)| m == n))
    }
}

/// Matches a kernel feature name against an `off_flag_def` pattern (at most one `*`).
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

/// Expands one requested name to kernel feature names of the device: a kernel name stays
/// itself; a legacy `ethtool -K` name (`tx-checksumming`, `tx`, `tso`, ...) becomes every
/// known feature its pattern matches. `None` when nothing matches.
pub fn expand_feature_name<'a>(
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<String>> {
    let known: Vec<&str> = known.into_iter().collect();
    if known.contains(&name) {
        return Some(vec![name.to_string()]);
    }
    let (_, _, pattern) = LEGACY_NAMES
        .iter()
        .find(|(short, long, _)| *short == name || *long == name)?;
    let matched: Vec<String> = known
        .iter()
        .filter(|k| pattern_matches(pattern, k))
        .map(|k| k.to_string())
        .collect();
    (!matched.is_empty()).then_some(matched)
}

// === client ===

/// An ethtool generic netlink client in the calling thread's network namespace.
#[derive(Clone, Debug)]
pub struct Ethtool {
    handle: GenetlinkHandle,
}

impl Ethtool {
    /// Opens the socket and resolves the "ethtool" family. Must be called inside a tokio
    /// runtime. A kernel without ethtool netlink gives [`EthtoolError::Unavailable`].
    pub async fn connect() -> Result<Self, EthtoolError> {
        let handle = genl::connect().map_err(EthtoolError::Connect)?;
        genl::resolve::<FeaturesMessage>(&handle)
            .await
            .map_err(|f| match f {
                GenlFailure::NoFamily => EthtoolError::Unavailable,
                GenlFailure::Kernel(k) => EthtoolError::Connect(io::Error::other(format!(
                    "cannot resolve the \"ethtool\" generic netlink family: {k}"
                ))),
                GenlFailure::Other(d) => EthtoolError::Connect(io::Error::other(format!(
                    "cannot resolve the \"ethtool\" generic netlink family: {d}"
                ))),
            })?;
        Ok(Self { handle })
    }

    /// Offload feature requests.
    pub fn features(&self) -> FeaturesHandle {
        FeaturesHandle {
            handle: self.handle.clone(),
        }
    }
}

/// Offload feature requests.
pub struct FeaturesHandle {
    handle: GenetlinkHandle,
}

impl FeaturesHandle {
    /// `ethtool -k DEV`.
    pub fn get(&self, ifname: &str) -> FeaturesGetRequest {
        FeaturesGetRequest {
            handle: self.handle.clone(),
            ifname: ifname.to_string(),
        }
    }

    /// `ethtool -K DEV FEATURE on|off ...`.
    pub fn set(&self, ifname: &str) -> FeaturesSetRequest {
        FeaturesSetRequest {
            handle: self.handle.clone(),
            ifname: ifname.to_string(),
            wanted: Vec::new(),
        }
    }
}

/// `ethtool -k DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct FeaturesGetRequest {
    handle: GenetlinkHandle,
    ifname: String,
}

impl FeaturesGetRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<Features, EthtoolError> {
        get_features(&self.handle, &self.ifname).await
    }
}

async fn get_features(handle: &GenetlinkHandle, ifname: &str) -> Result<Features, EthtoolError> {
    const OP: &str = "get features of";
    let replies = genl::request(handle, FeaturesMessage::get(ifname), 0)
        .await
        .map_err(|f| EthtoolError::from_failure(OP, ifname, f))?;
    let reply = replies.first().ok_or_else(|| EthtoolError::Unexpected {
        op: OP,
        ifname: ifname.to_string(),
        detail: "no ETHTOOL_MSG_FEATURES_GET_REPLY".into(),
    })?;
    Ok(Features::from_reply(ifname, reply))
}

/// `ethtool -K DEV FEATURE on|off ...`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct FeaturesSetRequest {
    handle: GenetlinkHandle,
    ifname: String,
    wanted: Vec<(String, bool)>,
}

impl FeaturesSetRequest {
    /// Asks for `feature` (a kernel name like `hw-tc-offload`, or a legacy `ethtool -K` name like
    /// `tx-checksumming`) to be on or off.
    pub fn feature(mut self, feature: &str, on: bool) -> Self {
        self.wanted.push((feature.to_string(), on));
        self
    }

    /// Reads the device's feature names, expands legacy names, sends one
    /// `ETHTOOL_MSG_FEATURES_SET` and reports what the kernel did. Fails with
    /// [`EthtoolError::NotChanged`] when no requested bit took.
    pub async fn execute(self) -> Result<FeatureChange, EthtoolError> {
        const OP: &str = "set features on";
        let Self {
            handle,
            ifname,
            wanted,
        } = self;
        if wanted.is_empty() {
            return Ok(FeatureChange::default());
        }
        let current = get_features(&handle, &ifname).await?;
        let mut bits: Vec<(String, bool)> = Vec::new();
        for (name, on) in &wanted {
            let expanded = expand_feature_name(name, current.features.keys().map(String::as_str))
                .ok_or_else(|| EthtoolError::UnknownFeature {
                ifname: ifname.clone(),
                feature: name.clone(),
            })?;
            for bit in expanded {
                bits.retain(|(n, _)| *n != bit);
                bits.push((bit, *on));
            }
        }
        let replies = genl::request(&handle, FeaturesMessage::set(&ifname, &bits), NLM_F_ACK)
            .await
            .map_err(|f| EthtoolError::from_failure(OP, &ifname, f))?;
        let change = FeatureChange::from_reply(bits, replies.first());
        if change.nothing_changed() {
            return Err(EthtoolError::NotChanged {
                ifname,
                features: change.requested,
            });
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(msg: &FeaturesMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    fn parse(buf: &[u8], cmd: u8) -> FeaturesMessage {
        FeaturesMessage::parse_with_param(buf, GenlHeader { cmd, version: 1 }).unwrap()
    }

    /// `ethtool -K veth0 hw-tc-offload on`, byte for byte:
    /// HEADER{DEV_NAME "veth0"} WANTED{BITS{BIT{NAME "hw-tc-offload", VALUE}}}.
    #[test]
    fn set_request_bytes() {
        let msg = FeaturesMessage::set("veth0", &[("hw-tc-offload".into(), true)]);
        let mut want: Vec<u8> = Vec::new();
        let nla = |kind: u16, body: &[u8]| -> Vec<u8> {
            let mut v = Vec::new();
            v.extend_from_slice(&((4 + body.len()) as u16).to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.extend_from_slice(body);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v
        };
        let name = nla(2, b"veth0\0");
        want.extend(nla(1 | NLA_F_NESTED, &name));
        let mut bit = nla(2, b"hw-tc-offload\0");
        bit.extend(nla(3, &[]));
        let bits = nla(3 | NLA_F_NESTED, &nla(1 | NLA_F_NESTED, &bit));
        want.extend(nla(3 | NLA_F_NESTED, &bits));
        assert_eq!(emit(&msg), want);
        // and it reads back
        assert_eq!(parse(&want, ETHTOOL_MSG_FEATURES_SET), msg);
    }

    fn bit(index: u32, name: &str, value: bool) -> BitsetBit {
        BitsetBit {
            index: Some(index),
            name: Some(name.into()),
            value,
        }
    }

    /// A GET reply shaped like the kernel's verbose one: HW with mask (all named bits, VALUE on
    /// the changeable ones), the others in the nomask form.
    fn get_reply() -> FeaturesMessage {
        let nomask = |bits: Vec<BitsetBit>| Bitset {
            nomask: true,
            size: Some(64),
            bits,
            ..Default::default()
        };
        FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![
                FeaturesAttr::Header(vec![
                    HeaderAttr::DevIndex(7),
                    HeaderAttr::DevName("veth0".into()),
                ]),
                FeaturesAttr::Hw(Bitset {
                    size: Some(64),
                    bits: vec![
                        bit(0, "tx-scatter-gather", true),
                        bit(1, "tx-checksum-ipv4", false),
                        bit(3, "tx-checksum-ip-generic", true),
                        bit(4, "tx-checksum-ipv6", false),
                        bit(14, "rx-gro", true),
                        bit(55, "hw-tc-offload", false),
                        bit(13, "netns-local", true),
                    ],
                    ..Default::default()
                }),
                FeaturesAttr::Wanted(nomask(vec![
                    bit(0, "tx-scatter-gather", false),
                    bit(3, "tx-checksum-ip-generic", false),
                ])),
                FeaturesAttr::Active(nomask(vec![
                    bit(0, "tx-scatter-gather", false),
                    bit(3, "tx-checksum-ip-generic", false),
                    bit(14, "rx-gro", false),
                ])),
                FeaturesAttr::NoChange(nomask(vec![bit(13, "netns-local", false)])),
            ],
        }
    }

    #[test]
    fn get_reply_round_trips_and_reads_like_ethtool_k() {
        let reply = get_reply();
        let parsed = parse(&emit(&reply), ETHTOOL_MSG_FEATURES_GET);
        assert_eq!(parsed, reply);
        let f = Features::from_reply("veth0", &parsed);
        let st = |n: &str| f.features[n];
        assert_eq!(
            st("tx-scatter-gather"),
            FeatureState {
                active: true,
                fixed: false,
                requested: true
            }
        );
        assert_eq!(
            st("hw-tc-offload"),
            FeatureState {
                active: false,
                fixed: true,
                requested: false
            }
        );
        assert!(st("tx-checksum-ipv4").fixed && !st("tx-checksum-ipv4").active);
        assert!(st("rx-gro").active && !st("rx-gro").requested);
        assert!(st("netns-local").fixed, "NOCHANGE bits are fixed");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json["features"]["hw-tc-offload"],
            serde_json::json!({"active": false, "fixed": true})
        );
        assert_eq!(json["ifname"], "veth0");
    }

    #[test]
    fn compact_bitsets_parse_without_panicking() {
        let set = Bitset {
            size: Some(64),
            value: Some(vec![1, 0, 0, 0, 0, 0, 0, 0]),
            mask: Some(vec![0xff; 8]),
            ..Default::default()
        };
        let msg = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![FeaturesAttr::Active(set)],
        };
        assert_eq!(parse(&emit(&msg), ETHTOOL_MSG_FEATURES_GET), msg);
        for cut in 0..emit(&msg).len() {
            let _ = FeaturesMessage::parse_with_param(
                &emit(&msg)[..cut],
                GenlHeader {
                    cmd: 11,
                    version: 1,
                },
            );
        }
    }

    #[test]
    fn legacy_names_expand_like_ethtool_dash_capital_k() {
        let known = [
            "tx-checksum-ipv4",
            "tx-checksum-ip-generic",
            "tx-checksum-ipv6",
            "tx-checksum-fcoe-crc",
            "tx-checksum-sctp",
            "tx-tcp-segmentation",
            "tx-tcp-ecn-segmentation",
            "tx-tcp6-segmentation",
            "rx-gro",
            "hw-tc-offload",
            "l2-fwd-offload",
            "tx-scatter-gather",
            "tx-scatter-gather-fraglist",
        ];
        let tx = expand_feature_name("tx-checksumming", known).unwrap();
        assert_eq!(tx.len(), 5);
        assert!(tx.iter().all(|n| n.starts_with("tx-checksum-")));
        assert_eq!(expand_feature_name("tx", known).unwrap(), tx);
        assert_eq!(expand_feature_name("tso", known).unwrap().len(), 3);
        assert_eq!(expand_feature_name("sg", known).unwrap().len(), 2);
        assert_eq!(expand_feature_name("gro", known).unwrap(), vec!["rx-gro"]);
        assert_eq!(
            expand_feature_name("hw-tc-offload", known).unwrap(),
            vec!["hw-tc-offload"]
        );
        assert_eq!(
            expand_feature_name("l2-fwd-offload", known).unwrap(),
            vec!["l2-fwd-offload"]
        );
        assert!(expand_feature_name("lro", known).is_none());
        assert!(expand_feature_name("bogus", known).is_none());
    }

    #[test]
    fn set_reply_says_what_did_not_take() {
        let req = vec![("hw-tc-offload".to_string(), true)];
        let reply = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                FeaturesAttr::Wanted(Bitset {
                    bits: vec![bit(55, "hw-tc-offload", true)],
                    ..Default::default()
                }),
                FeaturesAttr::Active(Bitset::default()),
            ],
        };
        let change = FeatureChange::from_reply(req.clone(), Some(&reply));
        assert!(change.nothing_changed());
        assert_eq!(change.not_applied, req);

        let req = vec![
            ("tx-checksum-ipv4".to_string(), true),
            ("tx-checksum-ip-generic".to_string(), true),
        ];
        let reply = FeaturesMessage {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                FeaturesAttr::Wanted(Bitset {
                    bits: vec![bit(1, "tx-checksum-ipv4", true)],
                    ..Default::default()
                }),
                FeaturesAttr::Active(Bitset {
                    bits: vec![bit(3, "tx-checksum-ip-generic", true)],
                    ..Default::default()
                }),
            ],
        };
        let change = FeatureChange::from_reply(req, Some(&reply));
        assert!(!change.nothing_changed());
        assert_eq!(
            change.changed,
            vec![("tx-checksum-ip-generic".to_string(), true)]
        );
        let err = EthtoolError::NotChanged {
            ifname: "eth0".into(),
            features: vec![("hw-tc-offload".into(), true)],
        };
        assert_eq!(
            err.to_string(),
            "cannot set hw-tc-offload=on on eth0: fixed on this device or refused by the driver"
        );
    }
}
