//! Strict decoding of our objects from YAML or JSON files, for the programs that read them without
//! an API server (`smartnicctl plan`, `smartnic-agent --spec-file`). The API server refuses an
//! unknown field (`kubectl apply`, field validation `Strict`); a file read here must not be looser:
//! a typo such as `mtuu: 9000` or the SR-IOV network operator's `deviceID` would otherwise be
//! dropped, and a dropped selector field silently widens a policy to other NICs.
//!
//! Every key and list item of the input is checked against the generated CRD schema of its kind
//! (the same schema the API server holds): unknown fields, values of the wrong type and values
//! outside an `enum` are reported with the document number, the line, the dotted field path and,
//! for a near miss, the field meant (`numVf` → `numVfs`, `deviceID` → `deviceId`). Kinds that are
//! not ours but look like ours (`NicPolicies`, `apiVersion: smartnic.io/...`) are errors; other
//! objects (a `Namespace` in the same file) are passed over with a note. Input with no document
//! at all is an error.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

/// Fields of `metadata` (`ObjectMeta`) that a manifest may carry.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

/// The SR-IOV network operator's spellings of fields that have a counterpart here with another
/// spelling. Names that differ only in case or by a letter or two are found without this list.
const SRIOV_SPELLINGS: &[(&str, &str)] = &[
    ("deviceID", "deviceId"),
    ("eSwitchMode", "eswitchMode"),
    ("numVf", "numVfs"),
    ("networkNamespace", "networkNamespaces"),
];

/// Kinds of the SR-IOV network operator, which `smartnicctl convert` turns into ours.
const SRIOV_KINDS: &[&str] = &[
    "SriovNetworkNodePolicy",
    "SriovNetwork",
    "SriovNetworkPoolConfig",
    "SriovOperatorConfig",
    "SriovIBNetwork",
];

/// A YAML node with the line of every key and list item.
#[derive(Clone, Debug)]
enum Node {
    Map(Vec<Entry>),
    Seq(Vec<(u64, Node)>),
    Scalar(Value),
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    line: u64,
    value: Node,
}

impl Node {
    fn to_value(&self) -> Value {
        match self {
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
            Node::Seq(items) => Value::Array(items.iter().map(|(_, n)| n.to_value()).collect()),
            Node::Scalar(v) => v.clone(),
        }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        match self {
            Node::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    fn str_at(&self, key: &str) -> Option<&str> {
        match self.get(key).map(|e| &e.value) {
            Some(Node::Scalar(Value::String(s))) => Some(s),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Node::Scalar(Value::Null))
    }

    fn type_name(&self) -> &'static str {
        match self {
            Node::Map(_) => "a mapping",
            Node::Seq(_) => "a list",
            Node::Scalar(Value::String(_)) => "a string",
            Node::Scalar(Value::Bool(_)) => "a boolean",
            Node::Scalar(Value::Number(_)) => "a number",
            Node::Scalar(Value::Null) => "empty",
            Node::Scalar(_) => "a value",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push((item.referenced.line(), item.value));
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: match key.value {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                line: key.referenced.line(),
                value,
            });
        }
        Ok(Node::Map(entries))
    }
}

/// A YAML parser error as a message for people: without the parser's own `error: ` prefix and
/// without its advice about parser options (`set DuplicateKeyPolicy in Options`), which a user
/// of our programs cannot follow.
pub fn yaml_error(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    text.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

/// One object read from a file, checked against the schema of its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// 1-based number of the YAML document it came from.
    pub document: usize,
    /// Line of the object's first key.
    pub line: u64,
    /// `kind`.
    pub kind: String,
    /// `metadata.name` (empty when missing).
    pub name: String,
    /// The object as JSON, ready for `serde_json::from_value`.
    pub value: Value,
}

