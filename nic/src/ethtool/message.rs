//! The ethtool generic netlink messages for offload features: `ETHTOOL_MSG_FEATURES_GET` /
//! `_SET` and their verbose bitsets (numbers from include/uapi/linux/ethtool_netlink*.h).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, emit_u32, parse_string, parse_u32,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::netlink::genl::emit_cstr;

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

    pub(super) fn bitset(&self, pick: fn(&FeaturesAttr) -> Option<&Bitset>) -> Option<&Bitset> {
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
