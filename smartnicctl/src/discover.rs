//! `smartnicctl discover [--root DIR] [-o table|json|yaml]`: the NIC inventory of this host.
//!
//! Discovery reads sysfs only (`nic::discovery`). On the host itself (no `--root`) the eswitch
//! modes are then taken from devlink where it answers; the sysfs inference stays for the rest.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use crds::inventory::{EswitchMode, Nic, NicInventory};
use nic::discovery::{
    Discovery, apply_eswitch_modes_by_id, devlink_instance, discover_with_warnings, is_pci_id,
    netdevsim_device,
};
use nic::representor::apply_devlink_representors;
use nic::sysfs::SysFs;

use crate::link::{block_on, out, print_json};

/// Output format of `discover`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns: PFs, each followed by its VFs.
    #[default]
    Table,
    /// One JSON document (`{"nics":[...]}`).
    Json,
    /// The same document as YAML.
    Yaml,
}

/// Arguments of `smartnicctl discover`.
#[derive(clap::Args)]
pub struct Args {
    /// Read the sysfs tree under DIR instead of the host's (e.g. examples/hosts/cx6dx-switchdev);
    /// devlink is not asked then.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

/// Runs `smartnicctl discover`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sysfs = match &args.root {
        Some(root) => SysFs::new(root),
        None => SysFs::host(),
    };
    let mut d = discover_with_warnings(&sysfs).with_context(|| match &args.root {
        Some(root) => format!("no sysfs tree under {}", root.display()),
        None => "cannot read the PCI devices of this host".into(),
    })?;
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    if args.root.is_none() {
        // Call site of the devlink correction (sysfs inference is the fallback).
        from_devlink(&mut d.inventory);
    }
    match args.output {
        Format::Json => print_json(&d.inventory),
        Format::Yaml => out(serde_saphyr::to_string(&d.inventory)?.trim_end()),
        Format::Table => out(render_table(&d).trim_end()),
    }
}

/// Replaces the inferred eswitch modes and representors with what devlink reports (the port
/// dump gives each VF port's netdev). A kernel without devlink, a device without a devlink
/// instance (igb) or without an eswitch keeps the inference; any other devlink failure is
/// printed once as a warning and ends the queries.
pub(crate) fn from_devlink(inv: &mut NicInventory) {
    // PCI PFs and netdevsim devices, by inventory identity
    let pfs: Vec<(String, nic::devlink::DevlinkDev)> = inv
        .nics
        .iter()
        .filter(|n| n.total_vfs > 0)
        .filter(|n| is_pci_id(&n.pci_address) || netdevsim_device(&n.pci_address).is_some())
        .map(|n| (n.pci_address.clone(), devlink_instance(&n.pci_address)))
        .collect();
    if pfs.is_empty() {
        return;
    }
    let found = block_on(async {
        let mut modes = HashMap::new();
        let dl = match nic::devlink::DevlinkHandle::connect_optional().await {
            Ok(Some(dl)) => dl,
            Ok(None) => return (modes, Vec::new()),
            Err(e) => {
                eprintln!("warning: devlink: {e}; eswitch modes inferred from sysfs");
                return (modes, Vec::new());
            }
        };
        let ports = match dl.port().list(None).await {
            Ok(ports) => ports,
            Err(e) => {
                eprintln!("warning: devlink: {e}; representors inferred from sysfs");
                Vec::new()
            }
        };
        for (pf, dev) in pfs {
            match dl.eswitch(&dev).get().await {
                Ok(e) => {
                    if let Some(mode) = e.mode.and_then(|m| m.to_inventory()) {
                        modes.insert(pf, mode);
                    }
                }
                Err(e) if e.is_not_found() || e.is_not_supported() => {}
                Err(e) => {
                    eprintln!("warning: devlink: {e}; eswitch modes inferred from sysfs");
                    break;
                }
            }
        }
        (modes, ports)
    });
    match found {
        Ok((modes, ports)) => {
            apply_eswitch_modes_by_id(inv, &modes);
            apply_devlink_representors(inv, &ports);
        }
        Err(e) => eprintln!("warning: {e:#}; eswitch modes inferred from sysfs"),
    }
}

/// `100000` -> `100G`, `2500` -> `2.5G`, `100` -> `100M`.
fn speed(mbps: u32) -> String {
    if mbps >= 1000 && mbps.is_multiple_of(100) {
        let g = f64::from(mbps) / 1000.0;
        format!("{g}G")
    } else {
        format!("{mbps}M")
    }
}

