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

    /// Applies one `<table-updates>` object (RFC 7047 §4.1.6, from `monitor`).
    pub(super) fn apply(&mut self, updates: &Value) {
        for (table, uuid, change) in rows_of(updates) {
            // "new" holds every monitored column, also for a modify ("old" has only the changed
            // ones), so a row is replaced whole.
            match (change.get("new"), change.get("old")) {
                (Some(row), _) => self.set_row(table, uuid, row),
                (None, Some(_)) => self.remove_row(table, uuid),
                (None, None) => {}
            }
        }
    }

    /// Applies one `<table-updates2>` object (ovsdb-server(7), from `monitor_cond`): `initial`
    /// and `insert` carry the row, `modify` only the changed columns (for a set the elements
    /// that came or went, for a map the pairs that came, went or changed), `delete` nothing.
    pub(super) fn apply2(&mut self, updates: &Value) {
        for (table, uuid, change) in rows_of(updates) {
            if let Some(row) = change.get("initial").or_else(|| change.get("insert")) {
                self.set_row(table, uuid, row);
            } else if let Some(diff) = change.get("modify") {
                self.modify_row(table, uuid, diff);
            } else if change.get("delete").is_some() {
                self.remove_row(table, uuid);
            }
        }
    }

    fn set_row(&mut self, table: &str, uuid: &str, row: &Value) {
        match table {
            "Open_vSwitch" => {
                if let Some(c) = row.get("cur_cfg").and_then(Value::as_i64) {
                    self.cur_cfg = c;
                }
                if let Some(oc) = row.get("other_config") {
                    self.other_config = as_map(oc);
                }
            }
            "Bridge" => {
                let b = BridgeRow {
                    uuid: uuid.to_string(),
                    name: str_col(row, "name"),
                    ports: uuids(row.get("ports")),
                    datapath_type: str_col(row, "datapath_type"),
                };
                self.bridges.insert(uuid.to_string(), b);
            }
            "Port" => {
                let p = PortRow {
                    uuid: uuid.to_string(),
                    name: str_col(row, "name"),
                    interfaces: uuids(row.get("interfaces")),
                    tag: row.get("tag").and_then(as_opt_i64),
                };
                self.ports.insert(uuid.to_string(), p);
            }
            "Interface" => {
                let i = InterfaceRow {
                    uuid: uuid.to_string(),
                    name: str_col(row, "name"),
                    kind: str_col(row, "type"),
                    ofport: row.get("ofport").and_then(as_opt_i64),
                    error: row.get("error").and_then(as_opt_str),
                    options: row.get("options").map(as_map).unwrap_or_default(),
                    external_ids: row.get("external_ids").map(as_map).unwrap_or_default(),
                };
                self.interfaces.insert(uuid.to_string(), i);
            }
            _ => {}
        }
    }

    fn remove_row(&mut self, table: &str, uuid: &str) {
        match table {
            "Bridge" => {
                self.bridges.remove(uuid);
            }
            "Port" => {
                self.ports.remove(uuid);
            }
            "Interface" => {
                self.interfaces.remove(uuid);
            }
            _ => {}
        }
    }

    /// One `modify` of `<table-updates2>`. Which columns are sets and maps comes from the
    /// schema (vswitch.ovsschema): an optional column (`ofport`, `error`, `tag`) is a set of at
    /// most one, so its diff is the element that came or went, like any set.
    fn modify_row(&mut self, table: &str, uuid: &str, diff: &Value) {
        let text = |col: &str| diff.get(col).and_then(Value::as_str).map(str::to_string);
        match table {
            "Open_vSwitch" => {
                if let Some(c) = diff.get("cur_cfg").and_then(Value::as_i64) {
                    self.cur_cfg = c;
                }
                if let Some(d) = diff.get("other_config") {
                    map_diff(&mut self.other_config, d);
                }
            }
            "Bridge" => {
                let Some(b) = self.bridges.get_mut(uuid) else {
                    return;
                };
                if let Some(n) = text("name") {
                    b.name = n;
                }
                if let Some(t) = text("datapath_type") {
                    b.datapath_type = t;
                }
                if let Some(d) = diff.get("ports") {
                    set_diff(&mut b.ports, uuids(Some(d)));
                }
            }
            "Port" => {
                let Some(p) = self.ports.get_mut(uuid) else {
                    return;
                };
                if let Some(n) = text("name") {
                    p.name = n;
                }
                if let Some(d) = diff.get("interfaces") {
                    set_diff(&mut p.interfaces, uuids(Some(d)));
                }
                if let Some(d) = diff.get("tag") {
                    opt_diff(&mut p.tag, as_set(d).iter().filter_map(Value::as_i64));
                }
            }
            "Interface" => {
                let Some(i) = self.interfaces.get_mut(uuid) else {
                    return;
                };
                if let Some(n) = text("name") {
                    i.name = n;
                }
                if let Some(t) = text("type") {
                    i.kind = t;
                }
                if let Some(d) = diff.get("ofport") {
                    opt_diff(&mut i.ofport, as_set(d).iter().filter_map(Value::as_i64));
                }
                if let Some(d) = diff.get("error") {
                    let items = as_set(d);
                    opt_diff(
                        &mut i.error,
                        items.iter().filter_map(|v| v.as_str().map(str::to_string)),
                    );
                }
                if let Some(d) = diff.get("options") {
                    map_diff(&mut i.options, d);
                }
                if let Some(d) = diff.get("external_ids") {
                    map_diff(&mut i.external_ids, d);
                }
            }
            _ => {}
        }
    }
}

