//! `smartnicctl link show|set|add|del`, plus the small helpers the netlink commands share (a
//! runtime, the output switch, `--netns`).

use std::{future::Future, io::Write};

use anyhow::Context;
use nic::{
    host::{Host, RealHost},
    netlink::{
        Ipvlan, IpvlanFlag, IpvlanMode, Link, LinkDetails, LinkKind, MacAddr, Macvlan, MacvlanMode,
        NetlinkHandle, Veth, Vlan, VlanProto,
    },
    netns::NetnsRef,
};
use serde::Serialize;

/// Output format of the netlink commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Human-readable lines.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// The same document as YAML.
    Yaml,
}

/// Runs `fut` on a current-thread tokio runtime (the netlink sockets' tasks live on it).
pub(crate) fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(rt.block_on(fut))
}

/// rtnetlink in this process's network namespace.
pub(crate) fn host_netlink() -> anyhow::Result<NetlinkHandle> {
    Ok(RealHost::new()?.host_netlink()?)
}

/// A network namespace as `--netns` and `--in-netns` take it, like `ip`: a pid (`1234`), a path
/// (`/proc/1234/ns/net`, `/var/run/netns/pod1`), or a name under `/run/netns` or
/// `/var/run/netns`.
pub(crate) fn parse_netns(s: &str) -> Result<NetnsRef, String> {
    if s.is_empty() {
        return Err("empty network namespace".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(NetnsRef::pid)
            .map_err(|_| format!("invalid pid {s:?}"));
    }
    if s.contains('/') {
        return Ok(NetnsRef::path(s));
    }
    // `ip netns add` puts names in /var/run/netns, which is /run/netns on most systems.
    let run = std::path::Path::new("/run/netns").join(s);
    if run.exists() {
        Ok(NetnsRef::path(run))
    } else {
        Ok(NetnsRef::path(format!("/var/run/netns/{s}")))
    }
}

/// `-n, --in-netns NS`: where a command works (default: this process's namespace), like
/// `ip -n NS`.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct NetnsArg {
    /// Work inside this network namespace: a pid, a path (/proc/PID/ns/net, /var/run/netns/X)
    /// or a name under /var/run/netns.
    #[arg(short = 'n', long = "in-netns", value_name = "PATH|PID|NAME", value_parser = parse_netns)]
    pub(crate) netns: Option<NetnsRef>,
}

impl NetnsArg {
    /// The handle for this namespace.
    pub(crate) fn handle(&self) -> anyhow::Result<NetlinkHandle> {
        let host = RealHost::new()?;
        Ok(match &self.netns {
            Some(ns) => host.netlink(ns)?,
            None => host.host_netlink()?,
        })
    }
}

/// Prints one line on stdout. A reader that went away (`| head`) ends the output quietly
/// instead of panicking like `println!`.
pub(crate) fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// Prints one JSON document.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    out(serde_json::to_string_pretty(value)?)
}

/// Prints one document as `-o json` or `-o yaml` asks.
pub(crate) fn print_data(output: Output, value: &impl Serialize) -> anyhow::Result<()> {
    match output {
        Output::Yaml => out(serde_saphyr::to_string(value)?.trim_end()),
        _ => print_json(value),
    }
}

/// `on`/`off`.
pub(crate) fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Arguments of `smartnicctl link`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Show links (`ip -d link show [DEV]`).
    #[command(after_help = "Example:\n  smartnicctl link show enp1s0 -o yaml")]
    Show {
        /// Only this interface.
        ifname: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        netns: NetnsArg,
    },
    /// Change a link (`ip link set DEV [name N] [mtu N] [address MAC] [master M|nomaster]
    /// [netns NS] [up|down]`); with --netns and --name the link moves and is renamed in one
    /// request, and --up brings it up in the target namespace.
    #[command(after_help = "Example:\n  smartnicctl link set enp1s0 --mtu 9000 --up")]
    Set(SetArgs),
    /// Create a link (`ip link add NAME ... type veth|macvlan|ipvlan|vlan|bridge ...`).
    #[command(after_help = "Example:\n  smartnicctl link add mv0 macvlan --parent enp1s0")]
    Add(AddArgs),
    /// Delete a link (`ip link del DEV`).
    #[command(after_help = "Example:\n  smartnicctl link del mv0")]
    Del {
        /// The interface.
        ifname: String,
        #[command(flatten)]
        netns: NetnsArg,
    },
}

