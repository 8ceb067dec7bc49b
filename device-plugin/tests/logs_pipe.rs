//! The device plugin's logs through a pipe (as `kubectl logs` reads them) carry no terminal
//! escape codes, and `NO_COLOR` is honoured as well.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smartnic-device-plugin");

/// Runs the plugin on the igb example host with no configuration file yet (it logs that it
/// waits for one), stops it after a moment and returns its stderr.
fn logs(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hosts/igb-82576");
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(dir.path().join("device-plugin.json"))
        .arg("--root")
        .arg(&root)
        .arg("--plugin-dir")
        .arg(dir.path())
        .arg("--devinfo-dir")
        .arg(dir.path().join("devinfo"))
        .arg("--cdi-dir")
        .arg(dir.path().join("cdi"))
        // not the default 0.0.0.0:9831: a test listens on loopback only
        .arg("--metrics-addr")
        .arg("127.0.0.1:0")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn logs_through_a_pipe_have_no_escape_codes() {
    for env in [&[][..], &[("NO_COLOR", "1")][..]] {
        let err = logs(env);
        assert!(
            err.contains("INFO"),
            "no log line to check ({env:?}): {err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "escape codes in piped logs ({env:?}): {err:?}"
        );
    }
}

#[test]
fn colour_is_only_for_a_terminal_without_no_color() {
    use device_plugin::telemetry::colour;
    assert!(colour(true, None));
    assert!(colour(true, Some("".into())));
    assert!(!colour(true, Some("1".into())));
    assert!(!colour(false, None));
}
