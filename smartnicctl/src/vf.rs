//! `smartnicctl vf set|show`: VF settings through the PF (rtnetlink), like `ip link set $PF vf N`.

use nic::netlink::{MacAddr, NetlinkHandle, VfInfo, VfLinkState, VlanProto};
use serde::Serialize;

use crate::link::{Output, block_on, on_off, out, print_json};

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
    Set(SetArgs),
    /// Show the PF's VF table.
    Show {
        /// The PF interface.
        #[arg(long)]
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
    #[arg(long)]
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
    /// Guaranteed TX rate in Mbit/s (the max rate is kept).
    #[arg(long)]
    min_tx_rate: Option<u32>,
    /// TX rate limit in Mbit/s (the min rate is kept).
    #[arg(long)]
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
            let vfs = block_on(async {
                let nl = NetlinkHandle::connect()?;
                nl.vf(pf.as_str()).list().execute().await
            })??;
            match output {
                Output::Json => print_json(&VfsDoc { pf, vfs }),
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
    block_on(async move {
        let nl = NetlinkHandle::connect()?;
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
    })??;
    Ok(())
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