#[derive(clap::Args, Debug)]
struct SetArgs {
    /// The interface.
    ifname: String,
    /// New name (with --netns: the name in the target namespace, set in the same request).
    #[arg(long)]
    name: Option<String>,
    /// MTU.
    #[arg(long)]
    mtu: Option<u32>,
    /// MAC address.
    #[arg(long)]
    mac: Option<MacAddr>,
    /// Bring the link up (last; in the target namespace after a move). With --down: down
    /// first, then the other changes (a rename wants the link down), then up.
    #[arg(long)]
    up: bool,
    /// Bring the link down (first).
    #[arg(long)]
    down: bool,
    /// Enslave to this master (a bridge).
    #[arg(long, conflicts_with = "nomaster")]
    master: Option<String>,
    /// Release from its master.
    #[arg(long)]
    nomaster: bool,
    /// Move the link to this namespace (a pid, a path, or a name under /var/run/netns).
    #[arg(long = "netns", value_name = "PATH|PID|NAME", value_parser = parse_netns)]
    to_netns: Option<NetnsRef>,
    #[command(flatten)]
    netns: NetnsArg,
}

#[derive(clap::Args, Debug)]
struct AddArgs {
    /// Name of the new link.
    name: String,
    /// MTU.
    #[arg(long)]
    mtu: Option<u32>,
    /// MAC address.
    #[arg(long)]
    mac: Option<MacAddr>,
    /// Bring it up as it is created.
    #[arg(long)]
    up: bool,
    /// Create it directly in this namespace (a pid, a path, or a name under /var/run/netns).
    #[arg(long = "netns", value_name = "PATH|PID|NAME", value_parser = parse_netns)]
    to_netns: Option<NetnsRef>,
    #[command(flatten)]
    netns: NetnsArg,
    #[command(subcommand)]
    kind: KindCmd,
}

#[derive(clap::Subcommand, Debug)]
enum KindCmd {
    /// A veth pair (`type veth peer name PEER [netns NS]`).
    #[command(
        after_help = "Example:\n  smartnicctl link add veth0 veth --peer veth1 --peer-netns pod1"
    )]
    Veth {
        /// Name of the other end.
        #[arg(long)]
        peer: String,
        /// Create the other end directly in this namespace.
        #[arg(long = "peer-netns", value_name = "PATH|PID|NAME", value_parser = parse_netns)]
        peer_netns: Option<NetnsRef>,
    },
    /// A macvlan child (`link PARENT type macvlan mode MODE [macaddr set MAC...]`).
    #[command(
        after_help = "Example:\n  smartnicctl link add mv0 macvlan --parent enp1s0 --mode bridge"
    )]
    Macvlan {
        /// The lower device.
        #[arg(long)]
        parent: String,
        /// bridge, private, vepa, passthru or source.
        #[arg(long, default_value = "bridge")]
        mode: MacvlanMode,
        /// Source mode: a MAC allowed to send to this child (repeat for more).
        #[arg(long = "source-mac")]
        source_macs: Vec<MacAddr>,
    },
    /// An ipvlan child (`link PARENT type ipvlan mode MODE [FLAG]`).
    #[command(
        after_help = "Example:\n  smartnicctl link add ipv0 ipvlan --parent enp1s0 --mode l3s"
    )]
    Ipvlan {
        /// The lower device.
        #[arg(long)]
        parent: String,
        /// l2, l3 or l3s.
        #[arg(long, default_value = "l2")]
        mode: IpvlanMode,
        /// bridge, private or vepa.
        #[arg(long, default_value = "bridge")]
        flag: IpvlanFlag,
    },
    /// A VLAN sub-interface (`link PARENT type vlan id ID [protocol P]`).
    #[command(
        after_help = "Example:\n  smartnicctl link add enp1s0.100 vlan --parent enp1s0 --id 100"
    )]
    Vlan {
        /// The lower device.
        #[arg(long)]
        parent: String,
        /// VLAN id (0-4094).
        #[arg(long)]
        id: u16,
        /// 802.1q (default) or 802.1ad.
        #[arg(long, default_value = "802.1q")]
        proto: VlanProto,
    },
    /// A bridge (`type bridge`), a master for other links.
    #[command(after_help = "Example:\n  smartnicctl link add br0 bridge --up")]
    Bridge,
}

impl KindCmd {
    fn kind(&self) -> anyhow::Result<LinkKind> {
        Ok(match self {
            Self::Veth { peer, peer_netns } => {
                let mut v = Veth::new(peer);
                v.peer_netns = peer_netns.clone();
                v.into()
            }
            Self::Macvlan {
                parent,
                mode,
                source_macs,
            } => {
                if !source_macs.is_empty() && *mode != MacvlanMode::Source {
                    anyhow::bail!("--source-mac needs --mode source (the mode is {mode})");
                }
                Macvlan {
                    parent: parent.into(),
                    mode: *mode,
                    source_macs: source_macs.clone(),
                }
                .into()
            }
            Self::Ipvlan { parent, mode, flag } => Ipvlan::new(parent, *mode).flag(*flag).into(),
            Self::Vlan { parent, id, proto } => Vlan::new(parent, *id).proto(*proto).into(),
            Self::Bridge => LinkKind::Bridge,
        })
    }
}

