//! `smartnicctl convert -f FILE [-o yaml|json]`: SR-IOV network operator manifests
//! (`sriovnetwork.openshift.io/v1`) to ours.
//!
//! | theirs | ours |
//! |---|---|
//! | `SriovNetworkNodePolicy` | `NicPolicy` (cluster-scoped, same name) |
//! | `SriovNetwork` | `NicNetwork` (mode `sriov`) in `spec.networkNamespace`, else the object's namespace |
//! | `SriovIBNetwork` | `NicNetwork` (mode `ib`), placed the same way; only its own fields (`resourceName`, `linkState`, `ipam`, `capabilities`, `metaPlugins`, log settings) carry over |
//! | `SriovNetworkPoolConfig` | `NicPool` |
//! | `SriovOperatorConfig` | `NicOperatorConfig` named `default` |
//!
//! Their spellings are translated (`deviceID` → `deviceId`, `eSwitchMode` → `eswitchMode`,
//! `spoofChk: "on"` → `true`, `ipam`/`capabilities`/`metaPlugins` JSON strings → objects, a plain
//! `nodeSelector` map → `matchLabels`, `linkType: ETH` → `eth`). Whatever has no counterpart is
//! named in a warning (printed on stderr), never dropped silently; other kinds are skipped with a
//! warning.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

/// Arguments of `smartnicctl convert`.
#[derive(clap::Args)]
pub struct Args {
    /// The manifests to convert (multi-document YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Multi-document YAML.
    Yaml,
    /// One object, or a `v1` `List` of them.
    Json,
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Our objects, in input order.
    pub objects: Vec<Value>,
    /// Everything not carried over, one line each, naming the object and the field.
    pub warnings: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = crate::input::read(&args.file)?;
    let conv = convert_text(&text).with_context(|| crate::input::name(&args.file))?;
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", render(&conv.objects, args.output)?);
    Ok(())
}

/// Renders objects as multi-document YAML or JSON.
pub fn render(objects: &[Value], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Yaml => {
            let mut out = String::new();
            for o in objects {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(o)?);
            }
            out
        }
        Format::Json => {
            let v = match objects {
                [one] => one.clone(),
                many => json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s
        }
    })
}

/// Converts every document of a multi-document YAML (or JSON) text. A `v1` `List` is unpacked.
pub fn convert_text(text: &str) -> anyhow::Result<Conversion> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| anyhow::anyhow!("not valid YAML: {}", crds::strict::yaml_error(&e)))?;
    let mut conv = Conversion::default();
    let mut queue: Vec<Value> = docs;
    queue.reverse();
    while let Some(doc) = queue.pop() {
        if doc.is_null() {
            continue;
        }
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let mut items: Vec<Value> = doc
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            items.reverse();
            queue.extend(items);
            continue;
        }
        convert_object(&doc, &mut conv)?;
    }
    Ok(conv)
}

/// The SR-IOV network operator's API group.
const THEIR_GROUP: &str = "sriovnetwork.openshift.io";

/// Converts one object, appending to `conv`.
pub fn convert_object(doc: &Value, conv: &mut Conversion) -> anyhow::Result<()> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let meta = doc.get("metadata").cloned().unwrap_or(Value::Null);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let label = match &namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    if !api.starts_with(&format!("{THEIR_GROUP}/")) {
        conv.warnings.push(format!(
            "{label} ({api}): not an SR-IOV network operator object; skipped"
        ));
        return Ok(());
    }
    if name.is_empty() {
        bail!("{kind} without metadata.name");
    }
    let empty = Map::new();
    let spec = doc.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut cx = Cx {
        label: &label,
        warnings: &mut conv.warnings,
    };
    let object = match kind {
        "SriovNetworkNodePolicy" => policy(&name, &meta, spec, &mut cx),
        "SriovNetwork" => network(&name, namespace.as_deref(), &meta, spec, &mut cx, false),
        "SriovIBNetwork" => network(&name, namespace.as_deref(), &meta, spec, &mut cx, true),
        "SriovNetworkPoolConfig" => pool(&name, &meta, spec, &mut cx),
        "SriovOperatorConfig" => operator_config(&name, spec, &mut cx),
        other => {
            cx.warn(
                "",
                &format!("kind {other} has no counterpart in smartnic.io/v1alpha1; skipped"),
            );
            None
        }
    };
    if let Some(o) = object {
        conv.objects.push(o);
    }
    Ok(())
}

/// The object being converted and the warnings so far.
struct Cx<'a> {
    label: &'a str,
    warnings: &'a mut Vec<String>,
}

impl Cx<'_> {
    fn warn(&mut self, field: &str, msg: &str) {
        if field.is_empty() {
            self.warnings.push(format!("{}: {msg}", self.label));
        } else {
            self.warnings
                .push(format!("{}: {field}: {msg}", self.label));
        }
    }

    fn dropped(&mut self, field: &str, why: &str) {
        self.warn(field, &format!("has no counterpart ({why}); not converted"));
    }
}

