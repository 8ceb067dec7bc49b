//! GetPreferredAllocation: which of the available devices a container should get.
//!
//! 1. The must-include devices, always.
//! 2. NUMA: the rest from the NUMA node(s) of the must-include devices; without any, from the
//!    node that fits the request most tightly (the fewest available devices that still cover it,
//!    leaving big nodes for big requests); other nodes only when the chosen one runs out.
//! 3. PFs, within those: PFs the must-include devices are on first; then `pack` takes from the
//!    PF that fits the rest most tightly (else the fullest), so a pod lands on as few PFs as
//!    possible; `spread` takes one device at a time from the PF used least so far (then the one
//!    with the most left).
//! 4. Devices the pool does not know or holds unhealthy come last.
//!
//! Everything is ordered by address on ties, so the answer is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use nic::pci::PciAddress;

use crate::allocate::DeviceIndex;

/// How to place a multi-device request over PFs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// As few PFs as possible.
    #[default]
    Pack,
    /// As many PFs as possible (bandwidth, failure domains).
    Spread,
}

/// A candidate device with what ordering needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cand {
    numa: Option<i32>,
    pf: Option<PciAddress>,
    addr: PciAddress,
}

/// The preferred `size` device IDs out of `available`, containing `must`.
pub fn preferred(
    devices: &DeviceIndex<'_>,
    available: &[String],
    must: &[String],
    size: usize,
    strategy: Strategy,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(size);
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for id in must {
        if taken.insert(id) {
            out.push(id.clone());
        }
    }
    if out.len() >= size {
        return out;
    }
    let known = |id: &str| {
        devices
            .get(id)
            .filter(|d| d.health.is_healthy())
            .map(|d| Cand {
                numa: d.numa_node,
                pf: d.pf(),
                addr: d.addr,
            })
    };
    let must_cands: Vec<Cand> = must.iter().filter_map(|id| known(id)).collect();
    let mut cands: Vec<Cand> = Vec::new();
    let mut unknown: Vec<&String> = Vec::new();
    for id in available {
        if taken.contains(id.as_str()) {
            continue;
        }
        match known(id) {
            Some(c) => cands.push(c),
            None => unknown.push(id),
        }
    }
    cands.sort();
    cands.dedup();
    let mut need = size - out.len();

    // NUMA tiers: the chosen node(s) first, then the others.
    let numas: BTreeSet<Option<i32>> = if must_cands.is_empty() {
        let mut counts: BTreeMap<Option<i32>, usize> = BTreeMap::new();
        for c in &cands {
            *counts.entry(c.numa).or_default() += 1;
        }
        let fit = counts
            .iter()
            .filter(|(_, n)| **n >= need)
            .min_by_key(|(numa, n)| (**n, **numa))
            .or_else(|| {
                counts
                    .iter()
                    .max_by_key(|(numa, n)| (**n, std::cmp::Reverse(**numa)))
            });
        fit.map(|(numa, _)| *numa).into_iter().collect()
    } else {
        must_cands.iter().map(|c| c.numa).collect()
    };
    let must_pfs: BTreeSet<Option<PciAddress>> = must_cands.iter().map(|c| c.pf).collect();
    let (first, second): (Vec<Cand>, Vec<Cand>) =
        cands.into_iter().partition(|c| numas.contains(&c.numa));
    for tier in [first, second] {
        if need == 0 {
            break;
        }
        let picked = pick_from_tier(tier, &must_pfs, need, strategy);
        need -= picked.len();
        out.extend(picked.into_iter().map(|a| a.to_string()));
    }
    if need > 0 {
        let mut rest = unknown;
        rest.sort();
        out.extend(rest.into_iter().take(need).cloned());
    }
    out
}