#[derive(Serialize)]
struct LinksDoc {
    links: Vec<Link>,
}

/// Runs `smartnicctl link`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Show {
            ifname,
            output,
            netns,
        } => show(ifname, output, &netns),
        Cmd::Set(a) => set(a),
        Cmd::Add(a) => add(a),
        Cmd::Del { ifname, netns } => {
            let nl = netns.handle()?;
            Ok(block_on(nl.link().del(ifname).execute())??)
        }
    }
}

fn show(ifname: Option<String>, output: Output, netns: &NetnsArg) -> anyhow::Result<()> {
    let nl = netns.handle()?;
    let links = block_on(async {
        match ifname {
            Some(name) => nl.link().get(name).execute().await.map(|l| vec![l]),
            None => nl.link().list().execute().await,
        }
    })??;
    match output {
        o @ (Output::Json | Output::Yaml) => print_data(o, &LinksDoc { links }),
        Output::Table => {
            for l in &links {
                out(link_line(l))?;
            }
            Ok(())
        }
    }
}

/// One line of `link show`.
fn link_line(l: &Link) -> String {
    let mac = l.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{}: {} mtu {} mac {} {} state {}",
        l.index,
        l.name,
        l.mtu,
        mac,
        if l.up { "up" } else { "down" },
        l.oper_state,
    );
    if let Some(c) = l.carrier {
        line.push_str(&format!(" carrier {}", on_off(c)));
    }
    if let Some(m) = l.master {
        line.push_str(&format!(" master {m}"));
    }
    if let Some(p) = l.parent {
        line.push_str(&format!(" link {p}"));
    }
    if let Some(k) = &l.kind {
        line.push_str(&format!(" kind {k}"));
    }
    match &l.details {
        Some(LinkDetails::Macvlan { mode, source_macs }) => {
            line.push_str(&format!(" mode {mode}"));
            for m in source_macs {
                line.push_str(&format!(" source {m}"));
            }
        }
        Some(LinkDetails::Ipvlan { mode, flag }) => {
            line.push_str(&format!(" mode {mode} {flag}"));
        }
        Some(LinkDetails::Vlan { id, proto }) => {
            line.push_str(&format!(" id {id} protocol {proto}"));
        }
        None => {}
    }
    line
}

fn set(a: SetArgs) -> anyhow::Result<()> {
    let any = a.name.is_some()
        || a.mtu.is_some()
        || a.mac.is_some()
        || a.up
        || a.down
        || a.master.is_some()
        || a.nomaster
        || a.to_netns.is_some();
    if !any {
        anyhow::bail!(
            "link set {}: nothing to set (give --name, --mtu, --mac, --up, --down, --master, \
             --nomaster or --netns)",
            a.ifname
        );
    }
    let nl = a.netns.handle()?;
    let mut req = nl.link().set(a.ifname.as_str());
    if a.down {
        req = req.down();
    }
    if let (Some(name), None) = (&a.name, &a.to_netns) {
        req = req.name(name);
    }
    if let Some(mtu) = a.mtu {
        req = req.mtu(mtu);
    }
    if let Some(mac) = a.mac {
        req = req.mac(mac);
    }
    if let Some(m) = &a.master {
        req = req.master(m.as_str());
    }
    if a.nomaster {
        req = req.nomaster();
    }
    match &a.to_netns {
        None => {
            if a.up {
                req = req.up();
            }
            block_on(req.execute())??;
        }
        Some(ns) => {
            req = match &a.name {
                Some(name) => req.netns_rename(ns.clone(), name),
                None => req.netns(ns.clone()),
            };
            block_on(req.execute())??;
            // The kernel closes a link that changes namespace: bring it up over there.
            if a.up {
                let there = RealHost::new()?.netlink(ns)?;
                let name = a.name.as_deref().unwrap_or(&a.ifname);
                block_on(there.link().set(name).up().execute())??;
            }
        }
    }
    Ok(())
}

