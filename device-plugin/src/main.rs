//! `smartnic-device-plugin`: advertises the node's smartnic.io VF pools to the kubelet.
//!
//! ```text
//! smartnic-device-plugin --config FILE [--root DIR] [--plugin-dir DIR] [--devinfo-dir DIR]
//!                        [--cdi-dir DIR] [--cdi] [--metrics-addr ADDR] [--log-format text|json]
//! ```

use std::time::Duration;

use clap::Parser;
use device_plugin::app::{Args, main_with};
use device_plugin::source::Polling;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let source = Polling {
        interval: Duration::from_millis(args.poll_interval_ms),
    };
    runtime.block_on(main_with(args, source))?;
    Ok(())
}
