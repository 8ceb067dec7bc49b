//! `smartnic-operator`: the cluster controller (controllers on the leader replica, admission
//! webhook and metrics on every replica). See `operator::app` for the wiring.

use clap::Parser;

/// `error: ...` with the causes joined once, exit status 1 (no `Caused by:` dump).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match operator::app::run(operator::app::Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crds::report::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
