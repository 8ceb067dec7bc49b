//! `smartnicctl vf set|show`: VF settings through the PF (rtnetlink), like `ip link set $PF vf N`.

use nic::netlink::{MacAddr, VfInfo, VfLinkState, VlanProto};
use serde::Serialize;

use crate::link::{Output, block_on, host_netlink, on_off, out, print_data};

/// Arguments of `smartnicctl vf`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Change VF settings; one request per setting, in the order listed here, stopping at the
    /// first the kernel refuses.
    #[command(
        after_help = "Example:\n  smartnicctl vf set enp1s0 --vf 0 --vlan 100 --max-tx-rate 500Mbit"
    )]
    Set(SetArgs),
    /// Show the PF's VF table.
    #[command(after_help = "Example:\n  smartnicctl vf show enp1s0 -o json")]
    Show {
        /// The PF interface.
        #[arg(value_name = "PF")]
        pf: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

impl OnOff {
    fn on(self) -> bool {
        self == Self::On
    }
}

#[derive(clap::Args)]
struct SetArgs {
    /// The PF interface.
    #[arg(value_name = "PF")]
    pf: String,
    /// VF index.
    #[arg(long)]
    vf: u32,
    /// Administrative MAC of the VF.
    #[arg(long)]
    mac: Option<MacAddr>,
    /// Port VLAN (0 removes it).
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=4095))]
    vlan: Option<u16>,
    /// Port VLAN priority (with --vlan).
    #[arg(long, requires = "vlan", value_parser = clap::value_parser!(u8).range(0..=7))]
    qos: Option<u8>,
    /// Port VLAN protocol: 802.1Q or 802.1ad (with --vlan).
    #[arg(long, requires = "vlan")]
    vlan_proto: Option<VlanProto>,
    /// MAC anti-spoof check.
    #[arg(long, value_enum)]
    spoofchk: Option<OnOff>,
    /// Trusted VF.
    #[arg(long, value_enum)]
    trust: Option<OnOff>,
    /// Guaranteed TX rate with a unit (`500Mbit`, `10Gbit`; a plain number is Mbit/s); the max
    /// rate is kept.
    #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_mbit)]
    min_tx_rate: Option<u32>,
    /// TX rate limit with a unit (`500Mbit`, `10Gbit`; a plain number is Mbit/s); the min rate
    /// is kept.
    #[arg(long, value_name = "RATE", value_parser = crate::rate::parse_mbit)]
    max_tx_rate: Option<u32>,
    /// VF link state: auto, enable or disable.
    #[arg(long)]
    link_state: Option<VfLinkState>,
}

#[derive(Serialize)]
struct VfsDoc {
    pf: String,
    vfs: Vec<VfInfo>,
}

/// Runs `smartnicctl vf`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Set(a) => set(a),
        Cmd::Show { pf, output } => {
            let nl = host_netlink()?;
            let vfs = block_on(nl.vf(pf.as_str()).list().execute())??;
            match output {
                o @ (Output::Json | Output::Yaml) => print_data(o, &VfsDoc { pf, vfs }),
                Output::Table => {
                    out(format_args!("{pf}: {} VFs", vfs.len()))?;
                    for vf in &vfs {
                        out(format_args!("  {}", vf_line(vf)))?;
                    }
                    Ok(())
                }
            }
        }
    }
}

fn set(a: SetArgs) -> anyhow::Result<()> {
    let nl_pf = a.pf.clone();
    let any = a.mac.is_some()
        || a.vlan.is_some()
        || a.spoofchk.is_some()
        || a.trust.is_some()
        || a.min_tx_rate.is_some()
        || a.max_tx_rate.is_some()
        || a.link_state.is_some();
    if !any {
        anyhow::bail!(
            "vf set on {}: nothing to set (give --mac, --vlan, --spoofchk, --trust, \
             --min-tx-rate, --max-tx-rate or --link-state)",
            a.pf
        );
    }
    let nl = host_netlink()?;
    let device = format!("PF {} VF {}", a.pf, a.vf);
    let what = set_what(&a);
    block_on(async move {
        let mut req = nl.vf(nl_pf.as_str()).set(a.vf);
        if let Some(mac) = a.mac {
            req = req.mac(mac);
        }
        if let Some(vlan) = a.vlan {
            req = req.vlan(vlan, a.qos.unwrap_or(0), a.vlan_proto.unwrap_or_default());
        }
        if let Some(s) = a.spoofchk {
            req = req.spoofchk(s.on());
        }
        if let Some(t) = a.trust {
            req = req.trust(t.on());
        }
        if let Some(r) = a.min_tx_rate {
            req = req.min_tx_rate(r);
        }
        if let Some(r) = a.max_tx_rate {
            req = req.max_tx_rate(r);
        }
        if let Some(s) = a.link_state {
            req = req.link_state(s);
        }
        req.execute().await
    })?
    .map_err(|e| crate::errno::explain(e.into(), &device, &what))?;
    Ok(())
}

