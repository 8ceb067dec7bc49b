//! `Open_vSwitch` database operations on the native OVSDB client: bridges, ports, interfaces
//! (incl. tunnel ports) and `Open_vSwitch.other_config`, each as handle → request builder →
//! `execute()`, like `ovs-vsctl`:
//!
//! | here | `ovs-vsctl` twin |
//! |---|---|
//! | `ovs.bridge().add("br-int").datapath_type("netdev").execute()` | `add-br br-int -- set bridge br-int datapath_type=netdev` |
//! | `ovs.port().add("br-int", "pod0").execute()` | `add-port br-int pod0` (waits for the ofport) |
//! | `ovs.port().add("br-int", "gnv0").interface_type("geneve").option("key", "flow")` | `add-port br-int gnv0 -- set interface gnv0 type=geneve options:key=flow` |
//! | `ovs.port().del("pod0").if_exists().execute()` | `--if-exists del-port pod0` |
//! | `ovs.open_vswitch().set_other_config("hw-offload", "true").execute()` | `set Open_vSwitch . other_config:hw-offload=true` |
//!
//! Like `ovs-vsctl` (without `--no-wait`), a change waits until ovs-vswitchd has applied it:
//! the transaction increments `Open_vSwitch.next_cfg`, and the request returns once `cur_cfg`
//! has caught up and, for a new port, its interface has an `ofport` (or an `error`). The client
//! keeps one monitor (`monitor_cond`, so changes come as diffs) of the columns it needs, so
//! waiting costs no polling.

mod view;

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    jsonrpc::{Remote, RpcError},
    ovsdb::{
        Client, OvsdbError,
        value::{self, as_uuid, map, named_uuid, set},
    },
};

pub use view::{BridgeRow, DbView, InterfaceRow, PortRow};

const DB: &str = "Open_vSwitch";
const MONITOR_ID: &str = "smartnic-vswitch";
/// How long a change may take to be applied by ovs-vswitchd before we give up.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Errors of `Open_vSwitch` operations.
#[derive(Debug, thiserror::Error)]
pub enum VswitchError {
    /// The OVSDB request failed.
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
    /// No bridge of that name.
    #[error("{remote}: no bridge named {bridge}")]
    NoBridge {
        /// The remote.
        remote: String,
        /// The bridge.
        bridge: String,
    },
    /// No port of that name.
    #[error("{remote}: no port named {port}")]
    NoPort {
        /// The remote.
        remote: String,
        /// The port.
        port: String,
    },
    /// The port exists on another bridge (`--may-exist` refuses this too).
    #[error("{remote}: port {port} already exists on bridge {on}, not on {bridge}")]
    PortElsewhere {
        /// The remote.
        remote: String,
        /// The port.
        port: String,
        /// Where it is.
        on: String,
        /// Where it was asked for.
        bridge: String,
    },
    /// ovs-vswitchd could not open the interface (`Interface.error`).
    #[error("{remote}: ovs-vswitchd could not add interface {iface}: {error}")]
    Interface {
        /// The remote.
        remote: String,
        /// The interface.
        iface: String,
        /// `Interface.error`.
        error: String,
    },
    /// ovs-vswitchd did not apply the change in time (is it running?).
    #[error(
        "{remote}: ovs-vswitchd did not apply the change within {} (cur_cfg {cur} < next_cfg {want}); is ovs-vswitchd running?",
        crds::report::human_duration(*.waited)
    )]
    Timeout {
        /// The remote.
        remote: String,
        /// How long we waited.
        waited: Duration,
        /// `cur_cfg` when we gave up.
        cur: i64,
        /// The `next_cfg` we waited for.
        want: i64,
    },
    /// The monitor ended (the connection closed).
    #[error("{remote}: the OVSDB connection closed")]
    Closed {
        /// The remote.
        remote: String,
    },
}

/// A connection to ovsdb-server's `Open_vSwitch` database with a live view of bridges, ports,
/// interfaces and `cur_cfg`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ovs {
    db: Client,
    view: watch::Receiver<DbView>,
    wait: Duration,
}

