//! VF index sets and the `pfNames` / `rootDevices` entry syntax: `ens1f0`, `ens1f0#0-3`,
//! `ens1f0#0,2-7`, `0000:3b:00.0#4-7`.
//!
//! A set is a sorted list of disjoint, non-adjacent inclusive ranges; two sets are equal exactly
//! when they contain the same VFs. The text form is canonical: `0,2-7`.

use std::fmt;

use crds::node_state::VfIndexRange;

/// Largest VF index the syntax accepts (the SR-IOV capability's TotalVFs is 16 bits).
pub const MAX_VF_INDEX: u32 = u16::MAX as u32 - 1;

/// Why a VF range list or selector entry could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VfRangeError {
    /// Nothing before `#`.
    #[error("\"{0}\": the PF name or PCI address before '#' is empty")]
    EmptyName(String),
    /// Nothing (or an empty item) after `#`.
    #[error("\"{0}\": empty VF range (write e.g. ens1f0#0-3 or ens1f0#0,2-7)")]
    EmptyRange(String),
    /// An item is not `N` or `N-M` with decimal numbers.
    #[error("\"{item}\" in \"{input}\" is not a VF index or range N-M")]
    BadItem {
        /// The whole input.
        input: String,
        /// The offending item.
        item: String,
    },
    /// `N-M` with N > M.
    #[error("\"{item}\" in \"{input}\": range start is after its end")]
    Reversed {
        /// The whole input.
        input: String,
        /// The offending item.
        item: String,
    },
    /// An index above [`MAX_VF_INDEX`].
    #[error("\"{input}\": VF index {index} is above {MAX_VF_INDEX}")]
    TooLarge {
        /// The whole input.
        input: String,
        /// The offending index.
        index: u64,
    },
    /// Two items of one list share VFs.
    #[error("\"{input}\": items {first} and {second} overlap")]
    Overlap {
        /// The whole input.
        input: String,
        /// One item.
        first: String,
        /// The other item.
        second: String,
    },
    /// More than one `#`.
    #[error("\"{0}\": more than one '#'")]
    ExtraHash(String),
}

/// A set of VF indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VfSet {
    ranges: Vec<VfIndexRange>,
}

impl VfSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self { ranges: Vec::new() }
    }

    /// VFs `0..num_vfs` (empty for 0).
    pub fn first_n(num_vfs: u32) -> Self {
        if num_vfs == 0 {
            Self::empty()
        } else {
            Self {
                ranges: vec![VfIndexRange {
                    first: 0,
                    last: num_vfs - 1,
                }],
            }
        }
    }

    /// Builds a set from arbitrary ranges (overlapping or unsorted are merged). Ranges with
    /// `first > last` are ignored.
    pub fn from_ranges(ranges: impl IntoIterator<Item = VfIndexRange>) -> Self {
        let mut v: Vec<VfIndexRange> = ranges.into_iter().filter(|r| r.first <= r.last).collect();
        v.sort_unstable();
        let mut merged: Vec<VfIndexRange> = Vec::with_capacity(v.len());
        for r in v {
            match merged.last_mut() {
                Some(prev) if r.first <= prev.last.saturating_add(1) => {
                    prev.last = prev.last.max(r.last);
                }
                _ => merged.push(r),
            }
        }
        Self { ranges: merged }
    }

    /// Parses `0,2-7` (decimal indices and inclusive ranges separated by commas; spaces around
    /// items are allowed). Items must not overlap each other.
    pub fn parse(input: &str) -> Result<Self, VfRangeError> {
        let mut items: Vec<(VfIndexRange, &str)> = Vec::new();
        if input.trim().is_empty() {
            return Err(VfRangeError::EmptyRange(input.to_owned()));
        }
        for raw in input.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(VfRangeError::EmptyRange(input.to_owned()));
            }
            let bad = || VfRangeError::BadItem {
                input: input.to_owned(),
                item: item.to_owned(),
            };
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (item, item),
            };
            let num = |s: &str| -> Result<u32, VfRangeError> {
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                let n: u64 = s.parse().map_err(|_| bad())?;
                if n > u64::from(MAX_VF_INDEX) {
                    return Err(VfRangeError::TooLarge {
                        input: input.to_owned(),
                        index: n,
                    });
                }
                Ok(n as u32)
            };
            let (first, last) = (num(a)?, num(b)?);
            if first > last {
                return Err(VfRangeError::Reversed {
                    input: input.to_owned(),
                    item: item.to_owned(),
                });
            }
            let r = VfIndexRange { first, last };
            if let Some((_, other)) = items
                .iter()
                .find(|(o, _)| o.first <= r.last && r.first <= o.last)
            {
                return Err(VfRangeError::Overlap {
                    input: input.to_owned(),
                    first: (*other).to_owned(),
                    second: item.to_owned(),
                });
            }
            items.push((r, item));
        }
        Ok(Self::from_ranges(items.into_iter().map(|(r, _)| r)))
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[VfIndexRange] {
        &self.ranges
    }

    /// Consumes the set, returning its ranges.
    pub fn into_ranges(self) -> Vec<VfIndexRange> {
        self.ranges
    }

    /// True when the set has no VF.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of VFs in the set.
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::from(r.last - r.first) + 1)
            .sum()
    }

    /// Lowest VF index.
    pub fn min(&self) -> Option<u32> {
        self.ranges.first().map(|r| r.first)
    }

    /// Highest VF index.
    pub fn max(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.last)
    }

    /// True when `vf` is in the set.
    pub fn contains(&self, vf: u32) -> bool {
        self.ranges.iter().any(|r| r.first <= vf && vf <= r.last)
    }

    /// True when the sets share at least one VF.
    pub fn overlaps(&self, other: &Self) -> bool {
        !self.intersection(other).is_empty()
    }

    /// VFs in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            let first = a.first.max(b.first);
            let last = a.last.min(b.last);
            if first <= last {
                out.push(VfIndexRange { first, last });
            }
            if a.last < b.last {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { ranges: out }
    }

    /// Every VF index, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|r| r.first..=r.last)
    }
}

