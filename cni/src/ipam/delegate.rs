//! Other IPAM types (dhcp, whereabouts, ...): the plugin of that name on `CNI_PATH`, run with our
//! environment and the complete configuration on stdin, at the highest spec version it reports
//! through VERSION that is not newer than ours (Debian's reference plugins 1.1.1 stop at 1.0.0
//! and refuse 1.1.0). Its result is read in its version and converted.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command as Process, Stdio},
};

use serde_json::{Map, Value};

use crate::{
    env::{CniEnv, Command},
    error::{CniError, code},
    result::AddResult,
    validate,
    version::{self, Version},
};

/// A delegate plugin found on `CNI_PATH`.
#[derive(Clone, Debug)]
pub struct Delegate {
    /// Its type (file name).
    pub plugin: String,
    /// Its path.
    pub path: PathBuf,
}

fn ipam_err(msg: impl Into<String>) -> CniError {
    CniError::new(code::IPAM, msg)
}

impl Delegate {
    /// Finds `plugin` on `CNI_PATH`.
    pub fn find(plugin: &str, env: &CniEnv) -> Result<Self, CniError> {
        validate::plugin_type(plugin)?;
        env.path
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .map(|path| Self {
                plugin: plugin.into(),
                path,
            })
            .ok_or_else(|| {
                ipam_err(format!(
                    "IPAM plugin {plugin:?} not found on CNI_PATH {}",
                    env.path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            })
    }

    fn run(&self, command: &str, env: &CniEnv, stdin: &[u8]) -> Result<(bool, Vec<u8>), CniError> {
        let mut cmd = Process::new(&self.path);
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &env.container_id)
            .env("CNI_IFNAME", &env.ifname)
            .env(
                "CNI_ARGS",
                env.args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .env(
                "CNI_PATH",
                env.path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            )
            .env("CNI_NETNS", env.netns.as_deref().unwrap_or(Path::new("")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| {
            ipam_err(format!(
                "cannot run IPAM plugin {}: {e}",
                self.path.display()
            ))
        })?;
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| ipam_err(format!("IPAM plugin {}: {e}", self.path.display())))?;
        Ok((out.status.success(), out.stdout))
    }

    /// The version to speak with the delegate (its VERSION answer ∩ ≤ ours).
    pub fn negotiate(&self, env: &CniEnv, ours: Version) -> Result<Version, CniError> {
        let stdin = serde_json::json!({"cniVersion": ours.to_string()}).to_string();
        let (_, out) = self.run("VERSION", env, stdin.as_bytes())?;
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        let supported: Vec<String> = v
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        version::pick_for_delegate(ours, &supported).ok_or_else(|| {
            CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "IPAM plugin {} speaks none of our versions (it lists {supported:?})",
                    self.plugin
                ),
            )
        })
    }

    /// Runs `command` with the configuration `raw` rewritten to version `v`; the ADD result, if any.
    pub fn call(
        &self,
        command: Command,
        env: &CniEnv,
        raw: &Map<String, Value>,
        v: Version,
    ) -> Result<Option<AddResult>, CniError> {
        let mut conf = raw.clone();
        conf.insert("cniVersion".into(), v.to_string().into());
        if v < Version::V1_1_0 {
            conf.remove("cniVersions");
        }
        let verb = match command {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        };
        let stdin = Value::Object(conf).to_string();
        let (ok, out) = self.run(verb, env, stdin.as_bytes())?;
        if !ok {
            let err: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
            let msg = err
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("failed without an error object");
            let inner = err.get("code").and_then(Value::as_u64).unwrap_or(0);
            return Err(ipam_err(format!(
                "IPAM plugin {} {verb} failed (code {inner}): {msg}",
                self.plugin
            )));
        }
        if command != Command::Add {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("IPAM plugin {} returned no JSON result: {e}", self.plugin),
            )
        })?;
        AddResult::from_json(&value).map(Some)
    }
}
