//! Fuzzing of everything the CNI plugin parses from outside (the tenant's configuration on stdin,
//! a chained `prevResult`, its own journal after damage), run by `cargo test` for a bounded time
//! with `nic::fuzz`: the committed corpus in `tests/fuzz-corpus/<target>/`, then `FUZZ_CASES`
//! (default 3000) mutations of it per target. A parser may refuse anything; it must not panic,
//! and whatever it accepts must hold what the checks promise (no path component, no `%`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

use smartnic_cni::{
    config::NetConf,
    env::{CniEnv, Command},
    result::AddResult,
    store::parse_journal,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

fn env(command: Command) -> CniEnv {
    CniEnv {
        command,
        container_id: "c1".into(),
        netns: Some("/var/run/netns/p".into()),
        ifname: "net1".into(),
        args: vec![("K8S_POD_NAMESPACE".into(), "team-a".into())],
        path: vec![],
    }
}

#[test]
fn network_configurations() {
    nic::fuzz::run(&dir(), "netconf", |b| {
        for command in [Command::Add, Command::Del, Command::Gc] {
            if let Ok(c) = NetConf::parse(b, &env(command)) {
                if let Some(f) = &c.log_file {
                    assert!(!f.contains('/') && !f.starts_with('.'), "logFile {f:?}");
                }
                for name in [&c.conf.master, &c.conf.bridge].into_iter().flatten() {
                    assert!(
                        name.bytes()
                            .all(|x| x.is_ascii_alphanumeric() || b"_.-@".contains(&x)),
                        "interface {name:?}"
                    );
                }
                let _ = smartnic_cni::allow::enforce(
                    &mut c.clone(),
                    &env(command),
                    &crds::cni::TenantAllowList::default(),
                );
                let _ = smartnic_cni::ipam::Ipam::from_conf(&c, &env(command));
            }
        }
    });
}

#[test]
fn results() {
    nic::fuzz::run(&dir(), "result", |b| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b)
            && let Ok(r) = AddResult::from_json(&v)
        {
            for version in smartnic_cni::version::SUPPORTED {
                let _ = r.to_json(version.parse().unwrap());
            }
        }
    });
}

#[test]
fn journals() {
    nic::fuzz::run(&dir(), "journal", |b| {
        let (steps, bad) = parse_journal(b);
        assert!(steps.len() + bad <= b.split(|x| *x == b'\n').count());
    });
}
