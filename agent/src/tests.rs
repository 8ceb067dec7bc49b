//! Executor tests on the fake host: recorded calls, the hand-off file, the state file, a failure
//! in the middle of a plan and the resume after it.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crds::{
    inventory::{EswitchMode, Nic, NicInventory},
    node_state::{InterfaceSpec, NicNodeStateSpec, VfGroup, VfIndexRange},
    policy::{FirmwareSpec, VfDeviceType},
    pool::RdmaMode,
};
use planner::{
    apply::{HostPlan, PfPlan, Step, plan_host},
    fixtures::cx6,
    with_device_plugin_config,
};

use crate::{
    executor::{ApplyReport, Executor, HostOps, StepDone, StepError},
    fake::FakeHost,
    firmware::{CommandOutput, CommandRunner, NvidiaFirmware},
    handoff::DevicePluginFile,
    run::tests::igb,
    state::StateFile,
};

const CX6: &str = "0000:3b:00.0";
const IGB: &str = "0000:01:00.0";

fn cx6_pf() -> Nic {
    let mut n = cx6(CX6, "ens1f0np0");
    n.mac = Some("b8:ce:f6:01:02:03".into());
    n
}

fn iface(pci: &str, name: &str, n: u32, resource: &str) -> InterfaceSpec {
    InterfaceSpec {
        pci_address: pci.into(),
        name: Some(name.into()),
        num_vfs: n,
        policy: resource.into(),
        vf_groups: vec![VfGroup {
            policy: resource.into(),
            resource_name: resource.into(),
            vfs: vec![VfIndexRange {
                first: 0,
                last: n - 1,
            }],
            device_type: VfDeviceType::Netdevice,
            mtu: Some(9000),
            ..Default::default()
        }],
        mtu: Some(9000),
        ..Default::default()
    }
}

fn desired() -> NicNodeStateSpec {
    let mut sw = iface(CX6, "ens1f0np0", 4, "cx6_vf");
    sw.eswitch_mode = Some(EswitchMode::Switchdev);
    sw.vf_groups.push(VfGroup {
        policy: "dpdk".into(),
        resource_name: "cx6_dpdk".into(),
        vfs: vec![VfIndexRange { first: 4, last: 5 }],
        device_type: VfDeviceType::VfioPci,
        ..Default::default()
    });
    sw.num_vfs = 6;
    with_device_plugin_config(
        NicNodeStateSpec {
            interfaces: vec![sw, iface(IGB, "enp1s0", 7, "igb_vf")],
            ..Default::default()
        },
        "smartnic.io",
    )
}

struct World {
    _dir: tempfile::TempDir,
    host: FakeHost,
    state: StateFile,
    handoff: DevicePluginFile,
}

fn world(nics: Vec<Nic>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let handoff_path = dir.path().join("device-plugin.json");
    World {
        host: FakeHost::new(NicInventory { nics }, Some(handoff_path.clone())),
        state: StateFile::new(dir.path().join("agent-state.json")),
        handoff: DevicePluginFile::new(handoff_path),
        _dir: dir,
    }
}

impl World {
    fn plan(&self, spec: &NicNodeStateSpec) -> HostPlan {
        let applied = self.state.load().unwrap().applied.unwrap_or_default();
        plan_host(&applied, spec, &self.host.inventory(), &self.host.facts())
            .with_node(spec, &self.host.node_facts())
    }

    fn run(&self, spec: &NicNodeStateSpec) -> ApplyReport {
        let plan = self.plan(spec);
        Executor {
            host: &self.host,
            firmware: None,
            state: &self.state,
            handoff: &self.handoff,
            boot_id: "boot-1".into(),
        }
        .execute(Some(1), spec, &plan)
        .unwrap()
    }
}

