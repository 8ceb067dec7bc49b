//! JSON-RPC 1.0 as Open vSwitch speaks it (RFC 7047 §4 for OVSDB, the same framing for the
//! `ovs-appctl` control sockets): concatenated JSON objects with no delimiter, requests and
//! replies matched by `id`, notifications with `"id": null`.
//!
//! One [`Connection`] owns a reader task and a writer task. Replies are matched to their request
//! by id, because on one connection the server may send notifications (monitor updates) *before*
//! the reply to a transaction that caused them. The server's `echo` requests (its inactivity
//! probe) are answered by the reader task itself.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

/// Where a JSON-RPC server listens, in OVS's own notation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp:HOST:PORT`
    Tcp(String),
}

impl Remote {
    /// Parses `unix:PATH`, `tcp:HOST:PORT` or a bare path (taken as a unix socket).
    pub fn parse(s: &str) -> Self {
        if let Some(p) = s.strip_prefix("unix:") {
            Self::Unix(p.into())
        } else if let Some(a) = s.strip_prefix("tcp:") {
            Self::Tcp(a.into())
        } else {
            Self::Unix(s.into())
        }
    }

    /// A unix socket.
    pub fn unix(path: impl AsRef<Path>) -> Self {
        Self::Unix(path.as_ref().into())
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Errors of the JSON-RPC layer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Connecting failed.
    #[error("cannot connect to {remote}: {source}")]
    Connect {
        /// The remote.
        remote: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The connection closed (or broke) before the reply came.
    #[error("connection to {remote} closed before the reply to {method}")]
    Closed {
        /// The remote.
        remote: String,
        /// The request's method.
        method: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{remote} answered {method} with an error: {error}")]
    Server {
        /// The remote.
        remote: String,
        /// The request's method.
        method: String,
        /// The `error` member as the server sent it.
        error: Value,
    },
}

/// A server notification (a request with `"id": null`), e.g. an OVSDB `update`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// `method`
    pub method: String,
    /// `params`
    pub params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Value>>>>>;

/// A JSON-RPC connection. Cheap to clone; the tasks end when every clone is dropped or the
/// server closes the socket.
#[derive(Clone, Debug)]
pub struct Connection {
    remote: Arc<str>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
}

impl Connection {
    /// Connects and starts the reader and writer tasks (on the current tokio runtime).
    /// Notifications go to the returned receiver; drop it to discard them.
    pub async fn connect(
        remote: &Remote,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Notification>), RpcError> {
        let err = |source| RpcError::Connect {
            remote: remote.to_string(),
            source,
        };
        match remote {
            Remote::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(err)?;
                let (r, w) = s.into_split();
                Ok(Self::start(remote.to_string(), r, w))
            }
            Remote::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(err)?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                Ok(Self::start(remote.to_string(), r, w))
            }
        }
    }

    /// Runs the protocol over any byte stream (tests use an in-memory duplex).
    pub fn start<R, W>(
        remote: String,
        reader: R,
        writer: W,
    ) -> (Self, mpsc::UnboundedReceiver<Notification>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(writer, out_rx));
        tokio::spawn(read_loop(
            reader,
            pending.clone(),
            closed.clone(),
            out_tx.clone(),
            note_tx,
        ));
        (
            Self {
                remote: remote.into(),
                out: out_tx,
                pending,
                closed,
                next_id: Arc::new(AtomicU64::new(1)),
            },
            note_rx,
        )
    }

