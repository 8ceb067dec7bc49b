//! `smartnicctl devlink ...`: devices, eswitch mode, ports, port functions, info, rates.

use anyhow::Context;
use nic::{
    devlink::{
        DevInfo, DevlinkDev, DevlinkHandle, EncapMode, Eswitch, EswitchMode, InlineMode, Port,
        PortFunctionState, PortRef, Rate, RateObject,
    },
    netlink::MacAddr,
};
use serde::Serialize;

use crate::link::{Output, block_on, out, print_data};

/// Arguments of `smartnicctl devlink`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// List devlink devices (`devlink dev show`).
    #[command(after_help = "Example:\n  smartnicctl devlink dev -o json")]
    Dev {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show or set the eswitch mode (`devlink dev eswitch`).
    #[command(subcommand)]
    #[command(after_help = "Example:\n  smartnicctl devlink eswitch show pci/0000:3b:00.0")]
    Eswitch(EswitchCmd),
    /// List ports and representors, or set a port function (`devlink port`).
    #[command(after_help = "Example:\n  smartnicctl devlink port pci/0000:3b:00.0 -o yaml")]
    Port(PortArgs),
    /// Driver, serial and firmware versions (`devlink dev info`).
    #[command(after_help = "Example:\n  smartnicctl devlink info pci/0000:3b:00.0")]
    Info {
        /// The device, BUS/NAME (pci/0000:01:00.0).
        dev: DevlinkDev,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Rate objects (`devlink port function rate`).
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  smartnicctl devlink rate set pci/0000:3b:00.0/1 --tx-max 10Gbit"
    )]
    Rate(RateCmd),
}

#[derive(clap::Subcommand)]
enum EswitchCmd {
    /// `devlink dev eswitch show DEV`.
    #[command(after_help = "Example:\n  smartnicctl devlink eswitch show pci/0000:3b:00.0 -o json")]
    Show {
        /// The device, BUS/NAME.
        dev: DevlinkDev,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// `devlink dev eswitch set DEV ...`, in one request.
    #[command(
        after_help = "Example:\n  smartnicctl devlink eswitch set pci/0000:3b:00.0 --mode switchdev"
    )]
    Set {
        /// The device, BUS/NAME.
        dev: DevlinkDev,
        /// legacy or switchdev.
        #[arg(long)]
        mode: Option<EswitchMode>,
        /// none, link, network or transport.
        #[arg(long)]
        inline_mode: Option<InlineMode>,
        /// none or basic.
        #[arg(long)]
        encap_mode: Option<EncapMode>,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PortArgs {
    #[command(subcommand)]
    cmd: Option<PortCmd>,
    /// Only the ports of this device, BUS/NAME.
    dev: Option<DevlinkDev>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

#[derive(clap::Subcommand)]
enum PortCmd {
    /// Port functions.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  smartnicctl devlink port function set pci/0000:3b:00.0/1 --hw-addr 02:00:00:00:00:01"
    )]
    Function(FunctionCmd),
}

#[derive(clap::Subcommand)]
enum FunctionCmd {
    /// `devlink port function set DEV/INDEX ...`; one request per setting, hw-addr first.
    #[command(
        after_help = "Example:\n  smartnicctl devlink port function set pci/0000:3b:00.0/1 --state active"
    )]
    Set {
        /// The port, BUS/NAME/INDEX.
        port: PortRef,
        /// Hardware address of the function.
        #[arg(long)]
        hw_addr: Option<MacAddr>,
        /// active or inactive.
        #[arg(long)]
        state: Option<PortFunctionState>,
    },
}

