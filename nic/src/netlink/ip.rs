//! Addresses and routes: our types for `ip addr` and `ip route`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Serialize, Serializer};

use super::LinkId;

/// `main`: the table `ip route` uses when none is given (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;
/// `local`: the kernel's table of local and broadcast addresses (`RT_TABLE_LOCAL`).
pub const TABLE_LOCAL: u32 = 255;

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// `inet`.
    V4,
    /// `inet6`.
    V6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The longest prefix: 32 or 128.
    pub fn max_prefix_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

/// An address with a prefix length, written `10.0.0.2/24` or `2001:db8::2/64`. The host bits are
/// kept: `10.0.0.2/24` is an interface address; as a route destination the kernel wants them zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (0-32 or 0-128).
    pub prefix_len: u8,
}

/// A string that is not `ADDRESS/LEN` (or a bare address, read as a host prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP prefix {0:?} (expected ADDRESS/LEN like 10.0.0.2/24 or 2001:db8::2/64)")]
pub struct IpPrefixError(pub String);

impl IpPrefix {
    /// `addr/prefix_len`; `None` when the length is too long for the family.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= IpFamily::of(&addr).max_prefix_len()).then_some(Self { addr, prefix_len })
    }

    /// The whole address space of a family: `0.0.0.0/0` or `::/0` (`default`).
    pub fn default_route(family: IpFamily) -> Self {
        let addr = match family {
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Self {
            addr,
            prefix_len: 0,
        }
    }

    /// The family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.addr)
    }

    /// The prefix with its host bits cleared (`10.0.0.2/24` → `10.0.0.0/24`).
    pub fn network(&self) -> Self {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Self {
            addr,
            prefix_len: self.prefix_len,
        }
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        IpFamily::of(addr) == self.family()
            && Self {
                addr: *addr,
                prefix_len: self.prefix_len,
            }
            .network()
                == self.network()
    }
}

impl FromStr for IpPrefix {
    type Err = IpPrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpPrefixError(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let len = match len {
            Some(l) => l.parse::<u8>().map_err(|_| err())?,
            None => IpFamily::of(&addr).max_prefix_len(),
        };
        Self::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Address or route scope (`RT_SCOPE_*`), named as `ip` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `global` (`RT_SCOPE_UNIVERSE`, 0).
    #[default]
    Global,
    /// `site` (200).
    Site,
    /// `link` (253): on-link, no gateway.
    Link,
    /// `host` (254): this host only.
    Host,
    /// `nowhere` (255).
    Nowhere,
    /// Any other value.
    Other(u8),
}

impl Scope {
    /// The kernel's number.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Global => 0,
            Self::Site => 200,
            Self::Link => 253,
            Self::Host => 254,
            Self::Nowhere => 255,
            Self::Other(n) => n,
        }
    }

    /// From the kernel's number.
    pub fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::Global,
            200 => Self::Site,
            253 => Self::Link,
            254 => Self::Host,
            255 => Self::Nowhere,
            n => Self::Other(n),
        }
    }
}

/// A string that is not a scope name or number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?} (expected global, site, link, host, nowhere or a number)")]
pub struct ScopeError(pub String);

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "global" | "universe" => Self::Global,
            "site" => Self::Site,
            "link" => Self::Link,
            "host" => Self::Host,
            "nowhere" => Self::Nowhere,
            n => Self::from_u8(n.parse().map_err(|_| ScopeError(s.to_string()))?),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Site => f.write_str("site"),
            Self::Link => f.write_str("link"),
            Self::Host => f.write_str("host"),
            Self::Nowhere => f.write_str("nowhere"),
            Self::Other(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One address of one link, as `ip addr show` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Index of the link it is on.
    pub index: u32,
    /// Address and prefix length (`10.0.0.2/24`).
    pub address: IpPrefix,
    /// Scope (`global`, `link` for `fe80::/64`, `host` for loopback).
    pub scope: Scope,
}

