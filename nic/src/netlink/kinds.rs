//! Virtual link kinds we create (`ip link add ... type veth|macvlan|ipvlan|vlan|bridge`) and
//! what the kernel reports back about them (`IFLA_INFO_DATA`).

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

use super::{LinkId, MacAddr, VlanProto};
use crate::netns::NetnsRef;

/// macvlan mode (`ip link add ... type macvlan mode MODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// Children of one parent talk to each other directly.
    #[default]
    Bridge,
    /// Children cannot talk to each other.
    Private,
    /// Everything goes out to the external switch (802.1Qbg).
    Vepa,
    /// One child takes over the parent (one child per parent).
    Passthru,
    /// Only frames from the listed source MACs reach the child.
    Source,
}

impl MacvlanMode {
    /// Every mode, in `ip` order.
    pub const ALL: [Self; 5] = [
        Self::Private,
        Self::Vepa,
        Self::Bridge,
        Self::Passthru,
        Self::Source,
    ];

    /// The name `ip` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Passthru => "passthru",
            Self::Source => "source",
        }
    }
}

impl From<crds::link::MacvlanMode> for MacvlanMode {
    fn from(m: crds::link::MacvlanMode) -> Self {
        match m {
            crds::link::MacvlanMode::Bridge => Self::Bridge,
            crds::link::MacvlanMode::Private => Self::Private,
            crds::link::MacvlanMode::Vepa => Self::Vepa,
            crds::link::MacvlanMode::Passthru => Self::Passthru,
            crds::link::MacvlanMode::Source => Self::Source,
        }
    }
}

/// ipvlan mode (`ip link add ... type ipvlan mode l2|l3|l3s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// Layer 2 switching on the parent.
    #[default]
    L2,
    /// Layer 3 routing on the parent.
    L3,
    /// Layer 3 with netfilter/conntrack on the parent.
    L3s,
}

impl IpvlanMode {
    /// The name `ip` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L2 => "l2",
            Self::L3 => "l3",
            Self::L3s => "l3s",
        }
    }
}

impl From<crds::link::IpvlanMode> for IpvlanMode {
    fn from(m: crds::link::IpvlanMode) -> Self {
        match m {
            crds::link::IpvlanMode::L2 => Self::L2,
            crds::link::IpvlanMode::L3 => Self::L3,
            crds::link::IpvlanMode::L3s => Self::L3s,
        }
    }
}

/// ipvlan isolation flag (`ip link add ... type ipvlan mode M bridge|private|vepa`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpvlanFlag {
    /// Children of one parent talk to each other (the default).
    #[default]
    Bridge,
    /// Children cannot talk to each other (`IPVLAN_F_PRIVATE`).
    Private,
    /// Traffic between children goes out to the switch (`IPVLAN_F_VEPA`).
    Vepa,
}

impl IpvlanFlag {
    /// The name `ip` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
        }
    }
}

impl From<crds::link::VlanProto> for VlanProto {
    fn from(p: crds::link::VlanProto) -> Self {
        match p {
            crds::link::VlanProto::Dot1Q => Self::Dot1Q,
            crds::link::VlanProto::Dot1Ad => Self::Dot1Ad,
        }
    }
}

/// A name that is not one of the values `ip` accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?} (expected one of: {expected})")]
pub struct ModeError {
    /// What was parsed: "macvlan mode", ...
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static str,
}

macro_rules! names {
    ($ty:ty, $what:literal, $expected:literal, [$($v:ident),+]) => {
        impl FromStr for $ty {
            type Err = ModeError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.eq_ignore_ascii_case(<$ty>::$v.as_str()) {
                    return Ok(<$ty>::$v);
                })+
                Err(ModeError { what: $what, value: s.to_string(), expected: $expected })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

names!(
    MacvlanMode,
    "macvlan mode",
    "bridge, private, vepa, passthru, source",
    [Bridge, Private, Vepa, Passthru, Source]
);
names!(IpvlanMode, "ipvlan mode", "l2, l3, l3s", [L2, L3, L3s]);
names!(
    IpvlanFlag,
    "ipvlan flag",
    "bridge, private, vepa",
    [Bridge, Private, Vepa]
);

/// A veth pair (`ip link add NAME type veth peer name PEER [netns NS]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Veth {
    /// Name of the other end.
    pub peer: String,
    /// Create the other end directly in this namespace (`peer ... netns NS`).
    pub peer_netns: Option<NetnsRef>,
}

impl Veth {
    /// A pair whose other end is `peer`, in the same namespace.
    pub fn new(peer: impl Into<String>) -> Self {
        Self {
            peer: peer.into(),
            peer_netns: None,
        }
    }

    /// Creates the other end in `netns` (one request: no window in which it exists here).
    pub fn peer_netns(mut self, netns: NetnsRef) -> Self {
        self.peer_netns = Some(netns);
        self
    }
}

/// A macvlan child (`ip link add NAME link PARENT type macvlan mode MODE [macaddr add MAC ...]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Macvlan {
    /// The lower device.
    pub parent: LinkId,
    /// The mode.
    pub mode: MacvlanMode,
    /// Source mode only: the MACs whose frames this child receives.
    pub source_macs: Vec<MacAddr>,
}

