//! `smartnicctl ethtool` (in progress).

/// Arguments of `smartnicctl ethtool`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `smartnicctl ethtool`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("smartnicctl ethtool is not implemented yet")
}
