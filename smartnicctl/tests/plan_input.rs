//! `smartnicctl plan`'s input and outcome: strict decoding (unknown field, unknown kind, empty
//! input, near miss, the SR-IOV operator's spellings) with the document, line and field; `-f -`;
//! the "why nothing matched" report; the exit status (0 planned, 2 nothing selected, 1 error);
//! and every example policy planning against its example host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// `smartnicctl plan -f - --root examples/hosts/HOST ARGS` with `input` on stdin.
fn plan_stdin(host: &str, input: &str, extra: &[&str]) -> Output {
    let root = repo(&format!("examples/hosts/{host}"));
    let mut args = vec!["plan", "-f", "-", "--root", root.to_str().expect("utf-8")];
    args.extend(extra);
    common::ctl_stdin(&repo(""), &args, input)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example_policy() -> String {
    std::fs::read_to_string(repo("deploy/examples/nicpolicy.yaml")).expect("example policy")
}

/// Exit 1 with `error: ` on stderr; returns stderr.
fn refused(o: &Output) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}{err}", text(&o.stdout));
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing planned is printed: {}",
        text(&o.stdout)
    );
    err
}

#[test]
fn every_example_policy_plans_against_its_example_host() {
    for (file, host) in [
        ("deploy/examples/nicpolicy.yaml", "cx6dx-switchdev"),
        ("examples/policies/e810.yaml", "e810"),
        ("examples/policies/igb-82576.yaml", "igb-82576"),
        ("examples/policies/connectx6-ib.yaml", "connectx6-ib"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
            .args(["plan", "-o", "json", "-f"])
            .arg(repo(file))
            .arg("--root")
            .arg(repo(&format!("examples/hosts/{host}")))
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(0), "{file}: {}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        let pfs = v["plan"]["pfs"].as_array().expect("pfs");
        assert!(!pfs.is_empty(), "{file} plans nothing on {host}");
        assert!(
            pfs.iter()
                .all(|p| !p["steps"].as_array().expect("steps").is_empty()),
            "{file}: {v}"
        );
    }
}

#[test]
fn an_unknown_field_is_refused_with_document_line_and_the_field_meant() {
    let input = example_policy().replace("  mtu: 9000", "  mtuu: 9000");
    let err = refused(&plan_stdin("cx6dx-switchdev", &input, &[]));
    assert!(
        err.contains(
            "document 1, line 20, spec.mtuu: unknown field \"mtuu\" (did you mean \"mtu\"?)"
        ),
        "{err}"
    );
}

#[test]
fn the_sriov_operator_spellings_are_refused_with_ours() {
    let input = example_policy()
        .replace("deviceId:", "deviceID:")
        .replace("numVfs:", "numVf:");
    let err = refused(&plan_stdin("cx6dx-switchdev", &input, &[]));
    assert!(err.contains("2 problems:"), "{err}");
    assert!(
        err.contains(
            "spec.nicSelector.deviceID: unknown field \"deviceID\" (did you mean \"deviceId\"?"
        ),
        "{err}"
    );
    assert!(err.contains("SR-IOV network operator's spelling"), "{err}");
    assert!(
        err.contains("spec.numVf: unknown field \"numVf\" (did you mean \"numVfs\"?"),
        "{err}"
    );
}

#[test]
fn an_unknown_kind_is_refused() {
    let input = example_policy().replace("kind: NicPolicy", "kind: NicPolicies");
    let err = refused(&plan_stdin("cx6dx-switchdev", &input, &[]));
    assert!(
        err.contains("kind: unknown kind \"NicPolicies\" (did you mean \"NicPolicy\"?)"),
        "{err}"
    );
}

#[test]
fn empty_input_is_refused() {
    for input in ["", "---\n", "# nothing\n"] {
        let err = refused(&plan_stdin("e810", input, &[]));
        assert!(err.contains("no object in the input"), "{input:?}: {err}");
    }
}

#[test]
fn stdin_reads_the_policies_and_other_kinds_get_a_note() {
    let input = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n{}",
        example_policy()
    );
    let o = plan_stdin("cx6dx-switchdev", &input, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["plan"]["pfs"][0]["name"], "ens1f0np0");
    assert!(
        text(&o.stderr).contains("note: document 1: v1 Namespace"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn nothing_selected_says_why_per_policy_and_lists_the_pfs() {
    let input = example_policy().replace("[ens1f0np0]", "[ens1f0]");
    let o = plan_stdin("cx6dx-switchdev", &input, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("policy gpu-cx6 selects no PF of this host:"),
        "{out}"
    );
    assert!(
        out.contains("PF ens1f0np0 (0000:3b:00.0, 15b3:101d mlx5_core): nicSelector.pfNames [ens1f0] does not name ens1f0np0"),
        "{out}"
    );
    assert!(
        out.contains("this host's PFs:\n  ens1f0np0 (0000:3b:00.0"),
        "{out}"
    );
    assert!(out.contains("  ens1f1np1 (0000:3b:00.1"), "{out}");
    assert!(
        text(&o.stderr).contains("nothing planned"),
        "{}",
        text(&o.stderr)
    );
    // the same in JSON
    let o = plan_stdin("e810", &input, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["unselected"][0]["reasons"][0],
        "PF ens2f0np0 (0000:17:00.0, 8086:1593 ice): nicSelector.vendor is 15b3, the PF's vendor is 8086"
    );
}

#[test]
fn table_and_json_say_the_disruption_class_with_the_same_word() {
    for (file, host) in [
        ("examples/policies/e810.yaml", "e810"),
        ("examples/policies/igb-82576.yaml", "igb-82576"),
    ] {
        let run = |o: &str| {
            Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
                .args(["plan", "-o", o, "-f"])
                .arg(repo(file))
                .arg("--root")
                .arg(repo(&format!("examples/hosts/{host}")))
                .output()
                .expect("runs")
        };
        let v: Value = serde_json::from_slice(&run("json").stdout).expect("json");
        let class = v["plan"]["class"].as_str().expect("class");
        let table = text(&run("table").stdout);
        let first = table.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("disruption: {class}")),
            "{file}: JSON says {class}, the table says {first}"
        );
    }
}
