//! The uninstall on a fixture sysfs tree (QEMU's igb, as `nic::fixtures` writes it) with the
//! host paths under the same temporary root: VFs back as recorded, files removed, other
//! software's files left, and a pod holding a VF (or a DRA claim) blocking all of it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crds::node_state::{InterfaceSpec, NicNodeStateSpec};
use nic::fixtures::HostBuilder;

use super::clean::{CleanPaths, CleanReport, Cleanup};
use super::lookup_of;
use super::restore::PfOriginal;
use crate::handoff::DevicePluginFile;
use crate::run::host::LiveHost;
use crate::state::{AgentState, StateFile};
use crate::uninstall::decide::Lookup;

const IGB: &str = "0000:01:00.0";

struct World {
    _fixture: nic::fixtures::FakeHost,
    root: tempfile::TempDir,
    host: LiveHost,
    state: StateFile,
    handoff: DevicePluginFile,
    paths: CleanPaths,
}

impl World {
    fn at(&self, rel: &str) -> std::path::PathBuf {
        self.root.path().join(rel)
    }

    fn numvfs(&self) -> String {
        fs::read_to_string(
            self.root
                .path()
                .join(format!("sys/bus/pci/devices/{IGB}/sriov_numvfs")),
        )
        .unwrap_or_default()
        .trim()
        .to_owned()
    }

    fn cleanup(&self) -> Cleanup<'_> {
        Cleanup {
            host: &self.host,
            state: &self.state,
            handoff: &self.handoff,
            boot_id: "b1".into(),
            paths: &self.paths,
        }
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap_or(Path::new("/"))).unwrap();
    fs::write(path, text).unwrap();
}

/// igb with 2 VFs (the fixture's), which the agent made from 0; the node's files as the
/// components leave them; another plugin in /opt/cni/bin.
fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let fixture = HostBuilder::new()
        .igb_82576()
        .build_in(root.path())
        .unwrap();
    let host = LiveHost::new(fixture.sysfs());
    let state = StateFile::new(root.path().join("var/lib/smartnic/agent-state.json"));
    state
        .store(&AgentState {
            boot_id: Some("b1".into()),
            applied: Some(NicNodeStateSpec {
                interfaces: vec![InterfaceSpec {
                    pci_address: IGB.into(),
                    num_vfs: 2,
                    policy: "p".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            originals: BTreeMap::from([(
                IGB.to_owned(),
                PfOriginal {
                    num_vfs: 0,
                    eswitch_mode: None,
                    mtu: None,
                    driver: Some("igb".into()),
                },
            )]),
            ..Default::default()
        })
        .unwrap();
    let handoff = DevicePluginFile::new(root.path().join("var/lib/smartnic/device-plugin.json"));
    write(handoff.path(), "{\"resourceList\":[]}\n");
    write(&root.path().join("var/lib/smartnic/dra/claims/.tmp"), "");
    write(
        &root.path().join("etc/smartnic/cni-allow-list.json"),
        "{}\n",
    );
    fs::create_dir_all(root.path().join("run/smartnic/cni/vf")).unwrap();
    fs::create_dir_all(root.path().join("run/smartnic/cni/attachments")).unwrap();
    write(&root.path().join("var/log/smartnic/cni/net1.log"), "x\n");
    write(&root.path().join("opt/cni/bin/smartnic"), "binary");
    write(&root.path().join("opt/cni/bin/bridge"), "someone else's");
    let paths = CleanPaths::under(root.path(), &root.path().join("opt/cni/bin"));
    World {
        _fixture: fixture,
        root,
        host,
        state,
        handoff,
        paths,
    }
}

fn empty(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

#[test]
fn uninstall_puts_the_vfs_back_and_removes_our_files_only() {
    let w = world();
    assert_eq!(w.numvfs(), "2");
    let CleanReport::Done {
        restore,
        removed,
        errors,
    } = w.cleanup().run()
    else {
        panic!("blocked")
    };
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(w.numvfs(), "0", "VFs as they were before the agent");
    assert_eq!(restore.pfs.len(), 1);
    assert_eq!(restore.pfs[0].steps[0].text, "sriov_numvfs 0");
    assert!(
        removed.contains(&w.at("opt/cni/bin/smartnic")),
        "{removed:?}"
    );
    assert!(!w.at("opt/cni/bin/smartnic").exists());
    assert!(
        !w.at("opt/cni/bin/.smartnic-uninstalling").exists(),
        "marker left"
    );
    assert_eq!(
        fs::read_to_string(w.at("opt/cni/bin/bridge")).unwrap(),
        "someone else's"
    );
    for dir in [
        "var/lib/smartnic",
        "etc/smartnic",
        "run/smartnic",
        "var/log/smartnic",
    ] {
        assert!(empty(&w.at(dir)), "{dir} is not empty");
    }
}

#[test]
fn a_pod_holding_a_vf_blocks_the_whole_uninstall_and_is_named() {
    let w = world();
    write(&w.at("run/smartnic/cni/vf/0000:01:10.0.owner"), "c1:net1");
    write(
        &w.at("run/smartnic/cni/attachments/c1:net1"),
        "{\"step\":\"begin\",\"pod\":{\"namespace\":\"team-a\",\"name\":\"trainer-0\"}}\n",
    );
    let CleanReport::Blocked(why) = w.cleanup().run() else {
        panic!("not blocked")
    };
    assert!(
        why.contains("pod team-a/trainer-0 (attachment c1:net1, VF 0000:01:10.0)"),
        "{why}"
    );
    assert_eq!(w.numvfs(), "2", "no VF was reset");
    assert!(
        w.at("opt/cni/bin/smartnic").exists(),
        "the CNI binary stays"
    );
    assert!(w.state.path().exists(), "the state stays");
    assert!(!w.at("opt/cni/bin/.smartnic-uninstalling").exists());
}

#[test]
fn a_prepared_dra_claim_blocks_the_uninstall() {
    let w = world();
    write(
        &w.at("var/lib/smartnic/dra/claims/uid-1.json"),
        "{\"claimUid\":\"uid-1\",\"namespace\":\"ns\",\"name\":\"gpu-net\",\
         \"devices\":[{\"request\":\"vf\",\"pool\":\"n1\",\"device\":\"d\",\
         \"pciAddress\":\"0000:01:10.0\",\"resourceName\":\"r\",\"cdiDevice\":\"c\"}]}",
    );
    let CleanReport::Blocked(why) = w.cleanup().run() else {
        panic!("not blocked")
    };
    assert!(
        why.contains("claim ns/gpu-net (devices 0000:01:10.0)"),
        "{why}"
    );
    assert_eq!(w.numvfs(), "2");
}

#[test]
fn api_answers_map_to_lookups() {
    let status = |code: u16| {
        kube::Error::Api(
            kube::core::Status::failure("m", "r")
                .with_code(code)
                .boxed(),
        )
    };
    assert_eq!(lookup_of(Err(status(404))), Lookup::NotFound);
    assert_eq!(lookup_of(Err(status(401))), Lookup::Unauthorized);
    assert_eq!(lookup_of(Err(status(403))), Lookup::Forbidden);
    assert!(matches!(lookup_of(Err(status(500))), Lookup::Error(e) if e.starts_with("500")));
    let mut ds = k8s_openapi::api::apps::v1::DaemonSet::default();
    ds.metadata.uid = Some("u1".into());
    assert_eq!(
        lookup_of(Ok(ds.clone())),
        Lookup::Found {
            uid: "u1".into(),
            deleting: false
        }
    );
    ds.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        crds::k8s::jiff::Timestamp::UNIX_EPOCH,
    ));
    assert_eq!(
        lookup_of(Ok(ds)),
        Lookup::Found {
            uid: "u1".into(),
            deleting: true
        }
    );
}

const DS_PATH: &str = "/apis/apps/v1/namespaces/smartnic-system/daemonsets/smartnic-agent";

/// A client whose API server answers the one read of the DaemonSet with `status` and `body`.
fn api(status: u16, body: serde_json::Value) -> (kube::Client, tokio::task::JoinHandle<()>) {
    use http::{Request, Response};
    use kube::client::Body;
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(req.uri().path(), DS_PATH);
        send.send_response(
            Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("response"),
        );
    });
    (kube::Client::new(svc, "default"), task)
}