impl Ovs {
    /// Connects (`ovs-vsctl --db=unix:/run/openvswitch/db.sock`) and starts the monitor.
    pub async fn connect(remote: &Remote) -> Result<Self, VswitchError> {
        let db = Client::connect(remote).await?;
        let cols = |c: &[&str]| json!({"columns": c});
        let requests = json!({
            "Open_vSwitch": cols(&["cur_cfg", "other_config"]),
            "Bridge": cols(&["name", "ports", "datapath_type"]),
            "Port": cols(&["name", "interfaces", "tag"]),
            "Interface": cols(&["name", "type", "ofport", "error", "options", "external_ids"]),
        });
        // monitor_cond sends diffs (a port added to a bridge is one UUID, not the bridge's whole
        // port set); a server older than OVS 2.6 has only monitor.
        let (mut mon, diffs) = match db.monitor_cond(DB, MONITOR_ID, requests.clone()).await {
            Ok(m) => (m, true),
            Err(OvsdbError::Rpc(RpcError::Server { .. })) => {
                (db.monitor(DB, MONITOR_ID, requests).await?, false)
            }
            Err(e) => return Err(e.into()),
        };
        let apply = if diffs { DbView::apply2 } else { DbView::apply };
        let mut view = DbView::default();
        apply(&mut view, &mon.initial);
        let (tx, rx) = watch::channel(view);
        tokio::spawn(async move {
            while let Some(u) = mon.updates.recv().await {
                tx.send_modify(|v| apply(v, &u));
            }
            tx.send_modify(|v| v.closed = true);
        });
        Ok(Self {
            db,
            view: rx,
            wait: DEFAULT_WAIT,
        })
    }

    /// How long a change may take to be applied (default [`DEFAULT_WAIT`]).
    pub fn with_wait_timeout(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The underlying OVSDB client (for raw `transact`/`monitor`).
    pub fn client(&self) -> &Client {
        &self.db
    }

    /// A snapshot of the watched tables.
    pub fn view(&self) -> DbView {
        self.view.borrow().clone()
    }

    /// Bridges.
    pub fn bridge(&self) -> BridgeHandle {
        BridgeHandle(self.clone())
    }

    /// Ports and their interfaces.
    pub fn port(&self) -> PortHandle {
        PortHandle(self.clone())
    }

    /// The `Open_vSwitch` root row.
    pub fn open_vswitch(&self) -> OpenVswitchHandle {
        OpenVswitchHandle(self.clone())
    }

    fn remote(&self) -> String {
        self.db.remote().to_string()
    }

    /// Runs `ops` plus the `next_cfg` increment; returns the op results and the `next_cfg` to
    /// wait for.
    async fn transact_cfg(&self, mut ops: Vec<Value>) -> Result<(Vec<Value>, i64), VswitchError> {
        let n = ops.len();
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                        "mutations": [["next_cfg", "+=", 1]]}));
        ops.push(json!({"op": "select", "table": "Open_vSwitch", "where": [],
                        "columns": ["next_cfg"]}));
        let res = self.db.transact(DB, ops).await?;
        let next = res
            .get(n + 1)
            .and_then(|r| r["rows"][0]["next_cfg"].as_i64())
            .unwrap_or(0);
        Ok((res, next))
    }

    /// Waits until ovs-vswitchd has applied `next_cfg` and, with `iface`, the interface has its
    /// ofport. Returns the ofport.
    async fn wait_applied(
        &self,
        next_cfg: i64,
        iface: Option<&str>,
    ) -> Result<Option<u32>, VswitchError> {
        let mut rx = self.view.clone();
        let done = |v: &DbView| {
            v.closed
                || (v.cur_cfg >= next_cfg
                    && iface.is_none_or(|i| {
                        v.interface(i)
                            .is_some_and(|r| r.ofport.is_some() || r.error.is_some())
                    }))
        };
        let res = tokio::time::timeout(self.wait, rx.wait_for(done)).await;
        // What is needed, not a copy of the whole view.
        let (cur_cfg, closed, row) = {
            let v = self.view.borrow();
            (
                v.cur_cfg,
                v.closed,
                iface.and_then(|i| v.interface(i).cloned()),
            )
        };
        match res {
            Err(_) => Err(VswitchError::Timeout {
                remote: self.remote(),
                waited: self.wait,
                cur: cur_cfg,
                want: next_cfg,
            }),
            Ok(Err(_)) => Err(VswitchError::Closed {
                remote: self.remote(),
            }),
            Ok(Ok(_)) if closed => Err(VswitchError::Closed {
                remote: self.remote(),
            }),
            Ok(Ok(_)) => {
                let Some(i) = iface else { return Ok(None) };
                let row = row.unwrap_or_default();
                match row.ofport {
                    Some(p) if p > 0 => Ok(u32::try_from(p).ok()),
                    _ => Err(VswitchError::Interface {
                        remote: self.remote(),
                        iface: i.to_string(),
                        error: row.error.unwrap_or_else(|| "no ofport assigned".into()),
                    }),
                }
            }
        }
    }

    /// Finds a row's UUID by name with a `select` (the view may lag a transaction just made).
    async fn uuid_of(&self, table: &str, name: &str) -> Result<Option<String>, VswitchError> {
        let r = self
            .db
            .transact(
                DB,
                vec![json!({"op": "select", "table": table,
                            "where": [["name", "==", name]], "columns": ["_uuid"]})],
            )
            .await?;
        Ok(r.first()
            .and_then(|r| as_uuid(&r["rows"][0]["_uuid"]).map(str::to_string)))
    }
}

