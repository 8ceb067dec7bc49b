//! Per-VF traffic counters (`smartnic_vf_*`), read when `/metrics` is scraped.
//!
//! A scrape discovers the PFs with VFs (sysfs), asks each PF once for all its VFs' counters
//! (rtnetlink `IFLA_VF_STATS`: one `RTM_GETLINK` per PF, not per VF), and names the pod holding
//! each VF from the CNI plugin's records on the node (`crds::cni_state`: the VF's owner file,
//! then the `begin` line of that attachment's journal). All of it blocks, so it runs on a
//! blocking thread, under a timeout, one read at a time; a read that does not answer in time
//! leaves `smartnic_vf_stats_up 0` and no counters rather than a scrape that hangs.
//!
//! The counters are the PF's (the embedded switch's) view of each VF since the VF was created,
//! so they keep counting while the VF's netdev is inside a pod, and restart at 0 when the VFs
//! are recreated (Prometheus treats that as a counter reset).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crds::{
    cni_state::{AttachmentBegin, AttachmentPod, journal_path, vf_owner_path},
    inventory::NicInventory,
};
use nic::{
    netlink::{NetlinkHandle, VfStats},
    sysfs::SysFs,
};
use prometheus_client::{
    encoding::text::encode_registry,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// How long a scrape waits for the counters by default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A PF whose VFs are read: its netdev and its VFs' PCI addresses by VF index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PfVfs {
    /// The PF netdev.
    pub name: String,
    /// VF index → the VF's PCI address.
    pub vfs: BTreeMap<u32, String>,
}

/// The PFs of `inventory` that have VFs and a netdev to ask.
pub fn pfs_with_vfs(inventory: &NicInventory) -> Vec<PfVfs> {
    inventory
        .nics
        .iter()
        .filter(|n| !n.vfs.is_empty())
        .filter_map(|n| {
            Some(PfVfs {
                name: n.name.clone()?,
                vfs: n
                    .vfs
                    .iter()
                    .map(|v| (v.vf_id, v.pci_address.clone()))
                    .collect(),
            })
        })
        .collect()
}

/// One VF's counters and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfSample {
    /// The PF netdev.
    pub pf: String,
    /// The VF's PCI address (`None`: the PF reports a VF sysfs did not show).
    pub pci_address: Option<String>,
    /// The pod holding the VF through the CNI plugin.
    pub pod: Option<AttachmentPod>,
    /// The counters (with the VF index).
    pub stats: VfStats,
}

/// What one read gave: the samples, and what could not be read (a PF that failed is left out;
/// the others are still reported).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Samples, by PF then VF index.
    pub samples: Vec<VfSample>,
    /// One line per PF that could not be read.
    pub errors: Vec<String>,
}

