//! Every shell command in the READMEs runs here, so that the docs cannot drift from the code.
//!
//! A ```` ```sh ```` block holds commands; each must exit 0. A ```` ```console ```` block holds
//! `$ command` lines, each followed by the output the command must print (stdout and stderr as
//! a terminal shows them; a last line `[exit status N]` says the status, 0 otherwise). Commands
//! run with `sh -c` in a scratch directory that links every top-level entry of the repository (so
//! that `> file` writes nowhere in the checkout), with the `smartnicctl` under test first on
//! `PATH` (`cargo run -p smartnicctl --` is that binary too) and `NO_COLOR=1`.
//!
//! A command that needs root, a cluster, the QEMU lab or a whole build is not run: it must match
//! an entry of [`NOT_HERE`], which says why. A command that matches none is run, so a new
//! command in a README is either tested or listed here with its reason, never dropped silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The documents whose commands are checked.
const DOCS: &[&str] = &[
    "README.md",
    "examples/hosts/README.md",
    "cni/README.md",
    "offload/README.md",
    "deploy/README.md",
    "hw-tests/README.md",
    "firmware-notes/README.md",
];

/// Commands run although a prefix in [`NOT_HERE`] matches them: they need nothing.
const RUN_ANYWAY: &[&str] = &["hw-tests/run --list"];

/// Commands not run here, and why: matched by prefix after any leading `VAR=value`
/// assignments (so `SMARTNIC_API_ONLY=20 hw-tests/run api` is `hw-tests/run ...`).
const NOT_HERE: &[(&str, &str)] = &[
    (
        "hw-tests/run",
        "lab or cluster: boots the QEMU guest or starts a control plane",
    ),
    ("sudo ", "root: runs on a host with a real SR-IOV NIC"),
    (
        "hw-tests/k8s/build.sh",
        "builds Kubernetes from its release modules (minutes, the Go module proxy)",
    ),
    ("hw-tests/cluster", "cluster: a local control plane"),
    (
        "\"$(hw-tests/k8s/build.sh",
        "cluster: kubectl of the local control plane",
    ),
    ("kubectl ", "cluster"),
    (
        "scripts/check.sh",
        "the whole check (with the lab unless SMARTNIC_SKIP_LAB): what CI runs",
    ),
    (
        "for i in operator agent",
        "cluster: builds and pushes images",
    ),
    (
        "cargo test",
        "cargo: the tests it names run in `cargo test` already",
    ),
    ("cargo build", "a build: CI builds every binary"),
    ("helm ", "cluster: installs the chart into a cluster"),
    (
        "deploy/images/build.sh",
        "a build: static binaries and a Debian root, as root (minutes)",
    ),
    (
        "for f in \"$(deploy/images/build.sh",
        "cluster: imports the images into a node's containerd",
    ),
    (
        "deploy/images/selftest.sh",
        "root: runs the images under a private containerd",
    ),
    (
        "hw-tests/helm/",
        "builds Helm from its Go module, or starts a control plane",
    ),
    (
        "hw-tests/node/",
        "builds the node's runtime from Go modules, or runs containerd as root",
    ),
];

/// One command of a README.
#[derive(Debug)]
struct DocCommand {
    /// `README.md:42`.
    at: String,
    text: String,
    /// The output a console block shows, and the exit status.
    expected: Option<(String, i32)>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository")
}

/// The text of a shell line up to an unquoted ` #` comment.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let b = line.as_bytes();
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (i == 0 || b[i - 1] == b' ') => {
                return line[..i].trim_end();
            }
            _ => {}
        }
    }
    line.trim_end()
}

/// The commands of a ```sh block: lines joined over `\` and over `for ... done`.
fn sh_commands(file: &str, first_line: usize, body: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut depth = 0i32;
    for (i, raw) in body.lines().enumerate() {
        let line = strip_comment(raw);
        if current.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            start = first_line + i;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        if ["for", "while", "if"].contains(&word) {
            depth += 1;
        }
        if ["done", "fi"].contains(&word) {
            depth -= 1;
        }
        let (line, more) = match line.strip_suffix('\\') {
            Some(l) => (l, true),
            None => (line, false),
        };
        current.push_str(line);
        current.push('\n');
        if !more && depth <= 0 {
            out.push(DocCommand {
                at: format!("{file}:{start}"),
                text: std::mem::take(&mut current).trim().to_owned(),
                expected: None,
            });
            depth = 0;
        }
    }
    out
}

/// The commands of a ```console block with their expected output.
fn console_commands(file: &str, first_line: usize, body: &str) -> Vec<DocCommand> {
    let mut out: Vec<DocCommand> = Vec::new();
    let mut output: Vec<&str> = Vec::new();
    let finish = |out: &mut Vec<DocCommand>, output: &mut Vec<&str>| {
        if let Some(last) = out.last_mut() {
            let mut status = 0;
            if let Some(s) = output
                .last()
                .and_then(|l| l.strip_prefix("[exit status "))
                .and_then(|l| l.strip_suffix(']'))
            {
                status = s.parse().expect("exit status");
                output.pop();
            }
            last.expected = Some((output.join("\n"), status));
        }
        output.clear();
    };
    for (i, line) in body.lines().enumerate() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            finish(&mut out, &mut output);
            out.push(DocCommand {
                at: format!("{file}:{}", first_line + i),
                text: strip_comment(cmd).to_owned(),
                expected: None,
            });
        } else {
            output.push(line);
        }
    }
    finish(&mut out, &mut output);
    out
}