/// Labels and annotations carried over, without the SR-IOV operator's own ones.
fn carry_meta(meta: &Value, out: &mut Map<String, Value>, cx: &mut Cx<'_>) {
    for key in ["labels", "annotations"] {
        let Some(m) = meta.get(key).and_then(Value::as_object) else {
            continue;
        };
        let mut kept = Map::new();
        for (k, v) in m {
            if k.contains(THEIR_GROUP) || k == "kubectl.kubernetes.io/last-applied-configuration" {
                cx.warn(
                    &format!("metadata.{key}.{k}"),
                    "belongs to the SR-IOV network operator; not converted",
                );
            } else {
                kept.insert(k.clone(), v.clone());
            }
        }
        if !kept.is_empty() {
            out.insert(key.into(), Value::Object(kept));
        }
    }
}

fn ours(kind: &str, metadata: Map<String, Value>, spec: Map<String, Value>) -> Value {
    json!({
        "apiVersion": crds::API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    })
}

/// `true`/`false` from their `"on"`/`"off"` (booleans are accepted too).
fn on_off(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" => Some(true),
            "off" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value written as a string (their `ipam`, `capabilities`, `metaPlugins`); an object is
/// taken as is.
fn json_string(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}")),
        other => Ok(other.clone()),
    }
}

fn policy(name: &str, meta: &Value, spec: &Map<String, Value>, cx: &mut Cx<'_>) -> Option<Value> {
    let mut md = Map::new();
    md.insert("name".into(), json!(name));
    carry_meta(meta, &mut md, cx);
    let mut out = Map::new();
    for (k, v) in spec {
        match k.as_str() {
            "resourceName" | "priority" | "mtu" | "isRdma" | "needVhostNet" | "excludeTopology"
            | "externallyManaged" => {
                out.insert(k.clone(), v.clone());
            }
            "numVfs" => {
                if v.as_u64() == Some(0) {
                    cx.warn(
                        "spec.numVfs",
                        "is 0: a policy without VFs has no counterpart (delete the policy to remove VFs); policy not converted",
                    );
                    return None;
                }
                out.insert("numVfs".into(), v.clone());
            }
            "nodeSelector" => {
                let labels = v.as_object().cloned().unwrap_or_default();
                if labels.is_empty() {
                    cx.warn(
                        "spec.nodeSelector",
                        "is empty (every node); written as matchLabels kubernetes.io/os: linux, since an empty selector is refused",
                    );
                    out.insert(
                        "nodeSelector".into(),
                        json!({"matchLabels": {crds::LABEL_OS: "linux"}}),
                    );
                } else {
                    out.insert("nodeSelector".into(), json!({ "matchLabels": labels }));
                }
            }
            "deviceType" => match v.as_str() {
                Some("netdevice") | Some("vfio-pci") => {
                    out.insert(k.clone(), v.clone());
                }
                _ => cx.dropped(
                    "spec.deviceType",
                    &format!("deviceType {v} is not supported"),
                ),
            },
            "linkType" => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some(l @ ("eth" | "ib")) => {
                    out.insert("linkType".into(), json!(l));
                }
                _ => cx.dropped("spec.linkType", &format!("link type {v}")),
            },
            "eSwitchMode" => match v.as_str() {
                Some(m @ ("legacy" | "switchdev")) => {
                    out.insert("eswitchMode".into(), json!(m));
                }
                _ => cx.dropped("spec.eSwitchMode", &format!("eswitch mode {v}")),
            },
            "nicSelector" => {
                let mut sel = Map::new();
                for (sk, sv) in v.as_object().into_iter().flatten() {
                    match sk.as_str() {
                        "vendor" => {
                            sel.insert("vendor".into(), sv.clone());
                        }
                        "deviceID" => {
                            sel.insert("deviceId".into(), sv.clone());
                        }
                        "pfNames" | "rootDevices" => {
                            if sv.as_array().is_some_and(|a| !a.is_empty()) {
                                sel.insert(sk.clone(), sv.clone());
                            }
                        }
                        "netFilter" => cx.dropped(
                            "spec.nicSelector.netFilter",
                            "OpenStack/AWS network filters are not supported; select the PFs by pfNames or rootDevices",
                        ),
                        other => cx.dropped(&format!("spec.nicSelector.{other}"), "unknown field"),
                    }
                }
                out.insert("nicSelector".into(), Value::Object(sel));
            }
            "vdpaType" => cx.dropped("spec.vdpaType", "vDPA devices are not supported"),
            "bridge" => cx.dropped(
                "spec.bridge",
                "software bridges are not managed by the operator; use a NicNetwork with mode ovs",
            ),
            other => cx.dropped(&format!("spec.{other}"), "unknown field"),
        }
    }
    if !out.contains_key("numVfs") {
        cx.warn(
            "spec.numVfs",
            "is missing (0): a policy without VFs has no counterpart; policy not converted",
        );
        return None;
    }
    if out.contains_key("resourceName") {
        cx.warn(
            "spec.resourceName",
            &format!(
                "pods request {}/<resourceName> (the SR-IOV default prefix is openshift.io); set NicOperatorConfig spec.resourcePrefix to keep the old names",
                crds::RESOURCE_PREFIX
            ),
        );
    }
    Some(ours("NicPolicy", md, out))
}