#[derive(clap::Subcommand)]
enum RateCmd {
    /// Set a leaf (BUS/NAME/PORT_INDEX) or a node (BUS/NAME/NODE_NAME); rates with units
    /// (`10Gbit`, `500Mbit`; a plain number is bytes/s).
    #[command(
        after_help = "Example:\n  smartnicctl devlink rate set pci/0000:3b:00.0/1 --tx-max 10Gbit --parent grp1"
    )]
    Set {
        /// BUS/NAME/PORT_INDEX or BUS/NAME/NODE_NAME.
        target: String,
        /// Guaranteed rate (`1Gbit`, `500Mbit`; a plain number is bytes/s).
        #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_bytes)]
        tx_share: Option<u64>,
        /// Rate limit (`10Gbit`, `500Mbit`; a plain number is bytes/s).
        #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_bytes)]
        tx_max: Option<u64>,
        /// Attach to this rate node.
        #[arg(long, conflicts_with = "no_parent")]
        parent: Option<String>,
        /// Detach from its rate node.
        #[arg(long)]
        no_parent: bool,
    },
    /// Add a rate node BUS/NAME/NODE_NAME.
    #[command(
        after_help = "Example:\n  smartnicctl devlink rate add pci/0000:3b:00.0/grp1 --tx-share 1Gbit"
    )]
    Add {
        /// BUS/NAME/NODE_NAME.
        node: String,
        /// Guaranteed rate (`1Gbit`, `500Mbit`; a plain number is bytes/s).
        #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_bytes)]
        tx_share: Option<u64>,
        /// Rate limit (`10Gbit`, `500Mbit`; a plain number is bytes/s).
        #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_bytes)]
        tx_max: Option<u64>,
    },
    /// Delete a rate node BUS/NAME/NODE_NAME.
    #[command(after_help = "Example:\n  smartnicctl devlink rate del pci/0000:3b:00.0/grp1")]
    Del {
        /// BUS/NAME/NODE_NAME.
        node: String,
    },
    /// List rate objects, or read one back (`devlink port function rate show [OBJECT]`).
    #[command(after_help = "Example:\n  smartnicctl devlink rate show pci/0000:3b:00.0 -o json")]
    Show {
        /// BUS/NAME: the rates of one device; BUS/NAME/PORT_INDEX or BUS/NAME/NODE: one rate
        /// object (an error when it does not exist).
        target: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Serialize)]
struct DevicesDoc {
    devices: Vec<DevlinkDev>,
}

#[derive(Serialize)]
struct PortsDoc {
    ports: Vec<Port>,
}

#[derive(Serialize)]
struct RatesDoc {
    rates: Vec<Rate>,
}

/// `BUS/NAME/LAST` split into the device and the last component.
fn split_target(s: &str) -> anyhow::Result<(DevlinkDev, String)> {
    let (dev, last) = s.rsplit_once('/').with_context(|| {
        format!("invalid rate target {s:?}: expected BUS/NAME/PORT_INDEX or BUS/NAME/NODE")
    })?;
    if last.is_empty() {
        anyhow::bail!("invalid rate target {s:?}: expected BUS/NAME/PORT_INDEX or BUS/NAME/NODE");
    }
    Ok((dev.parse()?, last.to_string()))
}

/// `BUS/NAME` (a device), `BUS/NAME/PORT_INDEX` (a leaf) or `BUS/NAME/NODE` (a node).
fn rate_show_target(s: &str) -> anyhow::Result<(DevlinkDev, Option<RateObject>)> {
    if s.matches('/').count() == 1 {
        return Ok((s.parse()?, None));
    }
    let (dev, last) = split_target(s)?;
    let object = match last.parse::<u32>() {
        Ok(port) => RateObject::Leaf { port },
        Err(_) => RateObject::Node { name: last },
    };
    Ok((dev, Some(object)))
}

const NO_DEVLINK_NOTE: &str =
    "note: this kernel has no devlink (generic netlink family \"devlink\" not found)";

