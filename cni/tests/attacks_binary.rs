//! What a tenant who may write a NicNetwork or a NetworkAttachmentDefinition (or a pod's
//! annotations) can put in front of the `smartnic` binary, which runs as root on every node:
//! each attack goes through the real binary exactly as a runtime invokes it, and must end in a
//! CNI error object (or, for DEL of damaged state, in a clean DEL) with nothing written outside
//! the plugin's own directories. Every attack runs in a fresh directory tree so that "nothing
//! written" is checked by listing it.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_smartnic");

/// One sandbox: the plugin's state, log and allow-list paths, and a "host" directory standing
/// for the rest of the node, where nothing may appear.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let s = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(s.host()).unwrap();
        s
    }
    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }
    fn logs(&self) -> PathBuf {
        self.tmp.path().join("log")
    }
    fn allow_list(&self) -> PathBuf {
        self.tmp.path().join("allow.json")
    }
    /// Stands for the node outside our directories (and is the plugin's working directory).
    fn host(&self) -> PathBuf {
        self.tmp.path().join("host")
    }

    /// Runs `cmd` with `conf` on stdin: (exit ok, stdout JSON or Null).
    fn run(&self, cmd: &str, env: &[(&str, &str)], stdin: &[u8]) -> (bool, Value) {
        let mut c = Command::new(BIN);
        c.current_dir(self.host())
            .env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", "c1")
            .env("CNI_IFNAME", "net1")
            .env("CNI_NETNS", "/var/run/netns/nonexistent-smartnic-test")
            .env("CNI_PATH", "/nonexistent")
            .env("SMARTNIC_CNI_STATE_DIR", self.state())
            .env("SMARTNIC_CNI_LOG_DIR", self.logs())
            .env("SMARTNIC_CNI_ALLOW_LIST", self.allow_list())
            .env("SMARTNIC_CNI_READY_FILE", self.tmp.path().join("ready"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        // A plugin that refuses early may close stdin before it is all written.
        let _ = input.write_all(stdin);
        drop(input);
        let out = child.wait_with_output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), v)
    }

    fn run_conf(&self, cmd: &str, env: &[(&str, &str)], conf: &Value) -> (bool, Value) {
        self.run(cmd, env, conf.to_string().as_bytes())
    }

    /// Every path under the sandbox's "host" directory.
    fn host_files(&self) -> Vec<PathBuf> {
        walk(&self.host())
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn sriov() -> Value {
    json!({"cniVersion": "1.1.0", "name": "tenant-net", "type": "smartnic", "mode": "sriov",
           "deviceID": "0000:3b:02.1"})
}

fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base
}

/// The refusal: exit status non-zero and a CNI error object with `code` whose message names
/// `needle`.
#[track_caller]
fn refused(out: (bool, Value), code: u64, needle: &str) {
    let (ok, v) = out;
    assert!(!ok, "accepted: {v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(
        v["msg"].as_str().unwrap_or("").contains(needle),
        "the message should name {needle:?}: {v}"
    );
    assert!(v["cniVersion"].is_string(), "{v}");
}

#[test]
fn a_log_file_outside_our_directory_is_refused() {
    let s = Sandbox::new();
    let target = s.host().join("cron.d-job");
    for path in [
        "/etc/cron.d/smartnic-tenant".to_string(),
        target.display().to_string(),
        "../host/x".into(),
        "a/b".into(),
    ] {
        refused(
            s.run_conf("ADD", &[], &with(sriov(), json!({"logFile": path}))),
            7,
            "logFile",
        );
    }
    assert!(!Path::new("/etc/cron.d/smartnic-tenant").exists());
    assert!(!s.logs().exists());
    assert_eq!(s.host_files(), Vec::<PathBuf>::new());
}

