//! Where host state comes from: a [`HostSource`] keeps the [`Index`] fed with fresh
//! [`crate::host::HostState`]s.
//!
//! [`Polling`] re-reads sysfs at a fixed interval. It is what a fixture tree (`--root`) needs,
//! since no kernel sends events about it. [`Events`] re-reads when the kernel reports a link
//! change or a PCI/net uevent, with a slow re-poll as a safety net; it is the real host's source
//! and falls back to polling while the event sockets cannot be opened.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use nic::netlink::{NetlinkEvents, NetlinkHandle};
use nic::sysfs::SysFs;
use nic::uevent::{KernelUevents, UeventNotice, UeventStream, Uevents};
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

/// Waits after the first event of a burst for the rest (creating 128 VFs sends hundreds).
const EVENT_DEBOUNCE: Duration = Duration::from_millis(20);
/// While the event sockets cannot be opened: poll at the fallback interval and retry this often.
const RESUBSCRIBE: Duration = Duration::from_secs(5);

/// Re-reads sysfs when the kernel says something changed: link events (`RTM_NEWLINK`: admin
/// state, operstate, carrier; `RTM_DELLINK`) and PCI or net uevents (VFs added and removed,
/// drivers bound and unbound), debounced; and every `repoll` anyway, as a safety net. A lost
/// event (`ENOBUFS`) is a reason to re-read like any other. When the sockets cannot be opened
/// (no CAP_NET_ADMIN is needed, but a seccomp profile may forbid netlink), it polls every
/// `fallback` and tries again every 5 s.
pub struct Events {
    /// rtnetlink; `None`: opened in [`HostSource::run`] (it needs the runtime).
    pub netlink: Option<NetlinkHandle>,
    /// Kernel uevents.
    pub uevents: Arc<dyn Uevents>,
    /// Re-read at least this often.
    pub repoll: Duration,
    /// Poll interval while the event sockets are unavailable.
    pub fallback: Duration,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("repoll", &self.repoll)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The host's own kernel, with the given safety-net and fallback intervals.
    pub fn host(repoll: Duration, fallback: Duration) -> Self {
        Events {
            netlink: None,
            uevents: Arc::new(KernelUevents),
            repoll,
            fallback,
        }
    }

    async fn subscribe(&mut self) -> Result<(NetlinkEvents, UeventStream), String> {
        let nl = match &self.netlink {
            Some(nl) => nl.clone(),
            None => {
                let nl = NetlinkHandle::connect().map_err(|e| format!("rtnetlink: {e}"))?;
                self.netlink = Some(nl.clone());
                nl
            }
        };
        let links = nl
            .subscribe()
            .await
            .map_err(|e| format!("link events: {e}"))?;
        let uevents = self
            .uevents
            .subscribe()
            .await
            .map_err(|e| format!("uevents: {e}"))?;
        Ok((links, uevents))
    }
}

/// Whether a uevent can change what the plugin sees (PCI functions and net devices).
fn relevant(n: &UeventNotice) -> bool {
    match n {
        UeventNotice::Lost => true,
        UeventNotice::Uevent(u) => matches!(u.subsystem.as_str(), "pci" | "net"),
    }
}

impl HostSource for Events {
    async fn run(mut self, sysfs: SysFs, index: Arc<Index>, mut stop: watch::Receiver<bool>) {
        loop {
            let (mut links, mut uevents) = match self.subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        "cannot follow kernel events ({e}); polling every {:?} and retrying in {RESUBSCRIBE:?}",
                        self.fallback
                    );
                    let poll = Polling {
                        interval: self.fallback,
                    };
                    let (tx, rx) = watch::channel(false);
                    let task = poll.run(sysfs.clone(), index.clone(), rx);
                    tokio::select! {
                        () = task => {}
                        () = tokio::time::sleep(RESUBSCRIBE) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    drop(tx);
                    continue;
                }
            };
            tracing::info!(
                "following link events and uevents (re-reading at least every {:?})",
                self.repoll
            );
            // read after subscribing, so that nothing falls between the two
            let _ = rescan(&sysfs, &index).await;
            loop {
                let wake = tokio::select! {
                    e = links.next() => match e {
                        Some(Ok(_)) => Ok(true),
                        Some(Err(e)) => Err(format!("link events: {e}")),
                        None => Err("link events ended".to_owned()),
                    },
                    u = uevents.next() => match u {
                        Some(Ok(n)) => Ok(relevant(&n)),
                        Some(Err(e)) => Err(format!("uevents: {e}")),
                        None => Err("uevents ended".to_owned()),
                    },
                    () = tokio::time::sleep(self.repoll) => Ok(true),
                    _ = stop.wait_for(|s| *s) => return,
                };
                match wake {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!("{e}; subscribing again");
                        break;
                    }
                }
                tokio::time::sleep(EVENT_DEBOUNCE).await;
                // the rest of the burst: already covered by the read below
                while let Some(Some(_)) = links.next().now_or_never() {}
                while let Some(Some(_)) = uevents.next().now_or_never() {}
                if let Err(e) = rescan(&sysfs, &index).await {
                    tracing::error!("cannot read the host: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crds::inventory::EswitchMode;
    use nic::fixtures::HostBuilder;
    use nic::netlink::{FakeNetlink, NetlinkEvent};
    use nic::uevent::{FakeUevents, Uevent, UeventAction};

    use super::*;
    use crate::config::{Format, parse_and_check};
    use crate::metrics::Metrics;

    fn healthy(index: &Index) -> usize {
        let rx = index.subscribe("smartnic.io/vf").unwrap();
        rx.borrow()
            .devices
            .iter()
            .filter(|d| d.health.is_healthy())
            .count()
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn events_trigger_a_read_long_before_the_repoll() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let index = Arc::new(Index::new(Arc::new(Metrics::new())));
        index.set_config(
            parse_and_check(
                r#"{"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                    "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0"}]}]}]}"#,
                Format::Json,
            )
            .unwrap(),
        );
        let nl = FakeNetlink::new();
        let uevents = FakeUevents::new();
        let source = Events {
            netlink: Some(NetlinkHandle::new(nl.clone())),
            uevents: Arc::new(uevents.clone()),
            // neither the re-poll nor the fallback can be what notices the changes below
            repoll: Duration::from_secs(3600),
            fallback: Duration::from_secs(3600),
        };
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(source.run(host.sysfs(), index.clone(), stop));
        until("the first read", || healthy(&index) == 4).await;
        until("subscribed", || uevents.subscribers() > 0).await;

        let pf = host.device_dir("0000:3b:00.0").join("net/ens1f0np0");
        std::fs::write(pf.join("operstate"), "down\n").unwrap();
        nl.push_event(NetlinkEvent::Lost);
        until("a link event to turn the VFs unhealthy", || {
            healthy(&index) == 0
        })
        .await;

        std::fs::write(pf.join("operstate"), "up\n").unwrap();
        // a uevent of another subsystem is no reason to read
        uevents.push(Uevent::new(
            UeventAction::Add,
            "/devices/virtual/block/loop0",
            "block",
            std::iter::empty(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(healthy(&index), 0);
        uevents.push(Uevent::new(
            UeventAction::Bind,
            "/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.2",
            "pci",
            std::iter::empty(),
        ));
        until("a PCI uevent to bring them back", || healthy(&index) == 4).await;
        stop_tx.send_replace(true);
        task.await.unwrap();
    }
}
