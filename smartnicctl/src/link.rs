//! `smartnicctl link show [IFNAME] [-o json]`, plus the small helpers the netlink commands
//! share (a runtime, the output switch).

use std::{future::Future, io::Write};

use anyhow::Context;
use nic::{
    host::{Host, RealHost},
    netlink::{Link, NetlinkHandle},
};
use serde::Serialize;

/// Output format of the netlink commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Human-readable lines.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// Runs `fut` on a current-thread tokio runtime (the netlink sockets' tasks live on it).
pub(crate) fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(rt.block_on(fut))
}

/// rtnetlink in this process's network namespace.
pub(crate) fn host_netlink() -> anyhow::Result<NetlinkHandle> {
    Ok(RealHost::new()?.host_netlink()?)
}

/// Prints one line on stdout. A reader that went away (`| head`) ends the output quietly
/// instead of panicking like `println!`.
pub(crate) fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// Prints one JSON document.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    out(serde_json::to_string_pretty(value)?)
}

/// `on`/`off`.
pub(crate) fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Arguments of `smartnicctl link`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Show links of this network namespace (`ip link show [DEV]`).
    Show {
        /// Only this interface.
        ifname: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Serialize)]
struct LinksDoc {
    links: Vec<Link>,
}

/// Runs `smartnicctl link`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Show { ifname, output } => {
            let nl = host_netlink()?;
            let links = block_on(async {
                match ifname {
                    Some(name) => nl.link().get(name).execute().await.map(|l| vec![l]),
                    None => nl.link().list().execute().await,
                }
            })??;
            match output {
                Output::Json => print_json(&LinksDoc { links }),
                Output::Table => {
                    for l in &links {
                        let mac = l.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
                        let kind = l
                            .kind
                            .as_deref()
                            .map(|k| format!(" kind {k}"))
                            .unwrap_or_default();
                        out(format_args!(
                            "{}: {} mtu {} mac {} {} state {}{kind}",
                            l.index,
                            l.name,
                            l.mtu,
                            mac,
                            if l.up { "up" } else { "down" },
                            l.oper_state,
                        ))?;
                    }
                    Ok(())
                }
            }
        }
    }
}
