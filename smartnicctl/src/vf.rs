//! `smartnicctl vf` (in progress).

/// Arguments of `smartnicctl vf`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `smartnicctl vf`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("smartnicctl vf is not implemented yet")
}