fn network(
    name: &str,
    namespace: Option<&str>,
    meta: &Value,
    spec: &Map<String, Value>,
    cx: &mut Cx<'_>,
    ib: bool,
) -> Option<Value> {
    let mut md = Map::new();
    md.insert("name".into(), json!(name));
    let target = spec
        .get("networkNamespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or(namespace);
    if let Some(ns) = target {
        md.insert("namespace".into(), json!(ns));
    }
    carry_meta(meta, &mut md, cx);
    let mut out = Map::new();
    out.insert("mode".into(), json!(if ib { "ib" } else { "sriov" }));
    for (k, v) in spec {
        match k.as_str() {
            // Ethernet VF settings: a SriovIBNetwork has none, and our mode ib takes none
            "vlan" | "vlanQoS" | "vlanProto" | "minTxRate" | "maxTxRate" | "spoofChk" | "trust"
                if ib =>
            {
                cx.dropped(
                    &format!("spec.{k}"),
                    "an Ethernet VF setting, which mode ib has no counterpart for",
                );
            }
            "networkNamespace" => {}
            "resourceName" | "vlan" | "vlanQoS" | "minTxRate" | "maxTxRate" => {
                out.insert(k.clone(), v.clone());
            }
            // Ours is a file name in the plugin's own log directory, never a path on the node.
            "logFile" => match v
                .as_str()
                .and_then(|p| p.rsplit('/').next())
                .filter(|n| !n.is_empty() && !n.starts_with('.'))
            {
                Some(name) => {
                    if v.as_str() != Some(name) {
                        cx.warn(
                            "spec.logFile",
                            &format!(
                                "{v} becomes {name:?}, a file in {} (the plugin writes only there)",
                                crds::cni::PLUGIN_LOG_DIR
                            ),
                        );
                    }
                    out.insert(k.clone(), json!(name));
                }
                None => cx.dropped("spec.logFile", &format!("{v} names no file")),
            },
            "vlanProto" => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some(p @ ("802.1q" | "802.1ad")) => {
                    out.insert(k.clone(), json!(p));
                }
                _ => cx.dropped("spec.vlanProto", &format!("VLAN protocol {v}")),
            },
            "spoofChk" | "trust" => match on_off(v) {
                Some(b) => {
                    out.insert(k.clone(), json!(b));
                }
                None => cx.dropped(&format!("spec.{k}"), &format!("{v} is not on or off")),
            },
            "linkState" => match v.as_str() {
                Some(s @ ("auto" | "enable" | "disable")) => {
                    out.insert(k.clone(), json!(s));
                }
                _ => cx.dropped("spec.linkState", &format!("link state {v}")),
            },
            "ipam" => match json_string(v) {
                Ok(Value::Null) => {}
                Ok(Value::Object(o)) if o.is_empty() => {}
                Ok(o @ Value::Object(_)) => {
                    out.insert("ipam".into(), o);
                }
                Ok(other) => cx.dropped("spec.ipam", &format!("{other} is not an object")),
                Err(e) => cx.dropped("spec.ipam", &e),
            },
            "capabilities" => match json_string(v) {
                Ok(Value::Null) => {}
                Ok(Value::Object(o)) => {
                    let mut caps = Map::new();
                    for (ck, cv) in o {
                        match cv.as_bool() {
                            Some(b) => {
                                caps.insert(ck, json!(b));
                            }
                            None => cx.dropped(
                                &format!("spec.capabilities.{ck}"),
                                &format!("{cv} is not a boolean"),
                            ),
                        }
                    }
                    if !caps.is_empty() {
                        out.insert("capabilities".into(), Value::Object(caps));
                    }
                }
                Ok(other) => cx.dropped("spec.capabilities", &format!("{other} is not an object")),
                Err(e) => cx.dropped("spec.capabilities", &e),
            },
            "metaPlugins" => {
                // one or more plugin objects separated by commas, as they splice it into a list
                let text = v.as_str().map(str::trim).unwrap_or_default();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Vec<Value>>(&format!("[{text}]")) {
                    Ok(list) => {
                        out.insert("metaPlugins".into(), Value::Array(list));
                    }
                    Err(e) => cx.dropped("spec.metaPlugins", &format!("not valid JSON: {e}")),
                }
            }
            "logLevel" => match v.as_str() {
                Some(l @ ("error" | "warning" | "info" | "debug")) => {
                    out.insert(k.clone(), json!(l));
                }
                Some("panic") => {
                    cx.warn(
                        "spec.logLevel",
                        "panic is written as error, the least verbose level",
                    );
                    out.insert(k.clone(), json!("error"));
                }
                _ => cx.dropped("spec.logLevel", &format!("log level {v}")),
            },
            other => cx.dropped(&format!("spec.{other}"), "unknown field"),
        }
    }
    Some(ours("NicNetwork", md, out))
}

