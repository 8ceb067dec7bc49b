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