impl Macvlan {
    /// A child of `parent` in `mode`.
    pub fn new(parent: impl Into<LinkId>, mode: MacvlanMode) -> Self {
        Self {
            parent: parent.into(),
            mode,
            source_macs: Vec::new(),
        }
    }

    /// Source mode with these allowed source MACs (`mode source macaddr set MAC...`).
    pub fn source(parent: impl Into<LinkId>, macs: impl IntoIterator<Item = MacAddr>) -> Self {
        Self {
            parent: parent.into(),
            mode: MacvlanMode::Source,
            source_macs: macs.into_iter().collect(),
        }
    }
}

/// An ipvlan child (`ip link add NAME link PARENT type ipvlan mode MODE [FLAG]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipvlan {
    /// The lower device.
    pub parent: LinkId,
    /// The mode.
    pub mode: IpvlanMode,
    /// The isolation flag.
    pub flag: IpvlanFlag,
}

impl Ipvlan {
    /// A child of `parent` in `mode`, flag bridge.
    pub fn new(parent: impl Into<LinkId>, mode: IpvlanMode) -> Self {
        Self {
            parent: parent.into(),
            mode,
            flag: IpvlanFlag::Bridge,
        }
    }

    /// Sets the isolation flag.
    pub fn flag(mut self, flag: IpvlanFlag) -> Self {
        self.flag = flag;
        self
    }
}

/// A VLAN sub-interface (`ip link add NAME link PARENT type vlan id ID [protocol P]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// The lower device.
    pub parent: LinkId,
    /// VLAN id, 0-4095.
    pub id: u16,
    /// 802.1Q (default) or 802.1ad.
    pub proto: VlanProto,
}

impl Vlan {
    /// VLAN `id` on `parent`, 802.1Q.
    pub fn new(parent: impl Into<LinkId>, id: u16) -> Self {
        Self {
            parent: parent.into(),
            id,
            proto: VlanProto::Dot1Q,
        }
    }

    /// Sets the protocol.
    pub fn proto(mut self, proto: VlanProto) -> Self {
        self.proto = proto;
        self
    }
}

/// What kind of link to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// `type veth`.
    Veth(Veth),
    /// `type macvlan`.
    Macvlan(Macvlan),
    /// `type ipvlan`.
    Ipvlan(Ipvlan),
    /// `type vlan`.
    Vlan(Vlan),
    /// `type bridge` (a master for other links).
    Bridge,
}

impl LinkKind {
    /// `IFLA_INFO_KIND`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Veth(_) => "veth",
            Self::Macvlan(_) => "macvlan",
            Self::Ipvlan(_) => "ipvlan",
            Self::Vlan(_) => "vlan",
            Self::Bridge => "bridge",
        }
    }

    /// The kernel module that provides the kind (named in "no support" errors).
    pub fn module(&self) -> &'static str {
        match self {
            Self::Vlan(_) => "8021q",
            other => other.name(),
        }
    }

    /// The lower device, for kinds that have one.
    pub fn parent(&self) -> Option<&LinkId> {
        match self {
            Self::Macvlan(m) => Some(&m.parent),
            Self::Ipvlan(i) => Some(&i.parent),
            Self::Vlan(v) => Some(&v.parent),
            Self::Veth(_) | Self::Bridge => None,
        }
    }
}

impl From<Veth> for LinkKind {
    fn from(v: Veth) -> Self {
        Self::Veth(v)
    }
}

impl From<Macvlan> for LinkKind {
    fn from(v: Macvlan) -> Self {
        Self::Macvlan(v)
    }
}

impl From<Ipvlan> for LinkKind {
    fn from(v: Ipvlan) -> Self {
        Self::Ipvlan(v)
    }
}

impl From<Vlan> for LinkKind {
    fn from(v: Vlan) -> Self {
        Self::Vlan(v)
    }
}

