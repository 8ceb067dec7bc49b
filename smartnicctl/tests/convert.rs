//! `smartnicctl convert` on SR-IOV network operator manifests (tests/data): every object it
//! writes passes our generated CRD schemas and the webhook's checks (single-object, and the
//! policies against each other), and whatever has no counterpart is named on stderr.

use std::{path::PathBuf, process::Command};

use crds::{NicNetwork, NicOperatorConfig, NicPolicy, NicPool, schema_check::check_object};
use planner::validate::{
    PolicyContext, PoolContext, to_message, validate_network, validate_operator_config,
    validate_policy, validate_pool,
};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs `smartnicctl convert -f FILE -o FORMAT`: (objects, stderr).
fn convert(file: &str, format: &str) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(["convert", "-f"])
        .arg(data(file))
        .args(["-o", format])
        .output()
        .expect("run smartnicctl");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "convert {file} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let objects = if format == "json" {
        let v: Value = serde_json::from_str(&stdout).expect("JSON output");
        match v["kind"].as_str() {
            Some("List") => v["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![v],
        }
    } else {
        serde_saphyr::from_multiple::<Value>(&stdout)
            .expect("YAML output")
            .into_iter()
            .filter(|v| !v.is_null())
            .collect()
    };
    (objects, stderr)
}

/// Every object passes the schema and the webhook; returns the kinds.
fn admit(objects: &[Value]) -> Vec<String> {
    let policies: Vec<NicPolicy> = objects
        .iter()
        .filter(|o| o["kind"] == "NicPolicy")
        .map(|o| serde_json::from_value(o.clone()).expect("NicPolicy"))
        .collect();
    let mut kinds = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default().to_owned();
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Err(e) = check_object(o) {
            panic!(
                "{kind} {name} fails the CRD schema: {}\n{o:#}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let verdict = match kind.as_str() {
            "NicPolicy" => {
                let p: NicPolicy = serde_json::from_value(o.clone()).expect("typed object");
                validate_policy(
                    &name,
                    &p.spec,
                    &PolicyContext {
                        policies: &policies,
                        nodes: &[],
                    },
                )
            }
            "NicNetwork" => validate_network(
                &serde_json::from_value::<NicNetwork>(o.clone())
                    .expect("typed object")
                    .spec,
            ),
            "NicPool" => validate_pool(
                &name,
                &serde_json::from_value::<NicPool>(o.clone())
                    .expect("typed object")
                    .spec,
                &PoolContext::default(),
            ),
            "NicOperatorConfig" => validate_operator_config(
                &name,
                &serde_json::from_value::<NicOperatorConfig>(o.clone())
                    .expect("typed object")
                    .spec,
            ),
            other => panic!("unexpected kind {other}"),
        };
        if let Err(e) = verdict {
            panic!(
                "{kind} {name} is refused by the webhook: {}",
                to_message(&e)
            );
        }
        kinds.push(kind);
    }
    kinds
}

#[test]
fn intel_quick_start_converts_to_objects_our_api_accepts() {
    let (objects, stderr) = convert("sriov-intel-netdevice.yaml", "yaml");
    assert_eq!(admit(&objects), ["NicPolicy", "NicNetwork"]);
    let net = &objects[1];
    assert_eq!(
        net["metadata"]["namespace"], "app-a",
        "networkNamespace is where it lands"
    );
    assert_eq!(net["spec"]["spoofChk"], true);
    assert_eq!(net["spec"]["trust"], false);
    assert_eq!(net["spec"]["ipam"]["rangeEnd"], "10.56.217.181");
    assert_eq!(net["spec"]["metaPlugins"][1]["type"], "bandwidth");
    assert_eq!(objects[0]["spec"]["nicSelector"]["deviceId"], "159b");
    // the prefix change is the one thing every user must hear about
    assert!(
        stderr.contains("spec.resourceName: pods request smartnic.io/"),
        "{stderr}"
    );
}

#[test]
fn deployment_shapes_in_the_wild_convert_to_objects_our_api_accepts() {
    let (objects, stderr) = convert("sriov-field-shapes.yaml", "json");
    assert_eq!(
        admit(&objects),
        ["NicPolicy", "NicPolicy", "NicPolicy", "NicNetwork"],
        "{stderr}"
    );
    let rail = &objects[0]["spec"];
    assert_eq!(
        rail["nicSelector"]["rootDevices"].as_array().map(Vec::len),
        Some(16)
    );
    assert_eq!(rail["mtu"], 4220);
    assert_eq!(rail["numVfs"], 1);
    assert_eq!(
        rail["nodeSelector"]["matchLabels"]["node.kubernetes.io/instance-type"],
        "gpu.a100.8x"
    );
    let dpdk = &objects[1]["spec"];
    assert_eq!(dpdk["needVhostNet"], true);
    assert_eq!(
        dpdk["nodeSelector"]["matchLabels"]["node-role.kubernetes.io/worker-cnf"],
        ""
    );
    assert_eq!(objects[2]["spec"]["eswitchMode"], "switchdev");
    assert_eq!(objects[2]["spec"]["nicSelector"]["vendor"], "15b3");
    let net = &objects[3];
    assert_eq!(net["metadata"]["namespace"], "training");
    assert_eq!(net["spec"]["ipam"]["subnet"], "192.168.12.0/24");
}

#[test]
fn nvidia_partitioning_pool_and_config_convert_and_pass_the_cross_policy_checks() {
    let (objects, stderr) = convert("sriov-mlx-dpdk-rdma.yaml", "json");
    assert_eq!(
        admit(&objects),
        [
            "NicPolicy",
            "NicPolicy",
            "NicNetwork",
            "NicPool",
            "NicOperatorConfig"
        ]
    );
    assert_eq!(objects[1]["spec"]["needVhostNet"], true);
    assert_eq!(objects[0]["spec"]["linkType"], "eth");
    assert_eq!(objects[3]["spec"]["rdmaMode"], "exclusive");
    assert_eq!(objects[4]["spec"]["logLevel"], "trace");
    for field in [
        "spec.enableInjector",
        "spec.enableOperatorWebhook",
        "spec.configurationMode",
        "spec.featureGates.parallelNicConfig",
    ] {
        assert!(
            stderr.contains(&format!(
                "SriovOperatorConfig sriov-network-operator/default: {field}"
            )),
            "{field} not named: {stderr}"
        );
    }
}

#[test]
fn what_has_no_counterpart_is_named_on_stderr_and_the_rest_still_passes() {
    let (objects, stderr) = convert("sriov-unmapped.yaml", "yaml");
    assert_eq!(admit(&objects), ["NicPolicy", "NicPool"]);
    for text in [
        "SriovNetworkNodePolicy sriov-network-operator/openstack-vdpa: spec.nicSelector.netFilter",
        "openstack-vdpa: spec.vdpaType",
        "openstack-vdpa: spec.nodeSelector: is empty",
        "OVSNetwork sriov-network-operator/ovs-net: kind OVSNetwork has no counterpart",
        "all-at-once: spec.ovsHardwareOffloadConfig",
        "all-at-once: spec.maxUnavailable: is unset",
    ] {
        assert!(stderr.contains(text), "{text:?} not in:\n{stderr}");
    }
    assert!(
        stderr.lines().all(|l| l.starts_with("warning: ")),
        "{stderr}"
    );
}

#[test]
fn unreadable_input_is_an_error_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(["convert", "-f", "/nonexistent/sriov.yaml"])
        .output()
        .expect("run smartnicctl");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/sriov.yaml"), "{stderr}");
}
