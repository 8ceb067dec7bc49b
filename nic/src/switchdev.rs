//! Switchdev naming: `phys_port_name` forms and representor lookup.
//!
//! In switchdev mode the NIC driver gives every eswitch port a netdev. The kernel derives
//! `/sys/class/net/<if>/phys_port_name` from the devlink port attributes, and every port of one
//! eswitch shares `/sys/class/net/<if>/phys_switch_id` (both PFs of a card usually share it):
//!
//! | `phys_port_name` | port |
//! |---|---|
//! | `p0` | uplink (the PF netdev itself, facing the wire) |
//! | `pf0` / `c1pf0` | PF representor (DPU side) |
//! | `pf0vf3` / `c1pf0vf3` | representor of VF 3 of PF 0 (`cN`: external controller N, e.g. the host of a DPU) |
//! | `pf0sf1` / `c1pf0sf1` | representor of sub-function 1 of PF 0 |
//!
//! The PF number in these names is the one the uplink reports as `pN`; mlx5 and ice both use the
//! PCI function number of the PF for both.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::sysfs::{SysFs, SysfsError};

/// A parsed `phys_port_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhysPortName {
    /// `p<port>`: the uplink (physical port) netdev.
    Uplink {
        /// Physical port number.
        port: u32,
    },
    /// `[c<controller>]pf<pf>`: a PF representor.
    PfRepresentor {
        /// External controller number, when the name carries one.
        controller: Option<u32>,
        /// PF number.
        pf: u32,
    },
    /// `[c<controller>]pf<pf>vf<vf>`: a VF representor.
    VfRepresentor {
        /// External controller number, when the name carries one.
        controller: Option<u32>,
        /// PF number.
        pf: u32,
        /// VF index on that PF.
        vf: u32,
    },
    /// `[c<controller>]pf<pf>sf<sf>`: a sub-function representor.
    SfRepresentor {
        /// External controller number, when the name carries one.
        controller: Option<u32>,
        /// PF number.
        pf: u32,
        /// Sub-function number.
        sf: u32,
    },
}

/// A `phys_port_name` that is none of the known forms (split ports `p0s1`, `pf0hpf`, vendor names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a known phys_port_name form (p0, pf0, pf0vf3, c1pf0vf3, pf0sf1)")]
pub struct PhysPortNameError {
    /// The rejected input.
    pub input: String,
}

impl PhysPortName {
    /// True for VF, SF and PF representors (not for the uplink).
    pub fn is_representor(&self) -> bool {
        !matches!(self, PhysPortName::Uplink { .. })
    }
}

/// Splits a leading decimal number (no sign, no leading `+`) off `s`.
fn number(s: &str) -> Option<(u32, &str)> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

impl FromStr for PhysPortName {
    type Err = PhysPortNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PhysPortNameError {
            input: s.to_owned(),
        };
        let (controller, rest) = match s.strip_prefix('c') {
            Some(rest) => {
                let (c, rest) = number(rest).ok_or_else(err)?;
                (Some(c), rest)
            }
            None => (None, s),
        };
        if let Some(rest) = rest.strip_prefix("pf") {
            let (pf, rest) = number(rest).ok_or_else(err)?;
            if rest.is_empty() {
                return Ok(PhysPortName::PfRepresentor { controller, pf });
            }
            if let Some(rest) = rest.strip_prefix("vf") {
                let (vf, rest) = number(rest).ok_or_else(err)?;
                if rest.is_empty() {
                    return Ok(PhysPortName::VfRepresentor { controller, pf, vf });
                }
            } else if let Some(rest) = rest.strip_prefix("sf") {
                let (sf, rest) = number(rest).ok_or_else(err)?;
                if rest.is_empty() {
                    return Ok(PhysPortName::SfRepresentor { controller, pf, sf });
                }
            }
            return Err(err());
        }
        if controller.is_none()
            && let Some(rest) = rest.strip_prefix('p')
            && let Some((port, "")) = number(rest)
        {
            return Ok(PhysPortName::Uplink { port });
        }
        Err(err())
    }
}

