#!/usr/bin/env bash
# deploy/images/selftest.sh: proves on this machine (as root) that the image tarballs of
# deploy/images/build.sh are what the manifests run: a private containerd (hw-tests/node's
# binaries, hw-tests/node/private-containerd.sh) imports each with `ctr -n k8s.io images import`
# under the name the CRI resolves the manifests' reference to (docker.io/library/NAME:TAG); each
# image's config has the entrypoint and user of deploy/images/images.txt; each image runs its
# binary (--version) under the built runc with a read-only root; the agent image runs each program
# of deploy/images/agent-packages.txt (its version argument); the sizes
# stay within 25% of the table in deploy/README.md; a second write gives the same tarballs.
# Everything it started is stopped and removed (the images' cache stays, like hw-tests/node's).
#
# usage: deploy/images/selftest.sh     (builds first what is not built: hw-tests/node, the images)
# Prints "ok N - ..." / "not ok N - ..." lines and "N passed, M failed"; exit 1 when one failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../hw-tests/suites/lib.sh
. "$REPO/hw-tests/suites/lib.sh"

section "images (deploy/images/build.sh)"
if ! need_root; then
  skip "images self-test" "needs root (debootstrap, containerd, mounts)"
  summary
fi
if ! out=$("$REPO/hw-tests/node/build.sh" 2>&1) || ! out=$("$REPO/hw-tests/node/images.sh" 2>&1); then
  fail "hw-tests/node (containerd, runc, pause)" "$out"
  summary
fi
BIN=$("$REPO/hw-tests/node/build.sh" --print-dir)
NODE_IMAGES=$("$REPO/hw-tests/node/images.sh" --print-dir)
if ! out=$("$HERE/build.sh" 2>&1); then
  fail "deploy/images/build.sh" "$(tail -n 20 <<<"$out")"
  summary
fi
ok "deploy/images/build.sh"
diag "$(grep -E '^  |^images in' <<<"$out")"
OUT=$("$HERE/build.sh" --print-dir)
LIST="$OUT/images.txt"

# The images of images.txt (name crate binary profile root user), comments dropped.
images() { sed 's/#.*//' "$HERE/images.txt" | awk 'NF == 6'; }
# file, image reference and sizes of NAME in the output's images.txt
built() { awk -v n="$1" '{ k = split($2, a, "/"); r = a[k]; sub(/:[^:]*$/, "", r) } r == n' "$LIST"; }

section "each tarball's name and config"
while read -r name _ bin _ _ user; do
  read -r file ref _ _ _ <<<"$(built "$name")"
  if [ -z "${file:-}" ]; then fail "$name is built" "$(cat "$LIST")"; continue; fi
  tag=$(awk -v n="$name" '$1 == "-" && $2 == "name:" { cur = $3; next } $1 == "newTag:" && cur == n { print $2; exit }' \
    "$REPO/deploy/kustomization.yaml")
  expect_eq "$file is named as the CRI resolves the manifests' $name:$tag" "$ref" "docker.io/library/$name:$tag"
  cfg=$(tar -xOf "$OUT/$file" index.json | jq -r '.manifests[0].digest | sub("sha256:"; "blobs/sha256/")' \
    | xargs -I{} tar -xOf "$OUT/$file" {} | jq -r '.config.digest | sub("sha256:"; "blobs/sha256/")' \
    | xargs -I{} tar -xOf "$OUT/$file" {} | jq -c '.config | {Entrypoint, User}' 2>&1)
  expect_eq "$name: entrypoint /usr/local/bin/$bin, user $user" "$cfg" \
    "{\"Entrypoint\":[\"/usr/local/bin/$bin\"],\"User\":\"$user\"}"
done < <(images)

section "a second write is the same"
if out=$("$HERE/build.sh" --out "$T_TMP/again" 2>&1) \
  && diff <(awk '{ print $1, $2, $3 }' "$LIST") <(awk '{ print $1, $2, $3 }' "$T_TMP/again/images.txt") >"$T_TMP/d" 2>&1; then
  ok "the same sources give the same tarballs (manifest digests)"
else
  fail "the same sources give the same tarballs (manifest digests)" "$out"$'\n'"$(cat "$T_TMP/d")"