fn add(a: AddArgs) -> anyhow::Result<()> {
    let nl = a.netns.handle()?;
    let mut req = nl.link().add(a.kind.kind()?).name(&a.name);
    if let Some(mtu) = a.mtu {
        req = req.mtu(mtu);
    }
    if let Some(mac) = a.mac {
        req = req.mac(mac);
    }
    if let Some(ns) = &a.to_netns {
        req = req.netns(ns.clone());
    }
    if a.up {
        req = req.up();
    }
    Ok(block_on(req.execute())??)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("link").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn netns_takes_a_pid_a_path_or_a_name() {
        assert_eq!(parse_netns("42").unwrap(), NetnsRef::pid(42));
        assert_eq!(
            parse_netns("/proc/42/ns/net").unwrap(),
            NetnsRef::path("/proc/42/ns/net")
        );
        assert_eq!(
            parse_netns("nlt-no-such-ns").unwrap(),
            NetnsRef::path("/var/run/netns/nlt-no-such-ns")
        );
        assert!(parse_netns("").is_err());
    }

    #[test]
    fn set_moves_and_renames_in_one_go() {
        let a = parse(&[
            "set", "eth0v1", "--netns", "1234", "--name", "net1", "--mtu", "9000", "--up",
        ])
        .unwrap();
        let Cmd::Set(s) = a.cmd else {
            panic!("not set")
        };
        assert_eq!(s.to_netns, Some(NetnsRef::pid(1234)));
        assert_eq!(
            (s.name.as_deref(), s.mtu, s.up),
            (Some("net1"), Some(9000), true)
        );
        assert!(parse(&["set", "x", "--down", "--name", "y", "--up"]).is_ok());
        assert!(parse(&["set", "x", "--master", "br0", "--nomaster"]).is_err());
        assert!(parse(&["set", "x", "--mtu", "big"]).is_err());
    }

    #[test]
    fn add_takes_every_kind() {
        let kind = |argv: &[&str]| {
            let Cmd::Add(a) = parse(argv).unwrap().cmd else {
                panic!("not add")
            };
            (a.kind.kind().unwrap(), a)
        };
        let (k, a) = kind(&["add", "v0", "--mtu", "1400", "--up", "veth", "--peer", "v1"]);
        assert_eq!(k, Veth::new("v1").into());
        assert_eq!((a.mtu, a.up), (Some(1400), true));
        let (k, _) = kind(&[
            "add",
            "mv0",
            "macvlan",
            "--parent",
            "eth0",
            "--mode",
            "source",
            "--source-mac",
            "02:00:00:00:00:01",
            "--source-mac",
            "02:00:00:00:00:02",
        ]);
        let LinkKind::Macvlan(m) = k else {
            panic!("not macvlan")
        };
        assert_eq!((m.mode, m.source_macs.len()), (MacvlanMode::Source, 2));
        let (k, _) = kind(&[
            "add", "mv1", "macvlan", "--parent", "eth0", "--mode", "passthru",
        ]);
        assert_eq!(k, Macvlan::new("eth0", MacvlanMode::Passthru).into());
        let (k, _) = kind(&[
            "add", "ipv0", "ipvlan", "--parent", "eth0", "--mode", "l3s", "--flag", "private",
        ]);
        assert_eq!(
            k,
            Ipvlan::new("eth0", IpvlanMode::L3s)
                .flag(IpvlanFlag::Private)
                .into()
        );
        let (k, _) = kind(&[
            "add", "eth0.5", "vlan", "--parent", "eth0", "--id", "5", "--proto", "802.1ad",
        ]);
        assert_eq!(k, Vlan::new("eth0", 5).proto(VlanProto::Dot1Ad).into());
        let (k, a) = kind(&["add", "br0", "--netns", "/proc/1/ns/net", "bridge"]);
        assert_eq!(k, LinkKind::Bridge);
        assert_eq!(a.to_netns, Some(NetnsRef::path("/proc/1/ns/net")));
        assert!(
            parse(&[
                "add",
                "x",
                "macvlan",
                "--parent",
                "eth0",
                "--mode",
                "passthrough"
            ])
            .is_err()
        );
        assert!(
            parse(&["add", "x", "vlan", "--parent", "eth0"]).is_err(),
            "--id is required"
        );
        assert!(parse(&["add", "x", "ipvlan", "--parent", "eth0", "--mode", "l4"]).is_err());
        let Cmd::Add(a) = parse(&[
            "add",
            "x",
            "macvlan",
            "--parent",
            "e",
            "--source-mac",
            "02:00:00:00:00:01",
        ])
        .unwrap()
        .cmd
        else {
            panic!("not add")
        };
        let e = a.kind.kind().unwrap_err();
        assert!(e.to_string().contains("--mode source"), "{e}");
    }

    #[test]
    fn link_lines_show_kind_details() {
        let l = Link {
            index: 5,
            name: "mv0".into(),
            mtu: 1500,
            kind: Some("macvlan".into()),
            parent: Some(2),
            details: Some(LinkDetails::Macvlan {
                mode: MacvlanMode::Vepa,
                source_macs: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(
            link_line(&l),
            "5: mv0 mtu 1500 mac - down state unknown link 2 kind macvlan mode vepa"
        );
    }
}
