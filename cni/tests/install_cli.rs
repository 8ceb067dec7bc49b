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
