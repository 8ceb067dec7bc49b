//! Fuzzing of the decoders that read what the kernel sends (rtnetlink event datagrams, devlink
//! and ethtool generic-netlink messages, uevents, MAC attributes), run by `cargo test` for a
//! bounded time: each target gets the committed corpus (`nic/tests/fuzz-corpus/<target>/*`),
//! then mutations of it (bit flips, cuts, splices, random bytes) from proptest. A decoder may
//! refuse anything; it must not panic, loop or allocate without bound. The harness is
//! [`crate::fuzz`].

use std::path::PathBuf;

use netlink_packet_core::ParseableParametrized;
use netlink_packet_generic::GenlHeader;

use crate::{devlink::DevlinkMessage, ethtool::FeaturesMessage, uevent::Uevent};

fn run(target: &str, check: impl Fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    crate::fuzz::run(&dir, target, check);
}

fn genl(cmd: u8) -> GenlHeader {
    GenlHeader { cmd, version: 1 }
}

#[test]
fn rtnetlink_event_datagrams() {
    run("rtnetlink-events", |b| {
        let _ = super::events::events_from_datagram(b);
    });
}

#[test]
fn devlink_messages() {
    run("devlink", |b| {
        for cmd in [1, 3, 5, 7, 8] {
            let _ = DevlinkMessage::parse_with_param(b, genl(cmd));
        }
    });
}

#[test]
fn ethtool_feature_messages() {
    run("ethtool-features", |b| {
        for cmd in [11, 12, 13] {
            let _ = FeaturesMessage::parse_with_param(b, genl(cmd));
        }
    });
}

#[test]
fn uevents_and_mac_attributes() {
    run("uevent", |b| {
        let _ = Uevent::parse(b);
        let _ = super::MacAddr::from_slice(b);
    });
}