/// Runs `smartnicctl devlink`.
pub fn run(args: Args) -> anyhow::Result<()> {
    block_on(run_async(args))?
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Dev { output } => {
            let devices = match DevlinkHandle::connect_optional().await? {
                Some(dl) => dl.dev().list().await?,
                None => {
                    eprintln!("{NO_DEVLINK_NOTE}");
                    Vec::new()
                }
            };
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &DevicesDoc { devices })?,
                Output::Table => devices.iter().try_for_each(out)?,
            }
        }
        Cmd::Eswitch(EswitchCmd::Show { dev, output }) => {
            let e = DevlinkHandle::connect().await?.eswitch(&dev).get().await?;
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &e)?,
                Output::Table => out(eswitch_line(&e))?,
            }
        }
        Cmd::Eswitch(EswitchCmd::Set {
            dev,
            mode,
            inline_mode,
            encap_mode,
        }) => {
            if mode.is_none() && inline_mode.is_none() && encap_mode.is_none() {
                anyhow::bail!(
                    "eswitch set {dev}: nothing to set (give --mode, --inline-mode or --encap-mode)"
                );
            }
            let dl = DevlinkHandle::connect().await?;
            let mut req = dl.eswitch(&dev).set();
            if let Some(m) = mode {
                req = req.mode(m);
            }
            if let Some(m) = inline_mode {
                req = req.inline_mode(m);
            }
            if let Some(m) = encap_mode {
                req = req.encap_mode(m);
            }
            req.execute().await?;
        }
        Cmd::Port(PortArgs {
            cmd: None,
            dev,
            output,
        }) => {
            let ports = match DevlinkHandle::connect_optional().await? {
                Some(dl) => dl.port().list(dev.as_ref()).await?,
                None => {
                    eprintln!("{NO_DEVLINK_NOTE}");
                    Vec::new()
                }
            };
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &PortsDoc { ports })?,
                Output::Table => ports.iter().try_for_each(|p| out(port_line(p)))?,
            }
        }
        Cmd::Port(PortArgs {
            cmd:
                Some(PortCmd::Function(FunctionCmd::Set {
                    port,
                    hw_addr,
                    state,
                })),
            ..
        }) => {
            if hw_addr.is_none() && state.is_none() {
                anyhow::bail!(
                    "port function set {port}: nothing to set (give --hw-addr or --state)"
                );
            }
            let dl = DevlinkHandle::connect().await?;
            let mut req = dl.port().function(&port);
            if let Some(mac) = hw_addr {
                req = req.hw_addr(mac);
            }
            if let Some(s) = state {
                req = req.state(s);
            }
            req.execute().await?;
        }
        Cmd::Info { dev, output } => {
            let info = DevlinkHandle::connect().await?.dev().info(&dev).await?;
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &info)?,
                Output::Table => print_info(&info)?,
            }
        }
        Cmd::Rate(RateCmd::Set {
            target,
            tx_share,
            tx_max,
            parent,
            no_parent,
        }) => {
            if tx_share.is_none() && tx_max.is_none() && parent.is_none() && !no_parent {
                anyhow::bail!(
                    "rate set {target}: nothing to set (give --tx-share, --tx-max, --parent or --no-parent)"
                );
            }
            let (dev, last) = split_target(&target)?;
            let dl = DevlinkHandle::connect().await?;
            let mut req = match last.parse::<u32>() {
                Ok(index) => dl.rate().leaf(&PortRef { dev, index }),
                Err(_) => dl.rate().node(&dev, &last).set(),
            };
            if let Some(v) = tx_share {
                req = req.tx_share(v);
            }
            if let Some(v) = tx_max {
                req = req.tx_max(v);
            }
            if let Some(p) = &parent {
                req = req.parent(p);
            }
            if no_parent {
                req = req.no_parent();
            }
            req.execute().await?;
        }
        Cmd::Rate(RateCmd::Add {
            node,
            tx_share,
            tx_max,
        }) => {
            let (dev, name) = split_target(&node)?;
            let dl = DevlinkHandle::connect().await?;
            let mut req = dl.rate().node(&dev, &name).add();
            if let Some(v) = tx_share {
                req = req.tx_share(v);
            }
            if let Some(v) = tx_max {
                req = req.tx_max(v);
            }
            req.execute().await?;
        }
        Cmd::Rate(RateCmd::Del { node }) => {
            let (dev, name) = split_target(&node)?;
            DevlinkHandle::connect()
                .await?
                .rate()
                .node(&dev, &name)
                .del()
                .await?;
        }
        Cmd::Rate(RateCmd::Show { target, output }) => {
            let (dev, object) = match target.as_deref().map(rate_show_target).transpose()? {
                Some((dev, object)) => (Some(dev), object),
                None => (None, None),
            };
            let mut rates = DevlinkHandle::connect()
                .await?
                .rate()
                .list(dev.as_ref())
                .await?;
            if let Some(object) = &object {
                rates.retain(|r| &r.object == object);
                if rates.is_empty() {
                    anyhow::bail!("no rate object {}", target.as_deref().unwrap_or_default());
                }
            }
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &RatesDoc { rates })?,
                Output::Table => rates.iter().try_for_each(|r| out(rate_line(r)))?,
            }
        }
    }
    Ok(())
}

fn eswitch_line(e: &Eswitch) -> String {
    let mut s = e.dev.to_string();
    if let Some(m) = e.mode {
        s.push_str(&format!(": mode {m}"));
    }
    if let Some(m) = e.inline_mode {
        s.push_str(&format!(" inline-mode {m}"));
    }
    if let Some(m) = e.encap_mode {
        s.push_str(&format!(" encap-mode {m}"));
    }
    s
}

fn port_line(p: &Port) -> String {
    let mut s = format!("{}/{}:", p.dev, p.index);
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(" {k} {v}"));
        }
    };
    add("netdev", p.netdev.clone());
    add("flavour", p.flavour.map(|f| f.to_string()));
    add("controller", p.controller.map(|c| c.to_string()));
    add("pfnum", p.pf_number.map(|n| n.to_string()));
    add("vfnum", p.vf_number.map(|n| n.to_string()));
    add("sfnum", p.sf_number.map(|n| n.to_string()));
    add("external", p.external.map(|e| e.to_string()));
    if let Some(f) = &p.function {
        add("hw_addr", f.hw_addr.clone());
        add("state", f.state.map(|x| x.to_string()));
        add("opstate", f.opstate.map(|x| x.to_string()));
    }
    s
}