/// One reason the input is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based document number.
    pub document: usize,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// Dotted path of the field (`spec.nicSelector.deviceID`), empty for the document itself.
    pub field: String,
    /// What is wrong, with the likely fix.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ", {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not YAML or JSON (the parser's message carries the line).
    Syntax(String),
    /// No document, or only empty ones (an explicit empty `kind: List` is not empty).
    Empty {
        /// The kinds the reader expected, for the message.
        expected: String,
    },
    /// Documents that do not pass the schema.
    Invalid(Vec<Problem>),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Syntax(e) => write!(f, "not YAML or JSON: {e}"),
            DecodeError::Empty { expected } => {
                write!(
                    f,
                    "no object in the input (expected {expected}; to mean none on purpose, give `kind: List` with `items: []`)"
                )
            }
            DecodeError::Invalid(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("; "))
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// What [`decode_objects`] read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// The objects of the wanted kinds, in file order (`List` items flattened).
    pub objects: Vec<Object>,
    /// Objects passed over (other kinds), one sentence each, for a note on stderr.
    pub ignored: Vec<String>,
}

/// Reads every object of a YAML stream (several documents, or a `List`), checks each of our
/// kinds against its CRD schema and returns those whose kind is in `wanted`. Any problem in any
/// document refuses the whole input.
pub fn decode_objects(text: &str, wanted: &[&str]) -> Result<Decoded, DecodeError> {
    let docs: Vec<Spanned<Node>> =
        serde_saphyr::from_multiple(text).map_err(|e| DecodeError::Syntax(yaml_error(&e)))?;
    let mut items: Vec<(usize, u64, Node)> = Vec::new();
    // An empty file is a mistake; an explicit `kind: List` with no items says "no objects" on
    // purpose (a plan with no policy returns the host to its defaults).
    let mut said_list = false;
    for (i, doc) in docs.into_iter().enumerate() {
        let document = i + 1;
        let line = doc.referenced.line();
        if doc.value.is_empty() {
            continue;
        }
        if doc.value.str_at("kind") == Some("List") {
            said_list = true;
            if let Some(Entry {
                value: Node::Seq(list),
                ..
            }) = doc.value.get("items")
            {
                items.extend(list.iter().map(|(l, n)| (document, *l, n.clone())));
            }
            continue;
        }
        items.push((document, line, doc.value));
    }
    if items.is_empty() && !said_list {
        return Err(DecodeError::Empty {
            expected: wanted.join(" or "),
        });
    }
    let crds = crate::generate::crds();
    let mut out = Decoded::default();
    let mut problems = Vec::new();
    for (document, line, node) in items {
        let mut p = Checker {
            document,
            problems: &mut problems,
        };
        let Node::Map(_) = node else {
            p.push(line, "", format!("{} is not an object", node.type_name()));
            continue;
        };
        let kind = node.str_at("kind").unwrap_or_default().to_owned();
        let api_version = node.str_at("apiVersion").unwrap_or_default().to_owned();
        let name = match node.get("metadata").map(|e| &e.value) {
            Some(m) => m.str_at("name").unwrap_or_default().to_owned(),
            None => String::new(),
        };
        let kind_line = node.get("kind").map_or(line, |e| e.line);
        let Some(crd) = crds.iter().find(|c| c.spec.names.kind == kind) else {
            match foreign_kind(&kind, &api_version, wanted) {
                Ok(note) => out
                    .ignored
                    .push(format!("document {document}: {note}, ignored")),
                Err(message) => p.push(kind_line, "kind", message),
            }
            continue;
        };
        if api_version != crate::API_VERSION {
            let at = node.get("apiVersion").map_or(line, |e| e.line);
            p.push(
                at,
                "apiVersion",
                format!(
                    "{kind} is served as {}, not {api_version:?}",
                    crate::API_VERSION
                ),
            );
        }
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        p.walk(&schema, &node, "", line);
        if wanted.contains(&kind.as_str()) {
            out.objects.push(Object {
                document,
                line,
                kind,
                name,
                value: node.to_value(),
            });
        } else {
            out.ignored.push(format!(
                "document {document}: {kind} {name} is not read here, ignored"
            ));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(DecodeError::Invalid(problems))
    }
}

/// Reads one document that is either a whole object of `kind` or only its `spec`, checks it
/// against the schema and returns the spec as JSON (`smartnic-agent --spec-file`).
pub fn decode_spec(text: &str, kind: &str) -> Result<Value, DecodeError> {
    let docs: Vec<Spanned<Node>> =
        serde_saphyr::from_multiple(text).map_err(|e| DecodeError::Syntax(yaml_error(&e)))?;
    let mut docs = docs
        .into_iter()
        .enumerate()
        .filter(|(_, d)| !d.value.is_empty());
    let Some((i, doc)) = docs.next() else {
        return Err(DecodeError::Empty {
            expected: format!("a {kind} or its spec"),
        });
    };
    if doc.value.get("kind").is_some() {
        let decoded = decode_objects(text, &[kind])?;
        return match decoded.objects.into_iter().next() {
            Some(o) => Ok(o.value.get("spec").cloned().unwrap_or(Value::Null)),
            None => Err(DecodeError::Invalid(vec![Problem {
                document: i + 1,
                line: doc.referenced.line(),
                field: "kind".into(),
                message: format!("expected a {kind} or its spec"),
            }])),
        };
    }
    let schema = crate::generate::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|c| c.spec.versions.into_iter().next())
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let mut problems = Vec::new();
    Checker {
        document: i + 1,
        problems: &mut problems,
    }
    .walk(
        schema.pointer("/properties/spec").unwrap_or(&Value::Null),
        &doc.value,
        "",
        doc.referenced.line(),
    );
    if problems.is_empty() {
        Ok(doc.value.to_value())
    } else {
        Err(DecodeError::Invalid(problems))
    }
}

