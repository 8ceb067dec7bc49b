//! The one place that knows every pool: the checked configuration and the last host state go in,
//! one tokio `watch` channel per pool comes out (ListAndWatch, Allocate and the preferred
//! allocation read it), plus a `watch` of the pool set (the supervisor starts and stops pool
//! servers from it).
//!
//! A pool whose configuration disappears has its channel dropped: its ListAndWatch streams end
//! and its server stops. A pool whose devices did not change sends nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::config::{Config, PoolSpec};
use crate::host::HostState;
use crate::metrics::Metrics;
use crate::pool::{PoolDevice, assign, hold_for_dra, keep_vanished};

/// A pool as served: its configuration and its devices (sorted by address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// The pool's configuration.
    pub spec: PoolSpec,
    /// Its devices.
    pub devices: Vec<PoolDevice>,
}

/// The pool set: resource name -> configuration.
pub type PoolSet = BTreeMap<String, PoolSpec>;

/// See the module documentation.
#[derive(Debug)]
pub struct Index {
    state: Mutex<State>,
    pools: watch::Sender<PoolSet>,
    changes: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct State {
    config: Config,
    host: Option<Arc<HostState>>,
    dra_prepared: std::collections::BTreeSet<String>,
    pools: BTreeMap<String, watch::Sender<Arc<PoolState>>>,
}

impl Index {
    /// An index with no pools and no host state yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Index {
            state: Mutex::new(State::default()),
            pools: watch::channel(PoolSet::new()).0,
            changes: watch::channel(0).0,
            metrics,
        }
    }

    /// Replaces the configuration.
    pub fn set_config(&self, config: Config) {
        let mut st = self.lock();
        st.config = config;
        self.recompute(&mut st);
    }

    /// Replaces the host state; returns false (and does nothing) when it did not change.
    pub fn set_host(&self, host: HostState) -> bool {
        let mut st = self.lock();
        if st.host.as_deref() == Some(&host) {
            return false;
        }
        st.host = Some(Arc::new(host));
        self.recompute(&mut st);
        true
    }

    /// Replaces the PCI addresses the DRA driver prepared for claims (see
    /// [`crate::pool::hold_for_dra`]); false when they did not change.
    pub fn set_dra_prepared(&self, prepared: std::collections::BTreeSet<String>) -> bool {
        let mut st = self.lock();
        if st.dra_prepared == prepared {
            return false;
        }
        st.dra_prepared = prepared;
        self.recompute(&mut st);
        true
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The configuration and the last host state, read together.
    pub fn snapshot(&self) -> (Config, Option<Arc<HostState>>) {
        let st = self.lock();
        (st.config.clone(), st.host.clone())
    }

    /// A counter that grows on every change of the configuration or the host state (what a
    /// consumer of [`Index::snapshot`] waits on).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The pool set, and its changes.
    pub fn pools(&self) -> watch::Receiver<PoolSet> {
        self.pools.subscribe()
    }

    /// The channel of one pool; `None` when there is no such pool.
    pub fn subscribe(&self, resource: &str) -> Option<watch::Receiver<Arc<PoolState>>> {
        self.lock()
            .pools
            .get(resource)
            .map(watch::Sender::subscribe)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced whole under the lock, so it is consistent even after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recompute(&self, st: &mut State) {
        self.changes.send_modify(|n| *n += 1);
        let assigned = match &st.host {
            Some(h) => assign(&st.config, h),
            None => vec![Vec::new(); st.config.pools.len()],
        };
        let mut keep = BTreeMap::new();
        for (spec, mut devices) in st.config.pools.iter().zip(assigned) {
            hold_for_dra(spec, &mut devices, &st.dra_prepared);
            let resource = spec.resource();
            let tx = match st.pools.remove(&resource) {
                Some(tx) => {
                    tx.send_if_modified(|cur| {
                        // a vanished VF stays (unhealthy) until its pool's configuration changes
                        let devices = if cur.spec == *spec {
                            keep_vanished(&cur.devices, devices)
                        } else {
                            tracing::info!(%resource, "pool configuration changed");
                            devices
                        };
                        let next = PoolState {
                            spec: spec.clone(),
                            devices,
                        };
                        if **cur == next {
                            return false;
                        }
                        log_changes(&resource, &cur.devices, &next.devices);
                        *cur = Arc::new(next);
                        true
                    });
                    tx
                }
                None => {
                    tracing::info!(
                        %resource,
                        devices = devices.len(),
                        healthy = devices.iter().filter(|d| d.health.is_healthy()).count(),
                        "pool added"
                    );
                    watch::channel(Arc::new(PoolState {
                        spec: spec.clone(),
                        devices,
                    }))
                    .0
                }
            };
            self.metrics.set_pool(&resource, &tx.borrow().devices);
            keep.insert(resource, tx);
        }
        for resource in std::mem::take(&mut st.pools).into_keys() {
            tracing::info!(%resource, "pool removed");
            self.metrics.remove_pool(&resource);
        }
        st.pools = keep;
        let set: PoolSet = st
            .config
            .pools
            .iter()
            .map(|p| (p.resource(), p.clone()))
            .collect();
        self.pools.send_if_modified(|cur| {
            if *cur == set {
                return false;
            }
            *cur = set;
            true
        });
    }
}

/// Logs devices that appeared, vanished or changed health.
fn log_changes(resource: &str, before: &[PoolDevice], after: &[PoolDevice]) {
    let old: BTreeMap<_, _> = before.iter().map(|d| (d.addr, d)).collect();
    for d in after {
        match old.get(&d.addr) {
            None => tracing::info!(%resource, device = %d.addr, health = %d.health, "device added"),
            Some(o) if o.health != d.health => {
                tracing::info!(%resource, device = %d.addr, health = %d.health, "device health changed")
            }
            Some(_) => {}
        }
    }
    let new: std::collections::BTreeSet<_> = after.iter().map(|d| d.addr).collect();
    for d in before.iter().filter(|d| !new.contains(&d.addr)) {
        tracing::info!(%resource, device = %d.addr, "device removed");
    }
}

#[cfg(test)]
mod tests {
    use crds::inventory::EswitchMode;
    use nic::fixtures::HostBuilder;

    use super::*;
    use crate::config::{Format, parse_and_check};
    use crate::host::scan;

    fn cfg(pools: &[(&str, &str)]) -> Config {
        let list: Vec<String> = pools
            .iter()
            .map(|(name, pf)| {
                format!(
                    r#"{{"resourceName": "{name}", "resourcePrefix": "smartnic.io", "deviceType": "netdevice", "selectors": [{{"pfs": [{{"pciAddress": "{pf}"}}]}}]}}"#
                )
            })
            .collect();
        parse_and_check(
            &format!(r#"{{"resourceList": [{}]}}"#, list.join(",")),
            Format::Json,
        )
        .unwrap()
    }

    #[test]
    fn pools_follow_config_and_host() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let index = Index::new(Arc::new(Metrics::new()));
        let mut set = index.pools();
        index.set_config(cfg(&[("a", "0000:3b:00.0")]));
        assert!(set.has_changed().unwrap());
        assert_eq!(
            set.borrow_and_update().keys().collect::<Vec<_>>(),
            ["smartnic.io/a"]
        );
        let mut a = index.subscribe("smartnic.io/a").unwrap();
        assert!(a.borrow_and_update().devices.is_empty());
        assert!(index.set_host(scan(&host.sysfs()).unwrap()));
        assert!(a.has_changed().unwrap());
        assert_eq!(a.borrow_and_update().devices.len(), 4);
        // the same host again: nothing sent
        assert!(!index.set_host(scan(&host.sysfs()).unwrap()));
        assert!(!a.has_changed().unwrap());
        // VF 3 vanishes: kept, unhealthy
        host.dangle_virtfn("0000:3b:00.0", 3).unwrap();
        index.set_host(scan(&host.sysfs()).unwrap());
        let devs = a.borrow_and_update().devices.clone();
        assert_eq!(devs.len(), 4);
        assert!(!devs[3].health.is_healthy());
        // a second pool, then the first one removed: its channel closes
        index.set_config(cfg(&[("a", "0000:3b:00.0"), ("b", "0000:3b:00.1")]));
        assert_eq!(
            index
                .subscribe("smartnic.io/b")
                .unwrap()
                .borrow()
                .devices
                .len(),
            2
        );
        index.set_config(cfg(&[("b", "0000:3b:00.1")]));
        assert!(a.has_changed().is_err(), "removed pool's channel is closed");
        assert!(index.subscribe("smartnic.io/a").is_none());
        assert_eq!(
            set.borrow_and_update().keys().collect::<Vec<_>>(),
            ["smartnic.io/b"]
        );
    }
}