/// Up to `need` addresses from `tier`, placed over PFs by `strategy`.
fn pick_from_tier(
    tier: Vec<Cand>,
    must_pfs: &BTreeSet<Option<PciAddress>>,
    mut need: usize,
    strategy: Strategy,
) -> Vec<PciAddress> {
    // per PF, addresses ascending (the tier is sorted)
    let mut by_pf: BTreeMap<Option<PciAddress>, Vec<PciAddress>> = BTreeMap::new();
    let mut pf_of: BTreeMap<PciAddress, Option<PciAddress>> = BTreeMap::new();
    for c in tier {
        by_pf.entry(c.pf).or_default().push(c.addr);
        pf_of.insert(c.addr, c.pf);
    }
    let mut out = Vec::with_capacity(need);
    let take = |list: &mut Vec<PciAddress>, n: usize, out: &mut Vec<PciAddress>| {
        let n = n.min(list.len());
        out.extend(list.drain(..n));
        n
    };
    // PFs already in use by the container come first whatever the strategy.
    for pf in must_pfs {
        if need == 0 {
            break;
        }
        if let Some(list) = by_pf.get_mut(pf) {
            need -= take(list, need, &mut out);
        }
    }
    by_pf.retain(|_, l| !l.is_empty());
    while need > 0 && !by_pf.is_empty() {
        let pf = match strategy {
            Strategy::Pack => by_pf
                .iter()
                .filter(|(_, l)| l.len() >= need)
                .min_by_key(|(pf, l)| (l.len(), **pf))
                .or_else(|| {
                    by_pf
                        .iter()
                        .max_by_key(|(pf, l)| (l.len(), std::cmp::Reverse(**pf)))
                })
                .map(|(pf, _)| *pf),
            Strategy::Spread => by_pf
                .iter()
                .min_by_key(|(pf, l)| {
                    let used = out.iter().filter(|a| pf_of.get(a) == Some(pf)).count();
                    (used, std::cmp::Reverse(l.len()), **pf)
                })
                .map(|(pf, _)| *pf),
        };
        let Some(pf) = pf else { break };
        let n = match strategy {
            Strategy::Pack => need,
            Strategy::Spread => 1,
        };
        if let Some(list) = by_pf.get_mut(&pf) {
            need -= take(list, n, &mut out);
            if list.is_empty() {
                by_pf.remove(&pf);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocate::index;
    use crate::host::Rdma;
    use crate::pool::{Health, PoolDevice};

    /// PF 0000:3b:00.0 (NUMA 0) with VFs 3b:00.2..5, PF 0000:3b:00.1 (NUMA 0) with 3b:01.2..3,
    /// PF 0000:af:00.0 (NUMA 1) with af:00.2..7.
    fn devices() -> Vec<PoolDevice> {
        let mk = |addr: &str, pf: &str, numa: i32| PoolDevice {
            addr: addr.parse().unwrap(),
            vf_of: Some((pf.parse().unwrap(), 0)),
            numa_node: Some(numa),
            driver: Some("mlx5_core".into()),
            iommu_group: None,
            noiommu: false,
            rdma: Rdma::default(),
            health: Health::Healthy,
        };
        let mut v = Vec::new();
        for f in 2..=5 {
            v.push(mk(&format!("0000:3b:00.{f}"), "0000:3b:00.0", 0));
        }
        for f in 2..=3 {
            v.push(mk(&format!("0000:3b:01.{f}"), "0000:3b:00.1", 0));
        }
        for f in 2..=7 {
            v.push(mk(&format!("0000:af:00.{f}"), "0000:af:00.0", 1));
        }
        v
    }

    fn all_ids(d: &[PoolDevice]) -> Vec<String> {
        d.iter().map(PoolDevice::id).collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn follows_the_numa_node_of_must_include() {
        let d = devices();
        let idx = index(&d);
        let avail = all_ids(&d);
        let got = preferred(&idx, &avail, &s(&["0000:af:00.5"]), 3, Strategy::Pack);
        assert_eq!(got, s(&["0000:af:00.5", "0000:af:00.2", "0000:af:00.3"]));
        let got = preferred(&idx, &avail, &s(&["0000:3b:01.3"]), 3, Strategy::Pack);
        // same PF as the must-include first, then the other NUMA-0 PF
        assert_eq!(got, s(&["0000:3b:01.3", "0000:3b:01.2", "0000:3b:00.2"]));
    }

    #[test]
    fn without_must_include_picks_the_tightest_numa_node_and_packs() {
        let d = devices();
        let idx = index(&d);
        let avail = all_ids(&d);
        // NUMA 0 has 6, NUMA 1 has 6: tie -> lower node; PF 3b:00.1 (2 left) fits 2 exactly
        assert_eq!(
            preferred(&idx, &avail, &[], 2, Strategy::Pack),
            s(&["0000:3b:01.2", "0000:3b:01.3"])
        );
        // 4: PF 3b:00.0 fits exactly
        assert_eq!(
            preferred(&idx, &avail, &[], 4, Strategy::Pack),
            s(&[
                "0000:3b:00.2",
                "0000:3b:00.3",
                "0000:3b:00.4",
                "0000:3b:00.5"
            ])
        );
        // without NUMA 0 at hand, NUMA 1 is the only fit
        let avail1: Vec<String> = avail
            .iter()
            .filter(|a| !a.starts_with("0000:3b:00"))
            .cloned()
            .collect();
        assert_eq!(
            preferred(&idx, &avail1, &[], 3, Strategy::Pack),
            s(&["0000:af:00.2", "0000:af:00.3", "0000:af:00.4"])
        );
        // 7 fits no node: the fullest node first, then the other
        let got = preferred(&idx, &avail, &[], 7, Strategy::Pack);
        assert_eq!(got.len(), 7);
        assert_eq!(got.iter().filter(|a| a.starts_with("0000:3b")).count(), 6);
    }

    #[test]
    fn spread_uses_many_pfs() {
        let d = devices();
        let idx = index(&d);
        let avail = all_ids(&d);
        assert_eq!(
            preferred(&idx, &avail, &[], 2, Strategy::Spread),
            s(&["0000:3b:00.2", "0000:3b:01.2"])
        );
    }

    #[test]
    fn unknown_and_unhealthy_devices_come_last_and_answers_are_stable() {
        let mut d = devices();
        d[0].health = Health::Unhealthy("x".into());
        let idx = index(&d);
        let mut avail = s(&["0000:3b:00.2", "0000:3b:00.3", "0000:99:00.1"]);
        let got = preferred(&idx, &avail, &[], 3, Strategy::Pack);
        assert_eq!(got, s(&["0000:3b:00.3", "0000:3b:00.2", "0000:99:00.1"]));
        avail.reverse();
        assert_eq!(preferred(&idx, &avail, &[], 3, Strategy::Pack), got);
    }
}
