//! `smartnicctl`: the host NIC inventory and low-level NIC operations, for operators and for the lab.

mod devlink;
mod discover;
mod ethtool;
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Discover(a) => discover::run(a),
        Cmd::Sriov(a) => sriov::run(a),
        Cmd::Vf(a) => vf::run(a),
        Cmd::Devlink(a) => devlink::run(a),
        Cmd::Ethtool(a) => ethtool::run(a),
    }
}