#[test]
fn a_log_file_is_a_private_file_in_our_directory_and_lines_cannot_be_forged() {
    let s = Sandbox::new();
    // DEL with an undecodable prevResult logs a warning that quotes the tenant's text.
    let conf = with(
        sriov(),
        json!({"logFile": "tenant.log", "logLevel": "debug",
               "prevResult": {"interfaces": "x\nroot ALL=(ALL) NOPASSWD: ALL\n"}}),
    );
    let (ok, v) = s.run_conf("DEL", &[], &conf);
    assert!(ok, "{v}");
    let file = s.logs().join("tenant.log");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("prevResult ignored"), "{text}");
    for line in text.lines() {
        assert!(!line.starts_with("root"), "a forged line: {text}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // a symbolic link planted in the log directory is not followed
    let victim = s.host().join("victim");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    let (ok, _) = s.run_conf("DEL", &[], &conf);
    assert!(ok);
    assert!(!victim.exists());
}

#[test]
fn an_ipam_data_dir_outside_the_allow_list_is_refused() {
    let s = Sandbox::new();
    for dir in [
        "/etc/smartnic-tenant".to_string(),
        s.host().join("ipam").display().to_string(),
    ] {
        let conf = with(
            sriov(),
            json!({"ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": dir}}),
        );
        for cmd in ["ADD", "CHECK", "GC"] {
            refused(s.run_conf(cmd, &[], &conf), 7, "ipam.dataDir");
        }
    }
    assert!(!Path::new("/etc/smartnic-tenant").exists());
    assert_eq!(s.host_files(), Vec::<PathBuf>::new());
    assert!(!s.state().exists(), "nothing was even journaled");
    // DEL: the ADD was refused, so there is nothing of ours under the path; a failing DEL would
    // be retried for ever. It succeeds, releases the rest (here: forgets the attachment's
    // journal) and writes nothing under the path.
    let journal = s.state().join("attachments").join("c1:net1");
    for dir in [
        "/etc/smartnic-tenant".to_string(),
        s.host().join("ipam").display().to_string(),
    ] {
        std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
        std::fs::write(&journal, b"garbage\n").unwrap();
        let conf = with(
            sriov(),
            json!({"ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": dir}}),
        );
        let (ok, v) = s.run_conf("DEL", &[], &conf);
        assert!(ok, "DEL with {dir}: {v}");
        assert!(!journal.exists(), "DEL went on and forgot the attachment");
    }
    assert!(!Path::new("/etc/smartnic-tenant").exists());
    assert_eq!(s.host_files(), Vec::<PathBuf>::new());
    // The administrator's list opens it.
    let dir = s.host().join("ipam");
    std::fs::write(s.allow_list(), json!({"ipamDataDirs": [dir]}).to_string()).unwrap();
    let conf = with(
        sriov(),
        json!({"ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": dir}}),
    );
    let (ok, v) = s.run_conf("DEL", &[], &conf);
    assert!(ok, "{v}");
}

#[test]
fn a_resolv_conf_outside_the_allow_list_is_dropped() {
    let s = Sandbox::new();
    let secret = s.host().join("shadow");
    std::fs::write(&secret, "nameserver 10.6.6.6\n").unwrap();
    std::fs::write(
        s.allow_list(),
        json!({"masters": [{"name": "lo"}]}).to_string(),
    )
    .unwrap();
    let conf = json!({"cniVersion": "1.1.0", "name": "tenant-net", "type": "smartnic", "mode": "macvlan",
        "master": "lo", "logFile": "t.log",
        "ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "resolvConf": secret,
                 "dataDir": s.host().join("nope")}});
    // Refused for the dataDir (DEL goes on without IPAM, and its log says why); with the
    // default dataDir the resolvConf alone is dropped and reported (checked on DEL, which
    // touches nothing of the host here).
    refused(s.run_conf("CHECK", &[], &conf), 7, "ipam.dataDir");
    let (ok, v) = s.run_conf("DEL", &[], &conf);
    assert!(ok, "{v}");
    let log = std::fs::read_to_string(s.logs().join("t.log")).unwrap();
    assert!(log.contains("DEL releases no address there"), "{log}");
    assert!(!s.host().join("nope").exists());
    let mut conf = conf;
    conf["ipam"].as_object_mut().unwrap().remove("dataDir");
    conf["ipam"]["type"] = "static".into();
    let (ok, v) = s.run_conf("DEL", &[], &conf);
    assert!(ok, "{v}");
    let log = std::fs::read_to_string(s.logs().join("t.log")).unwrap();
    assert!(
        log.contains("resolvConf") && log.contains("dropped"),
        "{log}"
    );
}

#[test]
fn shell_syntax_in_a_name_is_refused() {
    let s = Sandbox::new();
    std::fs::write(
        s.allow_list(),
        json!({"masters": [{"name": "$(touch${IFS}Y)"}], "bridges": [{"name": "$(touch${IFS}Y)"}]})
            .to_string(),
    )
    .unwrap();
    let mac = json!({"cniVersion": "1.1.0", "name": "tenant-net", "type": "smartnic", "mode": "macvlan",
        "master": "$(touch${IFS}Y)", "logFile": "t.log"});
    refused(s.run_conf("ADD", &[], &mac), 7, "master");
    let ovs = with(sriov(), json!({"mode": "ovs", "bridge": "`touch Y`"}));
    refused(s.run_conf("ADD", &[], &ovs), 7, "bridge");
    assert_eq!(s.host_files(), Vec::<PathBuf>::new());
    assert!(!s.logs().join("t.log").exists());
}

