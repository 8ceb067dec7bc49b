//! `smartnicctl plan -f FILE|- [--root DIR] [--node-labels k=v,...] [-o table|json|yaml]`:
//! what the policies would do on this host (or on a sysfs tree), without a cluster.
//!
//! The file is decoded as strictly as the API server decodes it (`crds::strict`): an unknown
//! field, a misspelt kind or an empty file is an error naming the document, the line and the
//! field, with the field meant for a near miss. Objects of other kinds are passed over with a
//! note.
//!
//! The same planners as the operator and the agent: `planner::PolicySet::plan_node` turns the
//! policies and the discovered inventory into the node's `NicNodeState.spec` (with its
//! device-plugin configuration), then `planner::apply::plan_host` turns that spec and the host
//! into ordered steps per PF with their disruption class. A policy the planner rejects (more VFs
//! than `sriov_totalvfs`, a conflict, ...) fails the command, naming the policy, the PF and the
//! reason; nothing is changed. A policy that selects no PF is listed with the selector part that
//! excluded each PF of the host (`planner::why`).
//!
//! Exit status: 0 when the plan covers at least one PF, 2 when no PF is selected (nothing
//! planned), 1 on any error.
//!
//! `--apply` then carries the plan out on this host with the agent's executor (each PF on its
//! own thread, progress in the agent's state file, the device-plugin hand-off file kept to the
//! VFs in place) and prints per-PF and whole-node times. Without a cluster there is no drain
//! handshake: a plan that needs one is refused unless `--allow-disruption` says the pods using
//! the VFs may lose them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent::{
    executor::Executor,
    firmware::{NvidiaFirmware, SystemRunner},
    handoff::DevicePluginFile,
    host::SysHost,
    state::{StateFile, boot_id},
};

use anyhow::{Context, bail};
use crds::{
    NicNodeStateSpec, NicOperatorConfig, NicPolicy, RESOURCE_PREFIX, inventory::NicInventory,
};
use nic::discovery::discover_with_warnings;
use nic::sysfs::SysFs;
use planner::{
    NodePlan, PolicySet,
    apply::{HostPlan, PfFacts, PfPlan, plan_host},
    vf_range::VfSet,
    with_device_plugin_config,
};
use serde::Serialize;
use serde_json::Value;

use crate::link::{Output, out, print_data};

/// Arguments of `smartnicctl plan`.
#[derive(clap::Args)]
pub struct Args {
    /// YAML or JSON file of `NicPolicy` objects (several documents, or a `List`; `-` reads
    /// stdin); a `NicOperatorConfig` in it gives the resource prefix.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    file: PathBuf,
    /// Read the sysfs tree under DIR instead of the host's (e.g. examples/hosts/igb-82576).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// This node's labels, `k=v,k2=v2`, matched against each policy's `nodeSelector`. Without
    /// it, every policy is taken as selecting this node.
    #[arg(long, value_name = "K=V,...")]
    node_labels: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    /// Carry the plan out on this host.
    #[arg(long)]
    apply: bool,
    /// With --apply: go ahead with a plan that needs pods evicted or the node rebooted.
    #[arg(long, requires = "apply")]
    allow_disruption: bool,
    /// The agent's state file (last applied spec, plan in progress).
    #[arg(long, value_name = "FILE", default_value = agent::state::DEFAULT_STATE_FILE)]
    state_file: PathBuf,
    /// The device-plugin hand-off file written by --apply.
    #[arg(long, value_name = "FILE", default_value = agent::handoff::DEFAULT_DEVICE_PLUGIN_FILE)]
    device_plugin_file: PathBuf,
}

/// The JSON document of `plan -o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    /// The node's desired state (what the operator would write into `NicNodeState.spec`).
    spec: &'a NicNodeStateSpec,
    /// Steps and disruption per PF.
    plan: &'a HostPlan,
    /// Policies not applied, with the reason.
    rejections: Vec<Value>,
    /// Adjustments.
    warnings: Vec<Value>,
    /// Policies that select no PF of this host, with the selector part that excluded each PF.
    unselected: Vec<Value>,
}

