#!/usr/bin/env bash
# The one test command: formatting, lints, every unit/integration test (root-only tests run when
# this runs as root), then the virtual hardware lab suites. `.ci/run` calls exactly this.
#
#   scripts/check.sh            everything
#   SMARTNIC_SKIP_LAB=1 scripts/check.sh   skip the QEMU lab (e.g. on a laptop without QEMU)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
cargo test --workspace --locked

if [ "${SMARTNIC_SKIP_LAB:-0}" = 1 ]; then
  step "virtual hardware lab skipped (SMARTNIC_SKIP_LAB=1)"
elif [ -x hw-tests/run ]; then
  step "virtual hardware lab (QEMU: igb SR-IOV, netdevsim switchdev)"
  hw-tests/run
fi
