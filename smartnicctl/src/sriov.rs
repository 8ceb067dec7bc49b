//! `smartnicctl sriov` (in progress).

/// Arguments of `smartnicctl sriov`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `smartnicctl sriov`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("smartnicctl sriov is not implemented yet")
}
