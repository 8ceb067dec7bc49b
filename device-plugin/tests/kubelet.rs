//! The plugin against a fake kubelet, on temp-dir sockets over fixture sysfs trees.

mod common;

use std::time::Instant;

use common::*;
use crds::inventory::EswitchMode;
use device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty,
    PreStartContainerRequest, PreferredAllocationRequest,
};
use nic::fixtures::HostBuilder;
use tonic::Code;

fn healthy(ids: &[&str], numa: Option<i64>) -> Vec<(String, String, Option<i64>)> {
    ids.iter()
        .map(|i| (i.to_string(), "Healthy".to_string(), numa))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_and_lists_devices_with_topology() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(&[
        pool_json("cx6_vf", "netdevice", &["0000:3b:00.0"], ""),
        pool_json(
            "cx6_p1",
            "netdevice",
            &["0000:3b:00.1"],
            r#", "excludeTopology": true"#,
        ),
    ]);
    let plugin = Plugin::start_with(host.root(), Some(&cfg), false, |s| {
        s.plugin_dir = dir.path().to_owned();
    })
    .await;
    let mut kubelet = FakeKubelet::start(dir.path()).await;
    let mut regs = [
        kubelet.next_registration().await,
        kubelet.next_registration().await,
    ];
    regs.sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
    let r = &regs[1];
    assert_eq!(r.version, "v1beta1");
    assert_eq!(r.resource_name, "smartnic.io/cx6_vf");
    assert_eq!(r.endpoint, "smartnic.io_cx6_vf.sock");
    let opts = r.options.unwrap();
    assert!(opts.get_preferred_allocation_available && !opts.pre_start_required);
    assert_eq!(regs[0].endpoint, "smartnic.io_cx6_p1.sock");

    let mut c = kubelet.client("smartnic.io_cx6_vf.sock").await;
    let o = c
        .get_device_plugin_options(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(o.get_preferred_allocation_available && !o.pre_start_required);
    c.pre_start_container(PreStartContainerRequest {
        devices_ids: vec!["0000:3b:00.2".into()],
    })
    .await
    .unwrap();
    let mut s = kubelet.list_and_watch("smartnic.io_cx6_vf.sock").await;
    assert_eq!(
        devices(&next_list(&mut s).await),
        healthy(
            &[
                "0000:3b:00.2",
                "0000:3b:00.3",
                "0000:3b:00.4",
                "0000:3b:00.5"
            ],
            Some(0)
        )
    );
    let mut s1 = kubelet.list_and_watch("smartnic.io_cx6_p1.sock").await;
    assert_eq!(
        devices(&next_list(&mut s1).await),
        healthy(&["0000:3b:01.2", "0000:3b:01.3"], None)
    );
    plugin.stop().await.unwrap();
    // sockets removed on a clean stop
    assert!(!dir.path().join("smartnic.io_cx6_vf.sock").exists());
    assert!(!dir.path().join("smartnic.io_cx6_p1.sock").exists());
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pf_carrier_loss_turns_vfs_unhealthy() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .build()
        .unwrap();
    let cfg = config_json(&[pool_json("cx6_vf", "netdevice", &["0000:3b:00.0"], "")]);
    let plugin = Plugin::start(host.root(), Some(&cfg), false).await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    assert!(
        next_list(&mut s)
            .await
            .devices
            .iter()
            .all(|d| d.health == "Healthy")
    );

    let netdev = host.device_dir("0000:3b:00.0").join("net/ens1f0np0");
    let t0 = Instant::now();
    // carrier loss: the kernel reports it in operstate
    std::fs::write(netdev.join("operstate"), "down\n").unwrap();
    let down = next_list(&mut s).await;
    let took = t0.elapsed();
    assert_eq!(down.devices.len(), 4);
    assert!(
        down.devices.iter().all(|d| d.health == "Unhealthy"),
        "{down:?}"
    );
    println!("carrier loss -> ListAndWatch update: {took:?}");

    std::fs::write(netdev.join("operstate"), "up\n").unwrap();
    let up = next_list(&mut s).await;
    assert!(up.devices.iter().all(|d| d.health == "Healthy"), "{up:?}");

    // Allocate refuses an unhealthy device (the kubelet's view may be stale)
    std::fs::write(netdev.join("operstate"), "down\n").unwrap();
    next_list(&mut s).await;
    let mut c = kubelet.client(&reg.endpoint).await;
    let e = c
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:3b:00.2".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message()
            .contains("0000:3b:00.2 is unhealthy: PF 0000:3b:00.0 (ens1f0np0) link is down"),
        "{}",
        e.message()
    );
    plugin.stop().await.unwrap();
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_and_pools_come_and_go_without_restart() {
    let host = HostBuilder::new()
        .igb_82576()
        .cx6dx(EswitchMode::Legacy)
        .build()
        .unwrap();
    let igb = pool_json("igb_vf", "netdevice", &["0000:01:00.0"], "");
    let plugin = Plugin::start(
        host.root(),
        Some(&config_json(std::slice::from_ref(&igb))),
        false,
    )
    .await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    assert_eq!(reg.resource_name, "smartnic.io/igb_vf");
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    assert_eq!(
        devices(&next_list(&mut s).await),
        healthy(&["0000:01:10.0", "0000:01:10.2"], None)
    );

    // a VF appears
    host.set_attr("0000:01:00.0", "sriov_numvfs", "3\n")
        .unwrap();
    host.settle().unwrap();
    // the fixture rewrites every VF, so a poll may see them gone for a moment first
    let want = healthy(&["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"], None);
    within("the new VF in ListAndWatch", async {
        while devices(&next_list(&mut s).await) != want {}
    })
    .await;

    // a pool is added: served and registered, the first one untouched
    let cx6 = pool_json("cx6_vf", "netdevice", &["0000:3b:00.0"], "");
    plugin.write_config(&config_json(&[cx6.clone(), igb.clone()]));
    let reg2 = kubelet.next_registration().await;
    assert_eq!(reg2.resource_name, "smartnic.io/cx6_vf");
    let mut s2 = kubelet.list_and_watch(&reg2.endpoint).await;
    assert_eq!(next_list(&mut s2).await.devices.len(), 4);

    // the first pool is removed: its socket goes away and its stream ends
    plugin.write_config(&config_json(&[cx6]));
    let end = within("the removed pool's stream to end", s.message()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    within("the removed pool's socket to go", async {
        while plugin.plugin_dir.join(&reg.endpoint).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(plugin.plugin_dir.join(&reg2.endpoint).exists());
    // no re-registration of the remaining pool
    assert!(kubelet.registrations.try_recv().is_err());
    assert_eq!(plugin.metrics.registrations_of("smartnic.io/cx6_vf"), 1);
    plugin.stop().await.unwrap();
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_returns_env_device_specs_and_device_info() {
    let host = HostBuilder::new().e810().build().unwrap();
    // e810 VF 1 (0000:17:02.1) is on vfio-pci, IOMMU group 22
    let cfg = config_json(&[pool_json(
        "e810_dpdk",
        "vfio-pci",
        &["0000:17:00.0"],
        r#", "needVhostNet": true"#,
    )]);
    let plugin = Plugin::start(host.root(), Some(&cfg), false).await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    let first = devices(&next_list(&mut s).await);
    assert_eq!(
        first
            .iter()
            .filter(|d| d.1 == "Healthy")
            .map(|d| d.0.as_str())
            .collect::<Vec<_>>(),
        ["0000:17:02.1"]
    );
    let mut c = kubelet.client(&reg.endpoint).await;
    let resp = c
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:17:02.1".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let r = &resp.container_responses[0];
    assert_eq!(r.envs["PCIDEVICE_SMARTNIC_IO_E810_DPDK"], "0000:17:02.1");
    let info: serde_json::Value =
        serde_json::from_str(&r.envs["PCIDEVICE_SMARTNIC_IO_E810_DPDK_INFO"]).unwrap();
    assert_eq!(info["0000:17:02.1"]["vfio"]["dev-mount"], "/dev/vfio/22");
    let specs: Vec<(&str, &str, &str)> = r
        .devices
        .iter()
        .map(|d| {
            (
                d.host_path.as_str(),
                d.container_path.as_str(),
                d.permissions.as_str(),
            )
        })
        .collect();
    assert_eq!(
        specs,
        [
            ("/dev/vfio/22", "/dev/vfio/22", "rw"),
            ("/dev/vfio/vfio", "/dev/vfio/vfio", "rw"),
            ("/dev/vhost-net", "/dev/vhost-net", "rw"),
            ("/dev/net/tun", "/dev/net/tun", "rw")
        ]
    );
    let file = plugin
        .devinfo_dir
        .join("smartnic.io-e810_dpdk-0000:17:02.1-device.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"type": "pci", "version": "1.1.0",
            "pci": {"pci-address": "0000:17:02.1", "pf-pci-address": "0000:17:00.0"}})
    );
    // a VF on the wrong driver and an unknown device are refused
    let e = c
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:17:02.0".into()],
            }],
        })
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("bound to iavf, the pool wants vfio-pci"),
        "{}",
        e.message()
    );
    let e = c
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:99:00.0".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    plugin.stop().await.unwrap();
    // device-info files go with the plugin
    assert!(!file.exists());
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdi_mode_writes_specs_and_answers_with_annotations() {
    let host = HostBuilder::new().e810().build().unwrap();
    let cfg = config_json(&[pool_json("e810_dpdk", "vfio-pci", &["0000:17:00.0"], "")]);
    let plugin = Plugin::start(host.root(), Some(&cfg), true).await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    let mut c = kubelet.client(&reg.endpoint).await;
    let resp = c
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:17:02.1".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let r = &resp.container_responses[0];
    assert!(r.devices.is_empty());
    assert_eq!(
        r.annotations["cdi.k8s.io/smartnic.io_e810_dpdk"],
        "smartnic.io/e810_dpdk=0000:17:02.1"
    );
    let spec_path = plugin.cdi_dir.join("smartnic.io-e810_dpdk.json");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    assert_eq!(spec["kind"], "smartnic.io/e810_dpdk");
    let vf1 = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "0000:17:02.1")
        .unwrap();
    assert_eq!(
        vf1["containerEdits"]["deviceNodes"][1]["path"],
        "/dev/vfio/22"
    );
    plugin.stop().await.unwrap();
    assert!(!spec_path.exists());
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_allocation_respects_numa() {
    // CX6 VFs on NUMA 0, E810 VFs on NUMA 1, one pool over both
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .e810()
        .build()
        .unwrap();
    let cfg = config_json(&[pool_json(
        "vf",
        "netdevice",
        &["0000:3b:00.0", "0000:17:00.0"],
        "",
    )]);
    let plugin = Plugin::start(host.root(), Some(&cfg), false).await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    let mut c = kubelet.client(&reg.endpoint).await;
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    let all: Vec<String> = next_list(&mut s)
        .await
        .devices
        .iter()
        .filter(|d| d.health == "Healthy")
        .map(|d| d.id.clone())
        .collect();
    let ask = |must: &[&str], size: i32| PreferredAllocationRequest {
        container_requests: vec![ContainerPreferredAllocationRequest {
            available_device_i_ds: all.clone(),
            must_include_device_i_ds: must.iter().map(|s| s.to_string()).collect(),
            allocation_size: size,
        }],
    };
    let got = c
        .get_preferred_allocation(ask(&["0000:17:02.2"], 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.container_responses[0].device_i_ds,
        ["0000:17:02.2", "0000:17:02.0", "0000:17:02.3"]
    );
    let got = c
        .get_preferred_allocation(ask(&["0000:3b:00.4"], 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.container_responses[0].device_i_ds,
        ["0000:3b:00.4", "0000:3b:00.2"]
    );
    plugin.stop().await.unwrap();
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_missing_bad_and_fixed() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    // missing: no pools, the plugin waits
    let plugin = Plugin::start(host.root(), None, false).await;
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let good = config_json(&[pool_json("igb_vf", "netdevice", &["0000:01:00.0"], "")]);
    plugin.write_config(&good);
    let reg = kubelet.next_registration().await;
    assert_eq!(reg.resource_name, "smartnic.io/igb_vf");
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    assert_eq!(next_list(&mut s).await.devices.len(), 2);

    // a bad file is refused: the pool keeps serving
    plugin.write_config(r#"{"resourceList": [{"resourceName": "igb_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice", "selectors": [{"pfs": [{"pciAddress": "01:00"}]}]}]}"#);
    within("the bad file to be refused", async {
        while plugin.metrics.render().contains(r#"result="error"} 0"#)
            || !plugin.metrics.render().contains(r#"result="error""#)
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(plugin.plugin_dir.join(&reg.endpoint).exists());
    let mut c = kubelet.client(&reg.endpoint).await;
    c.allocate(AllocateRequest {
        container_requests: vec![ContainerAllocateRequest {
            devices_ids: vec!["0000:01:10.2".into()],
        }],
    })
    .await
    .unwrap();
    plugin.stop().await.unwrap();
    kubelet.stop().await;

    // a bad file at start is refused with the field named
    let plugin = Plugin::start(host.root(), Some(r#"{"resourceList": [{"resourceName": "igb_vf", "resourcePrefix": "smartnic.io", "deviceType": "dpdk", "selectors": []}]}"#), false).await;
    let e = plugin.result().await.unwrap_err().to_string();
    assert!(
        e.contains("device-plugin.json: resourceList[0].deviceType: unknown variant `dpdk`"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_absent_kubelet_and_registers_when_it_comes() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let cfg = config_json(&[pool_json("igb_vf", "netdevice", &["0000:01:00.0"], "")]);
    let plugin = Plugin::start(host.root(), Some(&cfg), false).await;
    // serving already, nobody to register with
    within("the socket", async {
        while !plugin.plugin_dir.join("smartnic.io_igb_vf.sock").exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let mut kubelet = FakeKubelet::start(&plugin.plugin_dir).await;
    let reg = kubelet.next_registration().await;
    println!("kubelet start -> registration: {:?}", t0.elapsed());
    assert_eq!(reg.resource_name, "smartnic.io/igb_vf");
    let mut s = kubelet.list_and_watch(&reg.endpoint).await;
    assert_eq!(next_list(&mut s).await.devices.len(), 2);
    plugin.stop().await.unwrap();
    kubelet.stop().await;
}
