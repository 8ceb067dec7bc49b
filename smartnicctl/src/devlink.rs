//! `smartnicctl devlink` (in progress).

/// Arguments of `smartnicctl devlink`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `smartnicctl devlink`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("smartnicctl devlink is not implemented yet")
}
