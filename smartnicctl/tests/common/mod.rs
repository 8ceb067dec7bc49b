//! Running `smartnicctl` with input on stdin, shared by the integration tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `smartnicctl ARGS` in `dir` with `input` on stdin.
pub fn ctl_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smartnicctl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("exit")
}