#[test]
fn two_pfs_are_applied_in_their_orders_and_end_in_sync() {
    let w = world(vec![cx6_pf(), igb()]);
    let spec = desired();
    let plan = w.plan(&spec);
    let report = w.run(&spec);
    assert!(report.complete(), "{:?}", report.errors());
    assert_eq!(report.pfs.len(), 2);

    // per PF, the calls are the plan's steps in order (PFs interleave)
    for pf in &plan.pfs {
        let calls: Vec<String> = w
            .host
            .calls()
            .into_iter()
            .filter_map(|c| {
                c.strip_prefix(&format!("{}: ", pf.pci_address))
                    .map(str::to_owned)
            })
            .collect();
        let steps: Vec<String> = pf.steps.iter().map(ToString::to_string).collect();
        assert_eq!(calls, steps);
    }
    let cx6_calls: Vec<String> = w
        .host
        .calls()
        .into_iter()
        .filter(|c| c.starts_with(CX6))
        .collect();
    assert_eq!(
        cx6_calls[..2],
        [
            format!("{CX6}: sriov_numvfs 6"),
            format!("{CX6}: wait for 6 VFs (driver, netdev)")
        ]
    );
    assert!(cx6_calls.contains(&format!(
        "{CX6}: bind VFs 4-5 to vfio-pci (IOMMU group checked)"
    )));
    assert!(w.host.violations().is_empty(), "{:?}", w.host.violations());

    // the host now shows the spec: nothing left to do
    assert!(w.plan(&spec).in_sync(), "{:?}", w.plan(&spec));
    // both PFs' pools are handed to the device plugin
    assert_eq!(w.handoff.current().unwrap(), spec.device_plugin);
    let st = w.state.load().unwrap();
    assert_eq!(st.applied.as_ref(), Some(&spec));
    assert_eq!(st.applied_generation, Some(1));
    assert!(st.in_progress.is_none());
    assert_eq!(st.boot_id.as_deref(), Some("boot-1"));

    // a second run does nothing and rewrites nothing
    let calls = w.host.calls().len();
    let report = w.run(&spec);
    assert!(report.pfs.is_empty());
    assert_eq!(w.host.calls().len(), calls);
}

#[test]
fn the_rdma_mode_is_set_when_the_host_differs_and_only_then() {
    let w = world(vec![cx6_pf(), igb()]);
    w.host.set_rdma(Some(RdmaMode::Shared));
    let mut spec = desired();
    spec.rdma_mode = Some(RdmaMode::Exclusive);
    let plan = w.plan(&spec);
    assert_eq!(
        plan.node_steps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["rdma system set netns exclusive"]
    );
    let report = w.run(&spec);
    assert!(report.complete(), "{:?}", report.errors());
    assert_eq!(report.node.len(), 1);
    assert_eq!(report.node[0].kind, "rdma-netns-mode");
    assert!(
        w.host
            .calls()
            .contains(&"node: rdma system set netns exclusive".to_owned())
    );
    assert_eq!(w.host.rdma(), Some(RdmaMode::Exclusive));
    // the host shows it now: no step, and nothing runs again
    assert!(w.plan(&spec).in_sync(), "{:?}", w.plan(&spec));
    let calls = w.host.calls().len();
    let report = w.run(&spec);
    assert!(report.node.is_empty() && report.complete());
    assert_eq!(w.host.calls().len(), calls);
    // the pool drops rdmaMode: the node's mode is left as it is
    spec.rdma_mode = None;
    assert!(w.plan(&spec).node_steps.is_empty());
}

#[test]
fn a_host_without_rdma_reports_the_setting_and_the_pfs_still_apply() {
    let w = world(vec![cx6_pf(), igb()]);
    w.host.set_rdma(None);
    let mut spec = desired();
    spec.rdma_mode = Some(RdmaMode::Exclusive);
    let report = w.run(&spec);
    // every PF step ran and the PFs are in place
    assert!(report.pfs_complete(), "{:?}", report.errors());
    assert_eq!(report.pfs.len(), 2);
    assert!(w.plan(&spec).pfs.iter().all(|p| p.steps.is_empty()));
    // the file tells the CNI the node is RDMA-exclusive: it refuses to attach a VF with an RDMA
    // device while the kernel is not
    assert_eq!(
        w.handoff.current().unwrap(),
        crate::handoff::node_config(&spec)
    );
    assert!(w.handoff.current().unwrap().rdma_exclusive);
    assert_eq!(w.state.load().unwrap().applied.as_ref(), Some(&spec));
    // the node step failed, naming the setting and why
    assert!(!report.complete());
    assert_eq!(
        report.errors(),
        [
            "node: rdma system set netns exclusive: rdmaMode: the rdma tool (iproute2) is not installed on the node"
        ]
    );
    // and it is planned again until the host can do it
    assert_eq!(w.plan(&spec).node_steps.len(), 1);
}

