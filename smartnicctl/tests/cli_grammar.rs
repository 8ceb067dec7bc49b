//! One grammar for every `smartnicctl` command: an example in every `--help`, `-o
//! table|json|yaml` on the commands that print data (each format parses as what it claims),
//! `-f -` reading stdin, group flags after the subcommand, rates with units, and `trace` not
//! offering a Prometheus format it cannot print.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(args)
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .output()
        .expect("smartnicctl runs")
}

fn ctl_stdin(args: &[&str], input: &str) -> Output {
    common::ctl_stdin(&repo(""), args, input)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The subcommand names listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next()
                && name != "help"
                && line.starts_with("  ")
                && !line.starts_with("    ")
            {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_help_has_an_example() {
    let mut stack = vec![Vec::<String>::new()];
    let mut seen = 0;
    let mut missing = Vec::new();
    while let Some(path) = stack.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = ctl(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        let help = text(&o.stdout);
        seen += 1;
        if !help.contains("Example") {
            missing.push(path.join(" "));
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            stack.push(p);
        }
    }
    assert!(seen > 40, "only {seen} help texts found");
    assert!(missing.is_empty(), "--help without an example: {missing:?}");
}

#[test]
fn the_grammar_is_written_in_the_top_level_help() {
    let help = text(&ctl(&["--help"]).stdout);
    for needle in [
        "-o, --output table|json|yaml",
        "-f, --filename FILE|-",
        "10Gbit",
        "exit status",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

/// Runs `args -o FORMAT` for table, json and yaml and checks that json and yaml parse to the
/// same document.
fn three_formats(args: &[&str]) {
    let run = |f: &str| {
        let mut a = args.to_vec();
        a.extend(["-o", f]);
        let o = ctl(&a);
        assert!(o.status.success(), "{a:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let table = run("table");
    assert!(!table.trim().is_empty(), "{args:?}: empty table");
    let json: Value = serde_json::from_str(&run("json")).expect("json");
    let yaml: Value = serde_saphyr::from_str(&run("yaml")).expect("yaml");
    assert_eq!(json, yaml, "{args:?}: json and yaml differ");
}

#[test]
fn output_formats_on_the_commands_that_print_data() {
    three_formats(&["discover", "--root", "examples/hosts/e810"]);
    three_formats(&[
        "plan",
        "-f",
        "examples/policies/e810.yaml",
        "--root",
        "examples/hosts/e810",
    ]);
    // rtnetlink reads need no privilege
    three_formats(&["link", "show"]);
    three_formats(&["addr", "show"]);
    three_formats(&["route", "show"]);
    three_formats(&["ethtool", "features", "lo"]);
    // sriov, on a copy of an example host (numvfs and driver at the values it has: no change)
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("igb");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(repo("examples/hosts/igb-82576"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let root = copy.to_str().unwrap();
    three_formats(&["sriov", "autoprobe", "enp1s0", "--root", root]);
    three_formats(&["sriov", "numvfs", "enp1s0", "2", "--root", root]);
    three_formats(&[
        "sriov",
        "driver",
        "--pci",
        "0000:01:10.0",
        "igbvf",
        "--root",
        root,
    ]);
    let cx = repo("examples/hosts/cx6dx-switchdev");
    three_formats(&[
        "sriov",
        "representor",
        "ens1f1np1",
        "--vf",
        "1",
        "--root",
        cx.to_str().unwrap(),
    ]);
    // one vocabulary: the JSON says what the table line says
    let o = ctl(&[
        "sriov", "numvfs", "enp1s0", "2", "--root", root, "-o", "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"pf": "enp1s0", "pciAddress": "0000:01:00.0", "previous": 2,
            "numVfs": 2, "changed": false, "destroyed": []}),
    );
    let o = ctl(&[
        "sriov",
        "representor",
        "ens1f1np1",
        "--vf",
        "1",
        "--root",
        cx.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"uplink": "ens1f1np1", "vf": 1, "representor": "ens1f1npf1vf1", "source": "sysfs"}),
    );
    // ovs: every command that prints data takes -o (they need an ovsdb-server to run; the
    // offload lab suite runs setup -o json)
    for cmd in [
        &["ovs", "setup"][..],
        &["ovs", "peers"],
        &["ovs", "attach"],
        &["ovs", "endpoint"],
    ] {
        let h = text(&ctl(&[cmd, &["--help"]].concat()).stdout);
        assert!(h.contains("-o, --output <OUTPUT>"), "{cmd:?}: {h}");
        for f in ["- table:", "- json:", "- yaml:"] {
            assert!(h.contains(f), "{cmd:?}: {h}");
        }
    }
}

#[test]
fn convert_and_plan_read_stdin() {
    let sriov = std::fs::read_to_string(repo("smartnicctl/tests/data/sriov-intel-netdevice.yaml"))
        .expect("data");
    let o = ctl_stdin(&["convert", "-f", "-", "-o", "json"], &sriov);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let converted = text(&ctl_stdin(&["convert", "-f", "-"], &sriov).stdout);
    // the converted policy selects device 159b; the E810 example is 1593: nothing planned, and why
    let o = ctl_stdin(
        &[
            "plan",
            "-f",
            "-",
            "--root",
            "examples/hosts/e810",
            "-o",
            "yaml",
        ],
        &converted,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let v: Value = serde_saphyr::from_str(&text(&o.stdout)).expect("yaml");
    assert_eq!(v["unselected"][0]["policy"], "policy-intel");
}

#[test]
fn trace_does_not_offer_prom_and_offload_does() {
    let o = ctl(&["trace", "--pod", "a/b", "-o", "prom"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("invalid value 'prom'"),
        "{}",
        text(&o.stderr)
    );
    let help = text(&ctl(&["offload", "--help"]).stdout);
    assert!(help.contains("prom"), "{help}");
}

#[test]
fn group_flags_work_after_the_subcommand_and_ovsdb_errors_say_what_to_try() {
    let dir = tempfile::tempdir().expect("dir");
    let rundir = dir.path().to_str().expect("utf-8");
    for args in [
        vec!["ovs", "--rundir", rundir, "--bridge", "br-x", "setup"],
        vec!["ovs", "setup", "--bridge", "br-x", "--rundir", rundir],
    ] {
        let o = ctl(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: cannot reach ovsdb-server"), "{err}");
        assert!(
            err.contains("ovs-vswitchd") && err.contains("--rundir"),
            "{err}"
        );
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "the cause is said once: {err}"
        );
    }
}

#[test]
fn rates_take_units() {
    let vf_set = |rate: &str| {
        let o = ctl(&[
            "vf",
            "set",
            "nonexistent0",
            "--vf",
            "0",
            "--max-tx-rate",
            rate,
        ]);
        (o.status.code(), text(&o.stderr))
    };
    let (_, err) = vf_set("10Gfoo");
    assert!(err.contains("unknown rate unit"), "{err}");
    // a valid rate gets past parsing: the failure is about the device, in a sentence
    let (code, err) = vf_set("500Mbit");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("unknown rate unit"), "{err}");
}

/// One way to name an interface: the first argument. The spellings of earlier versions still
/// work, each with a one-line note on stderr naming the command as it is written now.
#[test]
fn the_interface_is_the_first_argument_and_old_flags_are_aliases_with_a_note() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hosts/igb-82576");
    let new = ctl(&["sriov", "autoprobe", "enp1s0", "--root", root]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    assert_eq!(text(&new.stderr), "");
    for old in [
        &["sriov", "autoprobe", "--pf", "enp1s0", "--root", root][..],
        &["sriov", "autoprobe", "--pf=enp1s0", "--root", root],
    ] {
        let o = ctl(old);
        assert!(o.status.success(), "{old:?}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), text(&new.stdout), "{old:?}");
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("note: `--pf enp1s0` is deprecated")
                && err.contains("(smartnicctl sriov autoprobe enp1s0 --root "),
            "{err}"
        );
    }
    // by PCI address, in the same place
    let o = ctl(&["sriov", "autoprobe", "0000:01:00.0", "--root", root]);
    assert_eq!(
        text(&o.stdout),
        "0000:01:00.0: sriov_drivers_autoprobe on\n"
    );
    // --help shows the one grammar, and not the old flags
    for cmd in [
        &["vf", "show"][..],
        &["vf", "set"],
        &["sriov", "numvfs"],
        &["addr", "add"],
    ] {
        let h = text(&ctl(&[cmd, &["--help"]].concat()).stdout);
        assert!(!h.contains("--pf") && !h.contains("--dev"), "{cmd:?}: {h}");
        let usage = h
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_default();
        assert!(
            usage.contains("<PF>") || usage.contains("<IFNAME>"),
            "{cmd:?}: {usage}"
        );
    }
    let top = text(&ctl(&["--help"]).stdout);
    assert!(
        top.contains("the interface a command acts on is its first argument"),
        "{top}"
    );
}
