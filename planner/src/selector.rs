//! Label selectors (`metav1.LabelSelector`) compiled once and matched against node labels.
//!
//! Semantics are Kubernetes': every `matchLabels` pair and every `matchExpressions` requirement
//! must hold; operators `In`, `NotIn`, `Exists`, `DoesNotExist`; `NotIn` and `DoesNotExist` hold
//! when the label is absent. An empty selector matches every node (callers that forbid empty
//! selectors check [`CompiledSelector::is_empty`]).

use std::collections::{BTreeMap, BTreeSet};

use crds::k8s::LabelSelector;

/// Why a selector cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Unknown `operator`.
    #[error(
        "matchExpressions[{index}].operator: unknown operator \"{operator}\" (use In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator {
        /// Index in `matchExpressions`.
        index: usize,
        /// The operator as written.
        operator: String,
    },
    /// `In`/`NotIn` without values.
    #[error("matchExpressions[{index}].values: operator {operator} needs at least one value")]
    MissingValues {
        /// Index in `matchExpressions`.
        index: usize,
        /// The operator.
        operator: String,
    },
    /// `Exists`/`DoesNotExist` with values.
    #[error("matchExpressions[{index}].values: operator {operator} takes no values")]
    UnexpectedValues {
        /// Index in `matchExpressions`.
        index: usize,
        /// The operator.
        operator: String,
    },
}

impl SelectorError {
    /// Path of the offending field relative to the selector.
    pub fn relative_path(&self) -> String {
        match self {
            Self::UnknownOperator { index, .. } => format!("matchExpressions[{index}].operator"),
            Self::MissingValues { index, .. } | Self::UnexpectedValues { index, .. } => {
                format!("matchExpressions[{index}].values")
            }
        }
    }
}

/// One requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Label present with one of the values.
    In(String, BTreeSet<String>),
    /// Label absent or with none of the values.
    NotIn(String, BTreeSet<String>),
    /// Label present.
    Exists(String),
    /// Label absent.
    DoesNotExist(String),
}

/// A label selector ready for matching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledSelector {
    requirements: Vec<Requirement>,
}

impl CompiledSelector {
    /// Compiles a selector; `matchLabels` entries become `In` requirements with one value.
    pub fn compile(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
        }
        for (index, e) in selector.match_expressions.iter().flatten().enumerate() {
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            let op = e.operator.as_str();
            let req = match op {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError::MissingValues {
                        index,
                        operator: op.to_owned(),
                    });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError::UnexpectedValues {
                        index,
                        operator: op.to_owned(),
                    });
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                _ => {
                    return Err(SelectorError::UnknownOperator {
                        index,
                        operator: op.to_owned(),
                    });
                }
            };
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// True when the selector has no requirement (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// False only when no label set can satisfy both selectors (for example `rack In [r1]` and
    /// `rack In [r2]`, or `gpu Exists` and `gpu DoesNotExist`). Used for conflict checks before any
    /// node exists; `true` means "may overlap".
    pub fn may_overlap(&self, other: &Self) -> bool {
        let all: Vec<&Requirement> = self
            .requirements
            .iter()
            .chain(other.requirements.iter())
            .collect();
        let keys: BTreeSet<&str> = all.iter().map(|r| req_key(r)).collect();
        keys.into_iter().all(|key| {
            let mut allowed: Option<BTreeSet<&str>> = None; // None = any value
            let mut forbidden: BTreeSet<&str> = BTreeSet::new();
            let (mut must_exist, mut must_not) = (false, false);
            for r in all.iter().filter(|r| req_key(r) == key) {
                match r {
                    Requirement::In(_, vs) => {
                        must_exist = true;
                        let vs: BTreeSet<&str> = vs.iter().map(String::as_str).collect();
                        allowed = Some(match allowed {
                            None => vs,
                            Some(a) => a.intersection(&vs).copied().collect(),
                        });
                    }
                    Requirement::NotIn(_, vs) => forbidden.extend(vs.iter().map(String::as_str)),
                    Requirement::Exists(_) => must_exist = true,
                    Requirement::DoesNotExist(_) => must_not = true,
                }
            }
            if must_exist && must_not {
                return false;
            }
            match allowed {
                Some(a) => a.iter().any(|v| !forbidden.contains(v)),
                None => true,
            }
        })
    }
}

fn req_key(r: &Requirement) -> &str {
    match r {
        Requirement::In(k, _)
        | Requirement::NotIn(k, _)
        | Requirement::Exists(k)
        | Requirement::DoesNotExist(k) => k,
    }
}

#[cfg(test)]
mod tests {
    use crds::k8s::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    fn sel(ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>) -> CompiledSelector {
        CompiledSelector::compile(&LabelSelector {
            match_labels: if ml.is_empty() {
                None
            } else {
                Some(labels(ml))
            },
            match_expressions: if me.is_empty() { None } else { Some(me) },
        })
        .unwrap()
    }

    #[test]
    fn matches_labels_and_expressions() {
        let s = sel(&[("gpu", "true")], vec![expr("rack", "In", &["r1", "r2"])]);
        assert!(s.matches(&labels(&[("gpu", "true"), ("rack", "r2")])));
        assert!(!s.matches(&labels(&[("gpu", "true"), ("rack", "r3")])));
        assert!(!s.matches(&labels(&[("rack", "r1")])));
        let s = sel(
            &[],
            vec![
                expr("rack", "NotIn", &["r1"]),
                expr("old", "DoesNotExist", &[]),
            ],
        );
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("rack", "r1")])));
        assert!(!s.matches(&labels(&[("old", "")])));
        assert!(sel(&[], vec![expr("x", "Exists", &[])]).matches(&labels(&[("x", "")])));
        assert!(sel(&[], vec![]).matches(&labels(&[])));
    }

    #[test]
    fn rejects_bad_expressions() {
        let bad = |e| {
            CompiledSelector::compile(&LabelSelector {
                match_expressions: Some(vec![e]),
                ..Default::default()
            })
            .unwrap_err()
        };
        assert!(matches!(
            bad(expr("a", "Equals", &["1"])),
            SelectorError::UnknownOperator { .. }
        ));
        assert!(matches!(
            bad(expr("a", "In", &[])),
            SelectorError::MissingValues { .. }
        ));
        assert!(matches!(
            bad(expr("a", "Exists", &["1"])),
            SelectorError::UnexpectedValues { .. }
        ));
        assert_eq!(
            bad(expr("a", "In", &[])).relative_path(),
            "matchExpressions[0].values"
        );
    }

    #[test]
    fn overlap_is_ruled_out_only_by_contradictions() {
        let r1 = sel(&[("rack", "r1")], vec![]);
        let r2 = sel(&[], vec![expr("rack", "In", &["r2", "r3"])]);
        let gpu = sel(&[("gpu", "true")], vec![]);
        assert!(!r1.may_overlap(&r2));
        assert!(r1.may_overlap(&gpu));
        assert!(!gpu.may_overlap(&sel(&[], vec![expr("gpu", "DoesNotExist", &[])])));
        assert!(!r1.may_overlap(&sel(&[], vec![expr("rack", "NotIn", &["r1"])])));
        assert!(r2.may_overlap(&sel(&[], vec![expr("rack", "NotIn", &["r2"])])));
    }
}
