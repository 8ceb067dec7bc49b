//! `smartnicctl`: the host NIC inventory and low-level NIC operations, for operators and for the lab.

mod addr;
mod devlink;
mod discover;
mod ethtool;
mod link;
mod plan;
mod route;
mod sriov;
mod vf;

use clap::{Parser, Subcommand};

/// Inspect and configure SR-IOV and switchdev NICs on this host.
#[derive(Parser)]
#[command(name = "smartnicctl", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the NIC inventory of this host (or of a sysfs tree under --root).
    Discover(discover::Args),
    /// Change SR-IOV state in sysfs (VF count, VF driver).
    Sriov(sriov::Args),
    /// Show or set VF settings through the PF (rtnetlink).
    Vf(vf::Args),
    /// devlink: devices, eswitch mode, ports, port functions, rates.
    Devlink(devlink::Args),
    /// ethtool offload features.
    Ethtool(ethtool::Args),
    /// Show, create, change and delete links (rtnetlink).
    Link(link::Args),
    /// Show, add and delete IPv4/IPv6 addresses (rtnetlink).
    Addr(addr::Args),
    /// Show, add and delete IPv4/IPv6 routes (rtnetlink).
    Route(route::Args),
    /// What policies would do on this host (or a sysfs tree): steps, disruption, VF layout.
    Plan(plan::Args),
}

fn main() -> std::process::ExitCode {
    // Usage errors exit 1 like every other failure (clap's own default would be 2).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.cmd {
        Cmd::Discover(a) => discover::run(a),
        Cmd::Sriov(a) => sriov::run(a),
        Cmd::Vf(a) => vf::run(a),
        Cmd::Devlink(a) => devlink::run(a),
        Cmd::Ethtool(a) => ethtool::run(a),
        Cmd::Link(a) => link::run(a),
        Cmd::Addr(a) => addr::run(a),
        Cmd::Route(a) => route::run(a),
        Cmd::Plan(a) => plan::run(a),
    };
    // The command contract: `error: <message>` on stderr and exit 1.
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