/// `ovs-vsctl add-br / del-br`.
#[derive(Debug)]
pub struct BridgeHandle(Ovs);

impl BridgeHandle {
    /// `ovs-vsctl add-br NAME` (with its internal port of the same name).
    pub fn add(&self, name: &str) -> BridgeAddRequest {
        BridgeAddRequest {
            ovs: self.0.clone(),
            name: name.to_string(),
            datapath_type: None,
            fail_mode: None,
            other_config: BTreeMap::new(),
            external_ids: BTreeMap::new(),
            may_exist: false,
        }
    }

    /// `ovs-vsctl del-br NAME`
    pub fn del(&self, name: &str) -> BridgeDelRequest {
        BridgeDelRequest {
            ovs: self.0.clone(),
            name: name.to_string(),
            if_exists: false,
        }
    }
}

/// OpenFlow behaviour of a bridge without a controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// No flows but ours (`fail_mode=secure`): what an overlay bridge wants.
    Secure,
    /// Falls back to a learning switch.
    Standalone,
}

/// `ovs-vsctl add-br`
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct BridgeAddRequest {
    ovs: Ovs,
    name: String,
    datapath_type: Option<String>,
    fail_mode: Option<FailMode>,
    other_config: BTreeMap<String, String>,
    external_ids: BTreeMap<String, String>,
    may_exist: bool,
}

impl BridgeAddRequest {
    /// `-- set bridge NAME datapath_type=netdev|system`
    pub fn datapath_type(mut self, t: &str) -> Self {
        self.datapath_type = Some(t.to_string());
        self
    }

    /// `-- set bridge NAME fail_mode=secure|standalone`
    pub fn fail_mode(mut self, m: FailMode) -> Self {
        self.fail_mode = Some(m);
        self
    }

    /// `-- set bridge NAME other_config:KEY=VALUE` (e.g. `hwaddr`).
    pub fn other_config(mut self, k: &str, v: &str) -> Self {
        self.other_config.insert(k.into(), v.into());
        self
    }

    /// `-- set bridge NAME external_ids:KEY=VALUE`
    pub fn external_id(mut self, k: &str, v: &str) -> Self {
        self.external_ids.insert(k.into(), v.into());
        self
    }