#[test]
fn a_failure_in_the_middle_stops_that_pf_only_and_the_resume_finishes() {
    let w = world(vec![cx6_pf(), igb()]);
    let spec = desired();
    let full = w.plan(&spec);
    let cx6_steps = full
        .pfs
        .iter()
        .find(|p| p.pci_address == CX6)
        .unwrap()
        .steps
        .len();
    // the unbind before the mode switch fails
    let unbind = full
        .pfs
        .iter()
        .find(|p| p.pci_address == CX6)
        .unwrap()
        .steps
        .iter()
        .position(|s| s.kind() == "unbind-vfs")
        .unwrap();
    w.host.fail_at(CX6, unbind);
    let report = w.run(&spec);
    assert!(!report.complete());
    let cx6 = report.pfs.iter().find(|p| p.pci_address == CX6).unwrap();
    assert_eq!(cx6.steps.len(), unbind + 1);
    assert_eq!(
        cx6.error.as_deref(),
        Some("PF ens1f0np0 (0000:3b:00.0): unbind VFs 0-5: injected failure")
    );
    let igb = report.pfs.iter().find(|p| p.pci_address == IGB).unwrap();
    assert!(igb.error.is_none(), "the other PF finishes");

    // the record says where the plan stopped; the hand-off lists only the finished PF
    let st = w.state.load().unwrap();
    let progress = &st.in_progress.as_ref().unwrap().pfs;
    assert_eq!(progress[CX6].step, unbind);
    assert_eq!(progress[CX6].kind.as_deref(), Some("unbind-vfs"));
    assert!(
        progress[CX6]
            .error
            .as_deref()
            .unwrap()
            .ends_with("injected failure")
    );
    assert!(progress[IGB].done);
    assert!(st.applied.is_none());
    let handed: Vec<String> = w
        .handoff
        .current()
        .unwrap()
        .resource_list
        .iter()
        .map(|p| p.resource_name.clone())
        .collect();
    assert_eq!(handed, ["igb_vf"]);

    // restart: plan again from the live host; only the rest of the cx6 plan remains
    w.host.heal();
    let rest = w.plan(&spec);
    assert_eq!(rest.pfs.iter().filter(|p| !p.steps.is_empty()).count(), 1);
    let remaining = rest.pfs.iter().find(|p| p.pci_address == CX6).unwrap();
    assert!(remaining.steps.len() < cx6_steps, "{:?}", remaining.steps);
    assert_eq!(remaining.steps[0].kind(), "unbind-vfs");
    assert!(remaining.steps.iter().all(|s| s.kind() != "set-num-vfs"));
    let report = w.run(&spec);
    assert!(report.complete(), "{:?}", report.errors());
    assert!(w.plan(&spec).in_sync());
    assert_eq!(w.handoff.current().unwrap(), spec.device_plugin);
    assert!(w.state.load().unwrap().in_progress.is_none());
    assert!(w.host.violations().is_empty(), "{:?}", w.host.violations());
}

#[test]
fn a_pf_reset_withdraws_its_pools_first() {
    let w = world(vec![cx6_pf(), igb()]);
    let spec = desired();
    assert!(w.run(&spec).complete());
    // the cx6 PF leaves the spec: reset, and its pools disappear before its VFs do
    let mut smaller = spec.clone();
    smaller.interfaces.retain(|i| i.pci_address == IGB);
    let smaller = with_device_plugin_config(smaller, "smartnic.io");
    let report = w.run(&smaller);
    assert!(report.complete(), "{:?}", report.errors());
    assert!(w.host.violations().is_empty(), "{:?}", w.host.violations());
    let cx6 = w
        .host
        .inventory()
        .nics
        .into_iter()
        .find(|n| n.pci_address == CX6)
        .unwrap();
    assert_eq!(cx6.num_vfs, 0);
    assert_eq!(cx6.eswitch_mode, Some(EswitchMode::Legacy));
    assert_eq!(w.handoff.current().unwrap(), smaller.device_plugin);
}

