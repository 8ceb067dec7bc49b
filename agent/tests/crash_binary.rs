//! Crash safety of the real `smartnic-agent` binary: killed with SIGKILL at every step boundary
//! of a multi-PF plan (`agent::failpoint`), then started again, it converges to the same end
//! state as an uninterrupted run, with nothing half-applied.
//!
//! The host is a fixture tree of three mlx5-like PFs (`nic::fixtures`). A test thread plays the
//! kernel: it settles the tree after the agent's sysfs writes (VFs appear for a new
//! `sriov_numvfs`, `bind`/`unbind`/`drivers_probe` move drivers) and copies the MTUs of the PF
//! netdevs into the tree. The agent runs in a private network namespace in which the PF netdevs
//! are veths of the same names, so its netlink steps (PF MTU, PF up) reach a real kernel. The
//! PFs show no MAC: VF MACs are set through the PF (`ip link set PF vf N mac M`), which no
//! virtual link of this kernel implements; the lab's `agent` suite kills the agent at those
//! steps on real igb PFs.
//!
//! The plan goes from a spec applied earlier (2 VFs on each PF) to 4 VFs with two on vfio-pci
//! and MTU 9000 on the first PF, 3 VFs on vfio-pci on the second, and the third PF released
//! (reset to 0 VFs). Each cycle: a fresh tree, the agent stopped at one boundary and killed
//! (sometimes twice in a row: the restart is killed too), then one uninterrupted restart; the
//! whole state (every file and link of the tree, the state file, the device-plugin hand-off,
//! the PF links) must equal that of a run that was never killed.
//!
//! Needs root (network namespaces) and `ip`; without them the test prints `SKIP <name>: ...`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crds::inventory::EswitchMode;
use crds::node_state::{InterfaceSpec, NicNodeStateSpec, VfGroup, VfIndexRange};
use crds::policy::VfDeviceType;
use nic::fixtures::{FakeHost, HostBuilder};
use nic::netlink::NetlinkHandle;
use nic::netns::{NetnsRef, run_in_netns_here};

const BIN: &str = env!("CARGO_BIN_EXE_smartnic-agent");
const TEST: &str = "sigkill_at_every_step_boundary_converges_to_the_uninterrupted_state";
const PFS: [(&str, &str); 3] = [
    ("0000:c0:00.0", "gen0np0"),
    ("0000:c2:00.0", "gen1np0"),
    ("0000:c4:00.0", "gen2np0"),
];
/// Kill cycles at least.
const CYCLES: usize = 200;

