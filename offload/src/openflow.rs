//! OpenFlow programming through `ovs-ofctl --bundle`.
//!
//! Why `ovs-ofctl` and not a native OpenFlow 1.3 client: the pipeline needs Nicira extensions
//! (`learn`, `move`, `resubmit`, NXM registers) whose encoders are the bulk of any OpenFlow
//! library, and `ovs-ofctl` is the reference encoder shipped with the very ovs-vswitchd it talks
//! to. `--bundle` makes every change one atomic OpenFlow 1.4 transaction, so a half-applied flow
//! set is never visible. The cost is one process per change (a few ms), paid on attach, detach
//! and peer changes, never per packet. The OVSDB side, which *is* on the attach latency path,
//! is native (see `vswitch`).

use std::{path::Path, process::Stdio};

use tokio::{io::AsyncWriteExt, process::Command};

/// Errors of `ovs-ofctl`.
#[derive(Debug, thiserror::Error)]
pub enum OpenFlowError {
    /// The program could not be started.
    #[error("cannot run ovs-ofctl for {target}: {source}")]
    Spawn {
        /// OpenFlow target.
        target: String,
        /// OS error.
        source: std::io::Error,
    },
    /// `ovs-ofctl` failed.
    #[error("ovs-ofctl {what} on {target} failed: {stderr}")]
    Failed {
        /// The subcommand.
        what: String,
        /// OpenFlow target.
        target: String,
        /// Its stderr.
        stderr: String,
    },
}

/// An OpenFlow connection target for `ovs-ofctl`: the bridge's management socket
/// (`unix:RUNDIR/BRIDGE.mgmt`) or `tcp:HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ofctl {
    target: String,
}

impl Ofctl {
    /// The bridge's management socket in an OVS run directory (`/run/openvswitch` on a node).
    pub fn bridge(rundir: impl AsRef<Path>, bridge: &str) -> Self {
        Self {
            target: format!(
                "unix:{}",
                rundir.as_ref().join(format!("{bridge}.mgmt")).display()
            ),
        }
    }

    /// Any `ovs-ofctl` target.
    pub fn target(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
        }
    }

    /// The target string.
    pub fn as_str(&self) -> &str {
        &self.target
    }

    /// `ovs-ofctl -O OpenFlow14 --bundle add-flows TARGET -` with `bundle` on stdin (lines
    /// `add ...` / `delete ...`), one atomic transaction.
    pub async fn apply_bundle(&self, bundle: &str) -> Result<(), OpenFlowError> {
        self.run(
            "--bundle add-flows",
            &[
                "-O",
                "OpenFlow14",
                "--bundle",
                "add-flows",
                &self.target,
                "-",
            ],
            Some(bundle),
        )
        .await
        .map(drop)
    }

    /// `ovs-ofctl -O OpenFlow14 dump-flows TARGET [FILTER]`
    pub async fn dump_flows(&self, filter: Option<&str>) -> Result<String, OpenFlowError> {
        let mut args = vec!["-O", "OpenFlow14", "dump-flows", &self.target];
        args.extend(filter);
        self.run("dump-flows", &args, None).await
    }

    async fn run(
        &self,
        what: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, OpenFlowError> {
        let mut child = Command::new("ovs-ofctl")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| OpenFlowError::Spawn {
                target: self.target.clone(),
                source,
            })?;
        if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
            // A write error shows up as ovs-ofctl's own failure below.
            let _ = w.write_all(input.as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| OpenFlowError::Spawn {
                target: self.target.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(OpenFlowError::Failed {
                what: what.to_string(),
                target: self.target.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
