//! `smartnicctl offload` (where each datapath flow of the node or of one pod attachment runs,
//! and why not in hardware) and `smartnicctl trace` (one attachment's path hop by hop).

use std::path::PathBuf;

use anyhow::{Context, bail};
use offload::{
    Ovs, Remote,
    appctl::Appctl,
    evidence::{
        collect::Collector,
        metrics,
        report::{AttachmentReport, OffloadReport},
    },
    trace,
};

use crate::link::{block_on, out, print_data, print_json};

/// Where the node's OVS is.
#[derive(clap::Args, Clone, Debug)]
pub struct OvsArgs {
    /// OVS run directory (db.sock, the ovs-vswitchd control socket).
    #[arg(
        long,
        env = "OVS_RUNDIR",
        default_value = "/run/openvswitch",
        global = true
    )]
    pub(crate) rundir: PathBuf,
    /// OVSDB remote (default: unix:RUNDIR/db.sock).
    #[arg(long, global = true)]
    pub(crate) db: Option<String>,
    /// The integration bridge.
    #[arg(long, default_value = "br-int", global = true)]
    pub(crate) bridge: String,
    /// Node name in the report (default: the host name).
    #[arg(long, env = "NODE_NAME", global = true)]
    node: Option<String>,
    /// ovs-vswitchd log to read offload failures from.
    #[arg(
        long,
        default_value = "/var/log/openvswitch/ovs-vswitchd.log",
        global = true
    )]
    log: PathBuf,
    /// Ask the kernel: add and remove a skip_sw flower rule on each attachment port and report
    /// its answer.
    #[arg(long)]
    probe: bool,
}

/// Which attachment.
#[derive(clap::Args, Clone, Debug, Default)]
#[group(multiple = false)]
pub struct Select {
    /// The pod (NAMESPACE/NAME).
    #[arg(long)]
    pod: Option<String>,
    /// The pod's network namespace path.
    #[arg(long)]
    netns: Option<String>,
    /// The bridge port.
    #[arg(long)]
    port: Option<String>,
}

impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pod, &self.netns, &self.port) {
            (Some(p), _, _) => write!(f, "--pod {p}"),
            (_, Some(n), _) => write!(f, "--netns {n}"),
            (_, _, Some(p)) => write!(f, "--port {p}"),
            _ => f.write_str("the selection"),
        }
    }
}

impl Select {
    fn any(&self) -> bool {
        self.pod.is_some() || self.netns.is_some() || self.port.is_some()
    }

    fn matches(&self, a: &AttachmentReport) -> bool {
        self.pod
            .as_ref()
            .is_none_or(|p| a.info.pod.as_ref() == Some(p))
            && self
                .netns
                .as_ref()
                .is_none_or(|n| a.info.netns.as_ref() == Some(n))
            && self.port.as_ref().is_none_or(|p| &a.info.port == p)
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    #[default]
    Table,
    /// JSON.
    Json,
    /// The JSON document as YAML.
    Yaml,
    /// Prometheus text exposition.
    Prom,
}

/// Arguments of `smartnicctl offload`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    ovs: OvsArgs,
    #[command(flatten)]
    select: Select,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// Arguments of `smartnicctl trace`.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    ovs: OvsArgs,
    #[command(flatten)]
    select: Select,
    /// Destination MAC of the traced packet (default: broadcast, i.e. the flood path).
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
    dst_mac: String,
    /// Output format (a path has no metrics: no `prom`).
    #[arg(short, long, value_enum, default_value_t)]
    output: crate::link::Output,
}

struct Conn {
    ovs: Ovs,
    appctl: Appctl,
    collector: Collector,
}

/// Connects to the node's ovsdb-server.
pub(crate) async fn connect_db(a: &OvsArgs) -> anyhow::Result<Ovs> {
    let remote = match &a.db {
        Some(r) => Remote::parse(r),
        None => Remote::unix(a.rundir.join("db.sock")),
    };
    Ovs::connect(&remote).await.with_context(|| {
        format!(
            "cannot reach ovsdb-server at {remote}: is Open vSwitch running on this host \
                 (ovsdb-server and ovs-vswitchd, e.g. `systemctl start openvswitch-switch`)? \
                 Elsewhere, point --rundir (or --db) at its run directory"
        )
    })
}

async fn connect(a: &OvsArgs) -> anyhow::Result<Conn> {
    let ovs = connect_db(a).await?;
    let appctl = Appctl::in_rundir(&a.rundir).await.with_context(|| {
        format!(
            "cannot reach ovs-vswitchd's control socket in {}: is ovs-vswitchd running? \
             Elsewhere, point --rundir at its run directory",
            a.rundir.display()
        )
    })?;
    let node = a.node.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    });
    let collector = Collector::new(ovs.clone(), appctl.clone(), &node, &a.bridge)
        .with_log(&a.log)
        .with_probe(a.probe);
    Ok(Conn {
        ovs,
        appctl,
        collector,
    })
}