/// Reads every PF of `pfs`, one request each, naming the pod of each VF with `pod_of` (by the
/// VF's PCI address).
pub async fn gather(
    nl: &NetlinkHandle,
    pfs: &[PfVfs],
    pod_of: impl Fn(&str) -> Option<AttachmentPod>,
) -> Reading {
    let mut out = Reading::default();
    for pf in pfs {
        match nl.vf(pf.name.as_str()).stats().execute().await {
            Ok(rows) => out.samples.extend(rows.into_iter().map(|stats| {
                let pci_address = pf.vfs.get(&stats.vf).cloned();
                VfSample {
                    pf: pf.name.clone(),
                    pod: pci_address.as_deref().and_then(&pod_of),
                    pci_address,
                    stats,
                }
            })),
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    out
}

/// The pod holding VF `bdf` according to the CNI plugin's records under `state_dir`; `None`
/// when no attachment holds it, or its records do not name a pod (or cannot be read).
pub fn pod_of_vf(state_dir: &Path, bdf: &str) -> Option<AttachmentPod> {
    let key = std::fs::read_to_string(vf_owner_path(state_dir, bdf)).ok()?;
    let key = key.trim();
    // an owner record names `<containerID>:<ifname>`; anything else is not a journal name
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return None;
    }
    let journal = std::fs::read(journal_path(state_dir, key)).ok()?;
    let first = journal.split(|b| *b == b'\n').next()?;
    serde_json::from_slice::<AttachmentBegin>(first).ok()?.pod
}

type Counters = Family<Vec<(String, String)>, Counter>;

/// A counter's name, help text and value.
type CounterDef = (&'static str, &'static str, fn(&VfStats) -> u64);

/// Appends the `smartnic_vf_*` metrics of `reading` to `out` in the text exposition format
/// (without the final `# EOF`). `None`: the read failed or timed out; only
/// `smartnic_vf_stats_up 0` is written.
pub fn render(reading: Option<&Reading>, out: &mut String) {
    let mut registry = Registry::with_prefix("smartnic_vf");
    let up = Gauge::<i64>::default();
    up.set(i64::from(reading.is_some_and(|r| r.errors.is_empty())));
    registry.register(
        "stats_up",
        "1 when the last scrape read the counters of every PF with VFs, else 0",
        up,
    );
    if let Some(reading) = reading {
        let metrics: [CounterDef; 8] = [
            ("rx_packets", "Packets received by the VF", |s| s.rx_packets),
            ("tx_packets", "Packets sent by the VF", |s| s.tx_packets),
            ("rx_bytes", "Bytes received by the VF", |s| s.rx_bytes),
            ("tx_bytes", "Bytes sent by the VF", |s| s.tx_bytes),
            (
                "rx_broadcast_packets",
                "Broadcast packets received by the VF",
                |s| s.broadcast,
            ),
            (
                "rx_multicast_packets",
                "Multicast packets received by the VF",
                |s| s.multicast,
            ),
            (
                "rx_dropped_packets",
                "Packets for the VF that were dropped",
                |s| s.rx_dropped,
            ),
            (
                "tx_dropped_packets",
                "Packets from the VF that were dropped",
                |s| s.tx_dropped,
            ),
        ];
        for (name, help, value) in metrics {
            let family = Counters::default();
            for s in &reading.samples {
                family.get_or_create(&labels(s)).inc_by(value(&s.stats));
            }
            registry.register(name, help, family);
        }
    }
    if encode_registry(out, &registry).is_err() {
        tracing::warn!("cannot encode the VF metrics");
    }
}

fn labels(s: &VfSample) -> Vec<(String, String)> {
    let mut l = vec![
        ("pf".to_owned(), s.pf.clone()),
        ("vf".to_owned(), s.stats.vf.to_string()),
        (
            "pci_address".to_owned(),
            s.pci_address.clone().unwrap_or_default(),
        ),
    ];
    if let Some(pod) = &s.pod {
        l.push(("namespace".to_owned(), pod.namespace.clone()));
        l.push(("pod".to_owned(), pod.name.clone()));
    }
    l
}

/// Where a scrape's counters come from. `read` blocks (sysfs, netlink); [`VfScraper`] runs it
/// on a blocking thread.
pub trait VfCounterSource: Send + Sync + 'static {
    /// One read of every PF with VFs.
    fn read(&self) -> Result<Reading, String>;
}

/// The host's counters: discovery under `sysfs`, rtnetlink in the agent's network namespace
/// (the host's, with `hostNetwork`), the CNI records under `cni_state_dir`.
#[derive(Clone, Debug)]
pub struct LiveVfCounters {
    sysfs: SysFs,
    cni_state_dir: PathBuf,
}

impl LiveVfCounters {
    /// Over the host's sysfs and the CNI plugin's state directory.
    pub fn new(sysfs: SysFs, cni_state_dir: impl Into<PathBuf>) -> Self {
        Self {
            sysfs,
            cni_state_dir: cni_state_dir.into(),
        }
    }
}

