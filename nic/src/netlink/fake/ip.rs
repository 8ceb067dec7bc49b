//! Addresses and routes in the fake, with the kernel's checks that callers run into: a taken
//! address, a gateway not on any connected prefix, an IPv4 route on a down link, a destination
//! with host bits. Connected (prefix) routes that the kernel derives from addresses are not
//! listed; they are only consulted to judge a gateway.

use nix::libc::{EADDRNOTAVAIL, EEXIST, EINVAL, ENETDOWN, ENETUNREACH, ENODEV, ESRCH};

use super::{FakeNetlink, NetlinkCall};
use crate::netlink::{
    Address, IpFamily, IpPrefix, KernelError, LinkId, NetlinkError, NetlinkEvent, Result, Route,
    RouteSpec, Scope,
};

/// The scope the kernel gives an address: `host` for loopback, `link` for IPv6 link-local.
fn scope_of(address: &IpPrefix) -> Scope {
    match address.addr {
        std::net::IpAddr::V4(a) if a.is_loopback() => Scope::Host,
        std::net::IpAddr::V6(a) if a.is_loopback() => Scope::Host,
        std::net::IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Scope::Link,
        _ => Scope::Global,
    }
}

impl FakeNetlink {
    pub(super) fn address_now(&self, link: LinkId, address: IpPrefix, add: bool) -> Result<()> {
        let mut st = self.lock();
        let verb = if add { "add" } else { "delete" };
        let op = format!("{verb} address {address} on {link}");
        let err = |errno: i32| NetlinkError::Link {
            op: op.clone(),
            link: link.to_string(),
            kernel: KernelError::new(errno),
        };
        let call = if add {
            NetlinkCall::AddAddress {
                link: link.clone(),
                address,
            }
        } else {
            NetlinkCall::DeleteAddress {
                link: link.clone(),
                address,
            }
        };
        if let Some(kernel) = self.record(&mut st, &call) {
            return Err(NetlinkError::Link {
                op,
                link: link.to_string(),
                kernel,
            });
        }
        let ns = st.ns(&self.netns);
        let index = Self::find(&mut ns.links, &link)
            .map(|l| l.link.index)
            .ok_or_else(|| err(ENODEV))?;
        let pos = ns
            .addresses
            .iter()
            .position(|a| a.index == index && a.address == address);
        match (add, pos) {
            (true, Some(_)) => Err(err(EEXIST)),
            (true, None) => {
                let added = Address {
                    index,
                    address,
                    scope: scope_of(&address),
                };
                ns.addresses.push(added.clone());
                st.emit(&self.netns, NetlinkEvent::AddressAdded { address: added });
                Ok(())
            }
            (false, Some(p)) => {
                let removed = ns.addresses.remove(p);
                st.emit(
                    &self.netns,
                    NetlinkEvent::AddressRemoved { address: removed },
                );
                Ok(())
            }
            (false, None) => Err(err(EADDRNOTAVAIL)),
        }
    }

    pub(super) fn list_addresses_now(&self) -> Result<Vec<Address>> {
        let mut st = self.lock();
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::ListAddresses) {
            return Err(NetlinkError::Dump {
                what: "addresses",
                kernel,
            });
        }
        Ok(st.ns(&self.netns).addresses.clone())
    }

    pub(super) fn route_now(&self, spec: RouteSpec, add: bool) -> Result<()> {
        let mut st = self.lock();
        let op = format!(
            "{} route {}",
            if add { "add" } else { "delete" },
            spec.describe()
        );
        let err = |errno: i32| NetlinkError::Route {
            op: op.clone(),
            kernel: KernelError::new(errno),
        };
        let call = if add {
            NetlinkCall::AddRoute(spec.clone())
        } else {
            NetlinkCall::DeleteRoute(spec.clone())
        };
        if let Some(kernel) = self.record(&mut st, &call) {
            return Err(NetlinkError::Route { op, kernel });
        }
        let ns = st.ns(&self.netns);
        let dev = match &spec.dev {
            Some(d) => match Self::find(&mut ns.links, d) {
                Some(l) => Some((l.link.index, l.link.up)),
                None => {
                    return Err(NetlinkError::Link {
                        op,
                        link: d.to_string(),
                        kernel: KernelError::new(ENODEV),
                    });
                }
            },
            None => None,
        };
        if !add {
            let pos = ns
                .routes
                .iter()
                .position(|r| spec.matches(r, dev.map(|d| d.0)));
            return match pos {
                Some(p) => {
                    ns.routes.remove(p);
                    Ok(())
                }
                None => Err(err(ESRCH)),
            };
        }
        if spec.destination.network() != spec.destination {
            // "Invalid prefix for given prefix length"
            return Err(err(EINVAL));
        }
        let v4 = spec.destination.family() == IpFamily::V4;
        if v4 && dev.is_some_and(|(_, up)| !up) {
            // "Nexthop device is not up"
            return Err(err(ENETDOWN));
        }
        let oif = match spec.gateway {
            Some(gw) => {
                // The gateway must sit on a connected prefix of an up link (of `dev`, if given).
                let on_link = ns.addresses.iter().find(|a| {
                    a.address.contains(&gw)
                        && dev.is_none_or(|(i, _)| i == a.index)
                        && ns
                            .links
                            .iter()
                            .any(|l| l.link.index == a.index && l.link.up)
                });
                match on_link {
                    Some(a) => Some(a.index),
                    None => return Err(err(ENETUNREACH)),
                }
            }
            None => match dev {
                Some((i, _)) => Some(i),
                None => return Err(err(ENODEV)),
            },
        };
        let duplicate = ns.routes.iter().any(|r| {
            r.destination == spec.destination && r.table == spec.table && r.metric == spec.metric
        });
        if duplicate {
            return Err(err(EEXIST));
        }
        ns.routes.push(Route {
            destination: spec.destination,
            gateway: spec.gateway,
            oif,
            table: spec.table,
            metric: spec.metric,
            scope: spec.effective_scope(),
            protocol: 3,
        });
        Ok(())
    }

    pub(super) fn list_routes_now(&self, family: IpFamily) -> Result<Vec<Route>> {
        let mut st = self.lock();
        if let Some(kernel) = self.record(&mut st, &NetlinkCall::ListRoutes(family)) {
            return Err(NetlinkError::Dump {
                what: "routes",
                kernel,
            });
        }
        Ok(st
            .ns(&self.netns)
            .routes
            .iter()
            .filter(|r| r.destination.family() == family)
            .cloned()
            .collect())
    }
}