/// One route, as `ip route show` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Destination prefix; `0.0.0.0/0` / `::/0` is the default route.
    pub destination: IpPrefix,
    /// Next hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index of the output link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oif: Option<u32>,
    /// Routing table (254 = main).
    pub table: u32,
    /// Metric (`RTA_PRIORITY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Scope.
    pub scope: Scope,
    /// Who installed it, as a number (2 kernel, 3 boot = `ip route add`, 4 static, ...).
    pub protocol: u8,
}

/// A route to add or delete (`ip route add|del DEST [via GW] [dev DEV] [table T] [metric M]
/// [scope S]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix (host bits must be zero, as the kernel wants).
    pub destination: IpPrefix,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output link.
    pub dev: Option<LinkId>,
    /// Routing table; `ip` uses main.
    pub table: u32,
    /// Metric.
    pub metric: Option<u32>,
    /// Scope; `None` chooses like `ip`: `link` for an IPv4 route without gateway, else `global`.
    pub scope: Option<Scope>,
}

impl RouteSpec {
    /// A route to `destination` in table main, nothing else set.
    pub fn new(destination: IpPrefix) -> Self {
        Self {
            destination,
            gateway: None,
            dev: None,
            table: TABLE_MAIN,
            metric: None,
            scope: None,
        }
    }

    /// The scope the request carries.
    pub fn effective_scope(&self) -> Scope {
        self.scope.unwrap_or(
            if self.gateway.is_none() && self.destination.family() == IpFamily::V4 {
                Scope::Link
            } else {
                Scope::Global
            },
        )
    }

    /// Words for errors, like the `ip route` arguments: "10.1.0.0/16 via 10.0.0.1 dev eth0".
    pub fn describe(&self) -> String {
        let mut s = if self.destination.prefix_len == 0 {
            "default".to_string()
        } else {
            self.destination.to_string()
        };
        if let Some(gw) = self.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(dev) = &self.dev {
            s.push_str(&format!(" dev {dev}"));
        }
        if self.table != TABLE_MAIN {
            s.push_str(&format!(" table {}", self.table));
        }
        if let Some(m) = self.metric {
            s.push_str(&format!(" metric {m}"));
        }
        s
    }

    /// Whether a listed route is the one this spec names (destination, table, and the
    /// gateway, output link index and metric where the spec gives them).
    pub fn matches(&self, route: &Route, dev_index: Option<u32>) -> bool {
        route.destination == self.destination
            && route.table == self.table
            && (self.gateway.is_none() || route.gateway == self.gateway)
            && (dev_index.is_none() || route.oif == dev_index)
            && (self.metric.is_none() || route.metric == self.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_print_and_mask() {
        let p: IpPrefix = "10.0.0.2/24".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.2/24");
        assert_eq!(p.network().to_string(), "10.0.0.0/24");
        assert!(p.contains(&"10.0.0.200".parse().unwrap()));
        assert!(!p.contains(&"10.0.1.1".parse().unwrap()));
        let v6: IpPrefix = "2001:db8::2/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "2001:db8::/64");
        assert_eq!(v6.family(), IpFamily::V6);
        assert_eq!("10.0.0.1".parse::<IpPrefix>().unwrap().prefix_len, 32);
        assert_eq!(
            IpPrefix::default_route(IpFamily::V4).network().to_string(),
            "0.0.0.0/0"
        );
        for bad in ["10.0.0.1/33", "::1/129", "10.0.0/8", "x/1", "10.0.0.1/"] {
            assert!(bad.parse::<IpPrefix>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"10.0.0.2/24\"");
    }

    #[test]
    fn route_spec_scope_and_words_follow_ip() {
        let mut r = RouteSpec::new("10.1.0.0/16".parse().unwrap());
        r.dev = Some("eth0".into());
        assert_eq!(r.effective_scope(), Scope::Link);
        r.gateway = Some("10.0.0.1".parse().unwrap());
        r.metric = Some(100);
        assert_eq!(r.effective_scope(), Scope::Global);
        assert_eq!(r.describe(), "10.1.0.0/16 via 10.0.0.1 dev eth0 metric 100");
        assert_eq!("link".parse::<Scope>().unwrap().as_u8(), 253);
        assert_eq!(Scope::from_u8(200), Scope::Site);
    }
}
