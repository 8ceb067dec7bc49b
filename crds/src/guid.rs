//! InfiniBand GUIDs (EUI-64): the node and port GUIDs of IB VFs, the GUID pools of `NicPolicy`
//! and the `infinibandGUID` a pod's runtime config may carry. Kubernetes-free, so that the host
//! layer and the CNI binary share it; the schema derive comes with the `k8s` feature.
//!
//! Written as eight colon-separated octets, most significant first (`02:c9:03:00:21:6e:70:00`),
//! the form `ip link set $PF vf N node_guid ...` takes. The sysfs form of a port
//! (`/sys/class/infiniband/mlx5_0/node_guid`: `b8ce:f603:00a1:b2c4`) is read too.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern of a GUID in the CRDs: eight colon-separated hex octets.
pub const GUID_PATTERN: &str = "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}$";

/// An InfiniBand GUID. The numeric value is the one netlink carries (`struct ifla_vf_guid`'s
/// `guid`, host order, the first written octet most significant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub u64);

/// Text that is not a GUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuidError(pub String);

impl fmt::Display for GuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a GUID (expected eight hex octets like 02:c9:03:00:21:6e:70:00)",
            self.0
        )
    }
}

impl std::error::Error for GuidError {}

impl Guid {
    /// The all-ones GUID, which IB reserves (like the zero GUID it means "none").
    pub const ALL_ONES: Self = Self(u64::MAX);

    /// Whether the GUID can be given to a VF: neither zero (unset; mlx5 reports it for a VF
    /// nobody configured) nor all ones (reserved).
    pub const fn is_assignable(self) -> bool {
        self.0 != 0 && self.0 != u64::MAX
    }

    /// The octets, most significant first.
    pub const fn octets(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The GUID of these octets, most significant first.
    pub const fn from_octets(o: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(o))
    }

    /// A stable, locally administered GUID for VF `vf` of a PF whose node GUID is `pf`: the PF's
    /// first octet with the local bit set, its next two octets (with the first, the vendor's
    /// OUI), its last three octets (the part that tells adapters and ports apart; the two before
    /// them are a fixed filler on ConnectX), then the VF index. The scheme of the planner's VF
    /// MACs, so that the same VF gets the same GUID after every reboot. `None` when `pf` is not
    /// assignable.
    pub fn derived_for_vf(pf: Self, vf: u32) -> Option<Self> {
        if !pf.is_assignable() {
            return None;
        }
        let o = pf.octets();
        let [hi, lo] = u16::try_from(vf).unwrap_or(u16::MAX).to_be_bytes();
        Some(Self::from_octets([
            o[0] | 0x02,
            o[1],
            o[2],
            o[5],
            o[6],
            o[7],
            hi,
            lo,
        ]))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.octets();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]
        )
    }
}

impl FromStr for Guid {
    type Err = GuidError;

    /// Eight colon-separated octets (`02:c9:...`), or the sysfs form: four colon-separated
    /// groups of four hex digits (`b8ce:f603:00a1:b2c4`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GuidError(s.to_owned());
        let parts: Vec<&str> = s.trim().split(':').collect();
        let width = match parts.len() {
            8 => 2,
            4 => 4,
            _ => return Err(bad()),
        };
        let mut value: u64 = 0;
        for p in parts {
            if p.len() != width || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let part = u64::from_str_radix(p, 16).map_err(|_| bad())?;
            value = (value << (4 * width)) | part;
        }
        Ok(Self(value))
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Guid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "k8s")]
impl schemars::JsonSchema for Guid {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Guid".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": GUID_PATTERN,
            "maxLength": 23,
        })
    }
}

/// An inclusive range of GUIDs (`start..=end`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GuidRange {
    /// First GUID (`02:c9:03:00:00:00:10:00`).
    pub start: Guid,
    /// Last GUID, inclusive (not below `start`).
    pub end: Guid,
}

impl GuidRange {
    /// Number of GUIDs in the range (0 when `end` is below `start`).
    pub fn len(&self) -> u128 {
        if self.end < self.start {
            0
        } else {
            u128::from(self.end.0 - self.start.0) + 1
        }
    }

    /// Whether the range holds no GUID (`end` below `start`).
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// Whether `g` lies in the range.
    pub fn contains(&self, g: Guid) -> bool {
        self.start <= g && g <= self.end
    }