fn eswitch(m: Option<EswitchMode>) -> &'static str {
    match m {
        Some(EswitchMode::Legacy) => "legacy",
        Some(EswitchMode::Switchdev) => "switchdev",
        None => "-",
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Pads every column but the last to its widest cell, two spaces apart.
fn aligned(rows: &[Vec<String>], indent: &str) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = indent.to_owned();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn nic_row(n: &Nic) -> Vec<String> {
    vec![
        n.pci_address.clone(),
        or_dash(n.name.as_ref()),
        or_dash(n.driver.as_ref()),
        format!("{}:{}", n.vendor_id, n.device_id),
        or_dash(n.numa_node),
        or_dash(n.link_type.map(|l| match l {
            crds::inventory::LinkType::Eth => "eth",
            crds::inventory::LinkType::Ib => "ib",
        })),
        or_dash(n.mtu),
        or_dash(n.oper_state.as_ref()),
        or_dash(n.speed_mbps.map(speed)),
        if n.total_vfs > 0 {
            format!("{}/{}", n.num_vfs, n.total_vfs)
        } else {
            "-".into()
        },
        eswitch(n.eswitch_mode).into(),
        or_dash(n.device_name.as_ref()),
    ]
}

const NIC_HEADER: [&str; 12] = [
    "PCI", "NAME", "DRIVER", "ID", "NUMA", "LINK", "MTU", "STATE", "SPEED", "VFS", "ESWITCH",
    "MODEL",
];
const VF_HEADER: [&str; 9] = [
    "VF",
    "PCI",
    "NAME",
    "DRIVER",
    "MAC",
    "MTU",
    "NUMA",
    "IOMMU",
    "REPRESENTOR",
];

/// The human-readable inventory: one aligned table of PFs; under each PF with VFs, its VFs
/// indented (VF columns aligned across the whole output). Ends with a plain sentence when no
/// function is SR-IOV capable.
pub(crate) fn render_table(d: &Discovery) -> String {
    let nics = &d.inventory.nics;
    let mut out = String::new();
    if !nics.is_empty() {
        let mut nic_rows = vec![NIC_HEADER.iter().map(|s| s.to_string()).collect()];
        nic_rows.extend(nics.iter().map(nic_row));
        let nic_lines = aligned(&nic_rows, "");

        // VF rows of every PF, aligned together; a header row first
        let mut vf_rows: Vec<Vec<String>> = vec![VF_HEADER.iter().map(|s| s.to_string()).collect()];
        for n in nics {
            vf_rows.extend(n.vfs.iter().map(|v| {
                vec![
                    v.vf_id.to_string(),
                    v.pci_address.clone(),
                    or_dash(v.name.as_ref()),
                    or_dash(v.driver.as_ref()),
                    or_dash(v.mac.as_ref()),
                    or_dash(v.mtu),
                    or_dash(v.numa_node),
                    or_dash(v.iommu_group),
                    or_dash(v.representor.as_ref()),
                ]
            }));
        }
        let vf_lines = aligned(&vf_rows, "    ");
        let (vf_header, mut vf_body) = (&vf_lines[0], vf_lines[1..].iter());

        out.push_str(&nic_lines[0]);
        out.push('\n');
        for (n, line) in nics.iter().zip(&nic_lines[1..]) {
            out.push_str(line);
            out.push('\n');
            if !n.vfs.is_empty() {
                out.push_str(vf_header);
                out.push('\n');
                for _ in &n.vfs {
                    if let Some(l) = vf_body.next() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            }
        }
    }
    if !nics.iter().any(|n| n.total_vfs > 0) {
        let n = d.network_functions;
        let s = if n == 1 { "" } else { "s" };
        out.push_str(&format!(
            "no SR-IOV capable NIC found on this host ({n} PCI network function{s})\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic::fixtures::HostBuilder;

    fn discover(b: HostBuilder) -> Discovery {
        let host = b.build().unwrap();
        discover_with_warnings(&host.sysfs()).unwrap()
    }

    #[test]
    fn table_lists_pfs_then_indented_vfs() {
        let d = discover(HostBuilder::new().cx6dx(EswitchMode::Switchdev).igb_82576());
        let t = render_table(&d);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("PCI "), "{t}");
        assert!(lines[1].starts_with("0000:01:00.0  enp1s0 "), "{t}");
        assert!(lines[1].contains(" 2/7 "), "{t}");
        assert!(lines[2].starts_with("    VF  PCI "), "{t}");
        assert!(
            lines[3].starts_with("    0   0000:01:10.0  enp1s0v0 "),
            "{t}"
        );
        let pf = lines
            .iter()
            .find(|l| l.starts_with("0000:3b:00.0"))
            .unwrap();
        assert!(pf.contains("switchdev"), "{pf}");
        assert!(pf.contains("100G"), "{pf}");
        assert!(pf.ends_with("MT2892 Family [ConnectX-6 Dx]"), "{pf}");
        assert!(t.contains("ens1f0npf0vf3"), "{t}");
        // columns line up: every PF row has the driver column at the header's offset
        let col = lines[0].find("DRIVER").unwrap();
        for l in lines.iter().filter(|l| l.starts_with("0000:")) {
            assert!(!l[col..].starts_with(' '), "{l}");
            assert_eq!(&l[col - 2..col], "  ", "{l}");
        }
        assert!(!t.contains("no SR-IOV capable"));
    }

    #[test]
    fn table_says_plainly_when_nothing_is_sriov() {
        let d = discover(HostBuilder::new());
        assert_eq!(
            render_table(&d),
            "no SR-IOV capable NIC found on this host (0 PCI network functions)\n"
        );
        let mut lone = nic::fixtures::FunctionSpec::new(
            "0000:00:05.0".parse().unwrap(),
            0x8086,
            0x10ca,
            nic::fixtures::CLASS_ETHERNET,
            "igbvf",
        );
        lone.netdevs
            .push(nic::fixtures::NetdevSpec::eth("eth0", "52:54:00:aa:bb:cc"));
        let d = discover(HostBuilder::new().function(lone));
        let t = render_table(&d);
        assert!(t.starts_with("PCI "), "{t}");
        assert!(t.contains("0000:00:05.0  eth0  igbvf"), "{t}");
        assert!(
            t.ends_with("no SR-IOV capable NIC found on this host (1 PCI network function)\n"),
            "{t}"
        );
    }

    #[test]
    fn speeds() {
        assert_eq!(speed(100_000), "100G");
        assert_eq!(speed(2500), "2.5G");
        assert_eq!(speed(1000), "1G");
        assert_eq!(speed(100), "100M");
        assert_eq!(speed(1234), "1234M");
    }
}
