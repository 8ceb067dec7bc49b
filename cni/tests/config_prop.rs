//! Property tests of the configuration and environment parsers: no panic on any JSON, and no
//! `..`, `/` or other trick in a device id, interface name or path gets through.
#![allow(missing_docs, clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::Value;
use smartnic_cni::{
    config::NetConf,
    env::{CniEnv, Command},
    validate,
};

fn env() -> CniEnv {
    CniEnv {
        command: Command::Add,
        container_id: "c1".into(),
        netns: Some("/var/run/netns/p".into()),
        ifname: "net1".into(),
        args: vec![("IP".into(), "10.0.0.1".into())],
        path: vec![],
    }
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
        prop::sample::select(vec![
            "sriov",
            "macvlan",
            "ipvlan",
            "ovs",
            "on",
            "off",
            "1.1.0",
            "0000:3b:02.1",
            "../x",
            "host-local",
            "static"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".*",
                    prop::sample::select(vec![
                        "cniVersion",
                        "name",
                        "type",
                        "mode",
                        "vlan",
                        "vlanQoS",
                        "vlanProto",
                        "spoofChk",
                        "spoofchk",
                        "trust",
                        "linkState",
                        "link_state",
                        "minTxRate",
                        "min_tx_rate",
                        "maxTxRate",
                        "max_tx_rate",
                        "macvlanMode",
                        "ipvlanMode",
                        "master",
                        "mtu",
                        "ipam",
                        "capabilities",
                        "deviceID",
                        "pciBusID",
                        "runtimeConfig",
                        "mac",
                        "ips",
                        "prevResult",
                        "args",
                        "cni",
                        "logFile",
                        "logLevel",
                        "cni.dev/valid-attachments",
                        "ranges",
                        "subnet",
                        "dataDir",
                        "interfaces",
                        "address",
                    ])
                    .prop_map(String::from),
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn base() -> serde_json::Map<String, Value> {
    serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "sriov"})
        .as_object()
        .unwrap()
        .clone()
}

/// Strings built from path-ish pieces: most contain a trick.
fn tricky() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "..",
            "/",
            ".",
            "a",
            "0000:3b:02.1",
            "\0",
            " ",
            "\n",
            "%2e%2e",
            "eth0",
            ":",
        ]),
        1..6,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_json_parses_or_fails_cleanly(v in json()) {
        let _ = NetConf::parse(v.to_string().as_bytes(), &env());
        let mut m = base();
        if let Value::Object(extra) = v {
            m.extend(extra);
        }
        let _ = NetConf::parse(Value::Object(m).to_string().as_bytes(), &env());
    }

    #[test]
    fn any_bytes_parse_or_fail_cleanly(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = NetConf::parse(&b, &env());
    }

    #[test]
    fn tricks_in_device_ids_are_rejected(s in tricky()) {
        let mut m = base();
        m.insert("deviceID".into(), Value::String(s.clone()));
        let parsed = NetConf::parse(Value::Object(m).to_string().as_bytes(), &env());
        // Whatever is accepted is a canonical PCI address: nothing that names another path.
        if parsed.is_ok() {
            let (dom, rest) = s.split_once(':').unwrap();
            prop_assert!((4..=8).contains(&dom.len()) && dom.bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
            prop_assert_eq!(rest, "3b:02.1");
        }
    }

    #[test]
    fn tricks_in_interface_names_and_paths_are_rejected(s in tricky()) {
        let trick = s == "." || s == ".." || s.contains(['/', '\0', ' ', '\n', ':']);
        if trick || s.len() > 15 {
            prop_assert!(validate::ifname(&s, "CNI_IFNAME", 4).is_err(), "ifname {s:?} accepted");
        }
        if trick || s.starts_with('.') || s.contains('%') {
            prop_assert!(validate::container_id(&s).is_err(), "container id {s:?} accepted");
            prop_assert!(validate::network_name(&s).is_err(), "network {s:?} accepted");
        }
        let p = format!("/var/lib/{s}");
        if p.split('/').any(|c| c == ".." || c == ".") || p.contains('\0') {
            prop_assert!(validate::abs_path(&p, "dataDir", 7).is_err(), "path {p:?} accepted");
            let mut m = base();
            m.insert("ipam".into(), serde_json::json!({"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": p}));
            m.insert("mode".into(), "macvlan".into());
            m.insert("master".into(), "eth0".into());
            let conf = NetConf::parse(Value::Object(m).to_string().as_bytes(), &env()).unwrap();
            let ipam = smartnic_cni::ipam::Ipam::from_conf(&conf, &env());
            prop_assert!(ipam.is_err(), "dataDir {p:?} accepted");
        }
    }
}