fn pool(name: &str, meta: &Value, spec: &Map<String, Value>, cx: &mut Cx<'_>) -> Option<Value> {
    let mut md = Map::new();
    md.insert("name".into(), json!(name));
    carry_meta(meta, &mut md, cx);
    let mut out = Map::new();
    for (k, v) in spec {
        match k.as_str() {
            "nodeSelector" | "maxUnavailable" => {
                out.insert(k.clone(), v.clone());
            }
            "rdmaMode" => match v.as_str() {
                Some(m @ ("shared" | "exclusive")) => {
                    out.insert(k.clone(), json!(m));
                }
                _ => cx.dropped("spec.rdmaMode", &format!("RDMA mode {v}")),
            },
            "ovsHardwareOffloadConfig" => cx.dropped(
                "spec.ovsHardwareOffloadConfig",
                "OpenShift MachineConfigPool wiring; set up OVS offload on the node (smartnicctl ovs setup)",
            ),
            other => cx.dropped(&format!("spec.{other}"), "unknown field"),
        }
    }
    if !out.contains_key("nodeSelector") {
        out.insert("nodeSelector".into(), json!({}));
    }
    if !out.contains_key("maxUnavailable") {
        cx.warn(
            "spec.maxUnavailable",
            "is unset, which means no limit there; written as \"100%\" (ours defaults to 1)",
        );
        out.insert("maxUnavailable".into(), json!("100%"));
    }
    Some(ours("NicPool", md, out))
}

fn operator_config(name: &str, spec: &Map<String, Value>, cx: &mut Cx<'_>) -> Option<Value> {
    if name != "default" {
        cx.warn(
            "metadata.name",
            "only the object named default is read by either operator; written as default",
        );
    }
    let mut md = Map::new();
    md.insert("name".into(), json!(crds::OPERATOR_CONFIG_NAME));
    let mut out = Map::new();
    let mut features = Map::new();
    for (k, v) in spec {
        match k.as_str() {
            "configDaemonNodeSelector" => {
                out.insert("nodeSelector".into(), v.clone());
            }
            "logLevel" => {
                let level = match v.as_i64() {
                    Some(0) => "info",
                    Some(1) => "debug",
                    Some(n) if n >= 2 => "trace",
                    _ => {
                        cx.dropped("spec.logLevel", &format!("log level {v}"));
                        continue;
                    }
                };
                out.insert("logLevel".into(), json!(level));
            }
            "disableDrain" => {
                if let Some(b) = v.as_bool() {
                    features.insert("drain".into(), json!(!b));
                }
            }
            "enableOvsOffload" => cx.dropped(
                "spec.enableOvsOffload",
                "OVS hardware offload is node setup (smartnicctl ovs setup), not an operator switch",
            ),
            "enableInjector" => cx.dropped(
                "spec.enableInjector",
                "no resource injector: pods request the resource in their own spec",
            ),
            "enableOperatorWebhook" => cx.dropped(
                "spec.enableOperatorWebhook",
                "the webhook is part of the deployment (deploy/operator)",
            ),
            "configurationMode" => {
                cx.dropped(
                    "spec.configurationMode",
                    "the agent always runs as a DaemonSet",
                );
            }
            "useCDI" => cx.dropped(
                "spec.useCDI",
                "CDI is the device plugin's `--cdi` flag (deploy/device-plugin), not a cluster setting",
            ),
            "disablePlugins" => cx.dropped("spec.disablePlugins", "no vendor plugins to disable"),
            "featureGates" => {
                for (gate, on) in v.as_object().into_iter().flatten() {
                    cx.dropped(
                        &format!("spec.featureGates.{gate}"),
                        &format!("feature gate ({on}); see spec.features"),
                    );
                }
            }
            "configDaemonEnvVars" => cx.dropped(
                "spec.configDaemonEnvVars",
                "set environment variables in the agent DaemonSet",
            ),
            other => cx.dropped(&format!("spec.{other}"), "unknown field"),
        }
    }
    if !features.is_empty() {
        out.insert("features".into(), Value::Object(features));
    }
    Some(ours("NicOperatorConfig", md, out))
}

#[cfg(test)]
mod tests;
