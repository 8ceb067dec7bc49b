//! The sysfs trees checked in under `examples/hosts/` are exactly what the fixture presets write.
//!
//! Regenerate them after changing a preset:
//!
//! ```text
//! SMARTNIC_UPDATE_EXAMPLES=1 cargo test -p nic --test example_hosts
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crds::inventory::EswitchMode;
use nic::fixtures::HostBuilder;

/// Every example tree and the preset that writes it.
fn examples() -> Vec<(&'static str, HostBuilder)> {
    vec![
        (
            "cx6dx-switchdev",
            HostBuilder::new().cx6dx(EswitchMode::Switchdev),
        ),
        (
            "connectx6-ib",
            HostBuilder::new()
                .connectx6_ib()
                .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2)),
        ),
        ("e810", HostBuilder::new().e810()),
        ("igb-82576", HostBuilder::new().igb_82576()),
    ]
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hosts")
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every path under `root` (relative), with its content or link target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("readable tree").flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).expect("under root").to_owned();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(fs::read_link(&path).expect("link"))
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir
            } else {
                Entry::File(fs::read(&path).expect("file"))
            };
            out.insert(rel, entry);
        }
    }
    out
}

#[test]
fn checked_in_trees_match_the_presets() {
    let update = std::env::var_os("SMARTNIC_UPDATE_EXAMPLES").is_some();
    let mut drift = Vec::new();
    for (name, builder) in examples() {
        let checked_in = examples_dir().join(name);
        if update {
            if checked_in.exists() {
                fs::remove_dir_all(&checked_in).unwrap();
            }
            builder.build_in(&checked_in).unwrap();
            continue;
        }
        let fresh = builder.build().unwrap();
        let want = snapshot(fresh.root());
        // git cannot store an empty directory: a preset must not write one
        for (path, entry) in &want {
            if *entry == Entry::Dir {
                let has_children = want.keys().any(|p| p.parent() == Some(path.as_path()));
                assert!(
                    has_children,
                    "{name}: preset writes empty directory {path:?}"
                );
            }
        }
        let have = if checked_in.exists() {
            snapshot(&checked_in)
        } else {
            BTreeMap::new()
        };
        for (path, entry) in &want {
            match have.get(path) {
                None => drift.push(format!("{name}: missing {}", path.display())),
                Some(h) if h != entry => drift.push(format!("{name}: differs {}", path.display())),
                Some(_) => {}
            }
        }
        for path in have.keys().filter(|p| !want.contains_key(*p)) {
            drift.push(format!("{name}: extra {}", path.display()));
        }
    }
    assert!(
        drift.is_empty(),
        "examples/hosts drifted from the fixture presets ({} paths); regenerate with \
         `SMARTNIC_UPDATE_EXAMPLES=1 cargo test -p nic --test example_hosts`:\n{}",
        drift.len(),
        drift
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn checked_in_trees_discover_without_warnings() {
    if std::env::var_os("SMARTNIC_UPDATE_EXAMPLES").is_some() {
        return; // the other test is rewriting the trees
    }
    for (name, _) in examples() {
        let sysfs = nic::sysfs::SysFs::new(examples_dir().join(name));
        let d = nic::discovery::discover_with_warnings(&sysfs).expect("discovery");
        assert!(d.warnings.is_empty(), "{name}: {:?}", d.warnings);
        assert!(!d.inventory.nics.is_empty(), "{name}");
    }
}
