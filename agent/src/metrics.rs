//! The agent's metrics (`smartnic_agent_*`): how long each step and each plan took, which steps
//! failed, and the node's current sync status.

use prometheus_client::{
    encoding::{
        EncodeLabelSet,
        text::{encode, encode_eof, encode_registry},
    },
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crds::node_state::SyncStatus;

use crate::executor::ApplyReport;

/// Labels of the per-step metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// Step kind (`set-num-vfs`, `eswitch-mode`, ...).
    pub step: String,
    /// Driver family of the PF (`mlx5`, `ice`, `igb`, `generic`).
    pub vendor: String,
}

/// Labels of the sync-status gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `Succeeded`, `InProgress` or `Failed`.
    pub status: String,
}

fn seconds() -> Histogram {
    // 10 ms .. 5 min: a sysfs write is fast, 125 VFs on a CX-6 Lx take about a minute.
    Histogram::new([
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

/// Every metric of the agent, in one registry.
pub struct AgentMetrics {
    /// Step durations, per step kind and vendor.
    pub step_duration: Family<StepLabels, Histogram, fn() -> Histogram>,
    /// Steps that failed, per step kind and vendor.
    pub step_failures: Family<StepLabels, Counter>,
    /// Whole-plan durations (all PFs, in parallel).
    pub plan_duration: Histogram,
    /// 1 for the node's current sync status, 0 for the others.
    pub sync_status: Family<SyncLabels, Gauge>,
    registry: Registry,
    /// The per-VF counters read at scrape time (`smartnic_vf_*`), once set.
    vf: std::sync::OnceLock<crate::vf_metrics::VfScraper>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

impl AgentMetrics {
    /// A registry with every metric under the `smartnic_agent` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smartnic_agent");
        let step_duration =
            Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(seconds);
        let step_failures = Family::<StepLabels, Counter>::default();
        let plan_duration = seconds();
        let sync_status = Family::<SyncLabels, Gauge>::default();
        registry.register(
            "step_duration_seconds",
            "Duration of one apply step on one PF",
            step_duration.clone(),
        );
        registry.register(
            "step_failures",
            "Apply steps that failed",
            step_failures.clone(),
        );
        registry.register(
            "plan_duration_seconds",
            "Duration of one plan (every PF, in parallel)",
            plan_duration.clone(),
        );
        registry.register(
            "sync_status",
            "1 for the node's current sync status",
            sync_status.clone(),
        );
        Self {
            step_duration,
            step_failures,
            plan_duration,
            sync_status,
            registry,
            vf: std::sync::OnceLock::new(),
        }
    }

    /// Serves the per-VF counters of `scraper` on `/metrics` from now on (once; later calls
    /// are ignored).
    pub fn set_vf_scraper(&self, scraper: crate::vf_metrics::VfScraper) {
        let _ = self.vf.set(scraper);
    }

    /// The per-VF counter reader, when set.
    pub fn vf_scraper(&self) -> Option<&crate::vf_metrics::VfScraper> {
        self.vf.get()
    }

    /// Records a run; `vendor_of` names the driver family of a PF by PCI address (node-wide
    /// steps are recorded with the vendor `node`).
    pub fn record(&self, report: &ApplyReport, vendor_of: impl Fn(&str) -> String) {
        let pfs = report
            .pfs
            .iter()
            .map(|pf| (vendor_of(&pf.pci_address), &pf.steps));
        for (vendor, steps) in pfs.chain(std::iter::once(("node".to_owned(), &report.node))) {
            for s in steps {
                let labels = StepLabels {
                    step: s.kind.to_owned(),
                    vendor: vendor.clone(),
                };
                self.step_duration
                    .get_or_create(&labels)
                    .observe(s.duration.as_secs_f64());
                if s.error.is_some() {
                    self.step_failures.get_or_create(&labels).inc();
                }
            }
        }
        self.plan_duration.observe(report.duration.as_secs_f64());
    }

    /// Sets the sync-status gauge.
    pub fn set_sync(&self, status: SyncStatus) {
        for s in [
            SyncStatus::Succeeded,
            SyncStatus::InProgress,
            SyncStatus::Failed,
        ] {
            self.sync_status
                .get_or_create(&SyncLabels {
                    status: format!("{s:?}"),
                })
                .set(i64::from(s == status));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The text exposition format with more metrics (`extra`, already encoded) before the end.
    pub fn render_with(&self, extra: &str) -> String {
        let mut out = String::new();
        if encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out.push_str(extra);
        if encode_eof(&mut out).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::executor::{PfReport, StepReport};

    #[test]
    fn a_run_is_recorded_per_step_and_plan() {
        let m = AgentMetrics::new();
        let step = |kind: &'static str, ms: u64, error: Option<&str>| StepReport {
            kind,
            text: kind.into(),
            duration: Duration::from_millis(ms),
            error: error.map(str::to_owned),
        };
        let report = ApplyReport {
            pfs: vec![PfReport {
                pci_address: "0000:01:00.0".into(),
                steps: vec![
                    step("set-num-vfs", 30, None),
                    step("bind-vfs", 5, Some("EBUSY")),
                ],
                duration: Duration::from_millis(35),
                error: Some("EBUSY".into()),
                reboot_needed: false,
            }],
            node: vec![step("rdma-netns-mode", 1, Some("rdmaMode: no rdma tool"))],
            duration: Duration::from_millis(40),
        };
        m.record(&report, |_| "igb".into());
        m.set_sync(SyncStatus::Failed);
        let text = m.render();
        assert!(
            text.contains(
                "smartnic_agent_step_duration_seconds_count{step=\"set-num-vfs\",vendor=\"igb\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("smartnic_agent_step_failures_total{step=\"bind-vfs\",vendor=\"igb\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "smartnic_agent_step_failures_total{step=\"rdma-netns-mode\",vendor=\"node\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("smartnic_agent_plan_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("smartnic_agent_sync_status{status=\"Failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("smartnic_agent_sync_status{status=\"Succeeded\"} 0"),
            "{text}"
        );
    }
}