    /// `--may-exist`: an existing bridge of that name is fine (left as it is).
    pub fn may_exist(mut self) -> Self {
        self.may_exist = true;
        self
    }

    /// Creates the bridge and waits until ovs-vswitchd has it.
    pub async fn execute(self) -> Result<(), VswitchError> {
        if self.may_exist && self.ovs.view.borrow().bridge(&self.name).is_some() {
            return Ok(());
        }
        let mut row = json!({
            "name": self.name,
            "ports": named_uuid("port"),
            "other_config": map(self.other_config.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            "external_ids": map(self.external_ids.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        if let Some(t) = &self.datapath_type {
            row["datapath_type"] = json!(t);
        }
        if let Some(m) = self.fail_mode {
            row["fail_mode"] = json!(match m {
                FailMode::Secure => "secure",
                FailMode::Standalone => "standalone",
            });
        }
        let ops = vec![
            json!({"op": "insert", "table": "Interface", "uuid-name": "iface",
                   "row": {"name": self.name, "type": "internal"}}),
            json!({"op": "insert", "table": "Port", "uuid-name": "port",
                   "row": {"name": self.name, "interfaces": named_uuid("iface")}}),
            json!({"op": "insert", "table": "Bridge", "uuid-name": "br", "row": row}),
            json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                   "mutations": [["bridges", "insert", set([named_uuid("br")])]]}),
        ];
        let (_, next) = self.ovs.transact_cfg(ops).await?;
        self.ovs.wait_applied(next, Some(&self.name)).await?;
        Ok(())
    }
}

/// `ovs-vsctl del-br`
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct BridgeDelRequest {
    ovs: Ovs,
    name: String,
    if_exists: bool,
}

impl BridgeDelRequest {
    /// `--if-exists`
    pub fn if_exists(mut self) -> Self {
        self.if_exists = true;
        self
    }

    /// Deletes the bridge (its ports go with it) and waits until ovs-vswitchd applied it.
    pub async fn execute(self) -> Result<(), VswitchError> {
        let Some(uuid) = self.ovs.uuid_of("Bridge", &self.name).await? else {
            if self.if_exists {
                return Ok(());
            }
            return Err(VswitchError::NoBridge {
                remote: self.ovs.remote(),
                bridge: self.name,
            });
        };
        let ops = vec![json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                              "mutations": [["bridges", "delete", set([value::uuid(&uuid)])]]})];
        let (_, next) = self.ovs.transact_cfg(ops).await?;
        self.ovs.wait_applied(next, None).await?;
        Ok(())
    }
}

/// `ovs-vsctl add-port / del-port`.
#[derive(Debug)]
pub struct PortHandle(Ovs);

impl PortHandle {
    /// `ovs-vsctl add-port BRIDGE NAME`
    pub fn add(&self, bridge: &str, name: &str) -> PortAddRequest {
        PortAddRequest {
            ovs: self.0.clone(),
            bridge: bridge.to_string(),
            name: name.to_string(),
            kind: None,
            options: BTreeMap::new(),
            external_ids: BTreeMap::new(),
            tag: None,
            trunks: Vec::new(),
            may_exist: false,
            wait: true,
        }
    }

    /// `ovs-vsctl del-port NAME`
    pub fn del(&self, name: &str) -> PortDelRequest {
        PortDelRequest {
            ovs: self.0.clone(),
            name: name.to_string(),
            if_exists: false,
        }
    }

    /// The ports of a bridge whose interface has `external_ids:KEY=VALUE`
    /// (`ovs-vsctl --columns=name find interface external_ids:KEY=VALUE`).
    pub fn find_by_external_id(&self, bridge: &str, key: &str, val: &str) -> Vec<InterfaceRow> {
        self.0
            .view
            .borrow()
            .bridge_interfaces(bridge)
            .into_iter()
            .filter(|i| i.external_ids.get(key).is_some_and(|v| v == val))
            .cloned()
            .collect()
    }
}