impl VfCounterSource for LiveVfCounters {
    fn read(&self) -> Result<Reading, String> {
        let inventory = nic::discovery::discover(&self.sysfs).map_err(|e| {
            format!(
                "cannot discover the NICs under {}: {e}",
                self.sysfs.root().display()
            )
        })?;
        let pfs = pfs_with_vfs(&inventory);
        if pfs.is_empty() {
            return Ok(Reading::default());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime for the VF counters: {e}"))?;
        rt.block_on(async {
            let nl = NetlinkHandle::connect().map_err(|e| e.to_string())?;
            Ok(gather(&nl, &pfs, |bdf| pod_of_vf(&self.cni_state_dir, bdf)).await)
        })
    }
}

/// Runs a [`VfCounterSource`] for a scrape: on a blocking thread, under a timeout, never two
/// reads at once (a scrape while a read that timed out is still running gets an error at once,
/// so a stuck kernel call cannot pile up threads).
#[derive(Clone)]
pub struct VfScraper {
    source: Arc<dyn VfCounterSource>,
    timeout: Duration,
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for VfScraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfScraper")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl VfScraper {
    /// Reads `source`, waiting at most `timeout` per scrape.
    pub fn new(source: Arc<dyn VfCounterSource>, timeout: Duration) -> Self {
        Self {
            source,
            timeout,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One read, or why there is none.
    pub async fn scrape(&self) -> Result<Reading, String> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err("the previous read of the VF counters has not finished".into());
        }
        let source = Arc::clone(&self.source);
        let busy = Arc::clone(&self.busy);
        let task = tokio::task::spawn_blocking(move || {
            let r = source.read();
            busy.store(false, Ordering::Release);
            r
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.busy.store(false, Ordering::Release);
                Err(format!("the read of the VF counters failed: {e}"))
            }
            Err(_) => Err(format!(
                "the VF counters were not read within {:?}",
                self.timeout
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crds::inventory::{Nic, Vf};
    use nic::netlink::{FakeNetlink, KernelError, NetlinkCall, NetlinkOp};

    use super::*;

    fn sample(pf: &str, vf: u32, pod: Option<(&str, &str)>, rx_bytes: u64) -> VfSample {
        VfSample {
            pf: pf.into(),
            pci_address: Some(format!("0000:01:10.{vf}")),
            pod: pod.map(|(namespace, name)| AttachmentPod {
                namespace: namespace.into(),
                name: name.into(),
            }),
            stats: VfStats {
                vf,
                rx_bytes,
                tx_packets: 7,
                ..VfStats::default()
            },
        }
    }

    #[test]
    fn counters_render_per_direction_with_pf_vf_address_and_pod() {
        let reading = Reading {
            samples: vec![
                sample("enp1s0", 0, Some(("team-a", "trainer-0")), 1500),
                sample("enp1s0", 1, None, 0),
            ],
            errors: vec![],
        };
        let mut text = String::new();
        render(Some(&reading), &mut text);
        for line in [
            "# TYPE smartnic_vf_rx_bytes counter",
            "smartnic_vf_rx_bytes_total{pf=\"enp1s0\",vf=\"0\",pci_address=\"0000:01:10.0\",namespace=\"team-a\",pod=\"trainer-0\"} 1500",
            "smartnic_vf_rx_bytes_total{pf=\"enp1s0\",vf=\"1\",pci_address=\"0000:01:10.1\"} 0",
            "smartnic_vf_tx_packets_total{pf=\"enp1s0\",vf=\"1\",pci_address=\"0000:01:10.1\"} 7",
            "# TYPE smartnic_vf_tx_bytes counter",
            "# TYPE smartnic_vf_rx_packets counter",
            "# TYPE smartnic_vf_rx_broadcast_packets counter",
            "# TYPE smartnic_vf_rx_multicast_packets counter",
            "# TYPE smartnic_vf_rx_dropped_packets counter",
            "# TYPE smartnic_vf_tx_dropped_packets counter",
            "smartnic_vf_stats_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn a_failed_read_says_so_and_reports_no_counters() {
        let mut text = String::new();
        render(None, &mut text);
        assert!(
            text.lines().any(|l| l == "smartnic_vf_stats_up 0"),
            "{text}"
        );
        assert!(!text.contains("_total"), "{text}");
        let partial = Reading {
            samples: vec![sample("a", 0, None, 1)],
            errors: vec!["read the VF counters of b: No such device".into()],
        };
        let mut text = String::new();
        render(Some(&partial), &mut text);
        assert!(
            text.lines().any(|l| l == "smartnic_vf_stats_up 0"),
            "{text}"
        );
        assert!(
            text.contains("smartnic_vf_rx_bytes_total{pf=\"a\""),
            "{text}"
        );
    }

    #[test]
    fn one_request_per_pf_and_pods_from_the_cni_records() {
        let fake = FakeNetlink::new();
        fake.add_pf("enp1s0", 3);
        fake.add_pf("enp2s0", 2);
        fake.set_vf_stats(
            "enp1s0",
            VfStats {
                vf: 2,
                rx_packets: 10,
                rx_bytes: 1000,
                ..VfStats::default()
            },
        );
        let nl = NetlinkHandle::new(fake.clone());
        let pfs = vec![
            PfVfs {
                name: "enp1s0".into(),
                vfs: (0..3).map(|i| (i, format!("0000:01:10.{i}"))).collect(),
            },
            PfVfs {
                name: "enp2s0".into(),
                vfs: (0..2).map(|i| (i, format!("0000:02:10.{i}"))).collect(),
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("vf")).unwrap();
        std::fs::create_dir_all(dir.path().join("attachments")).unwrap();
        std::fs::write(vf_owner_path(dir.path(), "0000:01:10.2"), "c1:net1").unwrap();
        std::fs::write(
            journal_path(dir.path(), "c1:net1"),
            "{\"step\":\"begin\",\"network\":\"n\",\"mode\":\"sriov\",\"netns\":\"/x\",\"conf\":{},\
             \"pod\":{\"namespace\":\"team-a\",\"name\":\"trainer-0\"}}\n{\"step\":\"vf-move\"}\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reading = rt.block_on(gather(&nl, &pfs, |bdf| pod_of_vf(dir.path(), bdf)));
        assert!(reading.errors.is_empty(), "{:?}", reading.errors);
        assert_eq!(reading.samples.len(), 5);
        let held = &reading.samples[2];
        assert_eq!(
            (
                held.pf.as_str(),
                held.pci_address.as_deref(),
                held.stats.rx_bytes
            ),
            ("enp1s0", Some("0000:01:10.2"), 1000)
        );
        assert_eq!(
            held.pod.as_ref().map(|p| p.name.as_str()),
            Some("trainer-0")
        );
        assert!(reading.samples[3].pod.is_none());
        let dumps = fake
            .calls()
            .iter()
            .filter(|c| c.op() == NetlinkOp::ListVfStats)
            .count();
        assert_eq!(dumps, 2, "one request per PF, not per VF");
        // a PF that fails is named; the others are still read
        fake.fail_when(
            |c| matches!(c, NetlinkCall::ListVfStats(l) if l.to_string() == "enp2s0"),
            KernelError::new(19),
        );
        let reading = rt.block_on(gather(&nl, &pfs, |_| None));
        assert_eq!(reading.samples.len(), 3);
        assert_eq!(reading.errors.len(), 1, "{:?}", reading.errors);
        assert!(reading.errors[0].contains("enp2s0"), "{:?}", reading.errors);
    }

    #[test]
    fn an_owner_record_without_a_pod_or_with_a_path_names_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pod_of_vf(dir.path(), "0000:01:10.0"), None);
        std::fs::create_dir_all(dir.path().join("vf")).unwrap();
        std::fs::create_dir_all(dir.path().join("attachments")).unwrap();
        std::fs::write(vf_owner_path(dir.path(), "0000:01:10.0"), "../../etc/x").unwrap();
        assert_eq!(pod_of_vf(dir.path(), "0000:01:10.0"), None);
        std::fs::write(vf_owner_path(dir.path(), "0000:01:10.0"), "c2:net1").unwrap();
        std::fs::write(
            journal_path(dir.path(), "c2:net1"),
            "{\"step\":\"begin\",\"network\":\"n\",\"mode\":\"sriov\",\"netns\":\"/x\",\"conf\":{}}\n",
        )
        .unwrap();
        assert_eq!(pod_of_vf(dir.path(), "0000:01:10.0"), None);
    }

    #[test]
    fn only_pfs_with_vfs_and_a_netdev_are_read() {
        let vf = |i: u32| Vf {
            vf_id: i,
            pci_address: format!("0000:01:10.{i}"),
            ..Vf::default()
        };
        let inventory = NicInventory {
            nics: vec![
                Nic {
                    name: Some("enp1s0".into()),
                    vfs: vec![vf(0), vf(1)],
                    ..Nic::default()
                },
                Nic {
                    name: Some("enp2s0".into()),
                    ..Nic::default()
                },
                Nic {
                    name: None,
                    vfs: vec![vf(0)],
                    ..Nic::default()
                },
            ],
        };
        let pfs = pfs_with_vfs(&inventory);
        assert_eq!(pfs.len(), 1);
        assert_eq!(pfs[0].vfs[&1], "0000:01:10.1");
    }

    struct Slow(Duration);

    impl VfCounterSource for Slow {
        fn read(&self) -> Result<Reading, String> {
            std::thread::sleep(self.0);
            Ok(Reading::default())
        }
    }

    #[tokio::test]
    async fn a_slow_read_times_out_and_is_not_started_twice() {
        let scraper = VfScraper::new(
            Arc::new(Slow(Duration::from_millis(400))),
            Duration::from_millis(50),
        );
        let e = scraper.scrape().await.unwrap_err();
        assert!(e.contains("not read within"), "{e}");
        let e = scraper.scrape().await.unwrap_err();
        assert!(e.contains("has not finished"), "{e}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let fast = VfScraper {
            timeout: Duration::from_secs(5),
            ..scraper
        };
        assert_eq!(fast.scrape().await, Ok(Reading::default()));
    }
}
