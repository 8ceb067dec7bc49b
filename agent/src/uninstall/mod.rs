//! The node after an uninstall (`kubectl delete -k deploy`, `helm uninstall`): the VFs as they
//! were before the agent, the CNI binary and every file we wrote gone. Only on an uninstall:
//! SIGTERM also comes with every rolling update, and resetting VFs then would pull them out of
//! running pods.
//!
//! - [`decide`]: whether this SIGTERM is an uninstall, from the agent's own DaemonSet as the API
//!   server shows it at start and now (pure);
//! - [`restore`]: each PF's original state, recorded before the first change, and the plan that
//!   puts it back (pure);
//! - [`clean`]: the holders check, the restore through the ordinary executor, the files;
//! - [`OwnDaemonSet`]: the one API read, `get daemonsets/<name>` in the agent's namespace.

pub mod clean;
pub mod decide;
pub mod restore;

#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::{Api, Client};

use decide::Lookup;

/// How long the read at SIGTERM may take: the reset and the file removal need the rest of the
/// pod's grace period.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's own DaemonSet (`DAEMONSET_NAME` in `POD_NAMESPACE`).
#[derive(Clone)]
pub struct OwnDaemonSet {
    api: Api<DaemonSet>,
    name: String,
}

impl OwnDaemonSet {
    /// The DaemonSet `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the API server says about it now, within `timeout`.
    pub async fn lookup(&self, timeout: Duration) -> Lookup {
        match tokio::time::timeout(timeout, self.api.get(&self.name)).await {
            Ok(r) => lookup_of(r),
            Err(_) => Lookup::TimedOut,
        }
    }
}

/// The [`Lookup`] of a read's result.
pub fn lookup_of(result: Result<DaemonSet, kube::Error>) -> Lookup {
    match result {
        Ok(ds) => Lookup::Found {
            uid: ds.metadata.uid.unwrap_or_default(),
            deleting: ds.metadata.deletion_timestamp.is_some(),
        },
        Err(kube::Error::Api(status)) => match status.code {
            404 => Lookup::NotFound,
            401 => Lookup::Unauthorized,
            403 => Lookup::Forbidden,
            code => Lookup::Error(format!("{code}: {}", status.message)),
        },
        Err(e) => Lookup::Error(e.to_string()),
    }
}

/// The longest the uninstall waits for a plan in flight (its blocking thread runs on after the
/// loop is stopped) before it gives up and leaves the node as it is.
pub const APPLY_WAIT: Duration = Duration::from_secs(30);

/// At SIGTERM: asks the API server about `own` (armed at start with `armed`), and on an
/// uninstall waits for a plan in flight (at most [`APPLY_WAIT`]) and runs the cleanup on `host`.
/// Everything it decides and does is logged; it never fails.
pub async fn on_stop(
    own: &OwnDaemonSet,
    armed: Option<&str>,
    host: &crate::run::HostSide,
    paths: clean::CleanPaths,
) {
    let now = own.lookup(LOOKUP_TIMEOUT).await;
    let why = match decide::decide(armed, &now) {
        decide::Decision::Keep(why) => {
            tracing::info!(
                daemonset = own.name(),
                "stopping; the node is left as it is: {why}"
            );
            return;
        }
        decide::Decision::Uninstall(why) => why,
    };
    tracing::warn!(
        daemonset = own.name(),
        "uninstall ({why}): putting the PFs back as they were and removing our files"
    );
    let host = host.clone();
    let done = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + APPLY_WAIT;
        let _applying = loop {
            match host.applying.try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Some(
            clean::Cleanup {
                host: host.host.as_ref(),
                state: &host.state,
                handoff: &host.handoff,
                boot_id: host.boot_id.clone(),
                paths: &paths,
            }
            .run(),
        )
    })
    .await;
    match done {
        Ok(Some(clean::CleanReport::Blocked(why))) => tracing::warn!("uninstall: {why}"),
        Ok(Some(clean::CleanReport::Done {
            restore,
            removed,
            errors,
        })) => {
            for line in restore.lines() {
                tracing::info!("uninstall: {line}");
            }
            for path in &removed {
                tracing::info!(path = %path.display(), "uninstall: removed");
            }
            for e in &errors {
                tracing::error!("uninstall: {e}");
            }
            tracing::info!(
                pfs = restore.pfs.len(),
                removed = removed.len(),
                errors = errors.len(),
                "uninstall done"
            );
        }
        Ok(None) => tracing::warn!(
            "uninstall: a plan was still being applied after {}; the node is left as it is",
            crds::report::human_duration(APPLY_WAIT)
        ),
        Err(e) => tracing::error!("uninstall: the cleanup task did not finish: {e}"),
    }
}