/// `smartnicctl offload`
pub fn run(a: Args) -> anyhow::Result<()> {
    block_on(async {
        let c = connect(&a.ovs).await?;
        let mut r = c.collector.report().await?;
        if a.select.any() {
            r.attachments.retain(|x| a.select.matches(x));
            if r.attachments.is_empty() {
                bail!(
                    "no attachment on bridge {} matches {} (`smartnicctl offload` lists them)",
                    a.ovs.bridge,
                    a.select
                );
            }
        }
        match a.output {
            Format::Json => print_json(&r),
            Format::Yaml => print_data(crate::link::Output::Yaml, &r),
            Format::Prom => out(metrics::render(&r).trim_end()),
            Format::Table => print_report(&r, a.select.any()),
        }
    })?
}

fn print_report(r: &OffloadReport, one: bool) -> anyhow::Result<()> {
    if !one {
        out(format!(
            "node {} bridge {} datapath {} hw-offload {} tc-policy {}",
            r.node,
            r.bridge,
            serde_json::to_value(r.datapath)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            r.hw_offload,
            r.tc_policy.as_str()
        ))?;
        out(format!(
            "flows: {} in hardware, {} partial, {} in tc software (dp:tc not_in_hw), {} in the OVS datapath (dp:ovs); offload ratio {:.2}",
            r.counts.hardware, r.counts.partial, r.counts.tc, r.counts.ovs, r.ratio
        ))?;
        for n in &r.networks {
            out(format!(
                "network {} (VNI {}): hw {} tc {} ovs {} ratio {:.2}",
                n.network, n.vni, n.counts.hardware, n.counts.tc, n.counts.ovs, n.ratio
            ))?;
        }
    }
    for a in &r.attachments {
        let i = &a.info;
        out(format!(
            "{} {} port {} ({}, network {}, VNI {}): {} [hw {} tc {} ovs {}]",
            i.pod.as_deref().unwrap_or("-"),
            i.ifname,
            i.port,
            i.kind,
            i.network,
            i.vni,
            a.verdict,
            a.counts.hardware,
            a.counts.tc,
            a.counts.ovs
        ))?;
        for f in &a.fallbacks {
            out(format!("  fallback: {f}"))?;
        }
        if one {
            for f in &a.flows {
                out(format!(
                    "  dp:{}{} packets:{} in_port({}) actions:{}",
                    f.flow.dp,
                    if f.flow.layer.in_hardware() {
                        " offloaded:yes"
                    } else {
                        ""
                    },
                    f.flow.packets,
                    f.flow.in_port,
                    f.flow.actions
                ))?;
            }
            for t in &a.tc_filters {
                out(format!(
                    "  tc {} pref {} handle {}: {}{}",
                    t.dev,
                    t.pref,
                    t.handle,
                    if t.in_hw { "in_hw" } else { "not_in_hw" },
                    if t.skip_sw {
                        " skip_sw"
                    } else if t.skip_hw {
                        " skip_hw"
                    } else {
                        ""
                    }
                ))?;
            }
        }
    }
    if !one && !r.fallbacks.is_empty() {
        out("fallback reasons:")?;
        for f in &r.fallbacks {
            out(format!("  {f}"))?;
        }
    }
    Ok(())
}

/// `smartnicctl trace`
pub fn run_trace(a: TraceArgs) -> anyhow::Result<()> {
    block_on(async {
        if !a.select.any() {
            bail!("name the attachment: --pod NAMESPACE/NAME, --netns PATH or --port NAME");
        }
        let c = connect(&a.ovs).await?;
        let r = c.collector.report().await?;
        let att = r
            .attachments
            .iter()
            .find(|x| a.select.matches(x))
            .with_context(|| {
                format!(
                    "no attachment on bridge {} matches {} (`smartnicctl offload` lists them)",
                    a.ovs.bridge, a.select
                )
            })?;
        let hops =
            trace::trace_attachment(&c.ovs, &c.appctl, &a.ovs.bridge, att, &a.dst_mac).await?;
        match a.output {
            o @ (crate::link::Output::Json | crate::link::Output::Yaml) => print_data(o, &hops),
            crate::link::Output::Table => {
                out(format!(
                    "trace {} {} (port {}, network {}, VNI {}) towards {}",
                    att.info.pod.as_deref().unwrap_or("-"),
                    att.info.ifname,
                    att.info.port,
                    att.info.network,
                    att.info.vni,
                    a.dst_mac
                ))?;
                out(trace::render(&hops).trim_end())
            }
        }
    })?
}
