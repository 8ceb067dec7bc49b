//! [`Switch`] on Open vSwitch, through the `offload` crate: one OVSDB connection (with its
//! monitor) to `RUNDIR/db.sock`, the overlay's flows through `ovs-ofctl --bundle` on
//! `RUNDIR/BRIDGE.mgmt`, serialised with the agent and other invocations by the overlay's lock
//! file. `RUNDIR` is `$OVS_RUNDIR`, as for the OVS tools, else `/run/openvswitch`.
//!
//! Nothing is opened before `mode: ovs` asks: the other modes never pay for the connection.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use nic::netns::NetnsRef;
use offload::{
    Ovs, Remote,
    attach::{AttachError, Attacher, PodAttachment},
    decision::{Attachment, Capabilities},
    overlay::{EXT_VNI, Overlay},
    probe::{self, VfRef},
};

use crate::{
    host::{HostError, HostErrorKind, HostResult},
    switch::{Switch, SwitchAttach, SwitchPort},
};

/// The default OVS run directory.
pub const DEFAULT_RUNDIR: &str = "/run/openvswitch";

/// Open vSwitch on this node.
pub struct OvsSwitch {
    rundir: PathBuf,
    rt: OnceLock<tokio::runtime::Runtime>,
    ovs: Mutex<Option<Ovs>>,
}

fn err(e: impl std::fmt::Display) -> HostError {
    HostError::other(e.to_string())
}

impl OvsSwitch {
    /// The OVS whose sockets are in `rundir`. Connects on first use.
    pub fn new(rundir: impl Into<PathBuf>) -> Self {
        Self {
            rundir: rundir.into(),
            rt: OnceLock::new(),
            ovs: Mutex::new(None),
        }
    }

    /// The run directory.
    pub fn rundir(&self) -> &Path {
        &self.rundir
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
            })
            .block_on(f)
    }

    /// The connection, made on first use (inside the runtime: its monitor task lives there).
    fn ovs(&self) -> HostResult<Ovs> {
        let mut slot = self.ovs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = slot.as_ref() {
            return Ok(o.clone());
        }
        let sock = self.rundir.join("db.sock");
        let o = self
            .block_on(Ovs::connect(&Remote::unix(&sock)))
            .map_err(|e| {
                HostError::other(format!(
                    "mode ovs: cannot reach ovsdb-server at {}: {e} (is Open vSwitch running? OVS_RUNDIR={})",
                    sock.display(),
                    self.rundir.display()
                ))
            })?;
        *slot = Some(o.clone());
        Ok(o)
    }

    fn overlay(&self, bridge: &str) -> HostResult<Overlay> {
        Ok(Overlay::in_rundir(self.ovs()?, &self.rundir, bridge))
    }
}

impl Switch for OvsSwitch {
    fn capabilities(
        &self,
        bridge: &str,
        vf: Option<&VfRef>,
        network_wants_software: bool,
    ) -> HostResult<Capabilities> {
        let ovs = self.ovs()?;
        Ok(self.block_on(probe::capabilities(
            &ovs,
            bridge,
            vf,
            network_wants_software,
        )))
    }

    fn attach(&self, req: &SwitchAttach) -> HostResult<PodAttachment> {
        let attacher = Attacher::new(self.overlay(&req.bridge)?);
        let mut r = match &req.attachment {
            Attachment::Veth => attacher.veth(NetnsRef::path(&req.netns), &req.ifname),
            Attachment::Representor { vf, representor } => {
                attacher.representor(representor, vf, &req.ifname)
            }
        };
        r = match req.vni {
            Some(v) => r.network(&req.network, v),
            None => r.bridge_network(&req.network),
        };
        r = r.container_id(&req.container_id).reason(req.reason.clone());
        if let Some(m) = req.mtu {
            r = r.mtu(m);
        }
        if let Some(v) = req.vlan {
            r = r.vlan(v);
        }
        if !req.trunks.is_empty() {
            r = r.trunks(req.trunks.iter().copied());
        }
        if let Some(p) = &req.pod {
            r = r.pod(p);
        }
        self.block_on(r.execute()).map_err(|e| match &e {
            // The pod already has an interface of that name.
            AttachError::Netlink(n) if n.is_exists() => {
                HostError::new(HostErrorKind::Exists, e.to_string())
            }
            _ => err(e),
        })
    }

    fn detach(&self, bridge: &str, port: &str) -> HostResult<()> {
        let attacher = Attacher::new(self.overlay(bridge)?);
        self.block_on(attacher.detach(port).execute()).map_err(err)
    }

    fn port(&self, port: &str) -> HostResult<Option<SwitchPort>> {
        let view = self.ovs()?.view();
        let Some(p) = view.port(port) else {
            return Ok(None);
        };
        let iface = view.interface(port);
        Ok(Some(SwitchPort {
            bridge: view.bridge_of(&p.uuid).map(|b| b.name.clone()),
            ofport: iface
                .and_then(|i| i.ofport)
                .filter(|p| *p > 0)
                .and_then(|p| u32::try_from(p).ok()),
            vni: iface
                .and_then(|i| i.external_ids.get(EXT_VNI))
                .and_then(|v| v.parse().ok()),
            error: iface.and_then(|i| i.error.clone()),
        }))
    }

    fn bridge_exists(&self, bridge: &str) -> HostResult<bool> {
        Ok(self.ovs()?.view().bridge(bridge).is_some())
    }
}
