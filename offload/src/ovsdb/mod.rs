//! A native OVSDB client (RFC 7047): `transact`, `monitor`, `monitor_cond`, `echo`, `list_dbs`
//! over JSON-RPC.
//!
//! [`Client`] is the protocol; [`crate::vswitch::Ovs`] builds the `Open_vSwitch` operations
//! (bridges, ports, interfaces, `other_config`) on it.

pub mod value;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::jsonrpc::{Connection, Notification, Remote, RpcError};

/// Errors of an OVSDB request.
#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    /// The JSON-RPC layer failed (connect, closed, server error).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// One operation of a transaction failed; the whole transaction was rolled back.
    #[error("{remote}: transaction failed at operation {index} ({op}): {error}{details}")]
    Operation {
        /// The remote.
        remote: String,
        /// Index of the failing operation.
        index: usize,
        /// The operation, e.g. `insert Port`.
        op: String,
        /// `error` as the server sent it, e.g. `constraint violation`.
        error: String,
        /// `: details` when the server sent any.
        details: String,
    },
    /// The reply did not have the shape RFC 7047 gives.
    #[error("{remote}: unexpected reply to {what}: {reply}")]
    Reply {
        /// The remote.
        remote: String,
        /// The request.
        what: String,
        /// The reply.
        reply: Value,
    },
}

type Monitors = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>>;

/// An OVSDB connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    conn: Connection,
    monitors: Monitors,
}

/// An open monitor: the table contents when it started, then every change.
#[derive(Debug)]
pub struct Monitor {
    /// The initial contents: `<table-updates>` (`{table: {uuid: {"new": row}}}`) from
    /// [`Client::monitor`], `<table-updates2>` (`{table: {uuid: {"initial": row}}}`) from
    /// [`Client::monitor_cond`].
    pub initial: Value,
    /// Later `<table-updates>`, in the order the server sent them.
    pub updates: mpsc::UnboundedReceiver<Value>,
}

impl Client {
    /// Connects (`ovsdb-client ... unix:/run/openvswitch/db.sock`).
    pub async fn connect(remote: &Remote) -> Result<Self, OvsdbError> {
        let (conn, notes) = Connection::connect(remote).await?;
        let monitors: Monitors = Arc::default();
        tokio::spawn(route_updates(notes, monitors.clone()));
        Ok(Self { conn, monitors })
    }

    /// The remote, for messages.
    pub fn remote(&self) -> &str {
        self.conn.remote()
    }

    /// `ovsdb-client list-dbs`
    pub async fn list_dbs(&self) -> Result<Vec<String>, OvsdbError> {
        let r = self.conn.call("list_dbs", json!([])).await?;
        serde_json::from_value(r.clone()).map_err(|_| self.bad_reply("list_dbs", r))
    }

    /// `echo`: a liveness probe; the server returns the parameters.
    pub async fn echo(&self, params: Value) -> Result<Value, OvsdbError> {
        Ok(self.conn.call("echo", params).await?)
    }

    /// `ovsdb-client transact DB '[op, ...]'`: runs the operations atomically and returns one
    /// result per operation. A failed operation fails the call, naming the operation.
    pub async fn transact(&self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, OvsdbError> {
        let mut params = vec![json!(db)];
        params.extend(ops.iter().cloned());
        let r = self.conn.call("transact", Value::Array(params)).await?;
        let Some(results) = r.as_array() else {
            return Err(self.bad_reply("transact", r));
        };
        // A result list longer than the ops carries a commit error at the end.
        for (i, res) in results.iter().enumerate() {
            if let Some(err) = res.get("error").and_then(Value::as_str) {
                let op = ops.get(i).map_or_else(
                    || "commit".to_string(),
                    |o| {
                        format!(
                            "{} {}",
                            o["op"].as_str().unwrap_or("?"),
                            o["table"].as_str().unwrap_or("")
                        )
                    },
                );
                let details = res
                    .get("details")
                    .and_then(Value::as_str)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                return Err(OvsdbError::Operation {
                    remote: self.remote().to_string(),
                    index: i,
                    op,
                    error: err.to_string(),
                    details,
                });
            }
        }
        Ok(results.clone())
    }

    /// `ovsdb-client monitor DB TABLE COLUMNS`: `requests` is `{table: {"columns": [...]}}`.
    /// The update channel is registered before the request goes out, so no update is lost.
    pub async fn monitor(
        &self,
        db: &str,
        id: &str,
        requests: Value,
    ) -> Result<Monitor, OvsdbError> {
        self.open_monitor("monitor", db, id, requests).await
    }

    /// `monitor_cond` (ovsdb-server(7), OVS 2.6 and later): as [`Self::monitor`], but changes
    /// arrive as `update2` notifications whose `modify` carries only what changed: for a set
    /// column the elements added or removed, for a map column the pairs. A port added to a
    /// bridge is then one UUID on the wire instead of the bridge's whole port set, which the
    /// server formats for every change (measured: most of a port-add commit at a hundred ports).
    pub async fn monitor_cond(
        &self,
        db: &str,
        id: &str,
        requests: Value,
    ) -> Result<Monitor, OvsdbError> {
        self.open_monitor("monitor_cond", db, id, requests).await
    }

    /// Registers `id` for its notifications before asking, since they may come before the reply.
    async fn open_monitor(
        &self,
        method: &str,
        db: &str,
        id: &str,
        requests: Value,
    ) -> Result<Monitor, OvsdbError> {
        let (tx, updates) = mpsc::unbounded_channel();
        lock(&self.monitors).insert(id.to_string(), tx);
        match self.conn.call(method, json!([db, id, requests])).await {
            Ok(initial) => Ok(Monitor { initial, updates }),
            Err(e) => {
                lock(&self.monitors).remove(id);
                Err(e.into())
            }
        }
    }

    /// `monitor_cancel`
    pub async fn monitor_cancel(&self, id: &str) -> Result<(), OvsdbError> {
        lock(&self.monitors).remove(id);
        self.conn.call("monitor_cancel", json!([id])).await?;
        Ok(())
    }

    fn bad_reply(&self, what: &str, reply: Value) -> OvsdbError {
        OvsdbError::Reply {
            remote: self.remote().to_string(),
            what: what.to_string(),
            reply,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn route_updates(mut notes: mpsc::UnboundedReceiver<Notification>, monitors: Monitors) {
    while let Some(n) = notes.recv().await {
        if n.method != "update" && n.method != "update2" {
            continue;
        }
        let (Some(id), Some(updates)) = (n.params.get(0), n.params.get(1)) else {
            continue;
        };
        let key = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        if let Some(tx) = lock(&monitors).get(&key) {
            let _ = tx.send(updates.clone());
        }
    }
}
