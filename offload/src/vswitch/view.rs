//! The part of the `Open_vSwitch` database the client watches through its monitor.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::ovsdb::value::{as_map, as_opt_i64, as_opt_str, as_set, as_uuid};

/// One interface as the monitor sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InterfaceRow {
    /// Row UUID.
    pub uuid: String,
    /// `name`
    pub name: String,
    /// `type` (`""` = system, `internal`, `geneve`, ...).
    pub kind: String,
    /// `ofport`: the OpenFlow port number once ovs-vswitchd has the interface; -1 on failure.
    pub ofport: Option<i64>,
    /// `error`: why ovs-vswitchd could not open it.
    pub error: Option<String>,
    /// `options`
    pub options: BTreeMap<String, String>,
    /// `external_ids`
    pub external_ids: BTreeMap<String, String>,
}

/// One port as the monitor sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortRow {
    /// Row UUID.
    pub uuid: String,
    /// `name`
    pub name: String,
    /// Interface UUIDs.
    pub interfaces: Vec<String>,
    /// `tag`
    pub tag: Option<i64>,
}

/// One bridge as the monitor sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BridgeRow {
    /// Row UUID.
    pub uuid: String,
    /// `name`
    pub name: String,
    /// Port UUIDs.
    pub ports: Vec<String>,
    /// `datapath_type`
    pub datapath_type: String,
}

/// The part of the database the client watches.
#[derive(Clone, Debug, Default)]
pub struct DbView {
    /// `Open_vSwitch.cur_cfg`: the configuration ovs-vswitchd has applied.
    pub cur_cfg: i64,
    /// `Open_vSwitch.other_config`
    pub other_config: BTreeMap<String, String>,
    /// Bridges by UUID.
    pub bridges: HashMap<String, BridgeRow>,
    /// Ports by UUID.
    pub ports: HashMap<String, PortRow>,
    /// Interfaces by UUID.
    pub interfaces: HashMap<String, InterfaceRow>,
    pub(super) closed: bool,
}

impl DbView {
    /// The interface called `name`.
    pub fn interface(&self, name: &str) -> Option<&InterfaceRow> {
        self.interfaces.values().find(|i| i.name == name)
    }

    /// The port called `name`.
    pub fn port(&self, name: &str) -> Option<&PortRow> {
        self.ports.values().find(|p| p.name == name)
    }

    /// The bridge called `name`.
    pub fn bridge(&self, name: &str) -> Option<&BridgeRow> {
        self.bridges.values().find(|b| b.name == name)
    }

    /// The bridge that holds the port with UUID `port`.
    pub fn bridge_of(&self, port: &str) -> Option<&BridgeRow> {
        self.bridges
            .values()
            .find(|b| b.ports.iter().any(|p| p == port))
    }

    /// The interfaces of a bridge (through its ports), sorted by name.
    pub fn bridge_interfaces(&self, bridge: &str) -> Vec<&InterfaceRow> {
        let Some(b) = self.bridge(bridge) else {
            return Vec::new();
        };
        let mut out: Vec<&InterfaceRow> = b
            .ports
            .iter()
            .filter_map(|p| self.ports.get(p))
            .flat_map(|p| p.interfaces.iter())
            .filter_map(|i| self.interfaces.get(i))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Applies one `<table-updates>` object (RFC 7047 §4.1.6).
    pub(super) fn apply(&mut self, updates: &Value) {
        let Some(tables) = updates.as_object() else {
            return;
        };
        for (table, rows) in tables {
            let Some(rows) = rows.as_object() else {
                continue;
            };
            for (uuid, change) in rows {
                let new = change.get("new");
                let old = change.get("old");
                // RFC 7047 §4.1.6: "new" holds every monitored column, also for a modify ("old"
                // has only the changed ones), so a row is replaced whole.
                match (table.as_str(), new) {
                    ("Open_vSwitch", Some(row)) => {
                        if let Some(c) = row.get("cur_cfg").and_then(Value::as_i64) {
                            self.cur_cfg = c;
                        }
                        if let Some(oc) = row.get("other_config") {
                            self.other_config = as_map(oc);
                        }
                    }
                    ("Bridge", Some(row)) => {
                        self.bridges.insert(
                            uuid.clone(),
                            BridgeRow {
                                uuid: uuid.clone(),
                                name: str_col(row, "name"),
                                ports: uuids(row.get("ports")),
                                datapath_type: str_col(row, "datapath_type"),
                            },
                        );
                    }
                    ("Port", Some(row)) => {
                        self.ports.insert(
                            uuid.clone(),
                            PortRow {
                                uuid: uuid.clone(),
                                name: str_col(row, "name"),
                                interfaces: uuids(row.get("interfaces")),
                                tag: row.get("tag").and_then(as_opt_i64),
                            },
                        );
                    }
                    ("Interface", Some(row)) => {
                        self.interfaces.insert(
                            uuid.clone(),
                            InterfaceRow {
                                uuid: uuid.clone(),
                                name: str_col(row, "name"),
                                kind: str_col(row, "type"),
                                ofport: row.get("ofport").and_then(as_opt_i64),
                                error: row.get("error").and_then(as_opt_str),
                                options: row.get("options").map(as_map).unwrap_or_default(),
                                external_ids: row
                                    .get("external_ids")
                                    .map(as_map)
                                    .unwrap_or_default(),
                            },
                        );
                    }
                    ("Bridge", None) if old.is_some() => {
                        self.bridges.remove(uuid);
                    }
                    ("Port", None) if old.is_some() => {
                        self.ports.remove(uuid);
                    }
                    ("Interface", None) if old.is_some() => {
                        self.interfaces.remove(uuid);
                    }
                    _ => {}
                }
            }
        }
    }
}

fn str_col(row: &Value, col: &str) -> String {
    row.get(col)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn uuids(v: Option<&Value>) -> Vec<String> {
    v.map(as_set)
        .unwrap_or_default()
        .iter()
        .filter_map(|u| as_uuid(u).map(str::to_string))
        .collect()
}