fi
rm -rf "$T_TMP/again"

section "sizes as deploy/README.md says (within 25%)"
# the README's table: | `NAME` | compressed MB | unpacked MB | ...
while read -r name _; do
  read -r file _ _ bytes unpacked <<<"$(built "$name")"
  [ -n "${file:-}" ] || continue
  row=$(grep -m1 "^| \`$name\` |" "$REPO/deploy/README.md" || true)
  want=$(awk -F'|' '{ gsub(/[^0-9.]/, "", $3); print $3 }' <<<"$row")
  got=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
  if [ -z "$want" ]; then
    fail "deploy/README.md gives the size of $name" "no row | \`$name\` | in its size table"
  elif awk -v g="$got" -v w="$want" 'BEGIN { exit !(g <= w * 1.25 && g >= w * 0.75) }'; then
    ok "$name is $got MB (README: $want MB)"
  else
    fail "$name is $got MB, README says $want MB: measure again and update deploy/README.md" ""
  fi
done < <(images)

section "the images run (private containerd, built runc)"
C="$T_TMP/c"
PAUSE=$(awk '$1 == "pause.tar" { print $2 }' "$NODE_IMAGES/images.txt")
# shellcheck source=../../hw-tests/node/private-containerd.sh
. "$REPO/hw-tests/node/private-containerd.sh"
if private_containerd "$C" "$BIN" "$PAUSE"; then
  ok "containerd starts on a private socket"
else
  fail "containerd starts on a private socket" "$(tail -n 20 "$C/containerd.log")"
  summary
fi

# run WHAT WANT_REGEX IMAGE ARGS...: a container of IMAGE (read-only root, the image's user) runs
# ARGS, exits 0 and prints a line matching WANT_REGEX.
n=0
run() {
  local what=$1 want=$2 img=$3 out rc
  shift 3
  n=$((n + 1))
  out=$(timeout 120 "${CTR[@]}" run --rm --read-only --snapshotter "$SNAP" --runc-binary "$BIN/runc" \
    "$img" "t$n" "$@" 2>&1 </dev/null)
  rc=$?
  if [ $rc = 0 ] && grep -qE -- "$want" <<<"$out"; then ok "$what"; else fail "$what" "exit $rc"$'\n'"$out"; fi
}

while read -r name _ bin _ root user; do
  read -r file ref _ <<<"$(built "$name")"
  [ -n "${file:-}" ] || continue
  if out=$(timeout 300 "${CTR[@]}" images import --snapshotter "$SNAP" "$OUT/$file" 2>&1 </dev/null) \
    && grep -qx "$ref" <<<"$("${CTR[@]}" images ls -q 2>/dev/null)"; then
    ok "ctr images import $file names it $ref"
  else
    fail "ctr images import $file names it $ref" "$out"
    continue
  fi
  run "$name: $bin --version" "${ref##*:}" "$ref" "/usr/local/bin/$bin" --version
  [ "$root" = debian ] || continue
  while read -r program package arg; do
    if [ "$package" = - ]; then
      run "$name: $program is not installed (not in Debian)" "^absent$" "$ref" \
        /bin/sh -c "command -v $program >/dev/null && echo present || echo absent"
    else
      run "$name: $program $arg ($package)" "." "$ref" "$program" "$arg"
    fi
  done < <(sed 's/#.*//' "$HERE/agent-packages.txt" | awk 'NF == 3')
done < <(images)

# (ctr's warnings, such as cgroup v1's deprecation, go to stderr)
"${CTR[@]}" containers ls -q >"$T_TMP/left" 2>/dev/null </dev/null
expect_eq "no container is left" "$(cat "$T_TMP/left")" ""
kill "$CPID"
if wait_for 20 sh -c "! kill -0 $CPID 2>/dev/null"; then ok "containerd stops on SIGTERM"; else fail "containerd stops on SIGTERM" ""; fi
expect_eq "no shim of it is left" "$(pgrep -f -- "$C/containerd.sock" | tr '\n' ' ')" ""
expect_eq "no mount below its directories is left" "$(grep -c " $C/" /proc/self/mounts)" "0"
summary