    /// Whether the two ranges share a GUID.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// The `n` GUIDs that follow the first `skip` GUIDs of `ranges` (taken in the order given), as
/// ranges; `None` when the ranges hold fewer than `skip + n`.
pub fn take_guids(ranges: &[GuidRange], skip: u128, n: u128) -> Option<Vec<GuidRange>> {
    let mut skip = skip;
    let mut left = n;
    let mut out = Vec::new();
    for r in ranges {
        if left == 0 {
            break;
        }
        let len = r.len();
        if skip >= len {
            skip -= len;
            continue;
        }
        let avail = len - skip;
        let take = avail.min(left);
        // both fit in u64: skip < len and skip + take <= len <= 2^64
        let start = r.start.0 + u64::try_from(skip).ok()?;
        let end = start + u64::try_from(take - 1).ok()?;
        out.push(GuidRange {
            start: Guid(start),
            end: Guid(end),
        });
        left -= take;
        skip = 0;
    }
    (left == 0).then_some(out)
}

/// The `k`-th GUID (0-based) of `ranges`, taken in the order given.
pub fn nth_guid(ranges: &[GuidRange], k: u128) -> Option<Guid> {
    take_guids(ranges, k, 1).and_then(|r| r.first().map(|r| r.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_written_forms_parse_to_one_value_and_print_as_octets() {
        let a: Guid = "b8:ce:f6:03:00:a1:b2:c4".parse().unwrap();
        let b: Guid = "b8ce:f603:00a1:b2c4".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, 0xb8ce_f603_00a1_b2c4);
        assert_eq!(a.to_string(), "b8:ce:f6:03:00:a1:b2:c4");
        for bad in [
            "",
            "b8:ce:f6:03:00:a1:b2",
            "b8:ce:f6:03:00:a1:b2:c4:00",
            "zz:ce:f6:03:00:a1:b2:c4",
            "b8ce:f603:00a1:b2c",
            "+8:ce:f6:03:00:a1:b2:c4",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_and_all_ones_are_not_assignable() {
        assert!(!Guid(0).is_assignable());
        assert!(!Guid::ALL_ONES.is_assignable());
        assert!(Guid(1).is_assignable());
    }

    #[test]
    fn derived_vf_guids_are_local_stable_and_distinct_per_vf_and_port() {
        let port: Guid = "b8:ce:f6:03:00:a1:b2:c4".parse().unwrap();
        let vf3 = Guid::derived_for_vf(port, 3).unwrap();
        assert_eq!(vf3.to_string(), "ba:ce:f6:a1:b2:c4:00:03");
        assert_eq!(Guid::derived_for_vf(port, 3), Some(vf3));
        assert_ne!(Guid::derived_for_vf(port, 4), Some(vf3));
        let other: Guid = "b8:ce:f6:03:00:a1:b2:c5".parse().unwrap();
        assert_ne!(Guid::derived_for_vf(other, 3), Some(vf3));
        assert!(vf3.is_assignable());
        assert_eq!(Guid::derived_for_vf(Guid(0), 0), None);
    }

    #[test]
    fn guids_are_taken_across_ranges_in_order() {
        let r = |a: u64, b: u64| GuidRange {
            start: Guid(a),
            end: Guid(b),
        };
        let pool = [r(10, 12), r(100, 109)];
        assert_eq!(take_guids(&pool, 0, 2), Some(vec![r(10, 11)]));
        assert_eq!(take_guids(&pool, 2, 3), Some(vec![r(12, 12), r(100, 101)]));
        assert_eq!(take_guids(&pool, 13, 1), None);
        assert_eq!(take_guids(&pool, 12, 1), Some(vec![r(109, 109)]));
        assert_eq!(nth_guid(&pool, 4), Some(Guid(101)));
        assert_eq!(r(0, u64::MAX).len(), 1 << 64);
        assert!(r(1, 5).overlaps(&r(5, 9)));
        assert!(!r(1, 4).overlaps(&r(5, 9)));
    }

    #[test]
    fn serde_uses_the_written_form() {
        let g = Guid(0x02c9_0300_216e_7000);
        let v = serde_json::to_value(g).unwrap();
        assert_eq!(v, "02:c9:03:00:21:6e:70:00");
        assert_eq!(serde_json::from_value::<Guid>(v).unwrap(), g);
        assert!(serde_json::from_value::<Guid>(serde_json::json!("nope")).is_err());
    }
}
