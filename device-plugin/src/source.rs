//! Where host state comes from: a [`HostSource`] keeps the [`Index`] fed with fresh
//! [`crate::host::HostState`]s.
//!
//! [`Polling`] re-reads sysfs at a fixed interval. It is what a fixture tree (`--root`) needs,
//! since no kernel sends events about it, and it is the real host's fallback.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nic::sysfs::SysFs;
use tokio::sync::watch;

use crate::host::{ScanError, scan};
use crate::index::Index;

/// Keeps the index fed with host state until `stop` becomes true.
pub trait HostSource: Send + 'static {
    /// Runs the source. The caller has already published one state.
    fn run(
        self,
        sysfs: SysFs,
        index: Arc<Index>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send;
}

/// Reads the host off the async runtime and publishes it; true when it changed.
pub async fn rescan(sysfs: &SysFs, index: &Index) -> Result<bool, ScanError> {
    let sysfs = sysfs.clone();
    let state = tokio::task::spawn_blocking(move || scan(&sysfs))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Ok(index.set_host(state))
}

/// Re-reads sysfs every `interval`.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// Time between two reads.
    pub interval: Duration,
}

impl HostSource for Polling {
    async fn run(self, sysfs: SysFs, index: Arc<Index>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match rescan(&sysfs, &index).await {
                Ok(_) if failing => {
                    tracing::info!("host readable again");
                    failing = false;
                }
                Ok(_) => {}
                // logged once per outage, not every tick
                Err(e) if !failing => {
                    tracing::error!("cannot read the host: {e}");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}