#[test]
fn a_master_or_bridge_not_granted_is_refused() {
    let s = Sandbox::new();
    let mac = json!({"cniVersion": "1.1.0", "name": "tenant-net", "type": "smartnic", "mode": "macvlan",
        "master": "eth0"});
    refused(s.run_conf("ADD", &[], &mac), 7, "allow-list");
    std::fs::write(
        s.allow_list(),
        json!({"masters": [{"name": "eth0", "namespaces": ["team-a"]}]}).to_string(),
    )
    .unwrap();
    refused(
        s.run_conf("ADD", &[("CNI_ARGS", "K8S_POD_NAMESPACE=team-b")], &mac),
        7,
        "namespace team-b",
    );
    let ovs = with(sriov(), json!({"mode": "ovs", "bridge": "br-mgmt"}));
    refused(s.run_conf("ADD", &[], &ovs), 7, "key bridge");
    assert!(!s.state().exists());
}

#[test]
fn a_percent_in_cni_ifname_is_refused() {
    let s = Sandbox::new();
    for name in ["net%d", "%s", "e%"] {
        refused(
            s.run_conf("ADD", &[("CNI_IFNAME", name)], &sriov()),
            4,
            "CNI_IFNAME",
        );
    }
    assert!(!s.state().exists());
}

#[test]
fn the_plugins_own_namespace_or_a_non_namespace_is_refused_as_cni_netns() {
    let s = Sandbox::new();
    let plain = s.host().join("file");
    std::fs::write(&plain, "").unwrap();
    for (ns, needle) in [
        ("/proc/self/ns/net", "plugin's own"),
        ("/proc/self/ns/mnt", "not a network namespace"),
        (plain.to_str().unwrap(), "not a network namespace"),
    ] {
        for cmd in ["ADD", "CHECK"] {
            refused(s.run_conf(cmd, &[("CNI_NETNS", ns)], &sriov()), 8, needle);
        }
    }
    assert!(!s.state().exists());
}

#[test]
fn a_device_other_than_the_allocated_one_is_refused() {
    let s = Sandbox::new();
    for extra in [
        json!({"runtimeConfig": {"deviceID": "0000:3b:02.7"}}),
        json!({"pciBusID": "0000:3b:02.7"}),
    ] {
        refused(
            s.run_conf("ADD", &[], &with(sriov(), extra)),
            7,
            "disagrees with deviceID 0000:3b:02.1",
        );
    }
    assert!(!s.state().exists());
    // Not in one of this node's pools (the device plugin never handed it out): refused.
    refused(s.run_conf("ADD", &[], &sriov()), 7, "this node's pools");
    std::fs::write(
        s.tmp.path().join("ready"),
        json!({"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io",
            "deviceType": "netdevice", "selectors": [{"pciAddresses": ["0000:3b:02.2"]}]}]})
        .to_string(),
    )
    .unwrap();
    let named = with(sriov(), json!({"resourceName": "smartnic.io/vf"}));
    refused(s.run_conf("ADD", &[], &named), 7, "deviceID");
    assert!(!s.state().exists());
}

#[test]
fn a_corrupt_journal_does_not_make_del_or_gc_fail() {
    let s = Sandbox::new();
    let dir = s.state().join("attachments");
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("c1:net1");
    std::fs::write(&journal, b"\xff\xfe\x00garbage\n{\"step\":\"vf-mo").unwrap();
    // another attachment's journal, damaged the same way, must not break GC of this network
    std::fs::write(dir.join("c2:net1"), b"\xff\n\x00").unwrap();
    let (ok, v) = s.run_conf(
        "GC",
        &[],
        &with(sriov(), json!({"cni.dev/valid-attachments": []})),
    );
    assert!(ok, "GC: {v}");
    let (ok, v) = s.run_conf("DEL", &[], &sriov());
    assert!(ok, "DEL: {v}");
    assert!(!journal.exists(), "DEL finished and forgot the attachment");
    let (ok, v) = s.run_conf("DEL", &[], &sriov());
    assert!(ok, "DEL again: {v}");
}