/// A link to create: its kind and the attributes given at creation (`ip link add [name NAME]
/// [mtu N] [address MAC] [netns NS] [up] type ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLink {
    /// The kind and its settings.
    pub kind: LinkKind,
    /// Name; `None` lets the kernel pick one (`veth0`, `macvlan0`, ...).
    pub name: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Create the link directly in this namespace.
    pub netns: Option<NetnsRef>,
    /// Bring it up at creation.
    pub up: bool,
}

impl NewLink {
    /// A link of `kind` with nothing else set.
    pub fn new(kind: impl Into<LinkKind>) -> Self {
        Self {
            kind: kind.into(),
            name: None,
            mtu: None,
            mac: None,
            netns: None,
            up: false,
        }
    }

    /// Words for errors: "create macvlan mv0 on eth9", "create veth v0 (peer v1)".
    pub fn describe(&self) -> String {
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let kind = self.kind.name();
        match &self.kind {
            LinkKind::Veth(v) => format!("create veth{name} (peer {})", v.peer),
            LinkKind::Bridge => format!("create bridge{name}"),
            other => match other.parent() {
                Some(p) => format!("create {kind}{name} on {p}"),
                None => format!("create {kind}{name}"),
            },
        }
    }
}

/// Kind-specific settings the kernel reports for a link (`ip -d link show`), for the kinds we
/// create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum LinkDetails {
    /// macvlan: its mode (and, in source mode, the allowed MACs).
    Macvlan {
        /// The mode.
        mode: MacvlanMode,
        /// Allowed source MACs (source mode), sorted.
        #[serde(rename = "sourceMacs", skip_serializing_if = "Vec::is_empty")]
        source_macs: Vec<MacAddr>,
    },
    /// ipvlan: mode and flag.
    Ipvlan {
        /// The mode.
        mode: IpvlanMode,
        /// The isolation flag.
        flag: IpvlanFlag,
    },
    /// vlan: id and protocol.
    Vlan {
        /// VLAN id.
        id: u16,
        /// Protocol.
        proto: VlanProto,
    },
}

impl LinkDetails {
    /// The details a newly created link of `kind` reports.
    pub fn of(kind: &LinkKind) -> Option<Self> {
        match kind {
            LinkKind::Macvlan(m) => {
                let mut source_macs = m.source_macs.clone();
                source_macs.sort();
                source_macs.dedup();
                Some(Self::Macvlan {
                    mode: m.mode,
                    source_macs,
                })
            }
            LinkKind::Ipvlan(i) => Some(Self::Ipvlan {
                mode: i.mode,
                flag: i.flag,
            }),
            LinkKind::Vlan(v) => Some(Self::Vlan {
                id: v.id,
                proto: v.proto,
            }),
            LinkKind::Veth(_) | LinkKind::Bridge => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_like_ip() {
        for m in MacvlanMode::ALL {
            assert_eq!(m.to_string().parse::<MacvlanMode>().unwrap(), m);
        }
        assert_eq!("L3S".parse::<IpvlanMode>().unwrap(), IpvlanMode::L3s);
        assert_eq!("vepa".parse::<IpvlanFlag>().unwrap(), IpvlanFlag::Vepa);
        let e = "passthrough".parse::<MacvlanMode>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid macvlan mode \"passthrough\" (expected one of: bridge, private, vepa, passthru, source)"
        );
        assert_eq!(
            MacvlanMode::from(crds::link::MacvlanMode::Passthru),
            MacvlanMode::Passthru
        );
        assert_eq!(
            IpvlanMode::from(crds::link::IpvlanMode::L3s),
            IpvlanMode::L3s
        );
        assert_eq!(
            VlanProto::from(crds::link::VlanProto::Dot1Ad),
            VlanProto::Dot1Ad
        );
    }

    #[test]
    fn descriptions_name_the_parent() {
        let mut l = NewLink::new(Macvlan::new("eth9", MacvlanMode::Bridge));
        assert_eq!(l.describe(), "create macvlan on eth9");
        l.name = Some("mv0".into());
        assert_eq!(l.describe(), "create macvlan mv0 on eth9");
        let v = NewLink::new(Veth::new("b"));
        assert_eq!(v.describe(), "create veth (peer b)");
        assert_eq!(NewLink::new(Vlan::new("eth0", 5)).kind.module(), "8021q");
        let json = serde_json::to_value(LinkDetails::of(
            &NewLink::new(Vlan::new("e", 5).proto(VlanProto::Dot1Ad)).kind,
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"vlan","id":5,"proto":"802.1ad"})
        );
    }
}
