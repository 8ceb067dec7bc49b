//! The agent's image installs every program the agent runs: each external command named in the
//! sources the `smartnic-agent` binary is built from (`agent/src`, and `offload/src`, which it
//! links for the overlay) maps to the Debian package that ships it, and that package is on the
//! `apt-get install` line of `deploy/images/agent.Containerfile`. A new `Command::new("x")`, or
//! a `runner.run(X, ..)` whose program the table below does not know, fails the test until the
//! table and the image say where it comes from.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Program → the Debian (bookworm) package that installs it; `None` for a program the agent
/// only tries after another one that is installed (NVIDIA's MFT `mlxconfig` is not in Debian;
/// `mstconfig` from `mstflint` is tried first).
const PACKAGES: &[(&str, Option<&str>)] = &[
    ("mstconfig", Some("mstflint")),
    ("mlxconfig", None),
    ("rdma", Some("iproute2")),
    ("tc", Some("iproute2")),
    ("ovs-ofctl", Some("openvswitch-common")),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, test-only files left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("a directory entry").path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            sources(&p, out);
        } else if name.ends_with(".rs")
            && !name.ends_with("tests.rs")
            && name != "fake.rs"
            && name != "fixtures.rs"
        {
            out.push(p);
        }
    }
}

/// The string literals in `s` right after each `pat`, e.g. `Command::new("tc")` → `tc`.
fn literals_after<'a>(s: &'a str, pat: &str) -> Vec<&'a str> {
    s.match_indices(pat)
        .filter_map(|(i, _)| {
            let rest = s[i + pat.len()..].trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(lit, _)| lit)
        })
        .collect()
}

/// The programs a source file runs: `Command::new("x")`, `const X: &str = "x"` when `X` is
/// passed to `Command::new` or `.run(`, and `for tool in ["x", "y"]` when `tool` is run.
fn programs(src: &str) -> BTreeSet<String> {
    // what a test module runs is not the agent's
    let src = src.split("#[cfg(test)]").next().unwrap_or(src);
    let mut out: BTreeSet<String> = literals_after(src, "Command::new(")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for line in src.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("const ")
            && let Some((name, value)) = rest.split_once(": &str = \"")
            && (src.contains(&format!(".run({name}"))
                || src.contains(&format!("Command::new({name}")))
        {
            out.insert(value.trim_end_matches("\";").to_owned());
        }
        if let Some((_, list)) = line.split_once("for tool in [")
            && src.contains(".run(tool")
        {
            let list = list.split(']').next().unwrap_or_default();
            out.extend(
                list.split(',')
                    .map(|t| t.trim().trim_matches('"').to_owned()),
            );
        }
    }
    out
}

fn installed_packages(containerfile: &str) -> BTreeSet<String> {
    // the runtime stage's install line(s), continuation lines joined
    let joined = containerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.split_once("apt-get install").map(|(_, rest)| rest))
        .flat_map(|rest| {
            rest.split("&&")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter(|w| !w.starts_with('-'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_program_the_agent_runs_is_installed_in_its_image() {
    let mut files = Vec::new();
    sources(&repo().join("agent/src"), &mut files);
    sources(&repo().join("offload/src"), &mut files);
    let mut run: BTreeSet<String> = BTreeSet::new();
    for f in &files {
        run.extend(programs(&std::fs::read_to_string(f).unwrap()));
    }
    // the scan itself must see the programs we know the agent runs
    for known in ["mstconfig", "rdma", "ovs-ofctl"] {
        assert!(
            run.contains(known),
            "the source scan no longer finds {known}: {run:?}"
        );
    }
    let image = std::fs::read_to_string(repo().join("deploy/images/agent.Containerfile")).unwrap();
    let packages = installed_packages(&image);
    for program in &run {
        let Some((_, package)) = PACKAGES.iter().find(|(p, _)| p == program) else {
            panic!(
                "the agent runs `{program}`: add it with its Debian package to PACKAGES and to the image"
            );
        };
        if let Some(package) = package {
            assert!(
                packages.contains(*package),
                "the agent runs `{program}` but deploy/images/agent.Containerfile does not install {package} (installs {packages:?})"
            );
        }
    }
}

#[test]
fn the_scan_finds_each_way_a_program_is_run() {
    let src = r#"
const RDMA: &str = "rdma";
fn a() { runner.run(RDMA, &argv); Command::new("tc"); }
fn b() { for tool in ["mstconfig", "mlxconfig"] { self.runner.run(tool, &args); } }
const UNUSED: &str = "nothing";
#[cfg(test)]
mod tests { fn t() { Command::new("ip"); } }
"#;
    let found: Vec<String> = programs(src).into_iter().collect();
    assert_eq!(found, ["mlxconfig", "mstconfig", "rdma", "tc"]);
    let packages = installed_packages(
        "RUN apt-get update \\\n && apt-get install -y --no-install-recommends mstflint \\\n   iproute2 \\\n && rm -rf x\n",
    );
    assert_eq!(
        packages.into_iter().collect::<Vec<_>>(),
        ["iproute2", "mstflint"]
    );
}