/// `plan` found nothing to do on any PF: exit status 2 (see the module documentation).
#[derive(Debug)]
pub struct NothingPlanned;

impl std::fmt::Display for NothingPlanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nothing planned: no PF of this host is selected by a policy")
    }
}

impl std::error::Error for NothingPlanned {}

/// Runs `smartnicctl plan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = crate::input::read(&args.file)?;
    let (mut policies, prefix) = parse_objects(&text)
        .with_context(|| format!("{} is refused", crate::input::name(&args.file)))?;
    let labels = match &args.node_labels {
        Some(l) => parse_labels(l)?,
        None => select_everything(&mut policies),
    };
    if args.apply && args.root.is_some() {
        bail!("--apply changes this host; it cannot be combined with --root");
    }
    let inventory = discover(&args)?;
    // on this host, the agent's record says which PFs it configured (a PF no policy selects any
    // more is reset) and how the VF groups were
    let applied = match &args.root {
        Some(_) => NicNodeStateSpec::default(),
        None => StateFile::new(&args.state_file)
            .load()
            .ok()
            .and_then(|s| s.applied)
            .unwrap_or_default(),
    };

    let set = PolicySet::new(&policies);
    let mut errors: Vec<String> = set
        .invalid()
        .iter()
        .map(|p| {
            let what: Vec<String> = p.errors.iter().map(ToString::to_string).collect();
            format!("policy {} is invalid: {}", p.name, what.join("; "))
        })
        .collect();
    let node = set.plan_node(&labels, &inventory);
    let spec = with_device_plugin_config(node.spec.clone(), &prefix);
    let facts = match &args.root {
        Some(_) => BTreeMap::<String, PfFacts>::new(),
        None => agent::host::pf_facts(&inventory, &spec),
    };
    let plan = plan_host(&applied, &spec, &inventory, &facts);
    errors.extend(node.rejections.iter().map(|r| {
        format!(
            "policy {} rejected{}: {}",
            r.policy,
            r.pf.as_deref()
                .map(|pf| format!(" on PF {}", pf_label(&inventory, pf)))
                .unwrap_or_default(),
            r.reason
        )
    }));
    errors.extend(plan.problems.iter().map(|p| p.message.clone()));
    let unselected = planner::why::unselected(&policies, &labels, &inventory);

    match args.output {
        o @ (Output::Json | Output::Yaml) => print_data(o, &Report {
            spec: &spec,
            plan: &plan,
            rejections: node
                .rejections
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "policy": r.policy, "pf": r.pf, "field": r.field, "reason": r.reason,
                    })
                })
                .collect(),
            warnings: node
                .warnings
                .iter()
                .map(|w| serde_json::json!({"policy": w.policy, "pf": w.pf, "message": w.message}))
                .collect(),
            unselected: unselected
                .iter()
                .map(|u| serde_json::json!({"policy": u.policy, "reasons": u.reasons}))
                .collect(),
        })?,
        Output::Table => out(render(&node, &spec, &plan, &unselected, &inventory).trim_end())?,
    }
    if !errors.is_empty() {
        bail!("{}; nothing was changed", errors.join("; "));
    }
    if plan.pfs.is_empty() {
        return Err(NothingPlanned.into());
    }
    if args.apply {
        apply(&args, &spec, &plan)?;
    }
    Ok(())
}

/// Discovers the NICs under `--root` or of this host (devlink corrects the eswitch modes and
/// representors on the host).
fn discover(args: &Args) -> anyhow::Result<NicInventory> {
    let sysfs = match &args.root {
        Some(root) => SysFs::new(root),
        None => SysFs::host(),
    };
    let mut discovered = discover_with_warnings(&sysfs).with_context(|| match &args.root {
        Some(root) => format!("no sysfs tree under {}", root.display()),
        None => "cannot read the PCI devices of this host".into(),
    })?;
    for w in &discovered.warnings {
        eprintln!("warning: {w}");
    }
    if args.root.is_none() {
        crate::discover::from_devlink(&mut discovered.inventory);
    }
    Ok(discovered.inventory)
}