impl fmt::Display for PhysPortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let controller = |f: &mut fmt::Formatter<'_>, c: &Option<u32>| match c {
            Some(c) => write!(f, "c{c}"),
            None => Ok(()),
        };
        match self {
            PhysPortName::Uplink { port } => write!(f, "p{port}"),
            PhysPortName::PfRepresentor { controller: c, pf } => {
                controller(f, c)?;
                write!(f, "pf{pf}")
            }
            PhysPortName::VfRepresentor {
                controller: c,
                pf,
                vf,
            } => {
                controller(f, c)?;
                write!(f, "pf{pf}vf{vf}")
            }
            PhysPortName::SfRepresentor {
                controller: c,
                pf,
                sf,
            } => {
                controller(f, c)?;
                write!(f, "pf{pf}sf{sf}")
            }
        }
    }
}

/// One netdev that is a port of an eswitch: it has a `phys_switch_id` and a known `phys_port_name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchPort {
    /// Netdev name.
    pub netdev: String,
    /// `phys_switch_id` (hex string as the kernel prints it).
    pub switch_id: String,
    /// Parsed `phys_port_name`.
    pub port_name: PhysPortName,
}

/// Finds the representor of VF `vf` of PF number `pf` on the eswitch `switch_id`.
///
/// A local name (`pf0vf3`, or `c0pf0vf3`) wins; a name with another controller (`c1pf0vf3`) is
/// accepted only when it is the single candidate, since a DPU lists the host's VFs that way.
pub fn find_vf_representor<'a>(
    ports: impl IntoIterator<Item = &'a SwitchPort>,
    switch_id: &str,
    pf: u32,
    vf: u32,
) -> Option<&'a SwitchPort> {
    let mut external = Vec::new();
    for port in ports {
        if port.switch_id != switch_id {
            continue;
        }
        if let PhysPortName::VfRepresentor {
            controller,
            pf: p,
            vf: v,
        } = port.port_name
            && p == pf
            && v == vf
        {
            match controller {
                None | Some(0) => return Some(port),
                Some(_) => external.push(port),
            }
        }
    }
    match external.as_slice() {
        [only] => Some(only),
        _ => None,
    }
}

/// The PF number that names the VF representors of an uplink (`pf<P>vf<N>`) on `switch_id`.
///
/// An uplink's own `phys_port_name` (`p<N>`) carries a physical port number, not a PF number.
/// They coincide on mlx5 (one PF per port, `p0` ↔ `pf0vfN`) but not in general: netdevsim's
/// uplink is `p1` while its representors are `pf0vfN`. So `fallback` (the uplink's port number,
/// or its PCI function) is kept when some representor on the switch carries it; otherwise, when
/// the representors name a single PF (counting local ones first), that PF. `ports` must be every
/// port of the switch: from a partial view, a dual-port card's other PF would look like "the
/// single PF".
pub fn representor_pf_number<'a>(
    ports: impl IntoIterator<Item = &'a SwitchPort>,
    switch_id: &str,
    fallback: u32,
) -> u32 {
    let (mut local, mut external) = (BTreeSet::new(), BTreeSet::new());
    for port in ports {
        if port.switch_id != switch_id {
            continue;
        }
        if let PhysPortName::VfRepresentor { controller, pf, .. } = port.port_name {
            match controller {
                None | Some(0) => local.insert(pf),
                Some(_) => external.insert(pf),
            };
        }
    }
    let set = if local.is_empty() { external } else { local };
    match (set.contains(&fallback), set.len(), set.first()) {
        (false, 1, Some(&only)) => only,
        _ => fallback,
    }
}

/// Reads the eswitch port facts of one netdev: `Ok(None)` when it has no `phys_switch_id` or no
/// known `phys_port_name` (a plain netdev, or a driver without switchdev support).
pub fn read_switch_port(sysfs: &SysFs, netdev: &str) -> Result<Option<SwitchPort>, SysfsError> {
    let dir = sysfs.netdev_dir(netdev);
    let Some(switch_id) = sysfs.read_optional_string(&dir.join("phys_switch_id"))? else {
        return Ok(None);
    };
    let Some(name) = sysfs.read_optional_string(&dir.join("phys_port_name"))? else {
        return Ok(None);
    };
    Ok(name.parse().ok().map(|port_name| SwitchPort {
        netdev: netdev.to_owned(),
        switch_id,
        port_name,
    }))
}

/// Every netdev in `/sys/class/net` with a switch id and a known port name (a netdev whose
/// attributes cannot be read, e.g. one that went away during the scan, is left out).
pub fn scan_switch_ports(sysfs: &SysFs) -> Result<Vec<SwitchPort>, SysfsError> {
    Ok(sysfs
        .list_dir(&sysfs.class_net_dir())?
        .iter()
        .filter_map(|n| read_switch_port(sysfs, n).ok().flatten())
        .collect())
}