#[test]
fn an_undecodable_prev_result_blocks_neither_del_nor_gc() {
    let s = Sandbox::new();
    let conf = with(
        sriov(),
        json!({"prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "not an address"}]}}),
    );
    let (ok, v) = s.run_conf("DEL", &[], &conf);
    assert!(ok, "DEL: {v}");
    let (ok, v) = s.run_conf("GC", &[], &conf);
    assert!(ok, "GC: {v}");
    // CHECK needs it, and says so
    refused(
        s.run_conf("CHECK", &[("CNI_NETNS", "/nonexistent")], &conf),
        6,
        "cannot decode",
    );
}

#[test]
fn a_container_id_too_long_for_a_file_name_is_refused() {
    let s = Sandbox::new();
    let id = "a".repeat(256);
    for cmd in ["ADD", "DEL", "CHECK"] {
        refused(
            s.run_conf(cmd, &[("CNI_CONTAINERID", &id)], &sriov()),
            4,
            "longer than 200 bytes",
        );
    }
    assert!(!s.state().exists());
}

#[test]
fn stdin_is_bounded() {
    let s = Sandbox::new();
    let mut big =
        br#"{"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov", "pad": ""#
            .to_vec();
    big.resize(5 << 20, b'x');
    big.extend_from_slice(b"\"}");
    refused(s.run("ADD", &[], &big), 6, "larger than 4 MiB");
    assert!(!s.state().exists());
}

/// The node of a sandbox: two VFs in sysfs (returned: the sysfs root) and one pool
/// `smartnic.io/vf` holding both, offered as `allocation` says, in the node's pools file.
fn two_vf_node(s: &Sandbox, allocation: &str) -> PathBuf {
    let sys = s.tmp.path().join("sys");
    for vf in ["0000:3b:02.1", "0000:3b:02.2"] {
        let d = sys.join("bus/pci/devices").join(vf);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor"), "0x15b3\n").unwrap();
        std::fs::write(d.join("device"), "0x101e\n").unwrap();
    }
    std::fs::write(
        s.tmp.path().join("ready"),
        json!({"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io",
            "deviceType": "netdevice", "allocation": allocation,
            "selectors": [{"pciAddresses": ["0000:3b:02.1", "0000:3b:02.2"]}]}]})
        .to_string(),
    )
    .unwrap();
    sys
}

/// Two pods of one pool: the kubelet's checkpoint says which VF each got, and a pod naming the
/// other's VF (a NAD of its own with a `deviceID`) is refused, naming the pod and the device.
#[test]
fn a_vf_of_the_pool_allocated_to_another_pod_is_refused() {
    let s = Sandbox::new();
    let sys = two_vf_node(&s, "devicePlugin");
    let checkpoint = s.tmp.path().join("kubelet_internal_checkpoint");
    std::fs::write(
        &checkpoint,
        json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "uid-a", "ContainerName": "app", "ResourceName": "smartnic.io/vf",
             "DeviceIDs": {"0": ["0000:3b:02.1"]}, "AllocResp": "CgA="},
            {"PodUID": "uid-b", "ContainerName": "app", "ResourceName": "smartnic.io/vf",
             "DeviceIDs": {"0": ["0000:3b:02.2"]}, "AllocResp": "CgA="}],
            "RegisteredDevices": {"smartnic.io/vf": ["0000:3b:02.1", "0000:3b:02.2"]}},
            "Checksum": 1})
        .to_string(),
    )
    .unwrap();
    let sys = sys.display().to_string();
    let cp = checkpoint.display().to_string();
    let env = |args: &'static str| {
        [
            ("SMARTNIC_CNI_SYSFS", sys.clone()),
            ("SMARTNIC_CNI_KUBELET_CHECKPOINT", cp.clone()),
            ("CNI_ARGS", args.to_owned()),
        ]
    };
    let run = |args: &'static str| {
        let e = env(args);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.run_conf("ADD", &e, &sriov())
    };
    // pod B names pod A's VF 0000:3b:02.1
    refused(
        run("K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b;K8S_POD_UID=uid-b"),
        7,
        "0000:3b:02.1 was not allocated to pod team-b/b (UID uid-b",
    );
    // a pod the kubelet gave no VF at all
    refused(
        run("K8S_POD_NAMESPACE=team-c;K8S_POD_NAME=c;K8S_POD_UID=uid-c"),
        7,
        "no device of smartnic.io/vf",
    );
    assert!(!s.state().exists(), "nothing recorded for a refused ADD");
    assert!(s.host_files().is_empty());
    // pod A's own VF passes both checks (and then fails later: there is no such device here)
    let (ok, v) = run("K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=a;K8S_POD_UID=uid-a");
    assert!(!ok);
    assert!(!v["msg"].as_str().unwrap().contains("allocated"), "{v}");
    // not under a kubelet (no pod UID) or no checkpoint: the pool check alone, as before
    let (_, v) = run("K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b");
    assert!(!v["msg"].as_str().unwrap().contains("allocated"), "{v}");
    std::fs::remove_file(&checkpoint).unwrap();
    let (_, v) = run("K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b;K8S_POD_UID=uid-b");
    assert!(!v["msg"].as_str().unwrap().contains("allocated"), "{v}");
}