fn skip(reason: &str) {
    let line = format!("SKIP {TEST}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace with a veth per PF netdev, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("smartnic-crash-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        for (i, (_, pf)) in PFS.iter().enumerate() {
            let peer = format!("peer{i}");
            sh(&[
                "ip", "-n", &ns.0, "link", "add", pf, "type", "veth", "peer", "name", &peer,
            ]);
        }
        ns
    }

    /// The PF links as a fresh host shows them: down, MTU 1500.
    fn reset_links(&self) {
        for (_, pf) in PFS {
            sh(&[
                "ip", "-n", &self.0, "link", "set", pf, "down", "mtu", "1500",
            ]);
        }
    }

    fn netns_ref(&self) -> NetnsRef {
        NetnsRef::path(format!("/run/netns/{}", self.0))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The fixture host: three PFs with 2 VFs each on their kernel driver, no PF MAC.
fn fixture(root: &Path) -> FakeHost {
    let mut b = HostBuilder::new()
        .generated(3, 2, EswitchMode::Legacy)
        .driver_loaded("vfio-pci");
    for (pci, _) in PFS {
        b = b.edit_pf(pci, |pf| {
            pf.total_vfs = 8;
            pf.function.netdevs[0].mac = String::new();
        });
    }
    b.build_in(root).unwrap()
}

fn iface(pci: &str, name: &str, groups: Vec<(u32, u32, VfDeviceType)>) -> InterfaceSpec {
    let num_vfs = groups.iter().map(|g| g.1 + 1).max().unwrap_or(0);
    InterfaceSpec {
        pci_address: pci.into(),
        name: Some(name.into()),
        num_vfs,
        policy: "crash".into(),
        vf_groups: groups
            .into_iter()
            .map(|(first, last, device_type)| VfGroup {
                policy: "crash".into(),
                resource_name: match device_type {
                    VfDeviceType::Netdevice => "crash_net".into(),
                    VfDeviceType::VfioPci => "crash_vfio".into(),
                },
                vfs: vec![VfIndexRange { first, last }],
                device_type,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn spec(interfaces: Vec<InterfaceSpec>) -> NicNodeStateSpec {
    planner::device_plugin::with_device_plugin_config(
        NicNodeStateSpec {
            interfaces,
            ..Default::default()
        },
        "smartnic.io",
    )
}

/// What the host showed before: 2 netdevice VFs on each PF.
fn before() -> NicNodeStateSpec {
    spec(
        PFS.iter()
            .map(|(pci, name)| iface(pci, name, vec![(0, 1, VfDeviceType::Netdevice)]))
            .collect(),
    )
}

/// The spec of the plan under test.
fn after() -> NicNodeStateSpec {
    let mut first = iface(
        PFS[0].0,
        PFS[0].1,
        vec![
            (0, 1, VfDeviceType::Netdevice),
            (2, 3, VfDeviceType::VfioPci),
        ],
    );
    first.mtu = Some(9000);
    let second = iface(PFS[1].0, PFS[1].1, vec![(0, 2, VfDeviceType::VfioPci)]);
    spec(vec![first, second])
}

/// A write to a request file (`drivers/<drv>/bind|unbind`, `drivers_probe`): the file and the
/// PCI address written.
type Request = (PathBuf, String);

/// The request files of the tree become FIFOs, each read by a relay thread that passes every
/// write on: with plain files, two PF threads writing `unbind` of one driver at once would
/// overwrite each other, which a kernel never does.
struct Relays {
    fifos: Vec<PathBuf>,
    threads: Vec<JoinHandle<()>>,
}

impl Relays {
    fn start(host: &FakeHost, tx: &Sender<Request>) -> Self {
        let sysfs = host.sysfs();
        let mut fifos = vec![sysfs.pci_drivers_probe()];
        for e in std::fs::read_dir(sysfs.pci_drivers_dir())
            .unwrap()
            .flatten()
        {
            fifos.push(e.path().join("bind"));
            fifos.push(e.path().join("unbind"));
        }
        let mut threads = Vec::new();
        for f in &fifos {
            let _ = std::fs::remove_file(f);
            sh(&["mkfifo", &f.display().to_string()]);
            // read and write: opening never blocks, and reads never see an end of file
            let mut fifo = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(f)
                .unwrap();
            let (tx, path) = (tx.clone(), f.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = std::io::Read::read(&mut fifo, &mut buf).unwrap_or(0);
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    // writes of PCI addresses (12 characters) may arrive joined
                    let text: String = text.split_whitespace().collect();
                    if text.contains("STOP") || n == 0 {
                        return;
                    }
                    let chars: Vec<char> = text.chars().collect();
                    for a in chars.chunks(12) {
                        let _ = tx.send((path.clone(), a.iter().collect()));
                    }
                }
            }));
        }
        Self { fifos, threads }
    }

    fn stop(self) {
        for f in &self.fifos {
            std::fs::write(f, "STOP").unwrap();
        }
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// The test's kernel: handles the request writes, settles the tree (VF counts) and copies the
/// PF MTUs from the namespace into it, until stopped; a last round runs after the stop, so the
/// tree is quiet when it returns.
struct Kernel {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(FakeHost, Receiver<Request>)>,
}

/// Handles the requests: unbinds first, then binds (a thread writes `unbind` before `bind`,
/// and the relays may pass them on in either order); a bind of a function still on another
/// driver waits until its unbind came.
fn handle(host: &FakeHost, pending: &mut Vec<(Request, Instant)>) {
    pending.sort_by_key(|((f, _), _)| f.file_name() != Some("unbind".as_ref()));
    let mut later = Vec::new();
    for ((file, addr), since) in pending.drain(..) {
        let bound = std::fs::symlink_metadata(host.device_dir(&addr).join("driver")).is_ok();
        let is_bind = file.file_name() != Some("unbind".as_ref());
        if is_bind && bound && since.elapsed() < Duration::from_secs(1) {
            later.push(((file, addr), since));
            continue;
        }
        host.request(&file, &addr).expect("request");
    }
    *pending = later;
}

fn settle_round(host: &FakeHost, rt: &tokio::runtime::Runtime) {
    host.settle().expect("settle");
    let links = rt
        .block_on(async { NetlinkHandle::connect()?.link().list().execute().await })
        .expect("links of the namespace");
    for l in links {
        let mtu = host.path(format!("sys/class/net/{}/mtu", l.name));
        if let Ok(old) = std::fs::read_to_string(&mtu)
            && old.trim() != l.mtu.to_string()
        {
            std::fs::write(&mtu, format!("{}\n", l.mtu)).unwrap();
        }
    }
}

impl Kernel {
    fn start(host: FakeHost, rx: Receiver<Request>, netns: NetnsRef) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            run_in_netns_here(&netns, || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut pending = Vec::new();
                loop {
                    let stopping = flag.load(Ordering::SeqCst);
                    if let Ok(r) = rx.recv_timeout(Duration::from_millis(3)) {
                        pending.push((r, Instant::now()));
                        // let a write that came just before on another relay arrive too
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    pending.extend(rx.try_iter().map(|r| (r, Instant::now())));
                    handle(&host, &mut pending);
                    settle_round(&host, &rt);
                    if stopping && pending.is_empty() {
                        break;
                    }
                }
                // the agent is gone: a write it was killed in the middle of (truncated, not yet
                // written) never happened, as a sysfs write is one call into the driver
                for (pci, _) in PFS {
                    let dir = host.device_dir(pci);
                    let numvfs = dir.join("sriov_numvfs");
                    if std::fs::read_to_string(&numvfs).is_ok_and(|s| s.trim().is_empty()) {
                        let vfs = std::fs::read_dir(&dir)
                            .unwrap()
                            .flatten()
                            .filter(|e| e.file_name().to_string_lossy().starts_with("virtfn"))
                            .count();
                        std::fs::write(&numvfs, format!("{vfs}\n")).unwrap();
                    }
                }
                settle_round(&host, &rt);
            })
            .expect("enter the namespace");
            (host, rx)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (FakeHost, Receiver<Request>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the kernel thread")
    }
}

/// One cycle's files.
struct Host {
    dir: tempfile::TempDir,
    host: Option<(FakeHost, Receiver<Request>)>,
    relays: Option<Relays>,
}

impl Host {
    fn new(netns: &Netns, boot_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = fixture(&dir.path().join("root"));
        let (tx, rx) = std::sync::mpsc::channel();
        let relays = Relays::start(&host, &tx);
        let state = serde_json::json!({ "bootId": boot_id, "applied": before() });
        std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        std::fs::write(
            dir.path().join("spec.json"),
            serde_json::to_string(&after()).unwrap(),
        )
        .unwrap();
        netns.reset_links();
        Self {
            dir,
            host: Some((host, rx)),
            relays: Some(relays),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(r) = self.relays.take() {
            r.stop();
        }
    }
}

/// How a run of the agent ended.
#[derive(Debug)]
enum Run {
    /// Stopped at the crash point (its name) and killed.
    Killed(String),
    /// Ran to its end: exit status, stdout, stderr.
    Ended(Option<i32>, String, String),
}

fn run_agent(netns: &Netns, h: &mut Host, point: Option<&str>) -> Run {
    let (host, rx) = h.host.take().unwrap();
    let kernel = Kernel::start(host, rx, netns.netns_ref());
    let d = h.dir.path();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns.0, BIN, "--spec-file"])
        .arg(d.join("spec.json"))
        .arg("--allow-disruption")
        .arg("--host-root")
        .arg(h.root())
        .arg("--state-file")
        .arg(d.join("state.json"))
        .arg("--device-plugin-file")
        .arg(d.join("dp.json"))
        .env("RUST_LOG", "warn")
        .env_remove(agent::failpoint::ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = point {
        cmd.env(agent::failpoint::ENV, p);
    }
    let mut child = cmd.spawn().expect("ip netns exec smartnic-agent");
    let stdout = child.stdout.take().unwrap();
    let out_reader =
        std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let mut err = String::new();
    let mut killed = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        if let Some(rest) = line.strip_prefix("failpoint ") {
            child.kill().expect("SIGKILL");
            killed = rest
                .split_whitespace()
                .nth(1)
                .map(|n| n.trim_end_matches(':').to_owned());
            break;
        }
        err.push_str(&line);
        err.push('\n');
    }
    let status = child.wait().unwrap();
    let out = out_reader.join().unwrap();
    h.host = Some(kernel.stop());
    match killed {
        Some(name) => {
            assert_eq!(status.signal(), Some(9), "killed by SIGKILL at {name}");
            Run::Killed(name)
        }
        None => Run::Ended(status.code(), out, err),
    }
}

/// Everything that tells one end state from another: the tree (files by content, links by
/// target; `ifindex` aside, it counts creations), the state and hand-off files, the PF links.
fn end_state(netns: &Netns, h: &Host) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let root = h.root();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else if !ft.is_file() {
                out.insert(rel, "fifo".into());
            } else if e.file_name() != "ifindex" {
                out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    for f in ["state.json", "dp.json"] {
        let text = std::fs::read_to_string(h.dir.path().join(f)).unwrap_or_default();
        out.insert(format!("file {f}"), text);
    }
    let links = Command::new("ip")
        .args(["-n", &netns.0, "-o", "link", "show"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&links.stdout).lines() {
        // `N: name@peer: <FLAGS> mtu M ...`: the index aside
        let l = l.split_once(": ").map(|x| x.1).unwrap_or(l);
        let l = l.split(" link/").next().unwrap_or(l);
        if let Some((name, rest)) = l.split_once(": ") {
            out.insert(format!("link {name}"), rest.to_owned());
        }
    }
    out
}

fn diff(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: want {:?}, got {:?}", want.get(k), got.get(k)))
        .collect()
}

fn ended_in_sync(r: &Run, what: &str) -> String {
    match r {
        Run::Ended(Some(0), out, _) if out.trim_end().ends_with("in sync") => out.clone(),
        Run::Ended(code, out, err) => {
            panic!("{what}: the run did not end in sync: exit {code:?}\n{out}\n{err}")
        }
        Run::Killed(point) => panic!("{what}: the run stopped at {point}"),
    }
}

/// A small deterministic sequence for the second kill of a chained cycle.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn sigkill_at_every_step_boundary_converges_to_the_uninterrupted_state() {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        skip("needs root (network namespaces)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        // `ip` comes with iproute2, which CI installs: a missing tool fails under CI=true
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ip is missing"
        );
        skip("the ip tool is not installed");
        return;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned();
    let netns = Netns::new();
    let started = Instant::now();

    // the uninterrupted run, and a second one that finds nothing to do
    let mut h = Host::new(&netns, &boot_id);
    let out = ended_in_sync(&run_agent(&netns, &mut h, None), "the uninterrupted run");
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("plan:")).collect();
    println!("uninterrupted: {steps:?}");
    let want = end_state(&netns, &h);
    let again = ended_in_sync(&run_agent(&netns, &mut h, None), "a second run");
    assert!(again.contains("plan: 0 step(s)"), "not idempotent: {again}");
    assert!(diff(&want, &end_state(&netns, &h)).is_empty());
    drop(h);

    // every boundary by number, until a run passes them all; then by name, each step kind
    // before and after; then chained kills; round after round until CYCLES kills
    let mut kills = 0usize;
    let mut points: BTreeMap<String, usize> = BTreeMap::new();
    let mut boundaries = None;
    let mut lcg = Lcg(21);
    let mut round = 0;
    let kinds = ["set-num-vfs", "wait-vfs", "pf-mtu", "pf-up", "bind-vfs"];
    let named: Vec<String> = ["recorded", "published", "pf-done", "steps-done", "applied"]
        .iter()
        .map(|s| s.to_string())
        .chain(
            kinds
                .iter()
                .flat_map(|k| [format!("before:{k}"), format!("after:{k}")]),
        )
        .collect();
    while kills < CYCLES || round < 2 {
        let mut queue: Vec<(String, Option<String>)> = Vec::new();
        match (round, boundaries) {
            (0, _) => {
                let mut n = 1;
                loop {
                    let mut h = Host::new(&netns, &boot_id);
                    match run_agent(&netns, &mut h, Some(&n.to_string())) {
                        Run::Killed(name) => {
                            kills += 1;
                            *points.entry(name.clone()).or_default() += 1;
                            let r = run_agent(&netns, &mut h, None);
                            ended_in_sync(&r, &format!("the restart after boundary {n} ({name})"));
                            let d = diff(&want, &end_state(&netns, &h));
                            assert!(d.is_empty(), "killed at boundary {n} ({name}): {d:#?}");
                        }
                        r @ Run::Ended(..) => {
                            ended_in_sync(&r, &format!("a run armed at boundary {n}"));
                            boundaries = Some(n - 1);
                            break;
                        }
                    }
                    n += 1;
                }
            }
            (1, _) => queue.extend(named.iter().map(|p| (p.clone(), None))),
            (_, Some(total)) => {
                for n in 1..=total {
                    let second = 1 + lcg.below(total);
                    queue.push((n.to_string(), Some(second.to_string())));
                }
            }
            (_, None) => unreachable!(),
        }
        for (first, second) in queue {
            let mut h = Host::new(&netns, &boot_id);
            for p in std::iter::once(&first).chain(second.as_ref()) {
                match run_agent(&netns, &mut h, Some(p)) {
                    Run::Killed(name) => {
                        kills += 1;
                        *points.entry(name).or_default() += 1;
                    }
                    // the restart's plan is shorter: its boundary may not come
                    r @ Run::Ended(..) => {
                        ended_in_sync(&r, &format!("a run armed at {p}"));
                    }
                }
            }
            let r = run_agent(&netns, &mut h, None);
            ended_in_sync(&r, &format!("the restart after {first} {second:?}"));
            let d = diff(&want, &end_state(&netns, &h));
            assert!(d.is_empty(), "killed at {first} then {second:?}: {d:#?}");
        }
        round += 1;
    }
    println!(
        "{kills} kills over {} boundaries in {:.1} s; points: {points:?}",
        boundaries.unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    for p in &named {
        assert!(points.contains_key(p), "no kill at {p}");
    }
    assert!(kills >= CYCLES);
}
