//! InfiniBand VF GUIDs through the planner: the policy's pool checks, the pool handed out on a
//! node, and the agent's steps (GUIDs set through the PF, then the rebind mlx5 needs).

use crds::{
    guid::{Guid, GuidRange},
    inventory::{LinkType, Nic},
    node_state::NicNodeStateSpec,
};

use crate::{
    apply::{PfFacts, Step, plan_host},
    desired::desired_node_state,
    fixtures::{inventory, labels, policy, with_vfs},
    validate::validate_policy_spec,
};

/// A ConnectX-6 InfiniBand port (15b3:101b) whose node GUID is `b8:ce:f6:03:00:5a:20:0<port>`.
fn ib_port(pci: &str, name: &str, port: u8) -> Nic {
    Nic {
        pci_address: pci.into(),
        name: Some(name.into()),
        vendor_id: "15b3".into(),
        device_id: "101b".into(),
        driver: Some("mlx5_core".into()),
        link_type: Some(LinkType::Ib),
        mtu: Some(4092),
        mac: Some(format!(
            "00:00:10:87:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:5a:20:0{port}"
        )),
        node_guid: Some(Guid(0xb8ce_f603_005a_2000 + u64::from(port))),
        total_vfs: 8,
        ..Default::default()
    }
}

fn g(s: &str) -> Guid {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> GuidRange {
    GuidRange {
        start: g(a),
        end: g(b),
    }
}

/// An IB policy with 4 VFs on `ibp*` ports of node `gpu-01`, with `pool`.
fn ib_policy(pool: Vec<GuidRange>) -> crds::NicPolicy {
    let mut p = policy("ib", 10, &[]);
    p.spec.nic_selector.device_id = Some("101b".into());
    p.spec.link_type = Some(LinkType::Ib);
    p.spec.num_vfs = 4;
    p.spec.resource_name = "ib_vf".into();
    p.spec.is_rdma = true;
    p.spec.node_selector.match_labels = Some(labels(&[
        ("kubernetes.io/hostname", "gpu-01"),
        ("gpu", "true"),
    ]));
    p.spec.ib_guid_pool = pool;
    p
}

fn node() -> std::collections::BTreeMap<String, String> {
    labels(&[("kubernetes.io/hostname", "gpu-01"), ("gpu", "true")])
}

fn errors(p: &crds::NicPolicy) -> Vec<String> {
    validate_policy_spec(&p.spec)
        .err()
        .unwrap_or_default()
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect()
}

#[test]
fn a_guid_pool_is_checked_as_a_whole() {
    let ok = ib_policy(vec![range(
        "02:00:00:00:00:00:00:01",
        "02:00:00:00:00:00:00:08",
    )]);
    assert_eq!(errors(&ok), Vec::<String>::new());
    let cases: Vec<(&str, crds::NicPolicy, &str)> = vec![
        (
            "too few",
            ib_policy(vec![range(
                "02:00:00:00:00:00:00:01",
                "02:00:00:00:00:00:00:03",
            )]),
            "spec.ibGuidPool: holds 3 GUIDs, fewer than numVfs 4",
        ),
        (
            "zero GUID",
            ib_policy(vec![range(
                "00:00:00:00:00:00:00:00",
                "00:00:00:00:00:00:00:09",
            )]),
            "spec.ibGuidPool[0]: holds the reserved GUID 00:00:00:00:00:00:00:00",
        ),
        (
            "all ones",
            ib_policy(vec![range(
                "ff:ff:ff:ff:ff:ff:ff:f0",
                "ff:ff:ff:ff:ff:ff:ff:ff",
            )]),
            "spec.ibGuidPool[0]: holds the reserved GUID ff:ff:ff:ff:ff:ff:ff:ff",
        ),
        (
            "overlap",
            ib_policy(vec![
                range("02:00:00:00:00:00:00:01", "02:00:00:00:00:00:00:04"),
                range("02:00:00:00:00:00:00:04", "02:00:00:00:00:00:00:08"),
            ]),
            "spec.ibGuidPool[1]: overlaps spec.ibGuidPool[0]",
        ),
        (
            "reversed",
            ib_policy(vec![
                range("02:00:00:00:00:00:00:09", "02:00:00:00:00:00:00:01"),
                range("02:00:00:00:00:00:01:00", "02:00:00:00:00:00:01:09"),
            ]),
            "spec.ibGuidPool[0]: end 02:00:00:00:00:00:00:01 is below start",
        ),
        (
            "ethernet",
            {
                let mut p = ib_policy(vec![range(
                    "02:00:00:00:00:00:00:01",
                    "02:00:00:00:00:00:00:08",
                )]);
                p.spec.link_type = None;
                p
            },
            "spec.ibGuidPool: gives InfiniBand VFs their GUIDs: it needs linkType ib",
        ),
        (
            "many nodes",
            {
                let mut p = ib_policy(vec![range(
                    "02:00:00:00:00:00:00:01",
                    "02:00:00:00:00:00:00:08",
                )]);
                p.spec.node_selector.match_labels = Some(labels(&[("gpu", "true")]));
                p
            },
            "must select one node by nodeSelector.matchLabels kubernetes.io/hostname",
        ),
    ];
    for (case, p, want) in cases {
        let got = errors(&p);
        assert!(
            got.iter().any(|e| e.contains(want)),
            "{case}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn the_pool_is_handed_out_in_pf_address_order_and_a_pf_it_cannot_fill_is_rejected() {
    let p = ib_policy(vec![
        range("02:00:00:00:00:00:10:00", "02:00:00:00:00:00:10:02"),
        range("02:00:00:00:00:00:20:00", "02:00:00:00:00:00:20:04"),
    ]);
    let inv = inventory(vec![
        ib_port("0000:b0:00.0", "ibp176s0", 2),
        ib_port("0000:af:00.0", "ibp175s0", 1),
        ib_port("0000:b1:00.0", "ibp177s0", 3),
    ]);
    let plan = desired_node_state(&[p], &node(), &inv);
    let guids: Vec<(String, Vec<GuidRange>)> = plan
        .spec
        .interfaces
        .iter()
        .flat_map(|i| {
            i.vf_groups
                .iter()
                .map(|g| (i.pci_address.clone(), g.ib_guids.clone()))
        })
        .collect();
    assert_eq!(
        guids,
        vec![
            (
                "0000:af:00.0".to_owned(),
                vec![
                    range("02:00:00:00:00:00:10:00", "02:00:00:00:00:00:10:02"),
                    range("02:00:00:00:00:00:20:00", "02:00:00:00:00:00:20:00"),
                ]
            ),
            (
                "0000:b0:00.0".to_owned(),
                vec![range("02:00:00:00:00:00:20:01", "02:00:00:00:00:00:20:04")]
            ),
        ]
    );
    assert_eq!(plan.rejections.len(), 1, "{:?}", plan.rejections);
    let r = &plan.rejections[0];
    assert_eq!(r.pf.as_deref(), Some("0000:b1:00.0"));
    assert!(r.reason.contains("GUID pool is exhausted"), "{}", r.reason);
}

fn spec_of(p: &crds::NicPolicy, nic: &Nic) -> NicNodeStateSpec {
    desired_node_state(
        std::slice::from_ref(p),
        &node(),
        &inventory(vec![nic.clone()]),
    )
    .spec
}

fn steps(spec: &NicNodeStateSpec, nic: &Nic) -> Vec<String> {
    let plan = plan_host(
        &NicNodeStateSpec::default(),
        spec,
        &inventory(vec![nic.clone()]),
        &std::collections::BTreeMap::<String, PfFacts>::new(),
    );
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    plan.pfs[0].steps.iter().map(Step::to_string).collect()
}

/// The vendor's order: VFs created and probed, their GUIDs set through the PF, then a rebind so
/// that mlx5 hands them to the VFs (it reads them at probe).
#[test]
fn new_ib_vfs_get_derived_guids_through_the_pf_then_a_rebind() {
    let nic = ib_port("0000:af:00.0", "ibp175s0", 0);
    let p = ib_policy(Vec::new());
    let spec = spec_of(&p, &nic);
    assert_eq!(
        steps(&spec, &nic),
        [
            "sriov_numvfs 4",
            "wait for 4 VFs (driver, netdev)",
            "vf 0 node_guid ba:ce:f6:5a:20:00:00:00 port_guid ba:ce:f6:5a:20:00:00:00",
            "vf 1 node_guid ba:ce:f6:5a:20:00:00:01 port_guid ba:ce:f6:5a:20:00:00:01",
            "vf 2 node_guid ba:ce:f6:5a:20:00:00:02 port_guid ba:ce:f6:5a:20:00:00:02",
            "vf 3 node_guid ba:ce:f6:5a:20:00:00:03 port_guid ba:ce:f6:5a:20:00:00:03",
            "rebind VFs 0-3",
        ]
    );
}

#[test]
fn pool_guids_go_to_free_vfs_only_and_a_host_showing_them_is_in_sync() {
    let mut nic = with_vfs(ib_port("0000:af:00.0", "ibp175s0", 0), 4, &[2], &[]);
    let p = ib_policy(vec![range(
        "02:00:00:00:00:00:10:00",
        "02:00:00:00:00:00:10:07",
    )]);
    let spec = spec_of(&p, &nic);
    // VF 2 is in a pod: its GUID is never changed under it
    assert_eq!(
        steps(&spec, &nic),
        [
            "vf 0 node_guid 02:00:00:00:00:00:10:00 port_guid 02:00:00:00:00:00:10:00",
            "vf 1 node_guid 02:00:00:00:00:00:10:01 port_guid 02:00:00:00:00:00:10:01",
            "vf 3 node_guid 02:00:00:00:00:00:10:03 port_guid 02:00:00:00:00:00:10:03",
            "rebind VFs 0-1,3",
        ]
    );
    for (i, vf) in nic.vfs.iter_mut().enumerate() {
        let guid = Guid(0x0200_0000_0000_1000 + i as u64);
        (vf.node_guid, vf.port_guid) = (Some(guid), Some(guid));
    }
    assert_eq!(steps(&spec, &nic), Vec::<String>::new());
}

#[test]
fn ethernet_pfs_and_ports_without_a_node_guid_get_no_guid_step() {
    let mut nic = ib_port("0000:af:00.0", "ibp175s0", 0);
    nic.node_guid = None;
    let spec = spec_of(&ib_policy(Vec::new()), &nic);
    assert!(!steps(&spec, &nic).iter().any(|s| s.contains("guid")));
}

/// The device-plugin pool of an IB policy names its link type (`linkTypes: [infiniband]`), as
/// sriov-network-operator renders it; a vfio-pci pool or a PF whose link type the spec leaves
/// open names none.
#[test]
fn the_rendered_pool_names_the_link_type_of_netdevice_vfs() {
    use crds::{device_plugin::DeviceLinkType, policy::VfDeviceType};
    let nic = ib_port("0000:af:00.0", "ibp175s0", 0);
    let spec = crate::device_plugin::with_device_plugin_config(
        spec_of(&ib_policy(Vec::new()), &nic),
        "smartnic.io",
    );
    let json = serde_json::to_value(&spec.device_plugin).unwrap();
    assert_eq!(
        json["resourceList"][0]["selectors"][0]["linkTypes"],
        serde_json::json!(["infiniband"])
    );
    let mut vfio = ib_policy(Vec::new());
    vfio.spec.device_type = VfDeviceType::VfioPci;
    vfio.spec.is_rdma = false;
    let spec = crate::device_plugin::with_device_plugin_config(spec_of(&vfio, &nic), "smartnic.io");
    assert!(
        spec.device_plugin.resource_list[0].selectors[0]
            .link_types
            .is_empty()
    );
    let mut open = ib_policy(Vec::new());
    open.spec.link_type = None;
    let spec = crate::device_plugin::with_device_plugin_config(spec_of(&open, &nic), "smartnic.io");
    assert_ne!(
        spec.device_plugin.resource_list[0].selectors[0].link_types,
        [DeviceLinkType::Infiniband]
    );
}

fn ib_network() -> crds::NicNetworkSpec {
    crds::NicNetworkSpec {
        mode: crds::network::NetworkMode::Ib,
        resource_name: Some("ib_vf".into()),
        pkey: Some(0x8001),
        link_state: Some(crds::network::VfLinkState::Enable),
        ..Default::default()
    }
}

#[test]
fn an_ib_network_is_rendered_with_its_pkey_link_state_and_the_guid_capability() {
    let conf = crate::nad::render_cni_config("ibnet", &ib_network(), "smartnic.io");
    let json = serde_json::to_value(&conf).unwrap();
    assert_eq!(json["mode"], "ib");
    assert_eq!(json["resourceName"], "smartnic.io/ib_vf");
    assert_eq!(json["pkey"], 0x8001);
    assert_eq!(json["linkState"], "enable");
    assert_eq!(json["capabilities"]["infinibandGUID"], true);
    assert_eq!(json["capabilities"]["CNIDeviceInfoFile"], true);
    // sriov-only keys stay out; the network may turn the capability off
    assert!(json.get("vlan").is_none() && json.get("mtu").is_none());
    let mut off = ib_network();
    off.capabilities.insert("infinibandGUID".into(), false);
    let conf = crate::nad::render_cni_config("ibnet", &off, "smartnic.io");
    assert!(!conf.capabilities["infinibandGUID"]);
    // the pkey is an ib key only
    let mut sriov = ib_network();
    sriov.mode = crds::network::NetworkMode::Sriov;
    sriov.link_state = None;
    let conf = crate::nad::render_cni_config("n", &sriov, "smartnic.io");
    assert_eq!(conf.pkey, None);
}

#[test]
fn ib_network_fields_are_checked() {
    use crate::validate::validate_network;
    assert_eq!(validate_network(&ib_network()), Ok(()));
    let msg = |n: &crds::NicNetworkSpec| {
        validate_network(n)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut n = ib_network();
    n.pkey = Some(0x8000);
    assert!(
        msg(&n).contains("spec.pkey: 0x8000 names partition 0"),
        "{}",
        msg(&n)
    );
    let mut n = ib_network();
    n.resource_name = None;
    assert!(
        msg(&n).contains("spec.resourceName: is required in mode ib"),
        "{}",
        msg(&n)
    );
    let mut n = ib_network();
    n.vlan = Some(10);
    n.mtu = Some(2044);
    assert!(msg(&n).contains("spec.vlan"), "{}", msg(&n));
    assert!(
        msg(&n).contains("spec.mtu: not allowed in mode ib"),
        "{}",
        msg(&n)
    );
    let mut n = ib_network();
    n.mode = crds::network::NetworkMode::Sriov;
    assert!(
        msg(&n).contains("spec.pkey: only for mode ib, not sriov"),
        "{}",
        msg(&n)
    );
}