/// `--apply`: runs the plan on this host and checks the result.
fn apply(args: &Args, spec: &NicNodeStateSpec, plan: &HostPlan) -> anyhow::Result<()> {
    if plan.class != planner::ChangeClass::NonDisruptive && !args.allow_disruption {
        bail!(
            "the plan needs: {}; without a cluster nobody evicts the pods using these VFs: pass --allow-disruption to apply anyway; nothing was changed",
            class_str(plan.class)
        );
    }
    if plan.step_count() == 0 {
        out("in sync: nothing to apply")?;
    }
    let state = StateFile::new(&args.state_file);
    let handoff = DevicePluginFile::new(&args.device_plugin_file);
    let host = SysHost::new(SysFs::host());
    let firmware = NvidiaFirmware::new(SystemRunner, "/sys");
    let report = Executor {
        host: &host,
        firmware: Some(&firmware),
        state: &state,
        handoff: &handoff,
        boot_id: boot_id(Path::new("/proc")),
    }
    .execute(None, spec, plan)?;
    for line in report.lines() {
        out(line)?;
    }
    if report.reboot_needed() {
        out("a firmware change waits for a reboot of this host")?;
    }
    if !report.complete() {
        bail!("{}", report.errors().join("; "));
    }
    let after = discover(args)?;
    let state_now = state.load()?;
    let again = plan_host(
        state_now.applied.as_ref().unwrap_or(spec),
        spec,
        &after,
        &agent::host::pf_facts(&after, spec),
    );
    if again.in_sync() {
        out("in sync")?;
        Ok(())
    } else {
        let left: Vec<String> = again
            .pfs
            .iter()
            .flat_map(|p| {
                p.steps
                    .iter()
                    .map(move |s| format!("{}: {s}", p.pci_address))
            })
            .collect();
        bail!(
            "the host does not show the spec after the apply; left: {}",
            left.join(", ")
        )
    }
}

fn pf_label(inv: &NicInventory, pci: &str) -> String {
    match inv
        .nics
        .iter()
        .find(|n| n.pci_address == pci)
        .and_then(|n| n.name.as_deref())
    {
        Some(name) => format!("{name} ({pci})"),
        None => pci.to_owned(),
    }
}

/// The `NicPolicy` objects of a YAML stream and the resource prefix (from a `NicOperatorConfig`
/// in it, or the default), decoded strictly; other objects are named in a note on stderr.
fn parse_objects(text: &str) -> anyhow::Result<(Vec<NicPolicy>, String)> {
    let decoded = crds::strict::decode_objects(text, &["NicPolicy", "NicOperatorConfig"])
        .map_err(crate::input::decode_error)?;
    for note in &decoded.ignored {
        eprintln!("note: {note}");
    }
    let mut policies = Vec::new();
    let mut prefix = RESOURCE_PREFIX.to_owned();
    for o in decoded.objects {
        let at = format!("document {}, {} {}", o.document, o.kind, o.name);
        if o.kind == "NicPolicy" {
            policies.push(serde_json::from_value::<NicPolicy>(o.value).context(at)?);
        } else {
            let cfg: NicOperatorConfig = serde_json::from_value(o.value).context(at)?;
            prefix = cfg.spec.resource_prefix;
        }
    }
    Ok((policies, prefix))
}

fn parse_labels(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    s.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
            None => bail!("--node-labels: {kv:?} is not key=value"),
        })
        .collect()
}

/// Makes every policy select this node: each `nodeSelector` is replaced by one label that the
/// returned labels carry.
fn select_everything(policies: &mut [NicPolicy]) -> BTreeMap<String, String> {
    const KEY: &str = "smartnicctl.smartnic.io/plan";
    for p in policies.iter_mut() {
        p.spec.node_selector = crds::k8s::LabelSelector {
            match_labels: Some(BTreeMap::from([(KEY.to_owned(), "local".to_owned())])),
            ..Default::default()
        };
    }
    BTreeMap::from([(KEY.to_owned(), "local".to_owned())])
}