fn rate_line(r: &Rate) -> String {
    let mut s = match &r.object {
        RateObject::Leaf { port } => format!("{}/{port}: type leaf", r.dev),
        RateObject::Node { name } => format!("{}/{name}: type node", r.dev),
    };
    if let Some(v) = r.tx_share {
        s.push_str(&format!(" tx_share {v}"));
    }
    if let Some(v) = r.tx_max {
        s.push_str(&format!(" tx_max {v}"));
    }
    if let Some(p) = &r.parent {
        s.push_str(&format!(" parent {p}"));
    }
    s
}

fn print_info(info: &DevInfo) -> anyhow::Result<()> {
    out(format_args!("{}:", info.dev))?;
    if let Some(d) = &info.driver {
        out(format_args!("  driver {d}"))?;
    }
    if let Some(s) = &info.serial {
        out(format_args!("  serial_number {s}"))?;
    }
    for (title, map) in [
        ("fixed", &info.versions.fixed),
        ("running", &info.versions.running),
        ("stored", &info.versions.stored),
    ] {
        if !map.is_empty() {
            out(format_args!("  versions {title}:"))?;
            for (k, v) in map {
                out(format_args!("    {k} {v}"))?;
            }
        }
    }
    Ok(())
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
        Cli::try_parse_from(std::iter::once("devlink").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn port_takes_a_device_or_the_function_subcommand() {
        let a = parse(&["port", "netdevsim/netdevsim10", "-o", "json"]).unwrap();
        let Cmd::Port(PortArgs {
            cmd: None,
            dev: Some(dev),
            output,
        }) = a.cmd
        else {
            panic!("not a port listing")
        };
        assert_eq!(
            (dev.to_string(), output),
            ("netdevsim/netdevsim10".into(), Output::Json)
        );
        let a = parse(&[
            "port",
            "function",
            "set",
            "netdevsim/netdevsim10/128",
            "--hw-addr",
            "02:00:00:00:00:01",
            "--state",
            "active",
        ])
        .unwrap();
        let Cmd::Port(PortArgs {
            cmd: Some(PortCmd::Function(FunctionCmd::Set { port, .. })),
            ..
        }) = a.cmd
        else {
            panic!("not a function set")
        };
        assert_eq!(port.index, 128);
        assert!(parse(&["port"]).is_ok());
    }

    #[test]
    fn contract_forms_parse() {
        for argv in [
            &["dev", "-o", "json"][..],
            &["eswitch", "show", "pci/0000:01:00.0", "-o", "json"],
            &[
                "eswitch",
                "set",
                "pci/0000:01:00.0",
                "--mode",
                "switchdev",
                "--inline-mode",
                "transport",
                "--encap-mode",
                "basic",
            ],
            &["info", "netdevsim/netdevsim10", "-o", "json"],
            &[
                "rate",
                "set",
                "netdevsim/netdevsim10/128",
                "--tx-share",
                "1250000",
                "--tx-max",
                "12500000",
            ],
            &["rate", "add", "netdevsim/netdevsim10/grp1", "--tx-max", "1"],
            &["rate", "del", "netdevsim/netdevsim10/grp1"],
            &["rate", "show"],
            &["rate", "show", "netdevsim/netdevsim10/128", "-o", "json"],
        ] {
            assert!(parse(argv).is_ok(), "{argv:?}");
        }
        for argv in [
            &["eswitch", "show", "0000:01:00.0"][..],
            &["eswitch", "set", "pci/x", "--mode", "offload"],
            &["port", "function", "set", "pci/x", "--state", "on"],
            &["rate", "set", "x/y/1", "--parent", "a", "--no-parent"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn rate_targets_split_at_the_last_slash() {
        let (dev, last) = split_target("netdevsim/netdevsim10/128").unwrap();
        assert_eq!(
            (dev.to_string(), last.as_str()),
            ("netdevsim/netdevsim10".into(), "128")
        );
        let (dev, last) = split_target("pci/0000:03:00.0/group_a").unwrap();
        assert_eq!((dev.bus.as_str(), last.as_str()), ("pci", "group_a"));
        assert!(split_target("pci/0000:03:00.0/").is_err());
        assert_eq!(
            rate_show_target("netdevsim/netdevsim10/128").unwrap().1,
            Some(RateObject::Leaf { port: 128 })
        );
        assert_eq!(
            rate_show_target("pci/0000:03:00.0/group_a").unwrap().1,
            Some(RateObject::Node {
                name: "group_a".into()
            })
        );
        assert_eq!(rate_show_target("pci/0000:03:00.0").unwrap().1, None);
        assert!(rate_show_target("pci").is_err());
        assert!(split_target("nothing").is_err());
    }
}
