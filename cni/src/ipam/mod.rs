//! IPAM: `host-local` and `static` in process, anything else delegated to `CNI_PATH`.

pub mod delegate;
pub mod host_local;
pub mod static_ipam;

use crate::{
    config::{Attachment, NetConf},
    env::{CniEnv, Command},
    error::{CniError, code},
    result::AddResult,
};

pub use self::{delegate::Delegate, host_local::HostLocal};

/// The IPAM of one network.
#[derive(Clone, Debug)]
pub enum Ipam {
    /// No `ipam` (or `{}`): L2 only.
    None,
    /// In-process `host-local`.
    HostLocal(HostLocal),
    /// In-process `static`.
    Static(serde_json::Value),
    /// A plugin on `CNI_PATH`.
    Delegate(Delegate),
}

impl Ipam {
    /// From the configuration's `ipam` section.
    pub fn from_conf(conf: &NetConf, env: &CniEnv) -> Result<Self, CniError> {
        let Some(ipam) = conf.ipam() else {
            return Ok(Self::None);
        };
        let ty = ipam.get("type").and_then(|t| t.as_str()).ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "key ipam.type: missing or not a string",
            )
        })?;
        Ok(match ty {
            "host-local" => Self::HostLocal(HostLocal::parse(ipam, &conf.conf.name)?),
            "static" => Self::Static(ipam.clone()),
            other => Self::Delegate(Delegate::find(other, env)?),
        })
    }

    /// The type name, for messages and journal lines.
    pub fn kind(&self) -> &str {
        match self {
            Self::None => "none",
            Self::HostLocal(_) => "host-local",
            Self::Static(_) => "static",
            Self::Delegate(d) => &d.plugin,
        }
    }

    /// Allocates; `None` for L2-only networks.
    pub fn add(&self, conf: &NetConf, env: &CniEnv) -> Result<Option<AddResult>, CniError> {
        match self {
            Self::None => Ok(None),
            Self::HostLocal(hl) => hl
                .add(&env.container_id, &env.ifname, &conf.requested_addrs)
                .map(Some),
            Self::Static(ipam) => {
                let gw = env.arg("GATEWAY").and_then(|g| g.parse().ok());
                static_ipam::result(ipam, &conf.requested_ips, conf.requested_addrs.len(), gw)
                    .map(Some)
            }
            Self::Delegate(d) => {
                let v = d.negotiate(env, conf.version)?;
                d.call(Command::Add, env, &conf.raw, v)
            }
        }
    }

    /// Frees what `add` took (nothing held is fine).
    pub fn del(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        match self {
            Self::None | Self::Static(_) => Ok(()),
            Self::HostLocal(hl) => hl.del(&env.container_id, &env.ifname),
            Self::Delegate(d) => {
                let v = d.negotiate(env, conf.version)?;
                d.call(Command::Del, env, &conf.raw, v).map(|_| ())
            }
        }
    }

    /// Checks that the addresses of `prev` are still held.
    pub fn check(&self, conf: &NetConf, env: &CniEnv, prev: &AddResult) -> Result<(), CniError> {
        match self {
            Self::None | Self::Static(_) => Ok(()),
            Self::HostLocal(hl) => {
                let held = hl.held_by(&env.container_id, &env.ifname)?;
                for ip in &prev.ips {
                    if !held.contains(&ip.address.addr) {
                        return Err(CniError::new(
                            code::IPAM,
                            format!(
                                "host-local: {} is no longer held by {}/{} in {}",
                                ip.address.addr,
                                env.container_id,
                                env.ifname,
                                hl.dir.display()
                            ),
                        ));
                    }
                }
                Ok(())
            }
            Self::Delegate(d) => {
                let v = d.negotiate(env, conf.version)?;
                if v.has_check() {
                    d.call(Command::Check, env, &conf.raw, v)?;
                }
                Ok(())
            }
        }
    }

    /// Frees leases of attachments not in `valid`; forwards GC to a delegate that knows it.
    pub fn gc(&self, conf: &NetConf, env: &CniEnv, valid: &[Attachment]) -> Result<(), CniError> {
        match self {
            Self::None | Self::Static(_) => Ok(()),
            Self::HostLocal(hl) => hl.gc(valid).map(|_| ()),
            Self::Delegate(d) => {
                let v = d.negotiate(env, conf.version)?;
                if v.has_status_and_gc() {
                    d.call(Command::Gc, env, &conf.raw, v)?;
                }
                Ok(())
            }
        }
    }

    /// Forwards STATUS to a delegate that knows it; in-process IPAM is always ready.
    pub fn status(&self, conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
        match self {
            Self::Delegate(d) => {
                let v = d.negotiate(env, conf.version)?;
                if v.has_status_and_gc() {
                    d.call(Command::Status, env, &conf.raw, v)
                        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
