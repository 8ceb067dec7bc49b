//! `smartnicctl plan` against the example hosts: the steps, the disruption class and the VF
//! layout per PF, and the refusal of a policy asking for more VFs than `sriov_totalvfs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hosts")
        .join(name)
}

fn policies(yaml: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), yaml).expect("write policies");
    f
}

fn plan(host: &str, file: &tempfile::NamedTempFile, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(["plan", "-f"])
        .arg(file.path())
        .arg("--root")
        .arg(example(host))
        .args(extra)
        .output()
        .expect("smartnicctl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

fn step_kinds(pf: &Value) -> Vec<String> {
    pf["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step kind").to_owned())
        .collect()
}

fn policy(name: &str, selector: &str, num_vfs: u32, extra: &str) -> String {
    format!(
        "apiVersion: smartnic.io/v1alpha1\nkind: NicPolicy\nmetadata:\n  name: {name}\nspec:\n  nodeSelector:\n    matchLabels:\n      lab: \"true\"\n  nicSelector:\n    pfNames: [\"{selector}\"]\n  numVfs: {num_vfs}\n  resourceName: {name}\n{extra}"
    )
}

#[test]
fn igb_to_seven_vfs_plans_the_igb_order_without_disruption() {
    let f = policies(&policy("igb", "enp1s0", 7, "  mtu: 1500\n"));
    let o = plan("igb-82576", &f, &["-o", "json"]);
    let v = json(&o);
    let pf = &v["plan"]["pfs"][0];
    assert_eq!(pf["pciAddress"], "0000:01:00.0");
    assert_eq!(pf["vendor"], "igb");
    assert_eq!(pf["class"], "non-disruptive");
    let kinds = step_kinds(pf);
    assert_eq!(
        pf["steps"][0],
        serde_json::json!({"step": "setNumVfs", "count": 0})
    );
    assert_eq!(
        pf["steps"][1],
        serde_json::json!({"step": "setNumVfsUnprobed", "count": 7})
    );
    assert_eq!(
        pf["steps"][9],
        serde_json::json!({"step": "bindVfs", "vfs": [{"first": 0, "last": 6}], "deviceType": "netdevice"})
    );
    assert_eq!(kinds.iter().filter(|k| *k == "setVfMac").count(), 7);
    assert_eq!(kinds.last().unwrap(), "vfMtu");
    assert_eq!(
        v["spec"]["devicePlugin"]["resourceList"][0]["resourceName"],
        "igb"
    );

    let table = plan("igb-82576", &f, &[]);
    let out = text(&table.stdout);
    assert!(table.status.success(), "{out}{}", text(&table.stderr));
    assert!(
        out.starts_with("node: 1 PF(s), 11 step(s), disruption: non-disruptive"),
        "{out}"
    );
    assert!(
        out.contains("   2. sriov_numvfs 7, no driver yet (drivers_autoprobe 0)\n"),
        "{out}"
    );
    assert!(out.contains("  10. bind VFs 0-6 to netdevice\n"), "{out}");
    assert!(out.contains("    VFs 0-6 "), "{out}");
    assert!(
        out.contains("smartnic.io/igb: 0000:01:00.0 VFs 0-6"),
        "{out}"
    );
}

#[test]
fn more_vfs_than_sriov_totalvfs_is_refused_naming_pf_and_counts() {
    let numvfs = example("igb-82576").join("sys/bus/pci/devices/0000:01:00.0/sriov_numvfs");
    let before = std::fs::read_to_string(&numvfs).unwrap();
    let f = policies(&policy("big", "enp1s0", 8, ""));
    let o = plan("igb-82576", &f, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "policy big rejected on PF enp1s0 (0000:01:00.0): numVfs 8 exceeds sriov_totalvfs 7 of PF enp1s0 (0000:01:00.0)"
        ),
        "{err}"
    );
    assert!(err.trim_end().ends_with("nothing was changed"), "{err}");
    assert_eq!(std::fs::read_to_string(&numvfs).unwrap(), before);
}

#[test]
fn cx6_already_in_switchdev_plans_no_vf_recreation() {
    let f = policies(&policy("cx6", "ens1f0np0", 4, "  eswitchMode: switchdev\n"));
    let v = json(&plan("cx6dx-switchdev", &f, &["-o", "json"]));
    let pf = &v["plan"]["pfs"][0];
    assert_eq!(pf["vendor"], "mlx5");
    assert_eq!(v["plan"]["class"], "non-disruptive");
    let kinds = step_kinds(pf);
    assert!(
        kinds.iter().all(|k| k == "setVfMac" || k == "hwTcOffload"),
        "{kinds:?}"
    );
    assert_eq!(pf["desired"]["eswitchMode"], "switchdev");
}

#[test]
fn e810_count_change_with_a_vfio_vf_evicts_its_users() {
    let f = policies(&policy("e810", "ens2f0np0", 8, ""));
    let v = json(&plan("e810", &f, &["-o", "json"]));
    let pf = &v["plan"]["pfs"][0];
    assert_eq!(pf["vendor"], "ice");
    assert_eq!(pf["class"], "evict-vf-pods");
    assert!(
        pf["reasons"][0]
            .as_str()
            .unwrap()
            .contains("VFs 1 are in use"),
        "{pf}"
    );
    let out = text(&plan("e810", &f, &[]).stdout);
    assert!(
        out.starts_with("node: 1 PF(s), ")
            && out
                .lines()
                .next()
                .unwrap()
                .ends_with("disruption: evict-vf-pods (the pods using these VFs)"),
        "{out}"
    );
}

#[test]
fn node_labels_decide_which_policies_apply() {
    let f = policies(&policy("igb", "enp1s0", 7, ""));
    // nothing planned: exit status 2, and the policy is listed with why
    let o = plan(
        "igb-82576",
        &f,
        &["--node-labels", "lab=false", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["plan"]["pfs"], serde_json::json!([]));
    assert_eq!(v["unselected"][0]["policy"], "igb");
    assert!(
        v["unselected"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("nodeSelector"),
        "{v}"
    );
    let v = json(&plan(
        "igb-82576",
        &f,
        &["--node-labels", "lab=true,zone=a", "-o", "json"],
    ));
    assert_eq!(v["plan"]["pfs"][0]["pciAddress"], "0000:01:00.0");
}
