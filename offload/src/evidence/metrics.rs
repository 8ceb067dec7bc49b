//! The report as Prometheus text exposition (the agent serves it; `smartnicctl offload -o prom`
//! prints it). Gauges, because every value is re-measured from a flow dump.

use std::fmt::Write;

use super::report::OffloadReport;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders `smartnic_offload_flows`, `smartnic_offload_ratio` (per network),
/// `smartnic_node_offload_ratio`, `smartnic_ovs_hw_offload` and `smartnic_ovs_tc_policy`.
pub fn render(r: &OffloadReport) -> String {
    let node = esc(&r.node);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP smartnic_offload_flows Datapath flows by where they run (hardware, partial, tc = tc software, ovs = OVS datapath)."
    );
    let _ = writeln!(s, "# TYPE smartnic_offload_flows gauge");
    for n in &r.networks {
        let net = esc(&n.network);
        for (layer, v) in [
            ("hardware", n.counts.hardware),
            ("partial", n.counts.partial),
            ("tc", n.counts.tc),
            ("ovs", n.counts.ovs),
        ] {
            let _ = writeln!(
                s,
                "smartnic_offload_flows{{node=\"{node}\",network=\"{net}\",vni=\"{}\",layer=\"{layer}\"}} {v}",
                n.vni
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP smartnic_offload_ratio Share of a network's datapath flows on this node that run in hardware."
    );
    let _ = writeln!(s, "# TYPE smartnic_offload_ratio gauge");
    for n in &r.networks {
        let _ = writeln!(
            s,
            "smartnic_offload_ratio{{node=\"{node}\",network=\"{}\",vni=\"{}\"}} {}",
            esc(&n.network),
            n.vni,
            n.ratio
        );
    }
    let _ = writeln!(
        s,
        "# HELP smartnic_node_offload_ratio Share of all datapath flows on this node that run in hardware."
    );
    let _ = writeln!(s, "# TYPE smartnic_node_offload_ratio gauge");
    let _ = writeln!(
        s,
        "smartnic_node_offload_ratio{{node=\"{node}\"}} {}",
        r.ratio
    );
    let _ = writeln!(
        s,
        "# HELP smartnic_ovs_hw_offload Open_vSwitch other_config:hw-offload (1 = true)."
    );
    let _ = writeln!(s, "# TYPE smartnic_ovs_hw_offload gauge");
    let _ = writeln!(
        s,
        "smartnic_ovs_hw_offload{{node=\"{node}\"}} {}",
        u8::from(r.hw_offload)
    );
    let _ = writeln!(
        s,
        "# HELP smartnic_ovs_tc_policy Open_vSwitch other_config:tc-policy (none 0, skip_sw 1, skip_hw 2)."
    );
    let _ = writeln!(s, "# TYPE smartnic_ovs_tc_policy gauge");
    let _ = writeln!(
        s,
        "smartnic_ovs_tc_policy{{node=\"{node}\"}} {}",
        r.tc_policy.gauge()
    );
    s
}
