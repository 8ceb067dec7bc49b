//! The agent's logs through a pipe (as `kubectl logs` reads them) carry no terminal escape codes,
//! `--log-format json` gives one JSON object per line, and a failure is one `error: ...` line.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_smartnic-agent");

/// `smartnic-agent --spec-file` (an empty spec) on a copy of the igb example host.
fn standalone(extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hosts/igb-82576");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&example)
            .arg(&host)
            .status()
            .unwrap()
            .success()
    );
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, "interfaces: []\n").unwrap();
    Command::new(BIN)
        .arg("--spec-file")
        .arg(&spec)
        .arg("--host-root")
        .arg(&host)
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .arg("--device-plugin-file")
        .arg(dir.path().join("dp.json"))
        .args(extra)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("LOG_FORMAT")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn text_logs_through_a_pipe_have_no_escape_codes() {
    let o = standalone(&[]);
    let err = text(&o.stderr);
    assert!(err.contains("INFO"), "no log line to check: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped logs: {err:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let o = standalone(&["--log-format", "json"]);
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "no JSON log line: {err}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v.get("level").is_some(), "{l}");
    }
}

#[test]
fn a_refused_spec_file_is_one_error_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, "interfaces: []\ninterface: []\n").unwrap();
    let o = Command::new(BIN)
        .arg("--spec-file")
        .arg(&spec)
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("Caused by"), "{err}");
    assert!(
        err.contains(
            "line 2, interface: unknown field \"interface\" (did you mean \"interfaces\"?)"
        ),
        "{err}"
    );
}

#[test]
fn the_default_metrics_port_is_the_manifests() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let help = text(&o.stdout);
    let daemonset = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent/daemonset.yaml"),
    )
    .unwrap();
    assert!(help.contains("[default: 0.0.0.0:9830]"), "{help}");
    assert!(daemonset.contains("--metrics-addr=0.0.0.0:9830"));
    assert!(daemonset.contains("containerPort: 9830"));
}
