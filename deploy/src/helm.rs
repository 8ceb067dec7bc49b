//! The Helm chart in `deploy/helm/smartnic-operator`: run the pinned `helm` on it (`helm
//! template`, `helm lint`) and derive the chart's copies of the generated CRDs.
//!
//! The chart is checked against the kustomization (`deploy/tests/helm.rs`): with its default
//! values it renders the same objects, field for field.

use std::{
    io,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use serde_json::Value;

/// The release namespace of the kustomization (`smartnic-system`), which the chart's renders
/// are compared in.
pub const NAMESPACE: &str = "smartnic-system";

/// The release name the chart is rendered with.
pub const RELEASE: &str = "smartnic-operator";

/// The label the top-level kustomization adds to every object, which the chart's CRD copies
/// carry too.
pub const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "smartnic-operator");

/// Why helm could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// No [`helm`] to run.
    #[error("helm not found: not built by hw-tests/helm/build.sh, not on PATH ({0})")]
    NoHelm(#[source] io::Error),
    /// helm failed, or printed something on stderr.
    #[error("helm {args}: {stderr}")]
    Failed {
        /// The arguments, joined by spaces.
        args: String,
        /// What helm said: its stdout, then its stderr.
        stderr: String,
    },
    /// `helm template` printed something that is not YAML.
    #[error("helm {args}: output is not YAML: {source}")]
    Yaml {
        /// The arguments, joined by spaces.
        args: String,
        /// The parser's error.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

impl HelmError {
    /// Whether the test should skip (no helm here) rather than fail.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NoHelm(_))
    }
}

/// The helm the checks run: `$SMARTNIC_HELM` when set (CI sets the pinned build's), else the one
/// `hw-tests/helm/build.sh` built for the pinned release when its cache holds it, else `helm` on
/// `PATH`.
pub fn helm() -> PathBuf {
    crate::pinned_tool("SMARTNIC_HELM", "hw-tests/helm/build.sh", "helm")
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/smartnic-operator")
}

/// Runs helm with `args` and returns its stdout. Anything on stderr is a failure: the chart's
/// renders and lint must be clean. HELM_* directories are pointed at an empty place so that no
/// user's repositories or plugins take part.
pub fn run(args: &[&str]) -> Result<String, HelmError> {
    // one directory per call: tests run helm in parallel threads of one process
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "smartnic-helm-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let out = Command::new(helm())
        .args(args)
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"))
        .env("KUBECONFIG", scratch.join("no-kubeconfig"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .output()
        .map_err(HelmError::NoHelm)?;
    let _ = std::fs::remove_dir_all(&scratch);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() || !stderr.is_empty() {
        // `helm lint` says what is wrong on stdout and only the count on stderr
        let said = [stdout.trim(), stderr.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        return Err(HelmError::Failed {
            args: args.join(" "),
            stderr: said,
        });
    }
    Ok(stdout)
}

/// `helm template` of the chart as release [`RELEASE`] in `namespace`, with its CRDs, and the
/// extra arguments (`--set ...`): the objects, in order.
pub fn template(namespace: &str, extra: &[&str]) -> Result<Vec<Value>, HelmError> {
    let chart = chart_dir();
    let chart = chart.to_string_lossy();
    let mut args = vec![
        "template",
        RELEASE,
        &chart,
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let yaml = run(&args)?;
    crate::documents(&yaml).map_err(|source| HelmError::Yaml {
        args: args.join(" "),
        source: Box::new(source),
    })
}

/// The chart's copy of a CRD that `crdgen` generated as `file` with the text `generated`: the
/// header names the copy's origin and the CRD carries [`PART_OF_LABEL`] (the one thing the
/// kustomization adds), so the chart renders exactly kustomize's object.
/// `deploy/helm/sync-crds.sh` writes these copies.
pub fn chart_crd(file: &str, generated: &str) -> String {
    let mut out = String::with_capacity(generated.len() + 128);
    let mut labelled = false;
    for (i, line) in generated.lines().enumerate() {
        if i == 0 && line.starts_with("# Generated by") {
            out.push_str(&format!(
                "# Copied from deploy/crds/{file} by deploy/helm/sync-crds.sh, with the label kustomize adds; do not edit.\n"
            ));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line == "metadata:" && !labelled {
            out.push_str(&format!(
                "  labels:\n    {}: {}\n",
                PART_OF_LABEL.0, PART_OF_LABEL.1
            ));
            labelled = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_crd_is_the_generated_one_with_the_part_of_label() {
        let generated = "# Generated by `crdgen`; do not edit.\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x.smartnic.io\nspec:\n  metadata:\n    a: b\n";
        let copy = chart_crd("x.smartnic.io.yaml", generated);
        assert_eq!(
            copy,
            "# Copied from deploy/crds/x.smartnic.io.yaml by deploy/helm/sync-crds.sh, with the label kustomize adds; do not edit.\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  labels:\n    app.kubernetes.io/part-of: smartnic-operator\n  name: x.smartnic.io\nspec:\n  metadata:\n    a: b\n"
        );
    }
}
