//! The shell of the overlay: reads the bridge's pod and tunnel ports from OVSDB, keeps one
//! tunnel port per peer, and replaces the flow set in one OpenFlow bundle.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    EXT_PEER_NODE, EXT_VNI, LocalPort, OverlayState, Peer, TunnelPort, bundle, flows,
    tunnel_port_name,
};
use crate::{
    openflow::{Ofctl, OpenFlowError},
    ovsdb::value::{as_map, as_opt_i64, as_set, as_uuid},
    vswitch::{Ovs, VswitchError},
};

/// `external_ids` key on a tunnel interface: the peer's endpoint IP.
pub const EXT_PEER_IP: &str = "smartnic.io/peer-ip";

/// Errors of the overlay shell.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// OVSDB.
    #[error(transparent)]
    Vswitch(#[from] VswitchError),
    /// OpenFlow.
    #[error(transparent)]
    OpenFlow(#[from] OpenFlowError),
    /// The cross-process lock file.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// What [`Overlay::set_peers`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerChange {
    /// Tunnel ports added (port names).
    pub added: Vec<String>,
    /// Tunnel ports removed.
    pub removed: Vec<String>,
}

/// The overlay of one integration bridge.
#[derive(Clone, Debug)]
pub struct Overlay {
    ovs: Ovs,
    bridge: String,
    ofctl: Ofctl,
    lock_file: Option<PathBuf>,
    local: Arc<Mutex<()>>,
}

impl Overlay {
    /// The overlay on `bridge`, programmed through `ofctl`.
    pub fn new(ovs: Ovs, bridge: &str, ofctl: Ofctl) -> Self {
        Self {
            ovs,
            bridge: bridge.to_string(),
            ofctl,
            lock_file: None,
            local: Arc::default(),
        }
    }

    /// The overlay on `bridge` of the OVS whose run directory is `rundir` (`/run/openvswitch`
    /// on a node, `$OVS_RUNDIR` when set): flows through `unix:RUNDIR/BRIDGE.mgmt`, serialised
    /// across processes by `RUNDIR/smartnic-overlay-BRIDGE.lock`. The agent and the CNI both
    /// build it this way, so that they share the lock.
    pub fn in_rundir(ovs: Ovs, rundir: impl AsRef<std::path::Path>, bridge: &str) -> Self {
        let rundir = rundir.as_ref();
        Self::new(ovs, bridge, Ofctl::bridge(rundir, bridge))
            .with_lock_file(rundir.join(format!("smartnic-overlay-{bridge}.lock")))
    }

    /// Serialises [`Self::sync`] across processes (the agent and concurrent CNI invocations)
    /// with an exclusive lock on this file; without it only this process is serialised.
    pub fn with_lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// The bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The OpenFlow target.
    pub fn ofctl(&self) -> &Ofctl {
        &self.ofctl
    }

    /// The OVSDB handle.
    pub fn ovs(&self) -> &Ovs {
        &self.ovs
    }

    /// Reads the bridge's pod and tunnel ports straight from ovsdb-server (not the monitor,
    /// which may lag a commit another process just made).
    pub async fn state(&self) -> Result<OverlayState, OverlayError> {
        let sel = |table: &str, cols: &[&str]| json!({"op": "select", "table": table, "where": [], "columns": cols});
        let r = self
            .ovs
            .client()
            .transact(
                "Open_vSwitch",
                vec![
                    json!({"op": "select", "table": "Bridge",
                           "where": [["name", "==", self.bridge]], "columns": ["ports"]}),
                    sel("Port", &["_uuid", "interfaces"]),
                    sel("Interface", &["_uuid", "name", "ofport", "external_ids"]),
                ],
            )
            .await
            .map_err(VswitchError::from)?;
        let rows = |i: usize| {
            r.get(i)
                .and_then(|x| x["rows"].as_array().cloned())
                .unwrap_or_default()
        };
        let uuids = |v: &Value| -> Vec<String> {
            as_set(v)
                .iter()
                .filter_map(|u| as_uuid(u).map(str::to_string))
                .collect()
        };
        let ports: Vec<String> = rows(0)
            .first()
            .map(|b| uuids(&b["ports"]))
            .unwrap_or_default();
        let port_ifaces: BTreeMap<String, Vec<String>> = rows(1)
            .iter()
            .filter_map(|p| Some((as_uuid(&p["_uuid"])?.to_string(), uuids(&p["interfaces"]))))
            .collect();
        let all_ifaces = rows(2);
        let ifaces: BTreeMap<&str, &Value> = all_ifaces
            .iter()
            .filter_map(|i| Some((as_uuid(&i["_uuid"])?, i)))
            .collect();
        let mut state = OverlayState::default();
        for p in &ports {
            for iu in port_ifaces.get(p).into_iter().flatten() {
                let Some(i) = ifaces.get(iu.as_str()) else {
                    continue;
                };
                let Some(ofport) = as_opt_i64(&i["ofport"])
                    .filter(|p| *p > 0)
                    .and_then(|p| u32::try_from(p).ok())
                else {
                    continue;
                };
                let name = i["name"].as_str().unwrap_or_default().to_string();
                let ext = as_map(&i["external_ids"]);
                if let Some(vni) = ext.get(EXT_VNI).and_then(|v| v.parse().ok()) {
                    state.locals.push(LocalPort { name, ofport, vni });
                } else if let Some(node) = ext.get(EXT_PEER_NODE) {
                    state.tunnels.push(TunnelPort {
                        name,
                        ofport,
                        peer_node: node.clone(),
                    });
                }
            }
        }
        state.locals.sort_by(|a, b| a.name.cmp(&b.name));
        state.tunnels.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(state)
    }

    /// Recomputes the flow set from OVSDB and replaces it in one bundle. `removed_ports` are
    /// ofports that just went away: flows learned towards them are dropped too. Returns the
    /// number of flows programmed.
    pub async fn sync(&self, removed_ports: &[u32]) -> Result<usize, OverlayError> {
        let _guard = self.local.lock().await;
        let _file = self.lock().await?;
        let state = self.state().await?;
        let f = flows(&state);
        self.ofctl.apply_bundle(&bundle(&f, removed_ports)).await?;
        tracing::debug!(bridge = %self.bridge, flows = f.len(), "overlay flows replaced");
        Ok(f.len())
    }

    /// Makes the bridge's tunnel ports exactly one per peer (`options:remote_ip=PEER`,
    /// `options:key=flow`, `options:dst_port` when not 6081), then syncs the flows.
    ///
    /// `ovs-vsctl add-port br-int gnv0a000002 -- set interface gnv0a000002 type=geneve
    ///  options:remote_ip=10.0.0.2 options:key=flow external_ids:smartnic.io/peer-node=n2`
    pub async fn set_peers(
        &self,
        peers: &[Peer],
        dst_port: u16,
    ) -> Result<PeerChange, OverlayError> {
        let view = self.ovs.view();
        let existing: BTreeMap<String, (String, Option<i64>)> = view
            .bridge_interfaces(&self.bridge)
            .into_iter()
            .filter_map(|i| {
                i.external_ids.get(EXT_PEER_NODE).map(|_| {
                    (
                        i.name.clone(),
                        (
                            i.options.get("remote_ip").cloned().unwrap_or_default(),
                            i.ofport,
                        ),
                    )
                })
            })
            .collect();
        let wanted: BTreeMap<String, &Peer> = peers
            .iter()
            .map(|p| (tunnel_port_name(p.ip, dst_port), p))
            .collect();
        let mut change = PeerChange::default();
        let mut removed_ofports = Vec::new();
        for (name, (_, ofport)) in &existing {
            if !wanted.contains_key(name) {
                self.ovs.port().del(name).if_exists().execute().await?;
                change.removed.push(name.clone());
                removed_ofports.extend(ofport.and_then(|p| u32::try_from(p).ok()));
            }
        }
        for (name, peer) in &wanted {
            if existing.contains_key(name) {
                continue;
            }
            let ip = peer.ip.to_string();
            let mut req = self
                .ovs
                .port()
                .add(&self.bridge, name)
                .interface_type("geneve")
                .option("remote_ip", &ip)
                .option("key", "flow")
                .external_id(EXT_PEER_NODE, &peer.node)
                .external_id(EXT_PEER_IP, &ip);
            if dst_port != super::GENEVE_PORT {
                req = req.option("dst_port", &dst_port.to_string());
            }
            req.execute().await?;
            change.added.push(name.clone());
        }
        self.sync(&removed_ofports).await?;
        Ok(change)
    }

    async fn lock(&self) -> Result<Option<std::fs::File>, OverlayError> {
        let Some(path) = self.lock_file.clone() else {
            return Ok(None);
        };
        // flock blocks: off the runtime.
        tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .and_then(|f| f.lock().map(|()| f));
            f.map(Some)
                .map_err(|source| OverlayError::Lock { path, source })
        })
        .await
        .unwrap_or_else(|e| {
            Err(OverlayError::Lock {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })
        })
    }
}