/// `(table, uuid, change)` of every row of a `<table-updates>` or `<table-updates2>`.
fn rows_of(updates: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    updates
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(table, rows)| Some((table.as_str(), rows.as_object()?)))
        .flat_map(|(table, rows)| rows.iter().map(move |(u, c)| (table, u.as_str(), c)))
}

/// A set column's diff: each element present is removed, each absent one added.
fn set_diff<T: PartialEq>(set: &mut Vec<T>, diff: Vec<T>) {
    for e in diff {
        match set.iter().position(|x| *x == e) {
            Some(i) => {
                set.remove(i);
            }
            None => set.push(e),
        }
    }
}

/// An optional column's diff (a set of at most one): the old value goes, a new one comes.
fn opt_diff<T: PartialEq>(v: &mut Option<T>, diff: impl Iterator<Item = T>) {
    let mut set: Vec<T> = v.take().into_iter().collect();
    set_diff(&mut set, diff.collect());
    *v = set.pop();
}

/// A map column's diff: a pair with a new key is added, one equal to the present pair removed,
/// one with a new value for a present key replaces it.
fn map_diff(map: &mut BTreeMap<String, String>, diff: &Value) {
    for (k, v) in as_map(diff) {
        match map.get(&k) {
            Some(old) if *old == v => {
                map.remove(&k);
            }
            _ => {
                map.insert(k, v);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The same history through `monitor` (whole rows) and `monitor_cond` (diffs) gives the
    /// same view.
    #[test]
    fn diffs_and_whole_rows_give_the_same_view() {
        let (mut v1, mut v2) = (DbView::default(), DbView::default());
        let bridge = |ports: &[&str]| {
            json!({"name": "br-int", "datapath_type": "netdev",
                   "ports": ["set", ports.iter().map(|p| json!(["uuid", p])).collect::<Vec<_>>()]})
        };
        let iface = |ofport: Value, error: Value, ids: Value| {
            json!({"name": "veth1", "type": "", "ofport": ofport, "error": error,
                   "options": ["map", []], "external_ids": ids})
        };
        // Start: a bridge with port p0, the interface without an ofport yet.
        v1.apply(&json!({
            "Open_vSwitch": {"o": {"new": {"cur_cfg": 4, "other_config": ["map", [["hw-offload", "true"]]]}}},
            "Bridge": {"b": {"new": bridge(&["p0"])}},
            "Interface": {"i": {"new": iface(json!(["set", []]), json!(["set", []]),
                                             json!(["map", [["pod", "a"]]]))}},
        }));
        v2.apply2(&json!({
            "Open_vSwitch": {"o": {"initial": {"cur_cfg": 4, "other_config": ["map", [["hw-offload", "true"]]]}}},
            "Bridge": {"b": {"initial": bridge(&["p0"])}},
            "Interface": {"i": {"initial": iface(json!(["set", []]), json!(["set", []]),
                                                 json!(["map", [["pod", "a"]]]))}},
        }));
        // A port joins; the interface gets ofport 7 and a second external id, "pod" changes.
        v1.apply(&json!({
            "Open_vSwitch": {"o": {"new": {"cur_cfg": 5, "other_config": ["map", [["hw-offload", "true"]]]}, "old": {"cur_cfg": 4}}},
            "Bridge": {"b": {"new": bridge(&["p0", "p1"]), "old": {"ports": ["uuid", "p0"]}}},
            "Port": {"p1": {"new": {"name": "veth1", "interfaces": ["uuid", "i"], "tag": ["set", []]}}},
            "Interface": {"i": {"new": iface(json!(7), json!(["set", []]),
                                             json!(["map", [["pod", "b"], ["vni", "100"]]])), "old": {}}},
        }));
        v2.apply2(&json!({
            "Open_vSwitch": {"o": {"modify": {"cur_cfg": 5}}},
            "Bridge": {"b": {"modify": {"ports": ["uuid", "p1"]}}},
            "Port": {"p1": {"insert": {"name": "veth1", "interfaces": ["uuid", "i"], "tag": ["set", []]}}},
            "Interface": {"i": {"modify": {"ofport": 7,
                                           "external_ids": ["map", [["pod", "b"], ["vni", "100"]]]}}},
        }));
        // ofport 7 -> -1 with an error; p0 leaves; the vni id is dropped; hw-offload goes.
        v1.apply(&json!({
            "Open_vSwitch": {"o": {"new": {"cur_cfg": 5, "other_config": ["map", []]}, "old": {}}},
            "Bridge": {"b": {"new": bridge(&["p1"]), "old": {}}},
            "Interface": {"i": {"new": iface(json!(-1), json!("could not open network device veth1"),
                                             json!(["map", [["pod", "b"]]])), "old": {}}},
        }));
        v2.apply2(&json!({
            "Open_vSwitch": {"o": {"modify": {"other_config": ["map", [["hw-offload", "true"]]]}}},
            "Bridge": {"b": {"modify": {"ports": ["uuid", "p0"]}}},
            "Interface": {"i": {"modify": {"ofport": ["set", [7, -1]],
                                           "error": "could not open network device veth1",
                                           "external_ids": ["map", [["vni", "100"]]]}}},
        }));
        for v in [&v1, &v2] {
            assert_eq!(v.cur_cfg, 5);
            assert!(v.other_config.is_empty());
            assert_eq!(v.bridge("br-int").unwrap().ports, vec!["p1".to_string()]);
            assert_eq!(v.bridge_of("p1").unwrap().name, "br-int");
            let i = v.interface("veth1").unwrap();
            assert_eq!(i.ofport, Some(-1));
            assert_eq!(
                i.error.as_deref(),
                Some("could not open network device veth1")
            );
            assert_eq!(i.external_ids.get("pod").map(String::as_str), Some("b"));
            assert!(!i.external_ids.contains_key("vni"));
        }
        // Rows go.
        v2.apply2(&json!({"Port": {"p1": {"delete": null}}, "Interface": {"i": {"delete": null}}}));
        assert!(v2.port("veth1").is_none() && v2.interface("veth1").is_none());
    }
}
