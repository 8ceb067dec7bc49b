//! The `smartnic` binary run by hand: `--help` names every subcommand, `install` has its own
//! `--help`, and `install` never guesses its destination (it used to copy itself into the
//! machine's `/opt/cni/bin`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_smartnic");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("CNI_COMMAND")
        .env_remove("SMARTNIC_CNI_BIN_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_subcommand_with_an_example() {
    for flag in ["--help", "-h", "help"] {
        let o = run(&[flag], &[]);
        assert!(o.status.success(), "{flag}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("smartnic install"), "{out}");
        assert!(out.contains("CNI_COMMAND"), "{out}");
        assert!(out.contains("Example:"), "{out}");
    }
}

#[test]
fn install_help_works() {
    let o = run(&["install", "--help"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("--dest DIR") && out.contains("--keep-running"),
        "{out}"
    );
    assert!(out.contains("Example:"), "{out}");
}

#[test]
fn install_without_a_destination_is_refused() {
    let o = run(&["install"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("--dest") && err.contains("SMARTNIC_CNI_BIN_DIR"),
        "{err}"
    );
}

#[test]
fn install_writes_where_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["install", "--dest", d], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(dir.path().join("smartnic").exists());
    let env_dir = tempfile::tempdir().unwrap();
    let o = run(
        &["install"],
        &[("SMARTNIC_CNI_BIN_DIR", env_dir.path().to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(env_dir.path().join("smartnic").exists());
}

/// `--keep-running` puts a removed binary back, except while the agent's uninstall marker is
/// there, and SIGTERM ends it at once with status 0 (it never outlives its pod to reinstall).
#[test]
fn keep_running_honours_the_uninstall_marker_and_stops_on_sigterm() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("smartnic");
    let marker = dir.path().join(".smartnic-uninstalling");
    let mut child = Command::new(BIN)
        .args([
            "install",
            "--dest",
            dir.path().to_str().unwrap(),
            "--keep-running",
        ])
        .env_remove("CNI_COMMAND")
        .env("SMARTNIC_CNI_INSTALL_INTERVAL_MS", "20")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("installed", &|| bin.exists());
    // the agent's uninstall: marker, then the binary removed; the loop leaves it removed
    std::fs::write(&marker, b"").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&bin).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !bin.exists(),
        "the binary was put back during the uninstall"
    );
    // the marker gone (a reinstall): the loop works again
    std::fs::remove_file(&marker).unwrap();
    wait_for("put back", &|| bin.exists());
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("uninstalling this node"), "{err}");
}
