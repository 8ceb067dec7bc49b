//! `smartnicctl addr add|del|show`: IPv4 and IPv6 addresses (`ip addr`).

use std::collections::BTreeMap;

use nic::netlink::{IpFamily, IpPrefix, Scope};
use serde::Serialize;

use crate::link::{NetnsArg, Output, block_on, out, print_data};

/// Arguments of `smartnicctl addr`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Add an address (`ip addr add ADDR/LEN dev IFNAME`).
    #[command(after_help = "Example:\n  smartnicctl addr add net1 10.0.0.2/24 -n pod1")]
    Add {
        /// The interface.
        #[arg(value_name = "IFNAME")]
        dev: String,
        /// Address and prefix length: 10.0.0.2/24, 2001:db8::2/64.
        address: IpPrefix,
        #[command(flatten)]
        netns: NetnsArg,
    },
    /// Remove an address (`ip addr del ADDR/LEN dev DEV`).
    #[command(after_help = "Example:\n  smartnicctl addr del net1 10.0.0.2/24 -n pod1")]
    Del {
        /// The interface.
        #[arg(value_name = "IFNAME")]
        dev: String,
        /// Address and prefix length.
        address: IpPrefix,
        #[command(flatten)]
        netns: NetnsArg,
    },
    /// List addresses (`ip [-4|-6] addr show [dev DEV]`).
    #[command(after_help = "Example:\n  smartnicctl addr show net1 -o json")]
    Show {
        /// Only this interface's.
        #[arg(value_name = "IFNAME")]
        dev: Option<String>,
        /// IPv4 only.
        #[arg(short = '4', conflicts_with = "v6")]
        v4: bool,
        /// IPv6 only.
        #[arg(short = '6')]
        v6: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        netns: NetnsArg,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressRow {
    index: u32,
    /// The interface's name, `name` as in `link show -o json`.
    #[serde(rename = "name")]
    ifname: String,
    address: IpPrefix,
    family: IpFamily,
    scope: Scope,
}

#[derive(Serialize)]
struct AddressesDoc {
    addresses: Vec<AddressRow>,
}

/// Runs `smartnicctl addr`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Add {
            address,
            dev,
            netns,
        } => {
            let nl = netns.handle()?;
            Ok(block_on(nl.address().add(dev, address).execute())??)
        }
        Cmd::Del {
            address,
            dev,
            netns,
        } => {
            let nl = netns.handle()?;
            Ok(block_on(nl.address().del(dev, address).execute())??)
        }
        Cmd::Show {
            dev,
            v4,
            v6,
            output,
            netns,
        } => {
            let nl = netns.handle()?;
            let (addresses, links) = block_on(async {
                let mut req = nl.address().list();
                if let Some(d) = dev {
                    req = req.dev(d);
                }
                if v4 {
                    req = req.family(IpFamily::V4);
                }
                if v6 {
                    req = req.family(IpFamily::V6);
                }
                let addresses = req.execute().await?;
                let links = nl.link().list().execute().await?;
                Ok::<_, nic::netlink::NetlinkError>((addresses, links))
            })??;
            let names: BTreeMap<u32, String> =
                links.into_iter().map(|l| (l.index, l.name)).collect();
            let rows: Vec<_> = addresses
                .into_iter()
                .map(|a| AddressRow {
                    index: a.index,
                    ifname: names.get(&a.index).cloned().unwrap_or_default(),
                    family: a.address.family(),
                    address: a.address,
                    scope: a.scope,
                })
                .collect();
            match output {
                o @ (Output::Json | Output::Yaml) => {
                    print_data(o, &AddressesDoc { addresses: rows })
                }
                Output::Table => {
                    for r in &rows {
                        let family = match r.family {
                            IpFamily::V4 => "inet",
                            IpFamily::V6 => "inet6",
                        };
                        out(format_args!(
                            "{}: {} {family} {} scope {}",
                            r.index, r.ifname, r.address, r.scope
                        ))?;
                    }
                    Ok(())
                }
            }
        }
    }
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
        Cli::try_parse_from(std::iter::once("addr").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn addresses_need_a_prefix_and_a_device() {
        let Cmd::Add { address, dev, .. } = parse(&["add", "net1", "2001:db8::2/64"]).unwrap().cmd
        else {
            panic!("not add")
        };
        assert_eq!(
            (address.to_string(), dev.as_str()),
            ("2001:db8::2/64".into(), "net1")
        );
        assert!(
            parse(&["add", "10.0.0.2/24"]).is_err(),
            "the interface is required"
        );
        assert!(parse(&["add", "x", "10.0.0.300/24"]).is_err());
        assert!(parse(&["show", "-4", "-6"]).is_err());
        let Cmd::Show { v6, netns, .. } = parse(&["show", "-6", "-n", "pod1", "-o", "json"])
            .unwrap()
            .cmd
        else {
            panic!("not show")
        };
        assert!(v6);
        assert!(netns.netns.is_some());
    }
}
