//! `smartnicctl`: the host NIC inventory and low-level NIC operations, for operators and for the
//! lab, and the conversion of SR-IOV network operator manifests.

mod addr;
mod convert;
mod devlink;
mod discover;
mod ethtool;
mod input;
mod link;
mod offload;
mod ovs;
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
    /// Convert SR-IOV network operator manifests (SriovNetworkNodePolicy, SriovNetwork,
    /// SriovNetworkPoolConfig, SriovOperatorConfig) into smartnic.io objects; what has no
    /// counterpart is named on stderr.
    Convert(convert::Args),
    /// Show, add and delete IPv4/IPv6 addresses (rtnetlink).
    Addr(addr::Args),
    /// Show, add and delete IPv4/IPv6 routes (rtnetlink).
    Route(route::Args),
    /// What policies would do on this host (or a sysfs tree): steps, disruption, VF layout.
    Plan(plan::Args),
    /// The node's OVS: setup, pod attach/detach, tunnel peers, the tunnel endpoint.
    Ovs(ovs::Args),
    /// Where the node's (or one pod's) datapath flows run: hardware, tc, OVS; and why.
    Offload(offload::Args),
    /// One pod attachment's path hop by hop, each hop hardware or software with its evidence.
    Trace(offload::TraceArgs),
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
        Cmd::Convert(a) => convert::run(a),
        Cmd::Addr(a) => addr::run(a),
        Cmd::Route(a) => route::run(a),
        Cmd::Plan(a) => plan::run(a),
        Cmd::Ovs(a) => ovs::run(a),
        Cmd::Offload(a) => offload::run(a),
        Cmd::Trace(a) => offload::run_trace(a),
    };
    // The command contract: `error: <message>` on stderr and exit 1.
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<plan::NothingPlanned>() => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", crds::report::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