/// A firmware tool that stages any value and answers queries with NUM_OF_VFS=16.
struct Mst;

impl CommandRunner for Mst {
    fn run(&self, _program: &str, args: &[String]) -> std::io::Result<CommandOutput> {
        let stdout = if args.last().is_some_and(|a| a == "query") {
            "Configurations:  Default  Current  Next Boot\n  NUM_OF_VFS  8  16  16\n  SRIOV_EN  True(1)  True(1)  True(1)\n".to_owned()
        } else {
            String::new()
        };
        Ok(CommandOutput {
            code: 0,
            stdout,
            stderr: String::new(),
        })
    }
}

#[test]
fn a_firmware_step_stops_the_pf_for_a_reboot_and_a_second_reboot_is_refused() {
    let w = world(vec![cx6_pf()]);
    let mut spec = NicNodeStateSpec {
        interfaces: vec![iface(CX6, "ens1f0np0", 32, "cx6_vf")],
        ..Default::default()
    };
    spec.interfaces[0].firmware = Some(FirmwareSpec {
        total_vfs: Some(32),
    });
    let spec = with_device_plugin_config(spec, "smartnic.io");
    let sys = tempfile::tempdir().unwrap();
    let fw = NvidiaFirmware::new(Mst, sys.path());
    let run = |boot: &str| {
        let plan = w.plan(&spec);
        Executor {
            host: &w.host,
            firmware: Some(&fw),
            state: &w.state,
            handoff: &w.handoff,
            boot_id: boot.into(),
        }
        .execute(Some(2), &spec, &plan)
        .unwrap()
    };
    let report = run("boot-1");
    assert!(report.reboot_needed());
    assert!(!report.complete());
    let st = w.state.load().unwrap();
    assert_eq!(st.firmware_reboots[0].boot_id, "boot-1");
    assert!(st.in_progress.is_some(), "kept for after the reboot");
    assert!(w.host.calls().is_empty(), "nothing else before the reboot");

    // the reboot did not apply it (sriov_totalvfs still 16): refused, no reboot loop
    let report = run("boot-2");
    assert!(!report.reboot_needed());
    let err = report.errors().join("");
    assert!(
        err.contains("refusing a second reboot for the same value"),
        "{err}"
    );
}

/// Holds each PF's first step until every PF has started one: a sequential executor would
/// time out here.
struct Rendezvous<'a> {
    inner: &'a FakeHost,
    started: Mutex<BTreeSet<String>>,
    cv: Condvar,
    pfs: usize,
}

impl HostOps for Rendezvous<'_> {
    fn rdma_netns_mode(&self) -> Result<RdmaMode, String> {
        self.inner.rdma_netns_mode()
    }

    fn set_rdma_netns_mode(&self, mode: RdmaMode) -> Result<(), String> {
        self.inner.set_rdma_netns_mode(mode)
    }

    fn apply(&self, pf: &PfPlan, step: &Step) -> Result<StepDone, StepError> {
        let mut started = self.started.lock().unwrap();
        started.insert(pf.pci_address.clone());
        self.cv.notify_all();
        let (started, timeout) = self
            .cv
            .wait_timeout_while(started, Duration::from_secs(10), |s| s.len() < self.pfs)
            .unwrap();
        drop(started);
        if timeout.timed_out() {
            return Err(StepError::new(
                pf,
                step,
                "the other PF never started: PFs run one after another",
            ));
        }
        self.inner.apply(pf, step)
    }
}

#[test]
fn pfs_run_in_parallel() {
    let w = world(vec![cx6_pf(), igb()]);
    let spec = desired();
    let plan = w.plan(&spec);
    let host = Rendezvous {
        inner: &w.host,
        started: Mutex::new(BTreeSet::new()),
        cv: Condvar::new(),
        pfs: 2,
    };
    let report = Executor {
        host: &host,
        firmware: None,
        state: &w.state,
        handoff: &w.handoff,
        boot_id: "boot-1".into(),
    }
    .execute(None, &spec, &plan)
    .unwrap();
    assert!(report.complete(), "{:?}", report.errors());
    let slowest = report.pfs.iter().map(|p| p.duration).max().unwrap();
    assert!(report.duration >= slowest);
}
