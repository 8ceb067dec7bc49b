//! The ovs-vswitchd control socket (`ovs-appctl -t RUNDIR/ovs-vswitchd.PID.ctl CMD ARGS...`),
//! natively: the same JSON-RPC framing as OVSDB, one method per command, the arguments as
//! strings and the output as the result string.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::jsonrpc::{Connection, Remote, RpcError};

/// Errors of a control-socket command.
#[derive(Debug, thiserror::Error)]
pub enum AppctlError {
    /// No control socket found in the run directory.
    #[error("no ovs-vswitchd control socket in {0} (is ovs-vswitchd running?)")]
    NoSocket(PathBuf),
    /// Connecting or the call failed.
    #[error("ovs-appctl {cmd}: {source}")]
    Rpc {
        /// The command.
        cmd: String,
        /// Why.
        source: RpcError,
    },
}

/// A connection to ovs-vswitchd's control socket.
#[derive(Clone, Debug)]
pub struct Appctl {
    conn: Connection,
}

impl Appctl {
    /// Connects to a control socket path.
    pub async fn connect(ctl: &Path) -> Result<Self, AppctlError> {
        let (conn, _notes) = Connection::connect(&Remote::unix(ctl))
            .await
            .map_err(|source| AppctlError::Rpc {
                cmd: "connect".into(),
                source,
            })?;
        Ok(Self { conn })
    }

    /// Finds the control socket in an OVS run directory: `ovs-vswitchd.ctl` (a daemon started
    /// with `--unixctl`) or `ovs-vswitchd.PID.ctl` (the packaged default), and connects.
    pub async fn in_rundir(rundir: &Path) -> Result<Self, AppctlError> {
        let fixed = rundir.join("ovs-vswitchd.ctl");
        if fixed.exists() {
            return Self::connect(&fixed).await;
        }
        let pid = std::fs::read_to_string(rundir.join("ovs-vswitchd.pid")).unwrap_or_default();
        let by_pid = rundir.join(format!("ovs-vswitchd.{}.ctl", pid.trim()));
        if !pid.trim().is_empty() && by_pid.exists() {
            return Self::connect(&by_pid).await;
        }
        Err(AppctlError::NoSocket(rundir.to_path_buf()))
    }

    /// Runs one command (`ovs-appctl CMD ARGS...`) and returns its output.
    pub async fn call(&self, cmd: &str, args: &[&str]) -> Result<String, AppctlError> {
        let r = self
            .conn
            .call(cmd, json!(args))
            .await
            .map_err(|source| AppctlError::Rpc {
                cmd: cmd.to_string(),
                source,
            })?;
        Ok(match r {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// `ovs-appctl dpctl/dump-flows -m [DP] [type=TYPE]`
    pub async fn dump_flows(
        &self,
        datapath: Option<&str>,
        kind: Option<&str>,
    ) -> Result<String, AppctlError> {
        let t = kind.map(|k| format!("type={k}"));
        let mut args = vec!["-m"];
        args.extend(datapath);
        args.extend(t.as_deref());
        self.call("dpctl/dump-flows", &args).await
    }

    /// `ovs-appctl ofproto/trace BRIDGE FLOW`
    pub async fn trace(&self, bridge: &str, flow: &str) -> Result<String, AppctlError> {
        self.call("ofproto/trace", &[bridge, flow]).await
    }
}