/// `ovs-vsctl add-port BRIDGE NAME -- set interface NAME type=... options:...`
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct PortAddRequest {
    ovs: Ovs,
    bridge: String,
    name: String,
    kind: Option<String>,
    options: BTreeMap<String, String>,
    external_ids: BTreeMap<String, String>,
    tag: Option<u16>,
    trunks: Vec<u16>,
    may_exist: bool,
    wait: bool,
}

impl PortAddRequest {
    /// `-- set interface NAME type=TYPE` (`geneve`, `internal`, ...; default: a system netdev).
    pub fn interface_type(mut self, t: &str) -> Self {
        self.kind = Some(t.to_string());
        self
    }

    /// `-- set interface NAME options:KEY=VALUE` (e.g. `remote_ip`, `key=flow`).
    pub fn option(mut self, k: &str, v: &str) -> Self {
        self.options.insert(k.into(), v.into());
        self
    }

    /// `-- set interface NAME external_ids:KEY=VALUE`
    pub fn external_id(mut self, k: &str, v: &str) -> Self {
        self.external_ids.insert(k.into(), v.into());
        self
    }

    /// `tag=VLAN` (access port).
    pub fn tag(mut self, vlan: u16) -> Self {
        self.tag = Some(vlan);
        self
    }

    /// `trunks=VLAN,...` (a trunk port carrying these VLANs; empty: every VLAN).
    pub fn trunks(mut self, vlans: impl IntoIterator<Item = u16>) -> Self {
        self.trunks.extend(vlans);
        self
    }

    /// `--may-exist`: a port of that name on the same bridge is fine (its ofport is returned).
    pub fn may_exist(mut self) -> Self {
        self.may_exist = true;
        self
    }

