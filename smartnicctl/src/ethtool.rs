//! `smartnicctl ethtool features|set`: offload features (`ethtool -k` / `ethtool -K`).

use nic::ethtool::EthtoolHandle;

use crate::link::{Output, block_on, on_off, out, print_data};

/// Arguments of `smartnicctl ethtool`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Show offload features (`ethtool -k IFNAME`).
    #[command(after_help = "Example:\n  smartnicctl ethtool features ens1f0np0 -o json")]
    Features {
        /// The interface.
        ifname: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Turn one feature on or off (`ethtool -K IFNAME FEATURE on|off`). FEATURE is a kernel
    /// name (hw-tc-offload, l2-fwd-offload, rx-gro, ...) or an ethtool -K name that stands for a
    /// group (tx-checksumming = every tx-checksum-* bit).
    #[command(after_help = "Example:\n  smartnicctl ethtool set ens1f0np0 hw-tc-offload on")]
    Set {
        /// The interface.
        ifname: String,
        /// The feature.
        feature: String,
        /// on or off.
        #[arg(value_enum)]
        value: OnOff,
    },
}

/// Runs `smartnicctl ethtool`.
pub fn run(args: Args) -> anyhow::Result<()> {
    block_on(async {
        let ethtool = EthtoolHandle::connect().await?;
        match args.cmd {
            Cmd::Features { ifname, output } => {
                let features = ethtool.features().get(&ifname).execute().await?;
                match output {
                    o @ (Output::Json | Output::Yaml) => print_data(o, &features)?,
                    Output::Table => {
                        out(format_args!("Features for {ifname}:"))?;
                        for (name, st) in &features.features {
                            let fixed = if st.fixed { " [fixed]" } else { "" };
                            let req = if !st.fixed && st.requested != st.active {
                                format!(" [requested {}]", on_off(st.requested))
                            } else {
                                String::new()
                            };
                            out(format_args!("{name}: {}{fixed}{req}", on_off(st.active)))?;
                        }
                    }
                }
            }
            Cmd::Set {
                ifname,
                feature,
                value,
            } => {
                let change = ethtool
                    .features()
                    .set(&ifname)
                    .feature(&feature, value == OnOff::On)
                    .execute()
                    .await?;
                // Like ethtool -K: a partial result is not an error, but it is shown.
                for (name, wanted) in &change.not_applied {
                    eprintln!(
                        "warning: {name} on {ifname} stays {} (requested {})",
                        on_off(!wanted),
                        on_off(*wanted)
                    );
                }
            }
        }
        Ok(())
    })?
}
