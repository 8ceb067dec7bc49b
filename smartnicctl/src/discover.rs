//! `smartnicctl discover` (in progress).

/// Arguments of `smartnicctl discover`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `smartnicctl discover`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("smartnicctl discover is not implemented yet")
}
