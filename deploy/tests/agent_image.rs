//! The agent's image holds exactly the programs the agent runs. `deploy/images/agent-packages.txt`
//! is the one list: each external command named in the sources the `smartnic-agent` binary is
//! built from (`agent/src`, and `offload/src`, which it links for the overlay) with the Debian
//! package that ships it. A new `Command::new("x")` or `runner.run(X, ..)` that the list does not
//! name fails the test, as does a listed program the code no longer runs; the packages the list
//! names are exactly those on the `apt-get install` line of `deploy/images/agent.Containerfile`
//! and in the package table of `deploy/README.md`. `deploy/images/build.sh` installs the same
//! list into its debootstrap root.
//!
//! Also here: `deploy/images/images.txt` (the images `build.sh` writes) agrees with the
//! Containerfiles and the manifests (name, entrypoint, user).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

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
    // the runtime stage's (the last FROM's) install line(s), continuation lines joined
    let runtime = containerfile
        .rsplit("\nFROM ")
        .next()
        .unwrap_or(containerfile);
    let joined = runtime.replace("\\\n", " ");
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

/// One line of `agent-packages.txt`: the program and its package (`None` for `-`); the third
/// column, its version argument, is the self-test's.
struct Listed {
    program: String,
    package: Option<String>,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines of a whitespace-separated list file (`#` starts a comment), each split in words.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

fn listed(text: &str) -> Vec<Listed> {
    rows(text)
        .into_iter()
        .map(|w| {
            assert_eq!(
                w.len(),
                3,
                "agent-packages.txt: `{}` is not `program package version-argument`",
                w.join(" ")
            );
            Listed {
                program: w[0].clone(),
                package: (w[1] != "-").then(|| w[1].clone()),
            }
        })
        .collect()
}

fn listed_packages(list: &[Listed]) -> BTreeSet<String> {
    list.iter().filter_map(|l| l.package.clone()).collect()
}

/// The package names of the table under `## The agent image's packages` in a README: the first
/// backquoted word of each table row.
fn readme_packages(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("The agent image's packages"))
        .unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
}

fn programs_the_agent_runs() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&repo().join("agent/src"), &mut files);
    sources(&repo().join("offload/src"), &mut files);
    let mut run: BTreeSet<String> = BTreeSet::new();
    for f in &files {
        run.extend(programs(
            &std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        ));
    }
    run
}

#[test]
fn the_package_list_names_exactly_the_programs_the_agent_runs() {
    let run = programs_the_agent_runs();
    // the scan itself must see the programs we know the agent runs
    for known in ["mstconfig", "rdma", "ovs-ofctl"] {
        assert!(
            run.contains(known),
            "the source scan no longer finds {known}: {run:?}"
        );
    }
    let list = listed(&read("deploy/images/agent-packages.txt"));
    let in_list: BTreeSet<String> = list.iter().map(|l| l.program.clone()).collect();
    for program in &run {
        assert!(
            in_list.contains(program),
            "the agent runs `{program}`: add it with its Debian package to deploy/images/agent-packages.txt"
        );
    }
    for program in &in_list {
        assert!(
            run.contains(program),
            "deploy/images/agent-packages.txt lists `{program}`, which the agent's code no longer runs: remove it"
        );
    }
}

#[test]
fn the_containerfile_installs_the_listed_packages() {
    let list = listed_packages(&listed(&read("deploy/images/agent-packages.txt")));
    let image = installed_packages(&read("deploy/images/agent.Containerfile"));
    assert_eq!(
        image, list,
        "deploy/images/agent.Containerfile installs other packages than deploy/images/agent-packages.txt lists"
    );
}

#[test]
fn the_readme_lists_the_packages_of_the_list() {
    let list = listed_packages(&listed(&read("deploy/images/agent-packages.txt")));
    let readme = readme_packages(&read("deploy/README.md"));
    assert_eq!(
        readme, list,
        "deploy/README.md (## The agent image's packages) differs from deploy/images/agent-packages.txt"
    );
}

/// `images.txt`: name, crate, binary, profile, root, user.
fn images() -> Vec<Vec<String>> {
    let rows = rows(&read("deploy/images/images.txt"));
    for r in &rows {
        assert_eq!(
            r.len(),
            6,
            "deploy/images/images.txt: `{}` has not 6 columns",
            r.join(" ")
        );
    }
    rows
}

#[test]
fn each_image_has_its_containerfile_and_its_manifest_entry() {
    let kustomization = read("deploy/kustomization.yaml");
    let mut manifests = String::new();
    for dir in std::fs::read_dir(repo().join("deploy")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "yaml") {
                manifests.push_str(&std::fs::read_to_string(&f).unwrap());
            }
        }
    }
    let images = images();
    assert!(
        images.len() >= 4,
        "images.txt names {} images",
        images.len()
    );
    for r in &images {
        let (name, binary, user) = (&r[0], &r[2], &r[5]);
        let entry = format!("/usr/local/bin/{binary}");
        let component = name.strip_prefix("smartnic-").unwrap_or(name);
        let cf = read(&format!("deploy/images/{component}.Containerfile"));
        assert!(
            cf.contains(&format!("ENTRYPOINT [\"{entry}\"]")),
            "{component}.Containerfile: the entrypoint is not {entry}"
        );
        let cf_user = cf
            .lines()
            .filter_map(|l| l.strip_prefix("USER "))
            .next_back()
            .unwrap_or("0:0");
        assert_eq!(
            cf_user.trim(),
            user,
            "{component}.Containerfile: USER differs from images.txt"
        );
        assert!(
            kustomization.contains(&format!("- name: {name}\n")),
            "deploy/kustomization.yaml has no images: entry for {name}"
        );
        // every container of this image runs its binary
        let uses: Vec<&str> = manifests
            .split(&format!("image: {name}\n"))
            .skip(1)
            .collect();
        assert!(!uses.is_empty(), "no manifest runs image {name}");
        for after in uses {
            let command = after
                .lines()
                .find_map(|l| l.trim().strip_prefix("command: ["))
                .unwrap_or_default();
            assert!(
                command.starts_with(&format!("{entry},"))
                    || command.starts_with(&format!("{entry}]")),
                "a container of image {name} runs `{command}`, not {entry}"
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
    let list = listed("# c\nrdma iproute2 -V # x\n\nmlxconfig - -\n");
    assert_eq!(
        listed_packages(&list).into_iter().collect::<Vec<_>>(),
        ["iproute2"]
    );
    let readme = "## Other\n| `no` | x |\n## The agent image's packages\n\n| package |\n|---|\n| `iproute2` | `rdma` |\n## Next\n| `no` |\n";
    assert_eq!(
        readme_packages(readme).into_iter().collect::<Vec<_>>(),
        ["iproute2"]
    );
}
