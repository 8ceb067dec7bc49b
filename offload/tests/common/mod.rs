//! Private Open vSwitch instances for the root tests: each "node" is a network namespace with
//! its own ovsdb-server and ovs-vswitchd (userspace datapath), every file in a temporary run
//! directory, never the system's /run/openvswitch. Everything is torn down on drop.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Why the root tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY-free check of the effective uid through /proc (no libc call needed).
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        return Some("needs root (network namespaces, veth pairs, ovs-vswitchd)".into());
    }
    for bin in [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovsdb-tool",
        "ovs-ofctl",
        "ovs-vsctl",
        "ip",
    ] {
        if !on_path(bin) {
            return Some(format!(
                "{bin} is not installed (apt-get install openvswitch-switch iproute2)"
            ));
        }
    }
    if !Path::new(SCHEMA).exists() {
        return Some(format!("{SCHEMA} is missing (openvswitch-common)"));
    }
    None
}

/// Prints the project's skip line and returns true when the test must not run. The line goes
/// straight to the process's stdout: the harness captures (and drops) `println!` of a passing
/// test, and `scripts/check.sh` counts these lines.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(r) => {
            use std::io::Write;
            let line = format!("SKIP {test}: {r}\n");
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
            true
        }
        None => false,
    }
}

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join(bin).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(bin).is_file())
    })
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique short name (netns, link) for this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip netns exec NS ARGS...`
    pub fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.name];
        a.extend_from_slice(args);
        sh(&a)
    }

    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut a = vec!["ip", "netns", "exec", &self.name];
        a.extend_from_slice(args);
        try_sh(&a)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// One OVS instance (ovsdb-server + ovs-vswitchd) with a private run directory, its daemons in
/// `netns` (the userspace datapath creates a tap `ovs-netdev`, so two instances need two netns).
pub struct OvsInstance {
    pub dir: tempfile::TempDir,
    pub netns: String,
    vswitchd: bool,
}

impl OvsInstance {
    /// Starts ovsdb-server and (unless `db_only`) ovs-vswitchd in `netns`.
    pub fn start(netns: &Netns) -> Self {
        Self::start_with(netns, true)
    }

    pub fn start_with(netns: &Netns, vswitchd: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ovs-test.")
            .tempdir()
            .unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let db = format!("{d}/conf.db");
        sh(&["ovsdb-tool", "create", &db, SCHEMA]);
        let inst = Self {
            dir,
            netns: netns.name.clone(),
            vswitchd: false,
        };
        inst.ns_run(&[
            "ovsdb-server",
            &db,
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/ovsdb-server.pid"),
            &format!("--unixctl={d}/ovsdb-server.ctl"),
            &format!("--log-file={d}/ovsdb-server.log"),
            "-vconsole:off",
            "--detach",
            "--no-chdir",
        ]);
        sh(&[
            "ovs-vsctl",
            &format!("--db=unix:{d}/db.sock"),
            "--no-wait",
            "init",
        ]);
        let mut inst = inst;
        if vswitchd {
            inst.start_vswitchd();
        }
        inst
    }

    pub fn start_vswitchd(&mut self) {
        let d = self.dir_str();
        self.ns_run(&[
            "ovs-vswitchd",
            &format!("unix:{d}/db.sock"),
            &format!("--pidfile={d}/ovs-vswitchd.pid"),
            &format!("--unixctl={d}/ovs-vswitchd.ctl"),
            &format!("--log-file={d}/ovs-vswitchd.log"),
            "-vconsole:off",
            "--detach",
            "--no-chdir",
        ]);
        self.vswitchd = true;
    }

    /// Stops ovs-vswitchd (with `--cleanup`: removes its taps).
    pub fn stop_vswitchd(&mut self) {
        if self.vswitchd {
            stop(&self.dir_str(), "ovs-vswitchd", true);
            self.vswitchd = false;
        }
    }

    fn ns_run(&self, args: &[&str]) {
        let d = self.dir_str();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(args)
            .env("OVS_RUNDIR", &d)
            .env("OVS_LOGDIR", &d)
            .env("OVS_DBDIR", &d)
            .env("OVS_SYSCONFDIR", &d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn dir_str(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    pub fn db_sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    pub fn remote(&self) -> offload::Remote {
        offload::Remote::unix(self.db_sock())
    }

    pub fn vswitchd_ctl(&self) -> PathBuf {
        self.dir.path().join("ovs-vswitchd.ctl")
    }

    /// `ovs-vsctl --db=unix:DIR/db.sock ARGS...`
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}/db.sock", self.dir_str());
        let mut a = vec!["ovs-vsctl", &db, "--timeout=10"];
        a.extend_from_slice(args);
        sh(&a)
    }

    /// `ovs-appctl -t DIR/ovs-vswitchd.ctl ARGS...`
    pub fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.vswitchd_ctl();
        let mut a = vec!["ovs-appctl", "-t", ctl.to_str().unwrap()];
        a.extend_from_slice(args);
        sh(&a)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ovs-vswitchd.log")).unwrap_or_default()
    }
}

fn stop(d: &str, daemon: &str, cleanup: bool) {
    let ctl = format!("{d}/{daemon}.ctl");
    let mut a = vec!["-t", ctl.as_str(), "exit"];
    if cleanup {
        a.push("--cleanup");
    }
    let _ = Command::new("ovs-appctl").args(&a).output();
    // The daemon may still be finishing: wait for its pid to go away, then insist.
    if let Ok(pid) = std::fs::read_to_string(format!("{d}/{daemon}.pid")) {
        let pid = pid.trim().to_string();
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg(&pid).output();
    }
}

impl Drop for OvsInstance {
    fn drop(&mut self) {
        let d = self.dir_str();
        self.stop_vswitchd();
        stop(&d, "ovsdb-server", false);
    }
}