/// A VF claimed by DRA: with no `deviceID` (a claim from a template), the plugin takes the one
/// the DRA driver prepared for this pod; a pod without such a claim, or naming another pod's
/// DRA VF, or with a pod UID that is a path, is refused.
#[test]
fn a_dra_claimed_vf_is_found_in_the_pods_prepared_claims() {
    let s = Sandbox::new();
    let sys = two_vf_node(&s, "dra");
    let checkpoint = s.tmp.path().join("kubelet_internal_checkpoint");
    std::fs::write(
        &checkpoint,
        json!({"Data": {"PodDeviceEntries": [], "RegisteredDevices": {}}, "Checksum": 1})
            .to_string(),
    )
    .unwrap();
    let claims = s.tmp.path().join("claims");
    std::fs::create_dir_all(&claims).unwrap();
    let pod_a = "6f1c2a3b-0000-4000-8000-00000000000a";
    let claim = "c1a1a1a1-0000-4000-8000-000000000001";
    std::fs::write(
        claims.join(format!("{claim}.json")),
        json!({"claimUid": claim, "namespace": "team-a", "name": "a-vf-x7k2p",
            "podUids": [pod_a],
            "devices": [{"request": "vf", "pool": "node-1", "device": "pci-0000-3b-02-2",
                "pciAddress": "0000:3b:02.2", "resourceName": "vf",
                "cdiDevice": "smartnic.io/vf=0000:3b:02.2"}]})
        .to_string(),
    )
    .unwrap();
    let sys = sys.display().to_string();
    let cp = checkpoint.display().to_string();
    let dra = claims.display().to_string();
    let run = |args: String, conf: &Value| {
        let e = [
            ("SMARTNIC_CNI_SYSFS", sys.as_str()),
            ("SMARTNIC_CNI_KUBELET_CHECKPOINT", cp.as_str()),
            ("SMARTNIC_CNI_DRA_DIR", dra.as_str()),
            ("CNI_ARGS", args.as_str()),
        ];
        s.run_conf("ADD", &e, conf)
    };
    let net = json!({"cniVersion": "1.1.0", "name": "tenant-net", "type": "smartnic",
        "mode": "sriov", "resourceName": "smartnic.io/vf"});
    // pod A: its prepared VF passes the pool and per-pod checks, and fails only later (there is
    // no such device here), naming it
    let (ok, v) = run(
        format!("K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=a;K8S_POD_UID={pod_a}"),
        &net,
    );
    assert!(!ok);
    let msg = v["msg"].as_str().unwrap();
    assert!(
        !msg.contains("allocated") && !msg.contains("prepared") && !msg.contains("deviceID"),
        "{v}"
    );
    // which device: the plugin's log says
    let (_, v) = run(
        format!("K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=a;K8S_POD_UID={pod_a}"),
        &with(
            net.clone(),
            json!({"logLevel": "info", "logFile": "dra.log"}),
        ),
    );
    let log = std::fs::read_to_string(s.logs().join("dra.log")).unwrap_or_default();
    assert!(
        log.contains("deviceID 0000:3b:02.2: the device prepared for this pod"),
        "{v}\n{log}"
    );
    // pod B has no claim: refused, naming the pod and the resource
    let pod_b = "6f1c2a3b-0000-4000-8000-00000000000b";
    refused(
        run(
            format!("K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b;K8S_POD_UID={pod_b}"),
            &net,
        ),
        7,
        "pod team-b/b has no prepared smartnic.io claim for resource smartnic.io/vf",
    );
    // pod B names pod A's DRA VF in a NAD of its own: neither its claim nor its checkpoint entry
    refused(
        run(
            format!("K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b;K8S_POD_UID={pod_b}"),
            &with(net.clone(), json!({"deviceID": "0000:3b:02.2"})),
        ),
        7,
        "no device of smartnic.io/vf",
    );
    // a pod UID that is a path
    refused(
        run(
            "K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=b;K8S_POD_UID=../../etc".to_owned(),
            &net,
        ),
        4,
        "K8S_POD_UID",
    );
    assert!(!s.state().exists(), "nothing recorded for a refused ADD");
    assert!(s.host_files().is_empty());
}
