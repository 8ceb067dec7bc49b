#!/usr/bin/env bash
# The one test command: formatting, lints, every unit/integration test (root-only tests run when
# this runs as root), then the virtual hardware lab suites. `.ci/run` calls exactly this.
#
#   scripts/check.sh                       everything
#   SMARTNIC_SKIP_LAB=1 scripts/check.sh   skip the QEMU lab (e.g. on a laptop without QEMU)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "node-side binaries link no Kubernetes client (nic, cni)"
for crate in nic cni; do
  if cargo tree -p "$crate" -e normal --locked --prefix none | grep -E '^(kube|kube-[a-z]+|k8s-openapi|schemars) v'; then
    echo "error: $crate depends on a Kubernetes crate (above)" >&2
    exit 1
  fi
done

step "cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee -a "$log"

if [ "${SMARTNIC_SKIP_LAB:-0}" = 1 ]; then
  step "virtual hardware lab skipped (SMARTNIC_SKIP_LAB=1)"
else
  step "virtual hardware lab (QEMU: igb SR-IOV, netdevsim switchdev)"
  hw-tests/run 2>&1 | tee -a "$log"
fi

# One closing line over both runners: cargo's "test result" lines and the lab's total. A test that
# cannot run here (no root, a kernel feature missing) prints "SKIP <name>: <reason>" and returns, which
# cargo counts as passed: those move from passed to skipped.
awk '/^test result:/ { p += $4; f += $6; s += $8 }
     /^SKIP [^ ]+: / { p -= 1; s += 1 }
     /^lab: [0-9]+ passed/ { p += $2; f += $4; s += $6 }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
