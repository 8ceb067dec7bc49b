//! The `smartnic` binary invoked exactly as a runtime invokes it (CNI_* environment, config on
//! stdin, result or error on stdout), on the running kernel, inside a private "host" namespace
//! (`ip netns exec`) with a veth master, so the machine's own links are never touched. Results
//! are checked against the spec's shape for each version. Needs root; without it the tests say
//! `SKIP` and return.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_skip;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_smartnic");

fn root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() && Command::new("ip").arg("-V").output().is_ok() {
        return true;
    }
    common_skip::skip(
        test,
        "needs root and iproute2 (creates network namespaces and veths)",
    );
    false
}

fn sh(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A named namespace (`/run/netns/NAME`), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Self {
        let _ = sh(&["netns", "del", &name]);
        assert!(sh(&["netns", "add", &name]), "ip netns add {name}");
        Self(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["netns", "del", &self.0]);
    }
}

struct Lab {
    host: Netns,
    state: tempfile::TempDir,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let host = Netns::new(format!("smc-h-{tag}-{}", std::process::id()));
        assert!(sh(&[
            "-n", &host.0, "link", "add", "m0", "type", "veth", "peer", "name", "m0p"
        ]));
        assert!(sh(&["-n", &host.0, "link", "set", "m0", "up"]));
        assert!(sh(&["-n", &host.0, "link", "set", "m0p", "up"]));
        Self {
            host,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the plugin in the lab's host namespace: (exit ok, stdout JSON or Null).
    fn run(
        &self,
        cmd: &str,
        id: &str,
        netns: &Path,
        conf: &Value,
        extra_env: &[(&str, &str)],
    ) -> (bool, Value) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host.0, BIN])
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "net1")
            .env("CNI_PATH", "/usr/lib/cni")
            .env("SMARTNIC_CNI_STATE_DIR", self.state.path().join("state"))
            .env("SMARTNIC_CNI_ALLOW_LIST", self.allow_list())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), v)
    }

    /// The administrator's allow-list of the lab's node: the veth master and the IPAM directory.
    fn allow_list(&self) -> PathBuf {
        let path = self.state.path().join("allow-list.json");
        let list = serde_json::json!({"masters": [{"name": "m0"}],
            "ipamDataDirs": [self.state.path().join("ipam")]});
        std::fs::write(&path, list.to_string()).unwrap();
        path
    }

    fn conf(&self, version: &str, mode: &str, macvlan_mode: &str) -> Value {
        let mut c = serde_json::json!({
            "cniVersion": version, "name": "rootnet", "type": "smartnic", "mode": mode, "master": "m0",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.91.0.0/24", "gateway": "10.91.0.1"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.state.path().join("ipam").to_str().unwrap()}
        });
        if mode == "macvlan" {
            c["macvlanMode"] = macvlan_mode.into();
        } else {
            c["ipvlanMode"] = macvlan_mode.into();
        }
        c
    }

    fn leases(&self) -> usize {
        std::fs::read_dir(self.state.path().join("ipam/rootnet"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .parse::<std::net::IpAddr>()
                            .is_ok()
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

/// The result's shape as the spec gives it for `version`; our one extension key is namespaced.
fn check_result_shape(v: &Value, version: &str, netns: &Path) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("result is not an object: {v}"));
    assert_eq!(obj["cniVersion"], version);
    for k in obj.keys() {
        assert!(
            ["cniVersion", "interfaces", "ips", "routes", "dns"].contains(&k.as_str())
                || k.contains('/'),
            "unexpected result key {k}"
        );
    }
    let ifaces = obj["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 1);
    let i = &ifaces[0];
    assert_eq!(i["name"], "net1");
    assert_eq!(i["sandbox"], netns.to_str().unwrap());
    let mac = i["mac"].as_str().unwrap();
    assert!(mac.parse::<nic::netlink::MacAddr>().is_ok(), "mac {mac}");
    let v11 = ["mtu", "socketPath", "pciID"];
    for k in i.as_object().unwrap().keys() {
        let allowed = ["name", "mac", "sandbox"].contains(&k.as_str())
            || (version == "1.1.0" && v11.contains(&k.as_str()));
        assert!(allowed, "interfaces[0].{k} is not in spec {version}");
    }
    for ip in obj["ips"].as_array().unwrap() {
        let addr = ip["address"].as_str().unwrap();
        assert!(addr.parse::<smartnic_cni::cidr::Cidr>().is_ok(), "{addr}");
        assert_eq!(ip["interface"], 0);
        if let Some(gw) = ip.get("gateway") {
            assert!(gw.as_str().unwrap().parse::<std::net::IpAddr>().is_ok());
        }
        match version {
            "0.4.0" => assert_eq!(ip["version"], "4"),
            _ => assert!(ip.get("version").is_none(), "ips[].version is 0.4.0 only"),
        }
    }
    for r in obj
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(
            r["dst"]
                .as_str()
                .unwrap()
                .parse::<smartnic_cni::cidr::Cidr>()
                .is_ok()
        );
    }
}

#[test]
fn macvlan_in_every_mode_through_the_binary() {
    if !root("macvlan_in_every_mode_through_the_binary") {
        return;
    }
    let lab = Lab::new("mv");
    for (i, (mode, version)) in [
        ("bridge", "1.1.0"),
        ("private", "1.0.0"),
        ("vepa", "0.4.0"),
        ("passthru", "1.1.0"),
        ("source", "1.1.0"),
    ]
    .into_iter()
    .enumerate()
    {
        let pod = Netns::new(format!("smc-p{i}-{}", std::process::id()));
        let mut conf = lab.conf(version, "macvlan", mode);
        if mode == "source" {
            conf["macvlanSourceMacs"] = serde_json::json!(["02:00:00:00:5e:01"]);
        }
        let id = format!("mv{i}");
        let (ok, res) = lab.run("ADD", &id, &pod.path(), &conf, &[]);
        assert!(ok, "{mode} ADD: {res}");
        check_result_shape(&res, version, &pod.path());
        assert!(
            pod.ip(&["-d", "link", "show", "net1"])
                .contains(&format!("macvlan mode {mode}")),
            "{}",
            pod.ip(&["-d", "link"])
        );
        let addr = res["ips"][0]["address"].as_str().unwrap().to_string();
        assert!(pod.ip(&["addr", "show", "net1"]).contains(&addr));
        assert!(
            pod.ip(&["route"])
                .contains("default via 10.91.0.1 dev net1"),
            "{}",
            pod.ip(&["route"])
        );
        // The same ifname again: refused, nothing leaked.
        let (ok, err) = lab.run("ADD", &format!("{id}-dup"), &pod.path(), &conf, &[]);
        assert!(
            !ok && err["msg"].as_str().unwrap().contains("already exists"),
            "{err}"
        );
        assert_eq!(lab.leases(), 1);
        // CHECK passes, then detects a removed address.
        let mut check = conf.clone();
        check["prevResult"] = res.clone();
        if version != "0.4.0" || mode != "vepa" {
            let (ok, out) = lab.run("CHECK", &id, &pod.path(), &check, &[]);
            assert!(ok, "{mode} CHECK: {out}");
        }
        assert!(sh(&["-n", &pod.0, "addr", "del", &addr, "dev", "net1"]));
        let (ok, out) = lab.run("CHECK", &id, &pod.path(), &check, &[]);
        assert!(!ok, "CHECK passed without the address");
        assert!(out["msg"].as_str().unwrap().contains("is missing"), "{out}");
        // DEL, twice.
        for _ in 0..2 {
            let (ok, out) = lab.run("DEL", &id, &pod.path(), &conf, &[]);
            assert!(ok, "{mode} DEL: {out}");
        }
        assert!(!pod.ip(&["link"]).contains("net1"));
        assert_eq!(lab.leases(), 0);
    }
    // DEL with the pod's namespace already gone.
    let pod = Netns::new(format!("smc-gone-{}", std::process::id()));
    let conf = lab.conf("1.1.0", "macvlan", "bridge");
    let path = pod.path();
    assert!(lab.run("ADD", "gone", &path, &conf, &[]).0);
    drop(pod);
    let (ok, out) = lab.run("DEL", "gone", &path, &conf, &[]);
    assert!(ok, "DEL with a missing netns: {out}");
    assert_eq!(lab.leases(), 0);
    // STATUS (master present) and VERSION.
    assert!(lab.run("STATUS", "", Path::new(""), &conf, &[]).0);
    let (ok, v) = lab.run(
        "VERSION",
        "",
        Path::new(""),
        &serde_json::json!({"cniVersion": "1.0.0"}),
        &[],
    );
    assert!(ok);
    assert_eq!(
        v["supportedVersions"],
        serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn ipvlan_modes_or_a_plain_error() {
    if !root("ipvlan_modes_or_a_plain_error") {
        return;
    }
    let lab = Lab::new("ipv");
    let probe = sh(&[
        "-n",
        &lab.host.0,
        "link",
        "add",
        "probe0",
        "link",
        "m0",
        "type",
        "ipvlan",
        "mode",
        "l2",
    ]);
    let pod = Netns::new(format!("smc-ipv-{}", std::process::id()));
    if !probe {
        let (ok, err) = lab.run(
            "ADD",
            "ipv",
            &pod.path(),
            &lab.conf("1.1.0", "ipvlan", "l2"),
            &[],
        );
        assert!(!ok);
        let msg = err["msg"].as_str().unwrap();
        assert!(msg.contains("no ipvlan support"), "{msg}");
        assert_eq!(lab.leases(), 0);
        common_skip::skip(
            "ipvlan_modes_or_a_plain_error",
            &format!("this kernel has no ipvlan (the ADD said: {msg})"),
        );
        return;
    }
    let _ = sh(&["-n", &lab.host.0, "link", "del", "probe0"]);
    for mode in ["l2", "l3", "l3s"] {
        let conf = lab.conf("1.1.0", "ipvlan", mode);
        let (ok, res) = lab.run("ADD", "ipv", &pod.path(), &conf, &[]);
        assert!(ok, "ipvlan {mode}: {res}");
        // iproute2 prints "ipvlan  mode l3s bridge": the word after "ipvlan mode" is the mode
        // (compared as a word, so l3 never passes for l3s)
        let shown = pod.ip(&["-d", "link", "show", "net1"]);
        let words: Vec<&str> = shown.split_whitespace().collect();
        assert!(
            words
                .windows(3)
                .any(|w| w[0] == "ipvlan" && w[1] == "mode" && w[2] == mode),
            "ipvlan {mode}: the link shows {shown}"
        );
        assert!(lab.run("DEL", "ipv", &pod.path(), &conf, &[]).0);
    }
}

#[test]
fn a_crash_at_every_step_then_del_leaves_nothing() {
    if !root("a_crash_at_every_step_then_del_leaves_nothing") {
        return;
    }
    let lab = Lab::new("crash");
    let pod = Netns::new(format!("smc-crash-{}", std::process::id()));
    let conf = lab.conf("1.1.0", "macvlan", "bridge");
    let rounds: usize = std::env::var("ROOT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut crashes = 0;
    for round in 0..rounds {
        for step in ["begin", "link-create", "ipam", "addresses", "done"] {
            let id = format!("crash-{round}-{step}");
            let (ok, _) = lab.run(
                "ADD",
                &id,
                &pod.path(),
                &conf,
                &[("SMARTNIC_CNI_FAILPOINT", step)],
            );
            assert!(!ok, "the ADD was to abort after {step}");
            crashes += 1;
            let (ok, out) = lab.run("DEL", &id, &pod.path(), &conf, &[]);
            assert!(ok, "DEL after a crash at {step}: {out}");
            assert!(
                !pod.ip(&["link"]).contains("net1"),
                "link left after a crash at {step}"
            );
            assert_eq!(lab.leases(), 0, "lease left after a crash at {step}");
            assert_eq!(
                std::fs::read_dir(lab.state.path().join("state/attachments"))
                    .unwrap()
                    .count(),
                0
            );
        }
    }
    println!("{crashes} killed ADDs (abort at each step), each followed by a DEL: nothing left");
}

/// CNI 1.1 `GC` through the binary on the running kernel: of three macvlan attachments, the
/// one the runtime still lists in `cni.dev/valid-attachments` keeps its link and its lease; a
/// stale one in a pod namespace that still exists loses both; a stale one whose namespace the
/// runtime already deleted loses its lease and its record.
#[test]
fn gc_through_the_binary_releases_stale_attachments_and_keeps_valid_ones() {
    if !root("gc_through_the_binary_releases_stale_attachments_and_keeps_valid_ones") {
        return;
    }
    let lab = Lab::new("gc");
    let conf = lab.conf("1.1.0", "macvlan", "bridge");
    let mut pods: Vec<Netns> = (0..3)
        .map(|i| Netns::new(format!("smc-gc{i}-{}", std::process::id())))
        .collect();
    let ids = ["gc-keep", "gc-stale", "gc-gone"];
    let mut results = Vec::new();
    for (id, pod) in ids.iter().zip(&pods) {
        let (ok, res) = lab.run("ADD", id, &pod.path(), &conf, &[]);
        assert!(ok, "ADD {id}: {res}");
        results.push(res);
    }
    assert_eq!(lab.leases(), 3);
    let records = || {
        std::fs::read_dir(lab.state.path().join("state/attachments"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(records(), 3);
    // the runtime deleted the third pod's namespace without a DEL (a node crash, say)
    let gone = pods.pop().unwrap();
    let gone_path = gone.path();
    drop(gone);
    assert!(!gone_path.exists());

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "gc-keep", "ifname": "net1"}]);
    let (ok, out) = lab.run("GC", "", Path::new(""), &gc, &[]);
    assert!(ok, "GC: {out}");
    assert!(
        pods[0].ip(&["link"]).contains("net1"),
        "GC removed the valid attachment's link"
    );
    assert!(
        !pods[1].ip(&["link"]).contains("net1"),
        "GC left the stale attachment's link"
    );
    assert_eq!(
        lab.leases(),
        1,
        "GC: only the valid attachment's lease stays"
    );
    assert_eq!(records(), 1, "GC: only the valid attachment's record stays");
    let mut check = conf.clone();
    check["prevResult"] = results[0].clone();
    let (ok, out) = lab.run("CHECK", "gc-keep", &pods[0].path(), &check, &[]);
    assert!(ok, "CHECK of the kept attachment after GC: {out}");
    // a second GC with the same list changes nothing
    let (ok, out) = lab.run("GC", "", Path::new(""), &gc, &[]);
    assert!(ok, "second GC: {out}");
    assert_eq!((lab.leases(), records()), (1, 1));
    let (ok, out) = lab.run("DEL", "gc-keep", &pods[0].path(), &conf, &[]);
    assert!(ok, "DEL: {out}");
    assert_eq!(lab.leases(), 0);
    drop(pods);
}
