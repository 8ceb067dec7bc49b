//! Root tests of the rtnetlink, netns and ethtool layers against the running kernel.
//!
//! Each test makes its own private network namespace (so the host's links are never touched)
//! and works inside it through [`RealHost`], on links with names unique to the test. The
//! namespace, and every link in it, disappears when the test ends, even when it fails.
//!
//! Without root, or without a kernel feature, a test prints `SKIP <name>: <reason>` on the real
//! stdout (past the test harness's capture) and returns; `scripts/check.sh` counts those lines as
//! skipped, not passed.

mod create;
mod events;
mod ip;
mod links;

use std::{future::Future, io::Write};

use nic::{
    host::{Host, RealHost},
    netlink::{NetlinkHandle, Veth},
    netns::{NetnsRef, create_netns},
};

/// Reports a skipped test in the form `scripts/check.sh` counts. Written straight to the
/// process's stdout: `println!` would be captured and dropped for a test that returns normally.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// True when running as root; otherwise reports the skip.
pub fn is_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(test, "needs root (creates network namespaces and links)");
    false
}

/// A fresh, private network namespace that lives as long as the returned reference (and the
/// handles on it).
pub fn private_netns() -> NetnsRef {
    NetnsRef::fd(create_netns().expect("create a network namespace"))
}

/// A handle inside `netns`.
pub fn netlink_in(netns: &NetnsRef) -> NetlinkHandle {
    RealHost::new()
        .expect("a host")
        .netlink(netns)
        .expect("a handle in the test namespace")
}

/// Runs `fut` on a current-thread runtime (the handles' work runs on their namespace threads).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(fut)
}

/// Creates the veth pair `a`/`b` through our own API.
pub async fn add_veth(nl: &NetlinkHandle, a: &str, b: &str) {
    nl.link()
        .add(Veth::new(b))
        .name(a)
        .execute()
        .await
        .expect("create a veth pair");
}

/// A private namespace and a handle in it, or `None` (skip reported) without root.
pub fn setup(test: &str) -> Option<(NetnsRef, NetlinkHandle)> {
    if !is_root(test) {
        return None;
    }
    let ns = private_netns();
    let nl = netlink_in(&ns);
    Some((ns, nl))
}
