//! `NicPool` checks.

use std::collections::BTreeMap;

use crds::{NicPool, k8s::IntOrString, pool::NicPoolSpec};

use super::{FieldError, common::check_selector, finish};
use crate::selector::CompiledSelector;

/// What a pool is checked against besides itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolContext<'a> {
    /// The other pools (one with the same name as the checked pool is ignored).
    pub pools: &'a [NicPool],
    /// Known nodes: name and labels.
    pub nodes: &'a [(&'a str, &'a BTreeMap<String, String>)],
}

/// Parses `maxUnavailable`: `Ok(Int(n))` for n >= 0, `Ok(Percent(p))` for `"p%"` with p in 1-100.
pub(crate) enum MaxUnavailable {
    /// Absolute node count.
    Count(u32),
    /// Percent of the pool's nodes.
    Percent(u32),
}

pub(crate) fn parse_max_unavailable(v: &IntOrString) -> Result<MaxUnavailable, String> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(MaxUnavailable::Count(*n as u32)),
        IntOrString::Int(n) => Err(format!("{n} is negative; use 0 (pause) or more")),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or_else(|| {
                format!("\"{s}\" is neither a number nor a percentage like \"25%\"")
            })?;
            match digits.parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) && !digits.starts_with('+') => {
                    Ok(MaxUnavailable::Percent(p))
                }
                Ok(p) => Err(format!("{p}% is outside 1%-100%")),
                Err(_) => Err(format!("\"{s}\" is not a percentage like \"25%\"")),
            }
        }
    }
}

/// Checks a pool: selector syntax, `maxUnavailable`, and (with known nodes) that no node would be
/// in this pool and another one.
pub fn validate_pool(
    name: &str,
    spec: &NicPoolSpec,
    ctx: &PoolContext<'_>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    check_selector(&spec.node_selector, "spec.nodeSelector", &mut errors);
    if let Some(m) = &spec.max_unavailable
        && let Err(msg) = parse_max_unavailable(m)
    {
        errors.push(FieldError::new("spec.maxUnavailable", msg));
    }
    if errors.is_empty()
        && let Ok(mine) = CompiledSelector::compile(&spec.node_selector)
    {
        for other in ctx
            .pools
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some(name))
        {
            let Ok(theirs) = CompiledSelector::compile(&other.spec.node_selector) else {
                continue;
            };
            let both: Vec<&str> = ctx
                .nodes
                .iter()
                .filter(|(_, l)| mine.matches(l) && theirs.matches(l))
                .map(|(n, _)| *n)
                .collect();
            if !both.is_empty() {
                let more = if both.len() > 3 {
                    format!(" and {} more", both.len() - 3)
                } else {
                    String::new()
                };
                errors.push(FieldError::new(
                    "spec.nodeSelector",
                    format!(
                        "node {}{more} would be in this pool and in pool {}; a node may be in one pool only",
                        both.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                        other.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    finish(errors)
}

/// `maxUnavailable` of a pool as a node count, for a pool of `pool_nodes` nodes: the integer as
/// is (0 pauses), a percentage rounded down but at least 1, 1 when unset or invalid.
pub fn pool_max_unavailable(spec: &NicPoolSpec, pool_nodes: u32) -> u32 {
    match spec.max_unavailable.as_ref().map(parse_max_unavailable) {
        Some(Ok(MaxUnavailable::Count(n))) => n,
        Some(Ok(MaxUnavailable::Percent(p))) => {
            ((u64::from(p) * u64::from(pool_nodes) / 100) as u32).max(1)
        }
        None | Some(Err(_)) => crds::DEFAULT_POOL_MAX_UNAVAILABLE,
    }
}