fn host_side(w: World) -> (crate::run::HostSide, World) {
    let side = crate::run::HostSide {
        host: std::sync::Arc::new(w.host.clone()),
        firmware: None,
        state: std::sync::Arc::new(w.state.clone()),
        handoff: std::sync::Arc::new(DevicePluginFile::new(w.handoff.path())),
        boot_id: "b1".into(),
        applying: Default::default(),
    };
    (side, w)
}

#[tokio::test]
async fn at_sigterm_a_deleted_daemonset_uninstalls_and_a_live_one_keeps_the_node() {
    let (side, w) = host_side(world());
    let live = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "smartnic-agent", "namespace": "smartnic-system", "uid": "u1"},
    });
    let (client, task) = api(200, live);
    let own = super::OwnDaemonSet::new(client, "smartnic-system", "smartnic-agent");
    super::on_stop(&own, Some("u1"), &side, w.paths.clone()).await;
    task.await.expect("served");
    assert_eq!(w.numvfs(), "2", "a restart changes nothing");
    assert!(w.at("opt/cni/bin/smartnic").exists());

    let gone = serde_json::json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound",
        "message": "daemonsets.apps \"smartnic-agent\" not found", "code": 404,
    });
    let (client, task) = api(404, gone);
    let own = super::OwnDaemonSet::new(client, "smartnic-system", "smartnic-agent");
    super::on_stop(&own, Some("u1"), &side, w.paths.clone()).await;
    task.await.expect("served");
    assert_eq!(w.numvfs(), "0", "the uninstall restored the VFs");
    assert!(!w.at("opt/cni/bin/smartnic").exists());
    assert!(!w.state.path().exists());
}

#[tokio::test]
async fn at_sigterm_a_rejected_token_uninstalls_only_when_armed() {
    let (side, w) = host_side(world());
    let rejected = serde_json::json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Unauthorized",
        "message": "Unauthorized", "code": 401,
    });
    let (client, task) = api(401, rejected.clone());
    let own = super::OwnDaemonSet::new(client, "smartnic-system", "smartnic-agent");
    super::on_stop(&own, None, &side, w.paths.clone()).await;
    task.await.expect("served");
    assert_eq!(w.numvfs(), "2", "never armed: kept");
    let (client, task) = api(401, rejected);
    let own = super::OwnDaemonSet::new(client, "smartnic-system", "smartnic-agent");
    super::on_stop(&own, Some("u1"), &side, w.paths.clone()).await;
    task.await.expect("served");
    assert_eq!(w.numvfs(), "0");
}