    /// `--no-wait`: return after the commit, without waiting for ovs-vswitchd (no ofport).
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// Adds the port and returns its OpenFlow port number once ovs-vswitchd has it (`None`
    /// with [`Self::no_wait`]).
    pub async fn execute(self) -> Result<Option<u32>, VswitchError> {
        let remote = self.ovs.remote();
        {
            let v = self.ovs.view.borrow();
            if v.bridge(&self.bridge).is_none() {
                return Err(VswitchError::NoBridge {
                    remote,
                    bridge: self.bridge,
                });
            }
            if let Some(p) = v.port(&self.name) {
                let on = v.bridge_of(&p.uuid).map(|b| b.name.clone());
                if on.as_deref() != Some(self.bridge.as_str()) || !self.may_exist {
                    return Err(VswitchError::PortElsewhere {
                        remote,
                        port: self.name.clone(),
                        on: on.unwrap_or_default(),
                        bridge: self.bridge,
                    });
                }
                let ofport = v.interface(&self.name).and_then(|i| i.ofport);
                if let Some(p) = ofport.filter(|p| *p > 0) {
                    return Ok(u32::try_from(p).ok());
                }
            }
        }
        let mut iface = json!({
            "name": self.name,
            "options": map(self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            "external_ids": map(self.external_ids.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        if let Some(t) = &self.kind {
            iface["type"] = json!(t);
        }
        let mut port = json!({"name": self.name, "interfaces": named_uuid("iface")});
        if let Some(t) = self.tag {
            port["tag"] = json!(t);
        }
        if !self.trunks.is_empty() {
            port["trunks"] = set(self.trunks.iter().map(|v| json!(v)));
        }
        let ops = vec![
            json!({"op": "insert", "table": "Interface", "uuid-name": "iface", "row": iface}),
            json!({"op": "insert", "table": "Port", "uuid-name": "port", "row": port}),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", self.bridge]],
                   "mutations": [["ports", "insert", set([named_uuid("port")])]]}),
        ];
        if !self.wait {
            self.ovs.db.transact(DB, ops).await?;
            return Ok(None);
        }
        let (_, next) = self.ovs.transact_cfg(ops).await?;
        self.ovs.wait_applied(next, Some(&self.name)).await
    }
}

/// `ovs-vsctl del-port NAME`
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct PortDelRequest {
    ovs: Ovs,
    name: String,
    if_exists: bool,
}

impl PortDelRequest {
    /// `--if-exists`
    pub fn if_exists(mut self) -> Self {
        self.if_exists = true;
        self
    }

    /// Removes the port from its bridge and waits until ovs-vswitchd applied it.
    pub async fn execute(self) -> Result<(), VswitchError> {
        let Some(port) = self.ovs.uuid_of("Port", &self.name).await? else {
            if self.if_exists {
                return Ok(());
            }
            return Err(VswitchError::NoPort {
                remote: self.ovs.remote(),
                port: self.name,
            });
        };
        // Port rows are not root rows: removing the reference from the bridge deletes them.
        let ops = vec![json!({"op": "mutate", "table": "Bridge",
                   "where": [["ports", "includes", value::uuid(&port)]],
                   "mutations": [["ports", "delete", set([value::uuid(&port)])]]})];
        let (_, next) = self.ovs.transact_cfg(ops).await?;
        self.ovs.wait_applied(next, None).await?;
        Ok(())
    }
}

/// The `Open_vSwitch` root row (`ovs-vsctl set/get/remove Open_vSwitch . other_config ...`).
#[derive(Debug)]
pub struct OpenVswitchHandle(Ovs);

impl OpenVswitchHandle {
    /// `ovs-vsctl set Open_vSwitch . other_config:KEY=VALUE`
    pub fn set_other_config(&self, key: &str, value: &str) -> OtherConfigRequest {
        OtherConfigRequest {
            ovs: self.0.clone(),
            set: vec![(key.to_string(), value.to_string())],
            remove: Vec::new(),
        }
    }

    /// `ovs-vsctl remove Open_vSwitch . other_config KEY`
    pub fn remove_other_config(&self, key: &str) -> OtherConfigRequest {
        OtherConfigRequest {
            ovs: self.0.clone(),
            set: Vec::new(),
            remove: vec![key.to_string()],
        }
    }

    /// `ovs-vsctl get Open_vSwitch . other_config` (from the monitor).
    pub fn other_config(&self) -> BTreeMap<String, String> {
        self.0.view.borrow().other_config.clone()
    }
}

/// Changes `Open_vSwitch.other_config` (`hw-offload`, `tc-policy`, ...).
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct OtherConfigRequest {
    ovs: Ovs,
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

impl OtherConfigRequest {
    /// One more `other_config:KEY=VALUE` in the same transaction.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.set.push((key.into(), value.into()));
        self
    }

    /// Commits and waits until ovs-vswitchd applied it. Note that ovs-vswitchd reads
    /// `hw-offload` and `tc-policy` once: turning them off, or changing `tc-policy`, takes a
    /// restart of ovs-vswitchd (vswitch.xml).
    pub async fn execute(self) -> Result<(), VswitchError> {
        let keys: Vec<Value> = self
            .set
            .iter()
            .map(|(k, _)| json!(k))
            .chain(self.remove.iter().map(|k| json!(k)))
            .collect();
        let mut mutations = vec![json!(["other_config", "delete", set(keys)])];
        if !self.set.is_empty() {
            mutations.push(json!([
                "other_config",
                "insert",
                map(self.set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            ]));
        }
        let ops = vec![json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                              "mutations": mutations})];
        let (_, next) = self.ovs.transact_cfg(ops).await?;
        self.ovs.wait_applied(next, None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn the_timeout_reads_as_a_person_says_it() {
        let e = VswitchError::Timeout {
            remote: "unix:/run/openvswitch/db.sock".into(),
            waited: Duration::from_nanos(60_000_243_300),
            cur: 4,
            want: 5,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("within 1 min (cur_cfg 4 < next_cfg 5)"),
            "{msg}"
        );
        let e = VswitchError::Timeout {
            waited: Duration::from_millis(1_500),
            remote: String::new(),
            cur: 0,
            want: 1,
        };
        assert!(e.to_string().contains("within 1.5 s "), "{e}");
    }
}
