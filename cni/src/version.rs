//! CNI spec versions: which ones we speak, how to pick one with a delegate, what each allows.

use std::{cmp::Ordering, fmt, str::FromStr};

use crate::error::{CniError, code};

/// Versions this plugin accepts in a configuration and answers in, oldest first. 0.3.x is what
/// sriov-cni's documented examples and the SR-IOV network operator's NADs still say; its results
/// have the 0.4.0 shape, and it has no CHECK.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A `MAJOR.MINOR.PATCH` spec version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16, pub u16, pub u16);

impl Version {
    /// 0.3.0: the oldest we speak; results carry `ips[].version` up to 0.4.0.
    pub const V0_3_0: Self = Self(0, 3, 0);
    /// 0.4.0: CHECK.
    pub const V0_4_0: Self = Self(0, 4, 0);
    /// 1.0.0.
    pub const V1_0_0: Self = Self(1, 0, 0);
    /// 1.1.0: STATUS, GC, `interfaces[].mtu/socketPath/pciID`, route attributes.
    pub const V1_1_0: Self = Self(1, 1, 0);

    /// CHECK exists (0.4.0 and later).
    pub fn has_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// STATUS and GC exist (1.1.0 and later).
    pub fn has_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// True when this plugin speaks the version.
    pub fn is_supported(self) -> bool {
        SUPPORTED.iter().any(|s| s.parse() == Ok(self))
    }
}

impl FromStr for Version {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split('.');
        let mut next = || -> Result<u16, ()> {
            let p = parts.next().ok_or(())?;
            if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            p.parse().map_err(|_| ())
        };
        let v = Self(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(());
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The version of a configuration, checked against [`SUPPORTED`].
pub fn negotiate(config_version: &str) -> Result<Version, CniError> {
    match config_version.parse::<Version>() {
        Ok(v) if v.is_supported() => Ok(v),
        _ => Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "incompatible CNI versions: config is {config_version:?}, plugin supports {}",
                SUPPORTED.join(", ")
            ),
        )),
    }
}

/// The version to hand a delegate plugin: the highest one it lists in its VERSION answer that is
/// not newer than `ours`. Debian's reference plugins 1.1.1 list up to 1.0.0 and reject 1.1.0.
pub fn pick_for_delegate(ours: Version, theirs: &[String]) -> Option<Version> {
    theirs
        .iter()
        .filter_map(|s| s.parse::<Version>().ok())
        .filter(|v| v.cmp(&ours) != Ordering::Greater && *v >= Version::V0_3_0)
        .max()
}

/// The VERSION answer.
pub fn version_answer(config_version: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": config_version,
        "supportedVersions": SUPPORTED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!("1.1.0".parse(), Ok(Version::V1_1_0));
        assert!(Version::V0_4_0 < Version::V1_0_0);
        for bad in ["", "1", "1.0", "1.0.0.0", "a.b.c", "1..0", "-1.0.0"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn negotiation_accepts_our_versions_only() {
        for ok in SUPPORTED {
            assert!(negotiate(ok).is_ok());
        }
        for bad in ["0.2.0", "0.3.2", "1.2.0"] {
            let err = negotiate(bad).unwrap_err();
            assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
            assert!(
                err.msg.contains("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"),
                "{}",
                err.msg
            );
        }
        assert!(!Version(0, 3, 1).has_check());
    }

    #[test]
    fn delegates_get_their_highest_version_not_above_ours() {
        let debian: Vec<String> = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            pick_for_delegate(Version::V1_1_0, &debian),
            Some(Version::V1_0_0)
        );
        assert_eq!(
            pick_for_delegate(Version::V0_4_0, &debian),
            Some(Version::V0_4_0)
        );
        assert_eq!(
            pick_for_delegate(Version(0, 3, 1), &debian),
            Some(Version(0, 3, 1))
        );
        assert_eq!(pick_for_delegate(Version::V1_1_0, &["0.2.0".into()]), None);
    }
}