/// A kind that is not one of our CRDs: `Ok(note)` to pass it over, `Err(message)` when it looks
/// like a misspelt one of ours or needs converting first.
fn foreign_kind(kind: &str, api_version: &str, wanted: &[&str]) -> Result<String, String> {
    let ours: Vec<String> = crate::generate::crds()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    let expected = format!("this command reads {}", wanted.join(", "));
    if kind.is_empty() {
        return Err(format!("no kind; {expected}"));
    }
    if SRIOV_KINDS.contains(&kind) {
        return Err(format!(
            "{kind} is an SR-IOV network operator kind: convert the file first (`smartnicctl convert -f FILE`)"
        ));
    }
    let plural = crate::generate::crds()
        .into_iter()
        .find(|c| c.spec.names.plural.eq_ignore_ascii_case(kind))
        .map(|c| c.spec.names.kind);
    let near = plural.or_else(|| did_you_mean(kind, ours.iter().map(String::as_str)));
    if let Some(meant) = near {
        return Err(format!(
            "unknown kind {kind:?} (did you mean {meant:?}?); {expected}"
        ));
    }
    if api_version.split('/').next() == Some(crate::GROUP) {
        return Err(format!(
            "{kind:?} is not a kind of {}; {expected}",
            crate::GROUP
        ));
    }
    Ok(format!(
        "{api_version} {kind} is not a {} object",
        crate::GROUP
    ))
}

/// The field (or kind) most likely meant by `given` among `candidates`: the SR-IOV network
/// operator's spelling, the same name in another case, or one within a small edit distance.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if let Some((_, ours)) = SRIOV_SPELLINGS
        .iter()
        .find(|(theirs, ours)| *theirs == given && candidates.contains(ours))
    {
        return Some((*ours).to_owned());
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(given)) {
        return Some((*c).to_owned());
    }
    let g = given.to_ascii_lowercase();
    let limit = if g.len() >= 6 { 2 } else { 1 };
    candidates
        .iter()
        .map(|c| (edit_distance(&g, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(here).min(row[j])
            };
            prev = here;
        }
    }
    row[b.len()]
}