/// Every command of `file` (relative to the repository).
fn commands(file: &str) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(repo().join(file)).expect("readable doc");
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        // line numbers are 1-based; the body starts on the line after the fence
        match lang.trim() {
            "sh" | "bash" | "shell" => out.extend(sh_commands(file, i + 2, &body)),
            "console" => out.extend(console_commands(file, i + 2, &body)),
            _ => {}
        }
    }
    out
}

fn not_here(cmd: &str) -> Option<&'static str> {
    // leading environment assignments do not change what a command needs
    let mut rest = cmd.trim_start();
    while let Some((word, tail)) = rest.split_once(char::is_whitespace) {
        let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !is_assignment {
            break;
        }
        rest = tail.trim_start();
    }
    if RUN_ANYWAY.iter().any(|r| rest.trim_end() == *r) {
        return None;
    }
    NOT_HERE
        .iter()
        .find(|(prefix, _)| rest.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// A scratch directory linking every top-level entry of the repository but `target`.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for e in std::fs::read_dir(repo()).expect("repository").flatten() {
        let name = e.file_name();
        if name != "target" && name != ".git" {
            std::os::unix::fs::symlink(e.path(), dir.path().join(&name)).expect("link");
        }
    }
    dir
}

fn run(cmd: &str, dir: &Path) -> (String, i32) {
    let bin = Path::new(env!("CARGO_BIN_EXE_smartnicctl"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = cmd
        .replace("cargo run -q -p smartnicctl --", "smartnicctl")
        .replace("cargo run -p smartnicctl --", "smartnicctl");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

fn trim_lines(s: &str) -> String {
    s.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

#[test]
fn every_readme_command_that_needs_no_root_cluster_or_lab_works_as_shown() {
    let dir = scratch();
    let mut failures = Vec::new();
    let (mut ran, mut compared, mut listed) = (0, 0, Vec::new());
    for doc in DOCS {
        for c in commands(doc) {
            if let Some(why) = not_here(&c.text) {
                listed.push(format!(
                    "{}: {} ({why})",
                    c.at,
                    c.text.lines().next().unwrap_or("")
                ));
                continue;
            }
            ran += 1;
            let (output, status) = run(&c.text, dir.path());
            match &c.expected {
                Some((want, want_status)) => {
                    compared += 1;
                    if trim_lines(&output) != trim_lines(want) || status != *want_status {
                        failures.push(format!(
                            "{}: `{}` printed (exit status {status}):\n{output}\n--- the doc shows (exit status {want_status}):\n{want}\n",
                            c.at, c.text
                        ));
                    }
                }
                None if status != 0 => failures.push(format!(
                    "{}: `{}` exited {status} (add it to NOT_HERE with the reason if it needs root, a cluster or the lab):\n{output}",
                    c.at, c.text
                )),
                None => {}
            }
        }
    }
    eprintln!(
        "{ran} README commands run, {compared} outputs compared; not run here:\n  {}",
        listed.join("\n  ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        compared >= 5,
        "the READMEs show fewer outputs than expected"
    );
}

#[test]
fn the_parser_finds_commands_continuations_and_outputs() {
    let sh = sh_commands(
        "x.md",
        3,
        "a --b  # comment\n\nfor i in 1 2; do\n  echo $i\ndone  # loop\nc \\\n  d\n",
    );
    let texts: Vec<&str> = sh.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        ["a --b", "for i in 1 2; do\n  echo $i\ndone", "c \n  d"]
    );
    assert_eq!(sh[1].at, "x.md:5");
    let con = console_commands(
        "x.md",
        1,
        "$ one\nout 1\n$ two  # x\nout 2\n[exit status 2]\n",
    );
    assert_eq!(con[0].expected, Some(("out 1".to_owned(), 0)));
    assert_eq!(con[1].text, "two");
    assert_eq!(con[1].expected, Some(("out 2".to_owned(), 2)));
    assert_eq!(strip_comment("echo '#x' \"# y\" # z"), "echo '#x' \"# y\"");
    assert_eq!(not_here("kubectl apply -k deploy"), Some("cluster"));
    assert_eq!(not_here("hw-tests/run --list"), None);
    assert!(not_here("hw-tests/run api").is_some());
    assert!(not_here("SMARTNIC_API_ONLY='20|50' hw-tests/run api").is_some());
    assert!(not_here("KUBECONFIG=/tmp/c/kubeconfig kubectl get ns").is_some());
    assert!(
        not_here(
            "KUBECONFIG=/tmp/c/kubeconfig \"$(hw-tests/k8s/build.sh --print-dir)/kubectl\" get ns"
        )
        .is_some()
    );
    assert!(not_here("SMARTNIC_UPDATE_EXAMPLES=1 cargo test -p nic").is_some());
}

#[test]
fn hw_tests_readme_describes_every_suite() {
    let readme = std::fs::read_to_string(repo().join("hw-tests/README.md")).expect("readme");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(repo().join("hw-tests/suites"))
        .expect("suites")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(suite) = name.strip_suffix(".sh") else {
            continue;
        };
        // `lib.sh` and `lib-*.sh` are sourced by suites, as `hw-tests/run` knows
        let library = suite == "lib" || suite.starts_with("lib-");
        if !library && !readme.contains(&format!("### `{suite}`")) {
            missing.push(suite.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "hw-tests/README.md has no `### `NAME`` section for: {missing:?}"
    );
}
