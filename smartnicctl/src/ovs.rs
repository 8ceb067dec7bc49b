//! `smartnicctl ovs`: the node's OVS through the offload library: node setup, pod attach and
//! detach (what the agent and the CNI's `mode: ovs` do), tunnel peers, the tunnel endpoint.

use anyhow::Context;
use nic::netns::NetnsRef;
use offload::{
    attach::Attacher,
    decision::Datapath,
    evidence::report::TcPolicy,
    node::{self, NodeSetup},
    overlay::{GENEVE_PORT, Overlay, Peer},
};

use crate::{
    link::{block_on, out, print_data},
    offload::{OvsArgs, connect_db},
};

/// Arguments of `smartnicctl ovs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    ovs: OvsArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Dp {
    System,
    Netdev,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Policy {
    None,
    SkipSw,
    SkipHw,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Node setup: hw-offload (and tc-policy), the integration bridge, hw-tc-offload on devices.
    #[command(
        after_help = "Example:\n  smartnicctl ovs setup --datapath system --hw-offload true --rundir /run/openvswitch"
    )]
    Setup {
        /// Bridge datapath.
        #[arg(long, value_enum, default_value = "system")]
        datapath: Dp,
        /// other_config:hw-offload.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        hw_offload: bool,
        /// other_config:tc-policy (needs an ovs-vswitchd restart to take effect).
        #[arg(long, value_enum)]
        tc_policy: Option<Policy>,
        /// Turn hw-tc-offload on for this device (PF uplink, representor); repeatable.
        #[arg(long = "tc-offload")]
        tc_offload: Vec<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::link::Output,
    },
    /// Attach a pod: a veth into --netns, or a VF representor already paired with a VF in the pod.
    #[command(
        after_help = "Example:\n  smartnicctl ovs attach --network default/red --vni 100 --netns /run/netns/pod1 --pod default/pod1"
    )]
    Attach {
        /// The network (NAMESPACE/NAME).
        #[arg(long)]
        network: String,
        /// The network's VNI.
        #[arg(long)]
        vni: u32,
        /// The pod's network namespace (veth attachment).
        #[arg(
            long,
            conflicts_with = "representor",
            required_unless_present = "representor"
        )]
        netns: Option<String>,
        /// A VF representor (representor attachment).
        #[arg(long, requires = "vf")]
        representor: Option<String>,
        /// The VF's PCI address (with --representor).
        #[arg(long)]
        vf: Option<String>,
        /// Interface name inside the pod.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// The pod (NAMESPACE/NAME), for reports.
        #[arg(long)]
        pod: Option<String>,
        /// Container id (names the host veth).
        #[arg(long, default_value = "")]
        container_id: String,
        /// MTU of the pod interface.
        #[arg(long)]
        mtu: Option<u32>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::link::Output,
    },
    /// Remove an attachment's port (and its veth).
    #[command(after_help = "Example:\n  smartnicctl ovs detach pod1-eth0")]
    Detach {
        /// The bridge port.
        port: String,
    },
    /// Make the tunnel ports exactly these peers (NODE=IP, repeatable).
    #[command(after_help = "Example:\n  smartnicctl ovs peers --peer 192.0.2.11 --peer 192.0.2.12")]
    Peers {
        /// NODE=IP
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Geneve UDP port.
        #[arg(long, default_value_t = GENEVE_PORT)]
        dst_port: u16,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::link::Output,
    },
    /// Print the tunnel endpoint of an uplink (its first global address).
    #[command(after_help = "Example:\n  smartnicctl ovs endpoint ens1f0np0")]
    Endpoint {
        /// The uplink.
        uplink: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::link::Output,
    },
}

