//! Request builders for `ip addr` and `ip route`, over any [`Netlink`].

use std::{net::IpAddr, sync::Arc};

use super::{
    Address, IpFamily, IpPrefix, LinkId, Netlink, Result, Route, RouteSpec, Scope, TABLE_MAIN,
};

/// Address requests (`ip addr ...`).
pub struct AddressHandle {
    nl: Arc<dyn Netlink>,
}

impl AddressHandle {
    pub(super) fn new(nl: Arc<dyn Netlink>) -> Self {
        Self { nl }
    }

    /// `ip addr add ADDR/LEN dev DEV`.
    pub fn add(&self, link: impl Into<LinkId>, address: IpPrefix) -> AddressAddRequest {
        AddressAddRequest {
            nl: Arc::clone(&self.nl),
            link: link.into(),
            address,
        }
    }

    /// `ip addr del ADDR/LEN dev DEV`.
    pub fn del(&self, link: impl Into<LinkId>, address: IpPrefix) -> AddressDelRequest {
        AddressDelRequest {
            nl: Arc::clone(&self.nl),
            link: link.into(),
            address,
        }
    }

    /// `ip addr show [dev DEV]`.
    pub fn list(&self) -> AddressListRequest {
        AddressListRequest {
            nl: Arc::clone(&self.nl),
            link: None,
            family: None,
        }
    }
}

/// `ip addr add ADDR/LEN dev DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct AddressAddRequest {
    nl: Arc<dyn Netlink>,
    link: LinkId,
    address: IpPrefix,
}

impl AddressAddRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.add_address(self.link, self.address).await
    }
}

/// `ip addr del ADDR/LEN dev DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct AddressDelRequest {
    nl: Arc<dyn Netlink>,
    link: LinkId,
    address: IpPrefix,
}

impl AddressDelRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.delete_address(self.link, self.address).await
    }
}

/// `ip [-4|-6] addr show [dev DEV]`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct AddressListRequest {
    nl: Arc<dyn Netlink>,
    link: Option<LinkId>,
    family: Option<IpFamily>,
}

impl AddressListRequest {
    /// `dev DEV`: only this link's addresses (a missing link is an error).
    pub fn dev(mut self, link: impl Into<LinkId>) -> Self {
        self.link = Some(link.into());
        self
    }

    /// `-4` / `-6`.
    pub fn family(mut self, family: IpFamily) -> Self {
        self.family = Some(family);
        self
    }

    /// Sends the dump; addresses come back sorted by link index, then address.
    pub async fn execute(self) -> Result<Vec<Address>> {
        let index = match &self.link {
            Some(l) => Some(self.nl.get_link(l.clone()).await?.index),
            None => None,
        };
        let mut out: Vec<_> = self
            .nl
            .list_addresses()
            .await?
            .into_iter()
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| self.family.is_none_or(|f| a.address.family() == f))
            .collect();
        out.sort_by_key(|a| (a.index, a.address));
        Ok(out)
    }
}

/// Route requests (`ip route ...`).
pub struct RouteHandle {
    nl: Arc<dyn Netlink>,
}

impl RouteHandle {
    pub(super) fn new(nl: Arc<dyn Netlink>) -> Self {
        Self { nl }
    }

    /// `ip route add DEST ...`: add the next hop and options, then `execute()`.
    ///
    /// ```no_run
    /// # async fn doc(nl: nic::netlink::NetlinkHandle) -> nic::netlink::Result<()> {
    /// // ip route add 10.1.0.0/16 via 10.0.0.1 dev net1 metric 100
    /// nl.route()
    ///     .add("10.1.0.0/16".parse().unwrap())
    ///     .gateway("10.0.0.1".parse().unwrap())
    ///     .dev("net1")
    ///     .metric(100)
    ///     .execute()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn add(&self, destination: IpPrefix) -> RouteAddRequest {
        RouteAddRequest {
            nl: Arc::clone(&self.nl),
            spec: RouteSpec::new(destination),
        }
    }

    /// `ip route del DEST ...`.
    pub fn del(&self, destination: IpPrefix) -> RouteDelRequest {
        RouteDelRequest {
            nl: Arc::clone(&self.nl),
            spec: RouteSpec::new(destination),
        }
    }

    /// `ip [-6] route show [table T] [dev DEV]`.
    pub fn list(&self, family: IpFamily) -> RouteListRequest {
        RouteListRequest {
            nl: Arc::clone(&self.nl),
            family,
            table: Some(TABLE_MAIN),
            link: None,
        }
    }
}

macro_rules! route_options {
    ($ty:ident) => {
        impl $ty {
            /// `via GW`.
            pub fn gateway(mut self, gateway: IpAddr) -> Self {
                self.spec.gateway = Some(gateway);
                self
            }

            /// `dev DEV`.
            pub fn dev(mut self, dev: impl Into<LinkId>) -> Self {
                self.spec.dev = Some(dev.into());
                self
            }

            /// `table T` (default main, 254).
            pub fn table(mut self, table: u32) -> Self {
                self.spec.table = table;
                self
            }

            /// `metric M`.
            pub fn metric(mut self, metric: u32) -> Self {
                self.spec.metric = Some(metric);
                self
            }

            /// `scope S`.
            pub fn scope(mut self, scope: Scope) -> Self {
                self.spec.scope = Some(scope);
                self
            }

            /// The route this request names.
            pub fn spec(&self) -> &RouteSpec {
                &self.spec
            }
        }
    };
}

/// `ip route add DEST [via GW] [dev DEV] [table T] [metric M] [scope S]`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct RouteAddRequest {
    nl: Arc<dyn Netlink>,
    spec: RouteSpec,
}

route_options!(RouteAddRequest);

impl RouteAddRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.add_route(self.spec).await
    }
}

/// `ip route del DEST [via GW] [dev DEV] [table T] [metric M] [scope S]`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct RouteDelRequest {
    nl: Arc<dyn Netlink>,
    spec: RouteSpec,
}

route_options!(RouteDelRequest);

impl RouteDelRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        self.nl.delete_route(self.spec).await
    }
}

/// `ip route show [table T|all] [dev DEV]`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct RouteListRequest {
    nl: Arc<dyn Netlink>,
    family: IpFamily,
    table: Option<u32>,
    link: Option<LinkId>,
}

impl RouteListRequest {
    /// `table T` (default main).
    pub fn table(mut self, table: u32) -> Self {
        self.table = Some(table);
        self
    }

    /// `table all`.
    pub fn all_tables(mut self) -> Self {
        self.table = None;
        self
    }

    /// `dev DEV`: routes out of this link only.
    pub fn dev(mut self, link: impl Into<LinkId>) -> Self {
        self.link = Some(link.into());
        self
    }

    /// Sends the dump; routes come back sorted by table, destination and metric.
    pub async fn execute(self) -> Result<Vec<Route>> {
        let index = match &self.link {
            Some(l) => Some(self.nl.get_link(l.clone()).await?.index),
            None => None,
        };
        let mut out: Vec<_> = self
            .nl
            .list_routes(self.family)
            .await?
            .into_iter()
            .filter(|r| self.table.is_none_or(|t| r.table == t))
            .filter(|r| index.is_none() || r.oif == index)
            .collect();
        out.sort_by_key(|r| (r.table, r.destination, r.metric));
        Ok(out)
    }
}