/// The disruption class as `-o json` spells it (`plan.class`), with a gloss where the word alone
/// does not say who is affected: one vocabulary for the table and the JSON.
fn class_str(c: planner::ChangeClass) -> &'static str {
    match c {
        planner::ChangeClass::NonDisruptive => "non-disruptive",
        planner::ChangeClass::EvictVfPods => "evict-vf-pods (the pods using these VFs)",
        planner::ChangeClass::Reboot => "reboot",
    }
}

fn render(
    node: &NodePlan,
    spec: &NicNodeStateSpec,
    plan: &HostPlan,
    unselected: &[planner::why::Unselected],
    inventory: &NicInventory,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "node: {} PF(s), {} step(s), disruption: {}",
        plan.pfs.len(),
        plan.step_count(),
        class_str(plan.class)
    );
    if plan.pfs.is_empty() {
        let _ = writeln!(s, "no PF of this host is selected by a policy");
    }
    for u in unselected {
        let _ = writeln!(s, "policy {} selects no PF of this host:", u.policy);
        for r in &u.reasons {
            let _ = writeln!(s, "  {r}");
        }
    }
    if plan.pfs.is_empty() {
        let _ = writeln!(s, "this host's PFs:");
        if inventory.nics.is_empty() {
            let _ = writeln!(s, "  none (no SR-IOV capable PCI function found)");
        }
        for nic in &inventory.nics {
            let _ = writeln!(s, "  {}", planner::why::label(nic));
        }
    }
    for pf in &plan.pfs {
        render_pf(&mut s, pf);
    }
    if !spec.device_plugin.resource_list.is_empty() {
        let _ = writeln!(s, "device plugin, once applied:");
        for pool in &spec.device_plugin.resource_list {
            let pfs: Vec<String> = pool
                .selectors
                .iter()
                .flat_map(|sel| &sel.pfs)
                .map(|p| {
                    format!(
                        "{} VFs {}",
                        p.pci_address,
                        VfSet::from_ranges(p.vfs.iter().copied())
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "  {}/{}: {}",
                pool.resource_prefix,
                pool.resource_name,
                pfs.join(", ")
            );
        }
    }
    for w in &node.warnings {
        let _ = writeln!(s, "warning: policy {}: {}", w.policy, w.message);
    }
    s
}

fn render_pf(s: &mut String, pf: &PfPlan) {
    use std::fmt::Write;
    let name = pf.name.as_deref().unwrap_or("-");
    let _ = writeln!(
        s,
        "PF {name} ({}) {}: {}, disruption: {}",
        pf.pci_address,
        json_str(&pf.vendor),
        json_str(&pf.action),
        class_str(pf.class)
    );
    if pf.steps.is_empty() {
        let _ = writeln!(s, "  in sync: nothing to do");
    }
    for (i, step) in pf.steps.iter().enumerate() {
        let _ = writeln!(s, "  {:>2}. {step}", i + 1);
    }
    for r in &pf.reasons {
        let _ = writeln!(s, "  why: {r}");
    }
    if let Some(want) = &pf.desired {
        let _ = writeln!(
            s,
            "  after: {} VFs, eswitch {}, PF mtu {}",
            want.num_vfs,
            want.eswitch_mode
                .map_or("unchanged".into(), |m| json_str(&m)),
            want.mtu.map_or("unchanged".into(), |m| m.to_string()),
        );
        for g in &want.vf_groups {
            let _ = writeln!(
                s,
                "    VFs {:<8} {:<20} {:<10} mtu {:<9} policy {}",
                VfSet::from_ranges(g.vfs.iter().copied()).to_string(),
                g.resource_name,
                json_str(&g.device_type),
                g.mtu.map_or("default".into(), |m| m.to_string()),
                g.policy
            );
        }
    }
}

fn json_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