    /// The remote this connection talks to (for messages).
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Sends a request and waits for the reply with the same id.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let msg = json!({"method": method, "params": params, "id": id});
        let closed = || RpcError::Closed {
            remote: self.remote.to_string(),
            method: method.to_string(),
        };
        // The reader marks the connection closed before it drops the waiting senders, so a call
        // registered after that sees the flag.
        if self.closed.load(Ordering::SeqCst) || self.out.send(encode(&msg)).is_err() {
            lock(&self.pending).remove(&id);
            return Err(closed());
        }
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(RpcError::Server {
                remote: self.remote.to_string(),
                method: method.to_string(),
                error,
            }),
            Err(_) => Err(closed()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the map cannot leave it inconsistent (single insert/remove).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode(v: &Value) -> Vec<u8> {
    // Serialising a Value cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(buf) = rx.recv().await {
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    pending: Pending,
    closed: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    notes: mpsc::UnboundedSender<Notification>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    'conn: loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let (messages, used) = split_messages(&buf);
        buf.drain(..used);
        for msg in messages {
            match msg {
                Ok(m) => dispatch(m, &pending, &out, &notes),
                // Not JSON: the stream cannot be resynchronised.
                Err(()) => break 'conn,
            }
        }
    }
    // Fail every waiting call: dropping the senders wakes them with Closed.
    closed.store(true, Ordering::SeqCst);
    lock(&pending).clear();
}

/// Splits the complete JSON values off the front of `buf`; returns them and how many bytes they
/// used. An incomplete value at the end is left for the next read; `Err(())` marks bytes that are
/// not JSON at all.
pub(crate) fn split_messages(buf: &[u8]) -> (Vec<Result<Value, ()>>, usize) {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    let mut used = 0;
    loop {
        match it.next() {
            None => {
                used = buf.len();
                break;
            }
            Some(Ok(v)) => {
                used = it.byte_offset();
                out.push(Ok(v));
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => {
                out.push(Err(()));
                used = buf.len();
                break;
            }
        }
    }
    (out, used)
}

fn dispatch(
    m: Value,
    pending: &Pending,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    notes: &mpsc::UnboundedSender<Notification>,
) {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    if let Some(method) = m.get("method").and_then(Value::as_str) {
        let params = m.get("params").cloned().unwrap_or(Value::Null);
        if method == "echo" && !id.is_null() {
            let _ = out.send(encode(&json!({"result": params, "error": null, "id": id})));
        } else if id.is_null() {
            let _ = notes.send(Notification {
                method: method.to_string(),
                params,
            });
        }
        return;
    }
    let Some(id) = id.as_u64() else { return };
    let Some(tx) = lock(pending).remove(&id) else {
        return;
    };
    let error = m.get("error").cloned().unwrap_or(Value::Null);
    let _ = tx.send(if error.is_null() {
        Ok(m.get("result").cloned().unwrap_or(Value::Null))
    } else {
        Err(error)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_a_partial_message_for_the_next_read() {
        let (v, used) = split_messages(br#"{"id":1,"result":[]}{"id":2,"res"#);
        assert_eq!(v.len(), 1);
        assert_eq!(used, 20);
        let (v, used) = split_messages(br#"{"a":1} {"b":2}"#);
        assert_eq!(v.len(), 2);
        assert_eq!(used, 15);
        let (v, _) = split_messages(b"}garbage");
        assert_eq!(v, vec![Err(())]);
    }

    /// Reads one JSON message from the fake server's side of the pipe.
    async fn read_msg<R: AsyncRead + Unpin>(r: &mut R, raw: &mut Vec<u8>) -> Value {
        loop {
            let mut it = serde_json::Deserializer::from_slice(raw).into_iter::<Value>();
            if let Some(Ok(m)) = it.next() {
                let used = it.byte_offset();
                raw.drain(..used);
                return m;
            }
            let mut b = [0u8; 256];
            let n = r.read(&mut b).await.unwrap();
            assert!(n > 0, "client closed");
            raw.extend_from_slice(&b[..n]);
        }
    }

    /// A fake server that sends a notification and an echo request before the replies, and
    /// answers two calls in reverse order.
    #[tokio::test]
    async fn replies_are_matched_by_id_and_notifications_come_first() {
        let (client, server) = tokio::io::duplex(4096);
        let (cr, cw) = tokio::io::split(client);
        let (conn, mut notes) = Connection::start("test".into(), cr, cw);
        let (mut sr, mut sw) = tokio::io::split(server);
        let srv = tokio::spawn(async move {
            let mut raw = Vec::new();
            let a = read_msg(&mut sr, &mut raw).await["id"].as_u64().unwrap();
            let b = read_msg(&mut sr, &mut raw).await["id"].as_u64().unwrap();
            sw.write_all(br#"{"method":"update","params":["mon",{}],"id":null}"#)
                .await
                .unwrap();
            sw.write_all(br#"{"method":"echo","params":[],"id":"echo"}"#)
                .await
                .unwrap();
            let r = format!(
                r#"{{"id":{b},"result":"second","error":null}}{{"id":{a},"result":null,"error":"boom"}}"#
            );
            sw.write_all(r.as_bytes()).await.unwrap();
            read_msg(&mut sr, &mut raw).await
        });
        let (a, b) = tokio::join!(
            conn.call("first", json!([])),
            conn.call("second", json!([]))
        );
        assert!(matches!(a, Err(RpcError::Server { ref error, .. }) if error == "boom"));
        assert_eq!(b.unwrap(), "second");
        let n = notes.recv().await.unwrap();
        assert_eq!(n.method, "update");
        let echo = srv.await.unwrap();
        assert_eq!(echo["id"], "echo");
        assert!(echo["error"].is_null());
    }

    #[tokio::test]
    async fn a_closed_connection_fails_the_waiting_call() {
        let (client, server) = tokio::io::duplex(64);
        let (cr, cw) = tokio::io::split(client);
        let (conn, _n) = Connection::start("test".into(), cr, cw);
        drop(server);
        let e = conn.call("list_dbs", json!([])).await.unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
    }
}
