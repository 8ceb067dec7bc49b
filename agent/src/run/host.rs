//! The host as the agent's loop sees it ([`NodeHost`]): discovery, the facts the plan needs
//! beyond the inventory, and the step operations ([`HostOps`]). [`LiveHost`] is the real one
//! (sysfs under `--host-root`, netlink and devlink in the agent's network namespace, the host's
//! with `hostNetwork`); `fake::FakeHost` is the test one. Every call blocks: the loop runs them
//! off the async runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crds::{inventory::NicInventory, node_state::NicNodeStateSpec};
use nic::{
    discovery::discover_with_warnings,
    netns::{NetnsRef, block_on_in_netns},
    sysfs::SysFs,
};
use planner::apply::{PfFacts, PfPlan, Step};

use crate::executor::{HostOps, StepDone, StepError};
use crate::host::{SysHost, pf_facts};
use crate::users::{PfNetdev, SeenLink, upper_users};

/// What the loop needs of a host.
pub trait NodeHost: HostOps + Send {
    /// The NICs the host shows now; the error names what could not be read.
    fn discover(&self) -> Result<NicInventory, String>;

    /// Facts of the PFs of `spec` beyond the inventory (VF admin MACs, `hw-tc-offload`, users
    /// of the PF netdev).
    fn pf_facts(
        &self,
        inventory: &NicInventory,
        spec: &NicNodeStateSpec,
    ) -> BTreeMap<String, PfFacts>;

    /// The pods (and host links) holding a macvlan/ipvlan child of each PF of `inventory`, by
    /// PCI address ([`crate::users`]). Asked only when a plan resets a PF netdev: it lists the
    /// links of every pod namespace.
    fn upper_users(&self, _inventory: &NicInventory) -> BTreeMap<String, Vec<String>> {
        BTreeMap::new()
    }
}

/// The real host.
#[derive(Clone, Debug)]
pub struct LiveHost {
    sysfs: SysFs,
    ops: SysHost,
}

impl LiveHost {
    /// Over the sysfs under `sysfs` (`/` on the host, `/host` when the host's `/sys` is mounted
    /// at `/host/sys`).
    pub fn new(sysfs: SysFs) -> Self {
        Self {
            ops: SysHost::new(sysfs.clone()),
            sysfs,
        }
    }
}

impl HostOps for LiveHost {
    fn apply(&self, pf: &PfPlan, step: &Step) -> Result<StepDone, StepError> {
        self.ops.apply(pf, step)
    }

    fn rdma_netns_mode(&self) -> Result<crds::pool::RdmaMode, String> {
        self.ops.rdma_netns_mode()
    }

    fn set_rdma_netns_mode(&self, mode: crds::pool::RdmaMode) -> Result<(), String> {
        self.ops.set_rdma_netns_mode(mode)
    }
}

impl NodeHost for LiveHost {
    fn discover(&self) -> Result<NicInventory, String> {
        let d = discover_with_warnings(&self.sysfs).map_err(|e| {
            format!(
                "cannot discover the NICs under {}: {e}",
                self.sysfs.root().display()
            )
        })?;
        for w in &d.warnings {
            tracing::warn!(device = %w.device, "discovery: {}", w.message);
        }
        let mut inventory = d.inventory;
        eswitch_modes_from_devlink(&mut inventory);
        crate::host::vf_guids_from_netlink(&mut inventory);
        Ok(inventory)
    }

    fn pf_facts(
        &self,
        inventory: &NicInventory,
        spec: &NicNodeStateSpec,
    ) -> BTreeMap<String, PfFacts> {
        pf_facts(inventory, spec)
    }

    fn upper_users(&self, inventory: &NicInventory) -> BTreeMap<String, Vec<String>> {
        let (pfs, links) = list_links(&self.sysfs, inventory);
        upper_users(&pfs, &links)
    }
}

/// The PF netdevs of `inventory` with their host indices, and the links of the host namespace
/// and of every namespace under `<root>/var/run/netns` and `<root>/run/netns`. A namespace that
/// cannot be entered (the pod is going away) is skipped with a log line.
fn list_links(sysfs: &SysFs, inventory: &NicInventory) -> (Vec<PfNetdev>, Vec<SeenLink>) {
    let seen = |netns: Option<String>, links: Vec<nic::netlink::Link>| {
        links
            .into_iter()
            .map(|l| SeenLink {
                netns: netns.clone(),
                name: l.name,
                kind: l.kind,
                lower: l.parent,
            })
            .collect::<Vec<_>>()
    };
    let list = || async {
        nic::netlink::NetlinkHandle::connect()?
            .link()
            .list()
            .execute()
            .await
    };
    let host = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(list()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the host's links");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    let pfs: Vec<PfNetdev> = inventory
        .nics
        .iter()
        .filter_map(|n| {
            let name = n.name.as_deref()?;
            let link = host.iter().find(|l| l.name == name)?;
            Some(PfNetdev {
                pci_address: n.pci_address.clone(),
                ifindex: link.index,
            })
        })
        .collect();
    let mut links = seen(None, host);
    let mut dirs: Vec<PathBuf> = ["var/run/netns", "run/netns"]
        .iter()
        .filter_map(|d| std::fs::canonicalize(sysfs.path(d)).ok())
        .collect();
    dirs.dedup();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let netns = NetnsRef::path(e.path());
            match block_on_in_netns(&netns, list) {
                Ok(Ok(l)) => links.extend(seen(Some(name), l)),
                Ok(Err(error)) => tracing::debug!(%error, netns = %name, "cannot list links"),
                Err(error) => tracing::debug!(%error, netns = %name, "cannot enter"),
            }
        }
    }
    (pfs, links)
}

/// Replaces the eswitch modes inferred from sysfs with what devlink reports, for the PFs that
/// have an eswitch; a kernel or device without devlink keeps the inference.
fn eswitch_modes_from_devlink(inventory: &mut NicInventory) {
    // PCI PFs and netdevsim devices, by inventory identity
    let pfs: Vec<(String, nic::devlink::DevlinkDev)> = inventory
        .nics
        .iter()
        .filter(|n| n.total_vfs > 0)
        .filter(|n| {
            nic::discovery::is_pci_id(&n.pci_address)
                || nic::discovery::netdevsim_device(&n.pci_address).is_some()
        })
        .map(|n| {
            let dev = nic::discovery::devlink_instance(&n.pci_address);
            (n.pci_address.clone(), dev)
        })
        .collect();
    if pfs.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let modes = rt.block_on(async {
        let mut modes = HashMap::new();
        let Ok(Some(dl)) = nic::devlink::DevlinkHandle::connect_optional().await else {
            return modes;
        };
        for (pf, dev) in pfs {
            if let Ok(e) = dl.eswitch(&dev).get().await
                && let Some(mode) = e.mode.and_then(|m| m.to_inventory())
            {
                modes.insert(pf, mode);
            }
        }
        modes
    });
    nic::discovery::apply_eswitch_modes_by_id(inventory, &modes);
}