impl fmt::Display for VfSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last {
                write!(f, "{}", r.first)?;
            } else {
                write!(f, "{}-{}", r.first, r.last)?;
            }
        }
        Ok(())
    }
}

/// One parsed `pfNames` or `rootDevices` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfEntry {
    /// PF netdev name or PCI address (before `#`).
    pub name: String,
    /// VFs after `#`; `None` means VFs `0..numVfs`.
    pub vfs: Option<VfSet>,
}

impl PfEntry {
    /// Parses `ens1f0`, `ens1f0#0-3`, `ens1f0#0,2-7`.
    pub fn parse(input: &str) -> Result<Self, VfRangeError> {
        let mut parts = input.splitn(3, '#');
        let name = parts.next().unwrap_or_default().trim();
        let ranges = parts.next();
        if parts.next().is_some() {
            return Err(VfRangeError::ExtraHash(input.to_owned()));
        }
        if name.is_empty() {
            return Err(VfRangeError::EmptyName(input.to_owned()));
        }
        let vfs = match ranges {
            None => None,
            Some(r) => Some(VfSet::parse(r).map_err(|e| match e {
                // Report the whole entry, not only the part after '#'.
                VfRangeError::EmptyRange(_) => VfRangeError::EmptyRange(input.to_owned()),
                other => other,
            })?),
        };
        Ok(Self {
            name: name.to_owned(),
            vfs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u32, last: u32) -> VfIndexRange {
        VfIndexRange { first, last }
    }

    #[test]
    fn parses_single_and_lists() {
        assert_eq!(VfSet::parse("0-3").unwrap().ranges(), &[r(0, 3)]);
        assert_eq!(VfSet::parse("0,2-7").unwrap().ranges(), &[r(0, 0), r(2, 7)]);
        assert_eq!(
            VfSet::parse(" 5 , 1-2 ").unwrap().ranges(),
            &[r(1, 2), r(5, 5)]
        );
        // adjacent items merge into one range
        assert_eq!(VfSet::parse("0-1,2-3").unwrap().ranges(), &[r(0, 3)]);
        assert_eq!(VfSet::parse("0,2-7").unwrap().to_string(), "0,2-7");
        assert_eq!(VfSet::parse("0,2-7").unwrap().len(), 7);
    }

    #[test]
    fn rejects_bad_ranges_with_the_offending_item() {
        assert!(
            matches!(VfSet::parse("3-1"), Err(VfRangeError::Reversed { item, .. }) if item == "3-1")
        );
        assert!(matches!(
            VfSet::parse("a-3"),
            Err(VfRangeError::BadItem { .. })
        ));
        assert!(matches!(
            VfSet::parse("-3"),
            Err(VfRangeError::BadItem { .. })
        ));
        assert!(matches!(
            VfSet::parse("1,,2"),
            Err(VfRangeError::EmptyRange(_))
        ));
        assert!(matches!(VfSet::parse(""), Err(VfRangeError::EmptyRange(_))));
        assert!(matches!(
            VfSet::parse("0-3,2-5"),
            Err(VfRangeError::Overlap { .. })
        ));
        assert!(matches!(
            VfSet::parse("99999"),
            Err(VfRangeError::TooLarge { index: 99999, .. })
        ));
        assert!(matches!(
            VfSet::parse("+1"),
            Err(VfRangeError::BadItem { .. })
        ));
    }

    #[test]
    fn parses_pf_entries() {
        assert_eq!(
            PfEntry::parse("ens1f0").unwrap(),
            PfEntry {
                name: "ens1f0".into(),
                vfs: None
            }
        );
        let e = PfEntry::parse("ens1f0#0,2-7").unwrap();
        assert_eq!(e.name, "ens1f0");
        assert_eq!(e.vfs.unwrap().to_string(), "0,2-7");
        let e = PfEntry::parse("0000:3b:00.0#4-7").unwrap();
        assert_eq!(e.name, "0000:3b:00.0");
        assert!(matches!(
            PfEntry::parse("#0-3"),
            Err(VfRangeError::EmptyName(_))
        ));
        assert!(
            matches!(PfEntry::parse("ens1f0#"), Err(VfRangeError::EmptyRange(s)) if s == "ens1f0#")
        );
        assert!(matches!(
            PfEntry::parse("a#1#2"),
            Err(VfRangeError::ExtraHash(_))
        ));
    }

    #[test]
    fn set_operations() {
        let a = VfSet::parse("0-3,8-9").unwrap();
        let b = VfSet::parse("2-8").unwrap();
        assert_eq!(a.intersection(&b).to_string(), "2-3,8");
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&VfSet::parse("4-7").unwrap()));
        assert_eq!(VfSet::first_n(4).to_string(), "0-3");
        assert!(VfSet::first_n(0).is_empty());
        assert_eq!(a.max(), Some(9));
        assert_eq!(a.min(), Some(0));
        assert!(a.contains(8) && !a.contains(5));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 8, 9]);
        assert_eq!(
            VfSet::from_ranges([r(5, 6), r(0, 2), r(1, 4)]).ranges(),
            &[r(0, 6)]
        );
    }
}