/// The representor of VF `vf` of the PF whose uplink netdev is `uplink`, searched among every
/// netdev in `/sys/class/net` that shares the uplink's `phys_switch_id`.
///
/// `Ok(None)` when the uplink is not an eswitch port (legacy mode, no switchdev support) or no
/// representor matches. Shell twin:
/// `for d in /sys/class/net/*; do echo $d $(cat $d/phys_switch_id $d/phys_port_name); done 2>/dev/null | grep pf0vf3`.
pub fn vf_representor(sysfs: &SysFs, uplink: &str, vf: u32) -> Result<Option<String>, SysfsError> {
    let Some(up) = read_switch_port(sysfs, uplink)? else {
        return Ok(None);
    };
    let PhysPortName::Uplink { port: pf } = up.port_name else {
        return Ok(None);
    };
    let ports = scan_switch_ports(sysfs)?;
    let pf = representor_pf_number(&ports, &up.switch_id, pf);
    Ok(find_vf_representor(&ports, &up.switch_id, pf, vf).map(|p| p.netdev.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("p0", PhysPortName::Uplink { port: 0 }),
            ("p12", PhysPortName::Uplink { port: 12 }),
            (
                "pf0",
                PhysPortName::PfRepresentor {
                    controller: None,
                    pf: 0,
                },
            ),
            (
                "c1pf0",
                PhysPortName::PfRepresentor {
                    controller: Some(1),
                    pf: 0,
                },
            ),
            (
                "pf0vf3",
                PhysPortName::VfRepresentor {
                    controller: None,
                    pf: 0,
                    vf: 3,
                },
            ),
            (
                "c1pf0vf3",
                PhysPortName::VfRepresentor {
                    controller: Some(1),
                    pf: 0,
                    vf: 3,
                },
            ),
            (
                "pf1vf255",
                PhysPortName::VfRepresentor {
                    controller: None,
                    pf: 1,
                    vf: 255,
                },
            ),
            (
                "pf0sf1",
                PhysPortName::SfRepresentor {
                    controller: None,
                    pf: 0,
                    sf: 1,
                },
            ),
            (
                "c2pf1sf88",
                PhysPortName::SfRepresentor {
                    controller: Some(2),
                    pf: 1,
                    sf: 88,
                },
            ),
        ];
        for (text, want) in cases {
            let got: PhysPortName = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
        assert!(!PhysPortName::Uplink { port: 0 }.is_representor());
        assert!("pf0vf1".parse::<PhysPortName>().unwrap().is_representor());
    }

    #[test]
    fn rejects_other_names() {
        for bad in [
            "",
            "p",
            "pf",
            "pfvf1",
            "pf0vf",
            "pf0vf1x",
            "p0s1",
            "pf0hpf",
            "c1p0",
            "c",
            "cpf0",
            "P0",
            "p-1",
            "pf0xf1",
            "eth0",
            "p+1",
            "pf99999999999vf1",
        ] {
            assert!(bad.parse::<PhysPortName>().is_err(), "{bad:?}");
        }
        let e = "pf0hpf".parse::<PhysPortName>().unwrap_err();
        assert!(e.to_string().contains("\"pf0hpf\""));
    }

    fn port(netdev: &str, switch_id: &str, name: &str) -> SwitchPort {
        SwitchPort {
            netdev: netdev.into(),
            switch_id: switch_id.into(),
            port_name: name.parse().unwrap(),
        }
    }

    #[test]
    fn finds_representor_on_the_right_switch_and_pf() {
        let ports = [
            port("ens1f0np0", "aa", "p0"),
            port("ens1f1np1", "aa", "p1"),
            port("rep_a", "aa", "pf0vf3"),
            port("rep_b", "aa", "pf1vf3"),
            port("rep_c", "bb", "pf0vf3"),
            port("rep_d", "aa", "pf0sf3"),
        ];
        let hit = |sw, pf, vf| find_vf_representor(&ports, sw, pf, vf).map(|p| p.netdev.as_str());
        assert_eq!(hit("aa", 0, 3), Some("rep_a"));
        assert_eq!(hit("aa", 1, 3), Some("rep_b"));
        assert_eq!(hit("bb", 0, 3), Some("rep_c"));
        assert_eq!(hit("aa", 0, 4), None);
        assert_eq!(hit("cc", 0, 3), None);
    }

    #[test]
    fn controller_form_is_a_fallback() {
        let ext_only = [port("host_rep", "aa", "c1pf0vf3")];
        assert_eq!(
            find_vf_representor(&ext_only, "aa", 0, 3).map(|p| p.netdev.as_str()),
            Some("host_rep")
        );
        let both = [
            port("host_rep", "aa", "c1pf0vf3"),
            port("local_rep", "aa", "pf0vf3"),
        ];
        assert_eq!(
            find_vf_representor(&both, "aa", 0, 3).map(|p| p.netdev.as_str()),
            Some("local_rep")
        );
        let ambiguous = [port("h1", "aa", "c1pf0vf3"), port("h2", "aa", "c2pf0vf3")];
        assert!(find_vf_representor(&ambiguous, "aa", 0, 3).is_none());
    }

    #[test]
    fn representor_pf_number_does_not_assume_port_equals_pf() {
        // netdevsim: uplink p1, representors pf0vfN
        let nsim = [
            port("eth2", "aa", "p1"),
            port("eth3", "aa", "pf0vf0"),
            port("eth4", "aa", "pf0vf1"),
        ];
        assert_eq!(representor_pf_number(&nsim, "aa", 1), 0);
        let pf = representor_pf_number(&nsim, "aa", 1);
        assert_eq!(
            find_vf_representor(&nsim, "aa", pf, 1).unwrap().netdev,
            "eth4"
        );
        // a dual-port card sharing one switch id: the uplink's own number decides
        let dual = [
            port("r0", "bb", "pf0vf0"),
            port("r1", "bb", "pf1vf0"),
            port("r2", "cc", "pf7vf0"),
        ];
        assert_eq!(representor_pf_number(&dual, "bb", 1), 1);
        assert_eq!(representor_pf_number(&dual, "bb", 0), 0);
        // local representors win over another controller's; none at all: the fallback
        let dpu = [port("x", "dd", "c1pf2vf0"), port("y", "dd", "pf0vf0")];
        assert_eq!(representor_pf_number(&dpu, "dd", 5), 0);
        assert_eq!(representor_pf_number(&dpu, "zz", 5), 5);
    }

    #[test]
    fn vf_representor_through_sysfs() {
        use crate::fixtures::HostBuilder;
        use crds::inventory::EswitchMode;
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .build()
            .unwrap();
        let s = host.sysfs();
        assert_eq!(
            vf_representor(&s, "ens1f1np1", 1).unwrap().as_deref(),
            Some("ens1f1npf1vf1")
        );
        assert_eq!(vf_representor(&s, "ens1f0np0", 7).unwrap(), None);
        // a representor is not an uplink; lo has no switch id
        assert_eq!(vf_representor(&s, "ens1f0npf0vf0", 0).unwrap(), None);
        assert_eq!(vf_representor(&s, "lo", 0).unwrap(), None);
        let legacy = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        assert_eq!(
            vf_representor(&legacy.sysfs(), "ens1f0np0", 0).unwrap(),
            None
        );
    }

    fn arb_name() -> impl Strategy<Value = PhysPortName> {
        let c = proptest::option::of(any::<u32>());
        prop_oneof![
            any::<u32>().prop_map(|port| PhysPortName::Uplink { port }),
            (c.clone(), any::<u32>())
                .prop_map(|(controller, pf)| PhysPortName::PfRepresentor { controller, pf }),
            (c.clone(), any::<u32>(), any::<u32>()).prop_map(|(controller, pf, vf)| {
                PhysPortName::VfRepresentor { controller, pf, vf }
            }),
            (c, any::<u32>(), any::<u32>()).prop_map(|(controller, pf, sf)| {
                PhysPortName::SfRepresentor { controller, pf, sf }
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(name in arb_name()) {
            let text = name.to_string();
            prop_assert_eq!(text.parse::<PhysPortName>().unwrap(), name);
        }

        #[test]
        fn parse_never_panics(s in "[cpfvs0-9]{0,12}") {
            if let Ok(n) = s.parse::<PhysPortName>() {
                // whatever parses prints back to a name that parses to the same value
                prop_assert_eq!(n.to_string().parse::<PhysPortName>().unwrap(), n);
            }
        }
    }
}
