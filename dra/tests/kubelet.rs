//! The services as the kubelet calls them: over unix sockets, with the kubelet's gRPC paths.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crds::inventory::EswitchMode;
use device_plugin::config::{Format, parse_and_check};
use device_plugin::host::scan;
use device_plugin::kubelet::connect;
use dra::claims::Store;
use dra::devices::{Facts, by_name, devices};
use dra::dra_api::dra_plugin_client::DraPluginClient;
use dra::dra_api::dra_plugin_server::DraPluginServer;
use dra::dra_api::{Claim, NodePrepareResourcesRequest, NodeUnprepareResourcesRequest};
use dra::registration_api::InfoRequest;
use dra::registration_api::registration_client::RegistrationClient;
use dra::registration_api::registration_server::RegistrationServer;
use dra::server::{ClaimReader, DraService, Driver, RegistrationService};
use futures::future::BoxFuture;
use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationResult, DeviceRequestAllocationResult, ResourceClaim,
    ResourceClaimConsumerReference, ResourceClaimStatus,
};
use nic::fixtures::HostBuilder;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

const UID: &str = "5f0c6a8e-0000-4000-8000-000000000001";

/// Claims by name, as the API server would answer.
struct FakeApi(BTreeMap<String, ResourceClaim>);

impl ClaimReader for FakeApi {
    fn get(&self, ns: &str, name: &str) -> BoxFuture<'static, Result<ResourceClaim, String>> {
        let r = self
            .0
            .get(&format!("{ns}/{name}"))
            .cloned()
            .ok_or_else(|| format!("resourceclaims \"{name}\" not found"));
        Box::pin(async move { r })
    }
}

fn claim(device: &str) -> ResourceClaim {
    let mut c = ResourceClaim::default();
    c.metadata.uid = Some(UID.into());
    c.status = Some(ResourceClaimStatus {
        allocation: Some(AllocationResult {
            devices: Some(DeviceAllocationResult {
                results: Some(vec![DeviceRequestAllocationResult {
                    driver: "smartnic.io".into(),
                    pool: "node-1".into(),
                    device: device.into(),
                    request: "vf".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        reserved_for: Some(vec![ResourceClaimConsumerReference {
            resource: "pods".into(),
            name: "pod".into(),
            uid: "pod-1".into(),
            api_group: Some(String::new()),
        }]),
        ..Default::default()
    });
    c
}

fn driver(dir: &Path, claims: BTreeMap<String, ResourceClaim>) -> Arc<Driver> {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .build()
        .expect("fixture");
    let cfg = parse_and_check(
        r#"{"resourceList": [{"resourceName": "cx6_vf", "resourcePrefix": "smartnic.io",
            "deviceType": "netdevice", "allocation": "dra",
            "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0"}]}]}]}"#,
        Format::Json,
    )
    .expect("config");
    let devs = devices(&cfg, &scan(&host.sysfs()).expect("scan"), &Facts::default());
    Arc::new(Driver {
        node: "node-1".into(),
        store: Store {
            prepared_dir: dir.join("claims"),
            cdi_dir: dir.join("cdi"),
        },
        known: std::sync::RwLock::new(Arc::new(by_name(&devs))),
        claims: Box::new(FakeApi(claims)),
        device_plugin_dir: None,
        lock: tokio::sync::Mutex::new(()),
    })
}

fn req(uid: &str, name: &str) -> Vec<Claim> {
    vec![Claim {
        namespace: "ns".into(),
        uid: uid.into(),
        name: name.into(),
    }]
}

#[tokio::test]
async fn registration_then_prepare_and_unprepare_over_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let claims = BTreeMap::from([("ns/vf".to_owned(), claim("pci-0000-3b-00-3"))]);
    let d = driver(dir.path(), claims);
    let svc_path = dir.path().join("plugins/smartnic.io/dra.sock");
    let reg_path = dir.path().join("plugins_registry/smartnic.io-reg.sock");
    std::fs::create_dir_all(svc_path.parent().unwrap()).unwrap();
    std::fs::create_dir_all(reg_path.parent().unwrap()).unwrap();
    let svc = UnixListener::bind(&svc_path).unwrap();
    let reg = UnixListener::bind(&reg_path).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DraPluginServer::new(DraService(d.clone())))
            .serve_with_incoming(UnixListenerStream::new(svc)),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(RegistrationService {
                endpoint: svc_path.clone(),
            }))
            .serve_with_incoming(UnixListenerStream::new(reg)),
    );

    // what the kubelet's plugin watcher asks
    let info = RegistrationClient::new(connect(&reg_path).await.unwrap())
        .get_info(InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.r#type, "DRAPlugin");
    assert_eq!(info.name, "smartnic.io");
    assert_eq!(info.endpoint, svc_path.display().to_string());
    assert_eq!(info.supported_versions, ["v1.DRAPlugin"]);

    let mut dra = DraPluginClient::new(connect(&svc_path).await.unwrap());
    let prepared = dra
        .node_prepare_resources(NodePrepareResourcesRequest {
            claims: req(UID, "vf"),
        })
        .await
        .unwrap()
        .into_inner();
    let r = &prepared.claims[UID];
    assert_eq!(r.error, "");
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0].device_name, "pci-0000-3b-00-3");
    assert_eq!(r.devices[0].pool_name, "node-1");
    assert_eq!(r.devices[0].request_names, ["vf"]);
    assert_eq!(r.devices[0].cdi_device_ids, ["smartnic.io/vf=0000:3b:00.3"]);
    let record = dir.path().join(format!("claims/{UID}.json"));
    let rec: crds::dra::PreparedClaim =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec.pod_uids, ["pod-1"]);
    // a repeated call: the same answer
    let again = dra
        .node_prepare_resources(NodePrepareResourcesRequest {
            claims: req(UID, "vf"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, prepared);

    // errors are per claim and name what is wrong
    let bad = dra
        .node_prepare_resources(NodePrepareResourcesRequest {
            claims: req("../../etc", "vf"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.claims["../../etc"].error.contains("not a claim UID"));
    let other = "5f0c6a8e-0000-4000-8000-000000000002";
    let missing = dra
        .node_prepare_resources(NodePrepareResourcesRequest {
            claims: req(other, "nope"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(missing.claims[other].error.contains("not found"));

    let done = dra
        .node_unprepare_resources(NodeUnprepareResourcesRequest {
            claims: req(UID, "vf"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.claims[UID].error, "");
    assert!(!record.exists());
    assert!(
        std::fs::read_dir(dir.path().join("cdi"))
            .unwrap()
            .next()
            .is_none()
    );
    // unknown claim: success
    let again = dra
        .node_unprepare_resources(NodeUnprepareResourcesRequest {
            claims: req(UID, "vf"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.claims[UID].error, "");
}
