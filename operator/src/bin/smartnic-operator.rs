//! `smartnic-operator`: the cluster controller (controllers on the leader replica, admission
//! webhook and metrics on every replica). See `operator::app` for the wiring.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator::app::run(operator::app::Args::parse()).await?;
    Ok(())
}