/// Walks one document against a schema, collecting problems.
struct Checker<'a> {
    document: usize,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, line: u64, field: &str, message: String) {
        self.problems.push(Problem {
            document: self.document,
            line,
            field: field.to_owned(),
            message,
        });
    }

    fn walk(&mut self, schema: &Value, node: &Node, path: &str, line: u64) {
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
            || node.is_empty()
        {
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        match node {
            Node::Map(entries) => {
                if ty.is_some_and(|t| t != "object") {
                    return self.wrong_type(ty, node, path, line);
                }
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for e in entries {
                    let field = join(path, &e.key);
                    if path.is_empty() && ["apiVersion", "kind"].contains(&e.key.as_str()) {
                        continue;
                    } else if path.is_empty() && e.key == "metadata" {
                        if let Node::Map(meta) = &e.value {
                            for m in meta {
                                self.metadata_field(m, &join("metadata", &m.key));
                            }
                        }
                    } else if let Some(s) = props.and_then(|p| p.get(&e.key)) {
                        self.walk(s, &e.value, &field, e.line);
                    } else if let Some(s) = additional.filter(|a| a.is_object()) {
                        self.walk(s, &e.value, &field, e.line);
                    } else if let Some(p) = props.filter(|_| additional != Some(&Value::Bool(true)))
                    {
                        self.unknown(e, &field, p.keys().map(String::as_str));
                    }
                }
            }
            Node::Seq(items) => {
                if ty.is_some_and(|t| t != "array") {
                    return self.wrong_type(ty, node, path, line);
                }
                let item_schema = schema.get("items").unwrap_or(&Value::Null);
                for (i, (l, n)) in items.iter().enumerate() {
                    self.walk(item_schema, n, &format!("{path}[{i}]"), *l);
                }
            }
            Node::Scalar(v) => {
                let ok = match (ty, v) {
                    _ if int_or_string => v.is_string() || v.is_i64() || v.is_u64(),
                    (None, _) => true,
                    (Some("string"), Value::String(_)) => true,
                    (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
                    (Some("number"), Value::Number(_)) => true,
                    (Some("boolean"), Value::Bool(_)) => true,
                    _ => false,
                };
                if !ok {
                    return self.wrong_type(ty, node, path, line);
                }
                if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                    && !allowed.contains(v)
                {
                    let names: Vec<String> = allowed.iter().map(plain).collect();
                    let hint = match v.as_str() {
                        Some(s) => did_you_mean(s, names.iter().map(String::as_str))
                            .map(|m| format!(" (did you mean {m:?}?)"))
                            .unwrap_or_default(),
                        None => String::new(),
                    };
                    self.push(
                        line,
                        path,
                        format!("{} is not one of {}{hint}", plain(v), names.join(", ")),
                    );
                }
            }
        }
    }

    fn metadata_field(&mut self, e: &Entry, field: &str) {
        if !OBJECT_META_FIELDS.contains(&e.key.as_str()) {
            self.unknown(e, field, OBJECT_META_FIELDS.iter().copied());
        }
    }

    fn unknown<'a>(&mut self, e: &Entry, field: &str, known: impl Iterator<Item = &'a str>) {
        let known: Vec<&str> = known.collect();
        let message = match did_you_mean(&e.key, known.iter().copied()) {
            Some(m) if SRIOV_SPELLINGS.iter().any(|(t, _)| *t == e.key) => format!(
                "unknown field {:?} (did you mean {m:?}? {:?} is the SR-IOV network operator's spelling)",
                e.key, e.key
            ),
            Some(m) => format!("unknown field {:?} (did you mean {m:?}?)", e.key),
            None => format!(
                "unknown field {:?}; the fields here are {}",
                e.key,
                known.join(", ")
            ),
        };
        self.push(e.line, field, message);
    }

    fn wrong_type(&mut self, ty: Option<&str>, node: &Node, path: &str, line: u64) {
        let want = match ty {
            Some("object") => "a mapping",
            Some("array") => "a list",
            Some("string") => "a string",
            Some("integer") => "an integer",
            Some("number") => "a number",
            Some("boolean") => "true or false",
            _ => "another type",
        };
        let hint = match (ty, node) {
            (Some("string"), Node::Scalar(v)) => format!(" (quote it: \"{}\")", plain(v)),
            _ => String::new(),
        };
        self.push(
            line,
            path,
            format!("must be {want}, not {}{hint}", node.type_name()),
        );
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_and_sriov_spellings_are_found() {
        let fields = ["vendor", "deviceId", "pfNames", "rootDevices"];
        assert_eq!(
            did_you_mean("deviceID", fields).as_deref(),
            Some("deviceId")
        );
        assert_eq!(did_you_mean("pfName", fields).as_deref(), Some("pfNames"));
        assert_eq!(did_you_mean("vendr", fields).as_deref(), Some("vendor"));
        assert_eq!(did_you_mean("netFilter", fields), None);
        assert_eq!(
            did_you_mean("numVf", ["numVfs", "mtu"]).as_deref(),
            Some("numVfs")
        );
        assert_eq!(
            did_you_mean("mtuu", ["numVfs", "mtu"]).as_deref(),
            Some("mtu")
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("mtu", "mtu"), 0);
    }
}
