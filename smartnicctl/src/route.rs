//! `smartnicctl route add|del|show`: IPv4 and IPv6 routes (`ip route`).

use std::{collections::BTreeMap, net::IpAddr};

use nic::netlink::{IpFamily, IpPrefix, Route, RouteSpec, Scope, TABLE_LOCAL, TABLE_MAIN};
use serde::Serialize;

use crate::link::{NetnsArg, Output, block_on, out, print_data};

/// Arguments of `smartnicctl route`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `ip route` options shared by add and del.
#[derive(clap::Args, Debug)]
struct RouteArgs {
    /// Destination prefix (10.1.0.0/16, 2001:db8:1::/48) or `default`.
    destination: String,
    /// Next hop.
    #[arg(long)]
    via: Option<IpAddr>,
    /// Output interface.
    #[arg(long)]
    dev: Option<String>,
    /// Routing table: main (default), local, or a number.
    #[arg(long, default_value = "main", value_parser = parse_table)]
    table: u32,
    /// Metric.
    #[arg(long)]
    metric: Option<u32>,
    /// Scope: global, site, link, host, nowhere or a number.
    #[arg(long)]
    scope: Option<Scope>,
    /// IPv6 (only needed for `default` without --via).
    #[arg(short = '6')]
    v6: bool,
    #[command(flatten)]
    netns: NetnsArg,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Add a route (`ip route add DEST [via GW] [dev DEV] [table T] [metric M] [scope S]`).
    #[command(after_help = "Example:\n  smartnicctl route add 10.1.0.0/16 --via 10.0.0.1")]
    Add(RouteArgs),
    /// Delete a route (`ip route del DEST ...`).
    #[command(after_help = "Example:\n  smartnicctl route del 10.1.0.0/16")]
    Del(RouteArgs),
    /// List routes (`ip [-6] route show [table T|all] [dev DEV]`).
    #[command(after_help = "Example:\n  smartnicctl route show --table all -o json")]
    Show {
        /// IPv6 routes (default IPv4).
        #[arg(short = '6')]
        v6: bool,
        /// Routing table: main (default), local, all, or a number.
        #[arg(long, default_value = "main")]
        table: String,
        /// Only routes out of this interface.
        #[arg(long)]
        dev: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        netns: NetnsArg,
    },
}

fn parse_table(s: &str) -> Result<u32, String> {
    match s {
        "main" => Ok(TABLE_MAIN),
        "local" => Ok(TABLE_LOCAL),
        n => n
            .parse()
            .map_err(|_| format!("invalid table {s:?} (main, local or a number)")),
    }
}

fn table_name(t: u32) -> String {
    match t {
        TABLE_MAIN => "main".into(),
        TABLE_LOCAL => "local".into(),
        n => n.to_string(),
    }
}

impl RouteArgs {
    fn spec(&self) -> anyhow::Result<RouteSpec> {
        let destination = if self.destination == "default" {
            let v6 = self.v6 || matches!(self.via, Some(IpAddr::V6(_)));
            IpPrefix::default_route(if v6 { IpFamily::V6 } else { IpFamily::V4 })
        } else {
            self.destination.parse()?
        };
        if let Some(gw) = self.via
            && IpFamily::of(&gw) != destination.family()
        {
            anyhow::bail!(
                "route {}: gateway {gw} is not of the same family",
                self.destination
            );
        }
        Ok(RouteSpec {
            destination,
            gateway: self.via,
            dev: self.dev.as_deref().map(Into::into),
            table: self.table,
            metric: self.metric,
            scope: self.scope,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteRow {
    #[serde(flatten)]
    route: Route,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<String>,
}

#[derive(Serialize)]
struct RoutesDoc {
    routes: Vec<RouteRow>,
}

/// Runs `smartnicctl route`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Add(a) => {
            let spec = a.spec()?;
            let nl = a.netns.handle()?;
            let mut req = nl.route().add(spec.destination);
            req = apply(req, &spec);
            Ok(block_on(req.execute())??)
        }
        Cmd::Del(a) => {
            let spec = a.spec()?;
            let nl = a.netns.handle()?;
            let mut req = nl.route().del(spec.destination);
            req = apply_del(req, &spec);
            Ok(block_on(req.execute())??)
        }
        Cmd::Show {
            v6,
            table,
            dev,
            output,
            netns,
        } => {
            let nl = netns.handle()?;
            let family = if v6 { IpFamily::V6 } else { IpFamily::V4 };
            let mut req = nl.route().list(family);
            req = match table.as_str() {
                "all" => req.all_tables(),
                t => req.table(parse_table(t).map_err(anyhow::Error::msg)?),
            };
            if let Some(d) = dev {
                req = req.dev(d);
            }
            let (routes, links) = block_on(async {
                let routes = req.execute().await?;
                let links = nl.link().list().execute().await?;
                Ok::<_, nic::netlink::NetlinkError>((routes, links))
            })??;
            let names: BTreeMap<u32, String> =
                links.into_iter().map(|l| (l.index, l.name)).collect();
            let rows: Vec<_> = routes
                .into_iter()
                .map(|route| RouteRow {
                    dev: route.oif.and_then(|i| names.get(&i).cloned()),
                    route,
                })
                .collect();
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &RoutesDoc { routes: rows }),
                Output::Table => {
                    for r in &rows {
                        out(route_line(r))?;
                    }
                    Ok(())
                }
            }
        }
    }
}

