//! `NicNetwork` checks.

use crds::network::{NetworkMode, NicNetworkSpec, VlanProto};

use super::{
    FieldError,
    common::{is_host_ifname, is_netdev_name, resource_name_error},
    finish,
    policy::{MAX_MTU, MIN_MTU},
};

pub use crds::{MAX_VLAN, MAX_VNI};

/// Checks a network spec. Mode-specific fields set for another mode are errors (they would be
/// silently ignored otherwise), naming the mode that accepts them.
pub fn validate_network(spec: &NicNetworkSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mode = spec.mode;
    let m = mode.as_str();
    let mut e = |f: &str, msg: String| errors.push(FieldError::new(f, msg));
    let is = |modes: &[NetworkMode]| modes.contains(&mode);
    use NetworkMode::{Ib, Ipvlan, Macvlan, Ovs, Sriov};

    // Resource or master.
    match (&spec.resource_name, &spec.master) {
        (None, _) if is(&[Sriov, Ovs, Ib]) => {
            e(
                "spec.resourceName",
                format!("is required in mode {m}: it names the VF pool pods draw from"),
            );
        }
        (None, None) => e(
            "spec.resourceName",
            format!(
                "mode {m} needs either resourceName (the allocated VF is the master) or master (a host interface)"
            ),
        ),
        (Some(_), Some(_)) if is(&[Macvlan, Ipvlan]) => {
            e(
                "spec.master",
                "give either master or resourceName, not both".into(),
            );
        }
        _ => {}
    }
    if let Some(r) = &spec.resource_name
        && let Some(msg) = resource_name_error(r)
    {
        e("spec.resourceName", msg);
    }
    if let Some(master) = &spec.master {
        if !is(&[Macvlan, Ipvlan]) {
            e(
                "spec.master",
                format!("only for modes macvlan and ipvlan, not {m}"),
            );
        } else if !is_netdev_name(master) || !is_host_ifname(master) {
            e(
                "spec.master",
                format!(
                    "\"{master}\" is not a network interface name of letters, digits, '_', '.', '-' and '@'"
                ),
            );
        }
    }

    // VLAN.
    if let Some(vlan) = spec.vlan {
        if !is(&[Sriov, Ovs]) {
            e(
                "spec.vlan",
                format!(
                    "not supported in mode {m}: a {m} child has no VLAN of its own (use sriov or ovs, or a VLAN master)"
                ),
            );
        } else if vlan > MAX_VLAN {
            e("spec.vlan", format!("{vlan} is outside 0-{MAX_VLAN}"));
        }
    }
    let vlan_set = spec.vlan.is_some_and(|v| v != 0);
    let sriov_only: [(&str, bool); 7] = [
        ("vlanQoS", spec.vlan_qos.is_some()),
        ("vlanProto", spec.vlan_proto.is_some()),
        ("spoofChk", spec.spoof_chk.is_some()),
        ("trust", spec.trust.is_some()),
        ("linkState", spec.link_state.is_some()),
        ("minTxRate", spec.min_tx_rate.is_some()),
        ("maxTxRate", spec.max_tx_rate.is_some()),
    ];
    for (field, set) in sriov_only {
        // an IB VF takes a link state through its PF as well
        if set && mode != Sriov && !(mode == Ib && field == "linkState") {
            e(
                &format!("spec.{field}"),
                format!("only for mode sriov (VF settings programmed through the PF), not {m}"),
            );
        }
    }
    if mode == Sriov {
        if let Some(q) = spec.vlan_qos {
            if q > 7 {
                e("spec.vlanQoS", format!("{q} is outside 0-7"));
            } else if q != 0 && !vlan_set {
                e(
                    "spec.vlanQoS",
                    "a non-zero VLAN priority needs a non-zero vlan".into(),
                );
            }
        }
        if spec.vlan_proto == Some(VlanProto::Dot1Ad) && !vlan_set {
            e("spec.vlanProto", "802.1ad needs a non-zero vlan".into());
        }
        if let (Some(min), Some(max)) = (spec.min_tx_rate, spec.max_tx_rate)
            && max != 0
            && min > max
        {
            e(
                "spec.minTxRate",
                format!("{min} Mb/s is above maxTxRate {max} Mb/s"),
            );
        }
    }

    // Sub-modes.
    if spec.macvlan_mode.is_some() && mode != Macvlan {
        e(
            "spec.macvlanMode",
            format!("only for mode macvlan, not {m}"),
        );
    }
    let source = spec.macvlan_mode == Some(crds::link::MacvlanMode::Source);
    if !spec.macvlan_source_macs.is_empty() && !source {
        e(
            "spec.macvlanSourceMacs",
            "only with macvlanMode source".into(),
        );
    }
    if source && spec.macvlan_source_macs.is_empty() {
        e(
            "spec.macvlanMode",
            "macvlanMode source needs at least one MAC in macvlanSourceMacs".into(),
        );
    }
    for (i, m) in spec.macvlan_source_macs.iter().enumerate() {
        if !is_mac(m) {
            e(
                &format!("spec.macvlanSourceMacs[{i}]"),
                format!("{m:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"),
            );
        }
    }
    if spec.ipvlan_mode.is_some() && mode != Ipvlan {
        e("spec.ipvlanMode", format!("only for mode ipvlan, not {m}"));
    }

    // InfiniBand partition key.
    if let Some(pkey) = spec.pkey {
        if mode != Ib {
            e("spec.pkey", format!("only for mode ib, not {m}"));
        } else if pkey & !crds::PKEY_FULL_MEMBER == 0 {
            e(
                "spec.pkey",
                format!(
                    "{pkey:#06x} names partition 0, which is reserved; the low 15 bits name the partition (0x0001-0x7fff), the top bit asks for full membership"
                ),
            );
        }
    }

    // MTU.
    if let Some(mtu) = spec.mtu {
        if mode == Sriov || mode == Ib {
            e(
                "spec.mtu",
                format!(
                    "not allowed in mode {m}: the VF MTU is set by the NicPolicy (spec.mtu there)"
                ),
            );
        } else if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            e("spec.mtu", format!("{mtu} is outside {MIN_MTU}-{MAX_MTU}"));
        }
    }

    // OVS.
    if let Some(ovs) = &spec.ovs {
        if mode != Ovs {
            e("spec.ovs", format!("only for mode ovs, not {m}"));
        } else {
            if let Some(b) = &ovs.bridge
                && (!is_netdev_name(b) || !is_host_ifname(b))
            {
                e(
                    "spec.ovs.bridge",
                    format!(
                        "\"{b}\" is not a valid bridge name (1-15 letters, digits, '_', '.', '-' or '@')"
                    ),
                );
            }
            if !ovs.trunk.is_empty() && spec.vlan.is_some() {
                e(
                    "spec.ovs.trunk",
                    "give either vlan (access port) or trunk, not both".into(),
                );
            }
            for (i, t) in ovs.trunk.iter().enumerate() {
                if t.min_id == 0 || t.max_id > MAX_VLAN || t.min_id > t.max_id {
                    e(
                        &format!("spec.ovs.trunk[{i}]"),
                        format!(
                            "{}-{} is not a VLAN range within 1-{MAX_VLAN} with minId <= maxId",
                            t.min_id, t.max_id
                        ),
                    );
                }
            }
            if let Some(g) = &ovs.geneve {
                if g.vni > MAX_VNI {
                    e(
                        "spec.ovs.geneve.vni",
                        format!("{} is above {MAX_VNI} (24 bits)", g.vni),
                    );
                }
                if g.dst_port == Some(0) {
                    e("spec.ovs.geneve.dstPort", "must not be 0".into());
                }
            }
        }
    }

    // IPAM and capabilities.
    if let Some(ipam) = &spec.ipam {
        match ipam.as_object() {
            None => e(
                "spec.ipam",
                "must be a JSON object such as {\"type\": \"host-local\", ...}".into(),
            ),
            Some(o)
                if o.get("type")
                    .and_then(|t| t.as_str())
                    .is_none_or(str::is_empty) =>
            {
                e("spec.ipam.type", "is required: the name of the IPAM plugin (host-local, static, whereabouts, ...)".into());
            }
            Some(_) => {}
        }
    }
    for (i, plugin) in spec.meta_plugins.iter().enumerate() {
        let path = format!("spec.metaPlugins[{i}]");
        match plugin.as_object() {
            None => e(
                &path,
                "must be a CNI plugin object such as {\"type\": \"tuning\", ...}".into(),
            ),
            Some(o) => match o.get("type").and_then(|t| t.as_str()) {
                None | Some("") => e(
                    &format!("{path}.type"),
                    "is required: the name of the chained plugin (tuning, bandwidth, ...)".into(),
                ),
                Some(t) if t == crds::cni::PLUGIN_TYPE => e(
                    &format!("{path}.type"),
                    format!(
                        "{t} is this network's own plugin, which always comes first; list only the plugins chained after it"
                    ),
                ),
                Some(_) => {}
            },
        }
    }
    if let Some(f) = &spec.log_file
        && !is_log_file_name(f)
    {
        e(
            "spec.logFile",
            format!(
                "\"{f}\" is not a plain file name (letters, digits, '_', '.', '-', at most 64 bytes, not starting with '.'); the plugin writes it in {}",
                crds::cni::PLUGIN_LOG_DIR
            ),
        );
    }
    for k in spec.capabilities.keys() {
        if k.is_empty() || !k.bytes().all(|c| c.is_ascii_alphanumeric()) {
            e(
                "spec.capabilities",
                format!("\"{k}\" is not a CNI capability name (e.g. ips, mac, deviceID)"),
            );
        }
    }
    finish(errors)
}

/// `aa:bb:cc:dd:ee:ff`: six colon-separated pairs of hex digits (the schema's `MAC_PATTERN`).
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The schema's `LOG_FILE_NAME_PATTERN`: a plain file name in the plugin's log directory.
fn is_log_file_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
