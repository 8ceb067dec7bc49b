//! `smartnicctl`: the host NIC inventory and low-level NIC operations, for operators and for the
//! lab, and the conversion of SR-IOV network operator manifests.

mod addr;
mod convert;
mod devlink;
mod discover;
mod errno;
mod ethtool;
mod grammar;
mod input;
mod link;
mod offload;
mod ovs;
mod plan;
mod rate;
mod route;
mod sriov;
mod vf;

use clap::{Parser, Subcommand};

/// The grammar every command follows, printed after the command list of `smartnicctl --help`
/// (and written down in the README).
const GRAMMAR: &str = "\
Conventions (every command):
  -o, --output table|json|yaml   how a command that prints data prints it (table by default;
                                 `offload` also `prom`, Prometheus text; `convert` yaml|json)
  IFNAME / PF                    the interface a command acts on is its first argument:
                                 `vf show enp1s0`, `addr show net1`, `sriov numvfs enp1s0 4`
                                 (a PF also by PCI address); flags name only the other
                                 interfaces a command needs (`--parent`, `--master`, a
                                 route's `--dev`). One rule, as in ip(8) and ethtool(8), and
                                 what link, ethtool and devlink always took. The earlier
                                 `--pf`, `--pci` (of a PF) and `--dev` still work, with a note
  -f, --filename FILE|-          an input file; `-` reads stdin
  --root DIR                     read a sysfs tree instead of this host's /sys (examples/hosts/)
  RATE                           with a unit: 10Gbit, 500Mbit (a plain number keeps the
                                 command's documented unit)
  exit status                    0 done, 1 error (`error: ...` on stderr); `plan`: 2 when no PF
                                 is selected (nothing planned)
Flags of a command group (`ovs --rundir DIR`) may come before or after its subcommand.

Examples:
  smartnicctl discover --root examples/hosts/e810
  smartnicctl plan -f deploy/examples/nicpolicy.yaml --root examples/hosts/cx6dx-switchdev
  smartnicctl convert -f sriov.yaml | smartnicctl plan -f -";

/// Inspect and configure SR-IOV and switchdev NICs on this host.
#[derive(Parser)]
#[command(name = "smartnicctl", version, after_help = GRAMMAR)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the NIC inventory of this host (or of a sysfs tree under --root).
    #[command(
        after_help = "Example:\n  smartnicctl discover --root examples/hosts/igb-82576 -o yaml"
    )]
    Discover(discover::Args),
    /// Change SR-IOV state in sysfs (VF count, VF driver).
    #[command(after_help = "Example:\n  smartnicctl sriov numvfs enp1s0 4")]
    Sriov(sriov::Args),
    /// Show or set VF settings through the PF (rtnetlink).
    #[command(after_help = "Example:\n  smartnicctl vf show enp1s0")]
    Vf(vf::Args),
    /// devlink: devices, eswitch mode, ports, port functions, rates.
    #[command(
        after_help = "Example:\n  smartnicctl devlink eswitch set pci/0000:3b:00.0 --mode switchdev"
    )]
    Devlink(devlink::Args),
    /// ethtool offload features.
    #[command(after_help = "Example:\n  smartnicctl ethtool features ens1f0np0")]
    Ethtool(ethtool::Args),
    /// Show, create, change and delete links (rtnetlink).
    #[command(after_help = "Example:\n  smartnicctl link show -o json")]
    Link(link::Args),
    /// Convert SR-IOV network operator manifests (SriovNetworkNodePolicy, SriovNetwork,
    /// SriovNetworkPoolConfig, SriovOperatorConfig) into smartnic.io objects; what has no
    /// counterpart is named on stderr.
    #[command(after_help = "Example:\n  smartnicctl convert -f sriov.yaml > smartnic.yaml")]
    Convert(convert::Args),
    /// Show, add and delete IPv4/IPv6 addresses (rtnetlink).
    #[command(after_help = "Example:\n  smartnicctl addr show net1")]
    Addr(addr::Args),
    /// Show, add and delete IPv4/IPv6 routes (rtnetlink).
    #[command(after_help = "Example:\n  smartnicctl route show -6")]
    Route(route::Args),
    /// What policies would do on this host (or a sysfs tree): steps, disruption, VF layout.
    #[command(
        after_help = "Examples:\n  smartnicctl plan -f deploy/examples/nicpolicy.yaml --root examples/hosts/cx6dx-switchdev\n  smartnicctl convert -f sriov.yaml | smartnicctl plan -f - -o json\n\nExit status: 0 planned, 2 no PF selected (nothing planned), 1 error."
    )]
    Plan(plan::Args),
    /// The node's OVS: setup, pod attach/detach, tunnel peers, the tunnel endpoint.
    #[command(
        after_help = "Example:\n  smartnicctl ovs setup --bridge br-int --rundir /run/openvswitch"
    )]
    Ovs(ovs::Args),
    /// Where the node's (or one pod's) datapath flows run: hardware, tc, OVS; and why.
    #[command(after_help = "Example:\n  smartnicctl offload -o prom")]
    Offload(offload::Args),
    /// One pod attachment's path hop by hop, each hop hardware or software with its evidence.
    #[command(after_help = "Example:\n  smartnicctl trace --pod default/pod1 -o json")]
    Trace(offload::TraceArgs),
}

fn main() -> std::process::ExitCode {
    // Usage errors exit 1 like every other failure (clap's own default would be 2).
    let (args, note) = grammar::rewrite_deprecated(std::env::args_os().skip(1).collect());
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let argv = std::iter::once(std::env::args_os().next().unwrap_or_default()).chain(args);
    let cli = match Cli::try_parse_from(argv) {
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