macro_rules! apply_options {
    ($name:ident, $ty:ty) => {
        fn $name(mut req: $ty, spec: &RouteSpec) -> $ty {
            if let Some(gw) = spec.gateway {
                req = req.gateway(gw);
            }
            if let Some(dev) = &spec.dev {
                req = req.dev(dev.clone());
            }
            if let Some(m) = spec.metric {
                req = req.metric(m);
            }
            if let Some(s) = spec.scope {
                req = req.scope(s);
            }
            req.table(spec.table)
        }
    };
}

apply_options!(apply, nic::netlink::RouteAddRequest);
apply_options!(apply_del, nic::netlink::RouteDelRequest);

/// One line of `route show`, in `ip route` order.
fn route_line(r: &RouteRow) -> String {
    let route = &r.route;
    let mut line = if route.destination.prefix_len == 0 {
        "default".to_string()
    } else {
        route.destination.to_string()
    };
    if let Some(gw) = route.gateway {
        line.push_str(&format!(" via {gw}"));
    }
    match (&r.dev, route.oif) {
        (Some(d), _) => line.push_str(&format!(" dev {d}")),
        (None, Some(i)) => line.push_str(&format!(" dev ifindex {i}")),
        (None, None) => {}
    }
    if let Some(m) = route.metric {
        line.push_str(&format!(" metric {m}"));
    }
    line.push_str(&format!(
        " scope {} table {} proto {}",
        route.scope,
        table_name(route.table),
        route.protocol
    ));
    line
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("route").chain(argv.iter().copied())).map(|c| c.args)
    }

    fn spec(argv: &[&str]) -> anyhow::Result<RouteSpec> {
        let Cmd::Add(a) = parse(argv).unwrap().cmd else {
            panic!("not add")
        };
        a.spec()
    }

    #[test]
    fn route_arguments_follow_ip() {
        let s = spec(&[
            "add",
            "10.1.0.0/16",
            "--via",
            "10.0.0.1",
            "--dev",
            "net1",
            "--metric",
            "100",
            "--table",
            "100",
        ])
        .unwrap();
        assert_eq!(
            s.describe(),
            "10.1.0.0/16 via 10.0.0.1 dev net1 table 100 metric 100"
        );
        let s = spec(&["add", "default", "--via", "2001:db8::1"]).unwrap();
        assert_eq!(s.destination.to_string(), "::/0");
        let s = spec(&["add", "default", "-6", "--dev", "net1"]).unwrap();
        assert_eq!(s.destination.family(), IpFamily::V6);
        let s = spec(&["add", "default", "--dev", "net1", "--scope", "link"]).unwrap();
        assert_eq!(
            (s.destination.to_string(), s.scope),
            ("0.0.0.0/0".into(), Some(Scope::Link))
        );
        assert!(spec(&["add", "10.1.0.0/16", "--via", "2001:db8::1"]).is_err());
        assert!(spec(&["add", "10.1.0.0/33"]).is_err());
        assert!(parse(&["add", "10.1.0.0/16", "--table", "mine"]).is_err());
        assert!(parse(&["show", "--table", "all", "-6", "-o", "json"]).is_ok());
    }

    #[test]
    fn route_lines_read_like_ip_route() {
        let row = RouteRow {
            route: Route {
                destination: "10.1.0.0/16".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                oif: Some(4),
                table: TABLE_MAIN,
                metric: Some(100),
                scope: Scope::Global,
                protocol: 3,
            },
            dev: Some("net1".into()),
        };
        assert_eq!(
            route_line(&row),
            "10.1.0.0/16 via 10.0.0.1 dev net1 metric 100 scope global table main proto 3"
        );
    }
}