/// `smartnicctl ovs`
pub fn run(a: Args) -> anyhow::Result<()> {
    block_on(async move {
        if let Cmd::Endpoint { uplink, output } = &a.cmd {
            let ip = node::tunnel_endpoint(uplink).await?;
            return match output {
                crate::link::Output::Table => out(ip),
                o => print_data(
                    *o,
                    &serde_json::json!({"uplink": uplink, "endpoint": ip.to_string()}),
                ),
            };
        }
        let ovs = connect_db(&a.ovs).await?;
        // The same flows target and lock file as the agent and the CNI.
        let overlay = Overlay::in_rundir(ovs.clone(), &a.ovs.rundir, &a.ovs.bridge);
        match a.cmd {
            Cmd::Setup {
                datapath,
                hw_offload,
                tc_policy,
                tc_offload,
                output,
            } => {
                let mut cfg = NodeSetup::new(&a.ovs.bridge)
                    .datapath(match datapath {
                        Dp::System => Datapath::System,
                        Dp::Netdev => Datapath::Netdev,
                    })
                    .hw_offload(hw_offload)
                    .tc_offload_on(tc_offload.iter().map(String::as_str));
                if let Some(p) = tc_policy {
                    cfg = cfg.tc_policy(match p {
                        Policy::None => TcPolicy::None,
                        Policy::SkipSw => TcPolicy::SkipSw,
                        Policy::SkipHw => TcPolicy::SkipHw,
                    });
                }
                let o = node::setup(&ovs, &cfg).await?;
                overlay.sync(&[]).await?;
                match output {
                    crate::link::Output::Table => out(setup_line(&a.ovs.bridge, &o)),
                    o2 => print_data(o2, &o),
                }
            }
            Cmd::Attach {
                network,
                vni,
                netns,
                representor,
                vf,
                ifname,
                pod,
                container_id,
                mtu,
                output,
            } => {
                let at = Attacher::new(overlay);
                let mut req = match (&netns, &representor) {
                    (Some(ns), _) => at.veth(NetnsRef::path(ns), &ifname),
                    (None, Some(rep)) => {
                        at.representor(rep, vf.as_deref().unwrap_or_default(), &ifname)
                    }
                    (None, None) => anyhow::bail!("give --netns or --representor"),
                };
                req = req
                    .network(&network, vni)
                    .container_id(if container_id.is_empty() {
                        netns
                            .as_deref()
                            .or(representor.as_deref())
                            .unwrap_or_default()
                    } else {
                        &container_id
                    });
                if let Some(p) = &pod {
                    req = req.pod(p);
                }
                if let Some(m) = mtu {
                    req = req.mtu(m);
                }
                let r = req.execute().await.context("attach failed")?;
                match output {
                    o @ (crate::link::Output::Json | crate::link::Output::Yaml) => {
                        print_data(o, &r)
                    }
                    crate::link::Output::Table => out(format!(
                        "{} ofport {} network {network} VNI {vni}: {}",
                        r.port, r.ofport, r.reason
                    )),
                }
            }
            Cmd::Detach { port } => {
                Attacher::new(overlay).detach(&port).execute().await?;
                Ok(())
            }
            Cmd::Peers {
                peers,
                dst_port,
                output,
            } => {
                let peers: Vec<Peer> = peers
                    .iter()
                    .map(|p| {
                        let (node, ip) = p
                            .split_once('=')
                            .with_context(|| format!("--peer {p}: want NODE=IP"))?;
                        Ok(Peer {
                            node: node.to_string(),
                            ip: ip.parse().with_context(|| {
                                format!("--peer {p}: {ip} is not an IP address")
                            })?,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
                let c = overlay.set_peers(&peers, dst_port).await?;
                if output != crate::link::Output::Table {
                    return print_data(
                        output,
                        &serde_json::json!({"added": c.added, "removed": c.removed}),
                    );
                }
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                out(format!(
                    "tunnel ports added: {}; removed: {}",
                    list(&c.added),
                    list(&c.removed)
                ))
            }
            Cmd::Endpoint { .. } => Ok(()),
        }
    })?
}

/// `ovs setup`'s table: what changed, in one line (the JSON has the same fields).
fn setup_line(bridge: &str, o: &node::SetupOutcome) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut line = format!(
        "bridge {bridge}: {}; other_config changed: {}; hw-tc-offload turned on: {}",
        if o.bridge_created {
            "created"
        } else {
            "present"
        },
        list(&o.changed_other_config),
        list(&o.tc_offload_on)
    );
    if o.restart_required {
        line.push_str("; ovs-vswitchd must be restarted for it to take effect");
    }
    for w in &o.warnings {
        line.push_str(&format!("\nwarning: {w}"));
    }
    line
}
