//! `smartnic-device-plugin`: advertises the node's smartnic.io VF pools to the kubelet.
//!
//! ```text
//! smartnic-device-plugin --config FILE [--root DIR] [--plugin-dir DIR] [--devinfo-dir DIR]
//!                        [--cdi-dir DIR] [--cdi] [--metrics-addr ADDR|off] [--log-format text|json]
//! ```
//!
//! On the host's own root (`--root /`) the host state follows link events and uevents (with a
//! re-read every 5 s as a safety net); on a fixture tree, where no kernel sends events, it is
//! polled every `--poll-interval-ms`.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use device_plugin::app::{Args, main_with};
use device_plugin::source::{Events, Polling};

/// Safety-net re-read interval when following kernel events.
const REPOLL: Duration = Duration::from_secs(5);

/// `error: ...` with the causes joined once, exit status 1 (no `Caused by:` dump).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crds::report::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let poll = Duration::from_millis(args.poll_interval_ms);
    if args.root == Path::new("/") {
        runtime.block_on(main_with(args, Events::host(REPOLL, poll)))?;
    } else {
        runtime.block_on(main_with(args, Polling { interval: poll }))?;
    }
    Ok(())
}