/// What `vf set` was asked to change, for error messages.
fn set_what(a: &SetArgs) -> String {
    let mut what = Vec::new();
    for (set, name) in [
        (a.mac.is_some(), "a VF MAC"),
        (a.vlan.is_some(), "a VF VLAN"),
        (a.spoofchk.is_some(), "VF spoof checking"),
        (a.trust.is_some(), "VF trust"),
        (a.min_tx_rate.is_some(), "a minimum VF TX rate"),
        (a.max_tx_rate.is_some(), "a VF TX rate limit"),
        (a.link_state.is_some(), "a VF link state"),
    ] {
        if set {
            what.push(name);
        }
    }
    what.join(", ")
}

fn vf_line(vf: &VfInfo) -> String {
    let mut parts = vec![format!("vf {}", vf.vf)];
    if let Some(mac) = vf.mac {
        parts.push(format!("mac {mac}"));
    }
    if let Some(vlan) = vf.vlan {
        parts.push(format!("vlan {vlan}"));
    }
    if let Some(qos) = vf.qos {
        parts.push(format!("qos {qos}"));
    }
    if let Some(proto) = vf.vlan_proto {
        parts.push(format!("proto {proto}"));
    }
    if let Some(s) = vf.spoofchk {
        parts.push(format!("spoofchk {}", on_off(s)));
    }
    if let Some(t) = vf.trust {
        parts.push(format!("trust {}", on_off(t)));
    }
    if let Some(r) = vf.min_tx_rate {
        parts.push(format!("min_tx_rate {r}"));
    }
    if let Some(r) = vf.max_tx_rate {
        parts.push(format!("max_tx_rate {r}"));
    }
    if let Some(s) = vf.link_state {
        parts.push(format!("link-state {s}"));
    }
    parts.join(" ")
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
        Cli::try_parse_from(std::iter::once("vf").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn set_takes_every_setting_of_the_contract() {
        let a = parse(&[
            "set",
            "eth0",
            "--vf",
            "3",
            "--mac",
            "02:00:00:00:00:03",
            "--vlan",
            "10",
            "--qos",
            "2",
            "--vlan-proto",
            "802.1ad",
            "--spoofchk",
            "off",
            "--trust",
            "on",
            "--min-tx-rate",
            "0",
            "--max-tx-rate",
            "100",
            "--link-state",
            "disable",
        ])
        .unwrap();
        let Cmd::Set(s) = a.cmd else {
            panic!("not set")
        };
        assert_eq!(
            (s.pf.as_str(), s.vf, s.vlan, s.qos),
            ("eth0", 3, Some(10), Some(2))
        );
        assert_eq!(s.vlan_proto, Some(VlanProto::Dot1Ad));
        assert_eq!((s.spoofchk, s.trust), (Some(OnOff::Off), Some(OnOff::On)));
        assert_eq!((s.min_tx_rate, s.max_tx_rate), (Some(0), Some(100)));
        assert_eq!(s.link_state, Some(VfLinkState::Disable));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["set", "eth0", "--vf", "0", "--qos", "1"][..],
            &["set", "eth0", "--vf", "0", "--vlan", "4096"],
            &["set", "eth0", "--vf", "0", "--vlan", "1", "--qos", "8"],
            &["set", "eth0", "--vf", "0", "--mac", "02:00"],
            &["set", "eth0", "--vf", "0", "--link-state", "up"],
            &["set", "eth0", "--vf", "0", "--spoofchk", "yes"],
            &["show"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn show_lines_name_every_reported_field() {
        let mut vf = VfInfo::new_default(1);
        vf.max_tx_rate = Some(100);
        assert_eq!(
            vf_line(&vf),
            "vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 proto 802.1Q spoofchk on trust off \
             min_tx_rate 0 max_tx_rate 100 link-state auto"
        );
        assert_eq!(
            vf_line(&VfInfo {
                vf: 2,
                ..Default::default()
            }),
            "vf 2"
        );
    }
}
