# shellcheck shell=bash
# hw-tests/node/private-containerd.sh (sourced after hw-tests/suites/lib.sh): a containerd of the
# binaries of hw-tests/node/build.sh with its own root, state and socket under a directory: the
# built runc and shim, the sandbox image set, no NRI; overlayfs where the kernel mounts it here,
# else the native snapshotter. Used by the self-tests that import and run images.

# private_containerd DIR BIN SANDBOX_IMAGE: starts it and registers its stop and the removal of
# what is left (its shims, mounts below DIR) with on_exit. Sets SNAP (snapshotter), CPID and CTR
# (the ctr command for namespace k8s.io). Returns 1 when it does not answer within 30 s (the log
# is DIR/containerd.log).
private_containerd() {
  local C=$1 B=$2 pause=$3
  mkdir -p "$C/ovl/l" "$C/ovl/u" "$C/ovl/w" "$C/ovl/m"
  if mount -t overlay overlay -o "lowerdir=$C/ovl/l,upperdir=$C/ovl/u,workdir=$C/ovl/w" "$C/ovl/m" 2>/dev/null; then
    umount "$C/ovl/m"
    SNAP=overlayfs
  else
    SNAP=native
  fi
  rm -rf "$C/ovl"
  note "snapshotter: $SNAP"
  cat >"$C/config.toml" <<EOC
version = 3
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$C/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "$SNAP"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$pause"

[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = "runc"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "$B/runc"
EOC
  # containerd looks for the shim on PATH, then beside its own binary: $B first, so that a shim
  # installed on the machine is not the one tested. ctr names the runc (--runc-binary); the CRI
  # runtime's BinaryName does the same for kubelet's pods.
  PATH="$B:$PATH" "$B/containerd" --config "$C/config.toml" >"$C/containerd.log" 2>&1 &
  CPID=$!
  on_exit "kill $CPID; wait $CPID"
  # Whatever is left after a failure: shims of this containerd (their command line names its
  # socket), then mounts below the directory.
  on_exit "for p in \$(pgrep -f -- '$C/containerd.sock'); do kill -9 \$p; done; grep -o ' $C/[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l"
  CTR=("$B/ctr" --address "$C/containerd.sock" -n k8s.io)
  wait_for 30 "${CTR[@]}" version
}
