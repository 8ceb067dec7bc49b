//! The `CNI_*` environment of one invocation, checked per command as the spec requires. `main`
//! reads the process environment and hands it here as a lookup function.

use std::path::PathBuf;

use crate::{
    error::{CniError, code},
    validate,
};

/// The verb in `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify an attachment.
    Check,
    /// Readiness.
    Status,
    /// Garbage-collect attachments the runtime no longer knows.
    Gc,
    /// Which versions we speak.
    Version,
}

impl Command {
    /// From `CNI_COMMAND`.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            other => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "unknown CNI_COMMAND {other:?} (expected ADD, DEL, CHECK, STATUS, GC or VERSION)"
                    ),
                ));
            }
        })
    }
}

/// One invocation's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK).
    pub container_id: String,
    /// `CNI_NETNS`; `None` when unset or empty (allowed for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: String,
    /// `CNI_ARGS`, split into `K=V` pairs.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`, split.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Reads and checks the variables `command` needs. `get` returns a variable's value.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let command = match get("CNI_COMMAND") {
            Some(c) if !c.is_empty() => Command::parse(&c)?,
            _ => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    "CNI_COMMAND is not set (smartnic is a CNI plugin: run it from a container runtime)",
                ));
            }
        };
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let require = |name: &str| -> Result<String, CniError> {
            match get(name) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(CniError::new(
                    code::INVALID_ENV,
                    format!("{name} is required for this CNI_COMMAND"),
                )),
            }
        };
        let (container_id, ifname) = if needs_container {
            let id = require("CNI_CONTAINERID")?;
            validate::container_id(&id)?;
            let ifname = require("CNI_IFNAME")?;
            validate::ifname(&ifname, "CNI_IFNAME", code::INVALID_ENV)?;
            (id, ifname)
        } else {
            (String::new(), String::new())
        };
        let netns = if needs_netns {
            Some(require("CNI_NETNS")?)
        } else {
            get("CNI_NETNS").filter(|v| !v.is_empty())
        };
        let netns = netns
            .map(|n| validate::abs_path(&n, "CNI_NETNS", code::INVALID_ENV))
            .transpose()?;
        let args = match get("CNI_ARGS") {
            Some(a) => parse_args(&a)?,
            None => Vec::new(),
        };
        let path = get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// The value of one `CNI_ARGS` key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pod the runtime names in `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`), when it
    /// names both.
    pub fn pod(&self) -> Option<crds::cni_state::AttachmentPod> {
        Some(crds::cni_state::AttachmentPod {
            namespace: self.arg("K8S_POD_NAMESPACE")?.to_owned(),
            name: self.arg("K8S_POD_NAME")?.to_owned(),
        })
    }
}

/// `K=V;K2=V2`.
fn parse_args(s: &str) -> Result<Vec<(String, String)>, CniError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    CniError::new(
                        code::INVALID_ENV,
                        format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::parse(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", "IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=x"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.arg("IP"), Some("10.0.0.5"));
        assert_eq!(e.path.len(), 2);
        let err = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")]).unwrap_err();
        assert_eq!(err.code, code::INVALID_ENV);
        assert!(err.msg.contains("CNI_IFNAME"), "{}", err.msg);
        let err = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "net1"),
        ])
        .unwrap_err();
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
    }

    #[test]
    fn del_works_without_netns_and_status_without_anything() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "net1"),
        ])
        .unwrap();
        assert_eq!(e.netns, None);
        assert_eq!(
            env(&[("CNI_COMMAND", "STATUS")]).unwrap().command,
            Command::Status
        );
        assert_eq!(
            env(&[("CNI_COMMAND", "FOO")]).unwrap_err().code,
            code::INVALID_ENV
        );
        assert_eq!(env(&[]).unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn tricks_in_names_are_refused() {
        for (k, v) in [
            ("CNI_IFNAME", "../eth0"),
            ("CNI_CONTAINERID", "../../etc"),
            ("CNI_NETNS", "/var/run/netns/../../x"),
        ] {
            let mut pairs = vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/var/run/netns/p"),
                ("CNI_IFNAME", "net1"),
            ];
            pairs.retain(|(key, _)| *key != k);
            pairs.push((k, v));
            let err = env(&pairs).unwrap_err();
            assert_eq!(err.code, code::INVALID_ENV, "{k}={v}");
        }
    }
}
