#!/usr/bin/env bash
# Benchmarks the smartnic CNI plugin against the reference macvlan plugin in one run, on the same
# macvlan + host-local network (a veth master made for the run), invoked as a runtime invokes a
# plugin: CNI_* environment, config on stdin, one fork+exec per call, wall-clock time around it.
#
#   cni/bench/cni-bench.sh [SMARTNIC_BINARY] [N]
#
# Prints, for each plugin: ADD and DEL min/median/p95 (N sequential ADD/DEL cycles after WARMUP),
# the mean CPU time (user+sys, from the kernel's accounting of the child) per ADD and per DEL, which
# a busy machine changes far less than wall time,
# then the median wall time of parallel ADD waves of 16 and 64 pods (WAVES waves each, every pod in
# its own netns) with the failure count, and finally our/reference ratios. Needs root and jq.
# Env: REF (default /usr/lib/cni/macvlan), WARMUP (3), WAVES (5), MODE (macvlan mode, bridge).
# Cleans up (links, netns, temp dir) on exit, and kills only the processes it started.
set -euo pipefail
OURS=$(readlink -f "${1:-target/release/smartnic}"); N=${2:-50}
REF=${REF:-/usr/lib/cni/macvlan}; WARMUP=${WARMUP:-3}; WAVES=${WAVES:-5}; MODE=${MODE:-bridge}
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 2; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }
[[ -x $OURS && -x $REF ]] || { echo "missing $OURS or $REF" >&2; exit 2; }
TMP=$(mktemp -d /tmp/smartnic-bench.XXXX)
MASTER=sbm$$; NSP=sbn$$
cleanup() {
  set +e
  for ns in $(ip netns list | awk '{print $1}' | grep "^$NSP" ); do ip netns del "$ns"; done
  ip link del "$MASTER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
ip link add "$MASTER" type veth peer name "${MASTER}p"
ip link set "$MASTER" up; ip link set "${MASTER}p" up
export SMARTNIC_CNI_STATE_DIR=$TMP/state

conf() { # $1 = ours|ref
  local ipam="{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.123.0.0/16\"}]],\"dataDir\":\"$TMP/ipam-$1\"}"
  if [[ $1 == ours ]]; then
    echo "{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",\"type\":\"smartnic\",\"mode\":\"macvlan\",\"master\":\"$MASTER\",\"macvlanMode\":\"$MODE\",\"ipam\":$ipam}"
  else
    echo "{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",\"type\":\"macvlan\",\"master\":\"$MASTER\",\"mode\":\"$MODE\",\"ipam\":$ipam}"
  fi
}
conf ours >"$TMP/ours.json"; conf ref >"$TMP/ref.json"

invoke() { # $1=plugin $2=conf $3=cmd $4=id $5=netns ; returns the plugin's status
  CNI_COMMAND=$3 CNI_CONTAINERID=$4 CNI_NETNS=/run/netns/$5 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    "$1" <"$2" >"$TMP/out.$4" 2>&1
}

stats() { # reads ms values on stdin; prints "min median p95"
  sort -g | awk '{v[NR]=$1} END {n=NR; m=(n%2)?v[(n+1)/2]:(v[n/2]+v[n/2+1])/2; p=int(0.95*n+0.999); if(p<1)p=1;
    printf "%.2f %.2f %.2f\n", v[1], m, v[p]}'
}

# Sets CPU to the children's CPU seconds so far (user + sys), from this shell's `times` (second
# line). `times` must run in this shell, not in a $(...) subshell, which has children of its own.
child_cpu() {
  times >"$TMP/times"
  CPU=$(awk 'NR==2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$TMP/times")
}

sequential() { # $1=name $2=plugin $3=conf
  local ns=${NSP}s$1 i t0 t1 t2 c0 c1 c2 cadd=0 cdel=0
  ip netns add "$ns"
  : >"$TMP/$1.add"; : >"$TMP/$1.del"
  for ((i = 0; i < WARMUP + N; i++)); do
    child_cpu; c0=$CPU
    t0=${EPOCHREALTIME/./}
    invoke "$2" "$3" ADD "$1-s$i" "$ns" || { echo "$1 ADD failed:"; cat "$TMP/out.$1-s$i"; exit 1; }
    t1=${EPOCHREALTIME/./}
    child_cpu; c1=$CPU
    invoke "$2" "$3" DEL "$1-s$i" "$ns" || { echo "$1 DEL failed:"; cat "$TMP/out.$1-s$i"; exit 1; }
    t2=${EPOCHREALTIME/./}
    child_cpu; c2=$CPU
    if ((i >= WARMUP)); then
      echo "$(( t1 - t0 ))" | awk '{print $1/1000}' >>"$TMP/$1.add"
      echo "$(( t2 - t1 ))" | awk '{print $1/1000}' >>"$TMP/$1.del"
      cadd=$(awk -v s="$cadd" -v a="$c0" -v b="$c1" 'BEGIN { print s + b - a }')
      cdel=$(awk -v s="$cdel" -v a="$c1" -v b="$c2" 'BEGIN { print s + b - a }')
    fi
  done
  echo "$cadd $cdel" | awk -v n="$N" '{ printf "%.2f %.2f\n", $1 * 1000 / n, $2 * 1000 / n }' >"$TMP/$1.cpu"
  ip netns del "$ns"
}

wave() { # $1=name $2=plugin $3=conf $4=width ; prints "wall_ms failures"
  local w=$4 i pids=() fails=0 t0 t1
  for ((i = 0; i < w; i++)); do ip netns add "${NSP}w$i"; done
  t0=${EPOCHREALTIME/./}
  for ((i = 0; i < w; i++)); do invoke "$2" "$3" ADD "$1-w$i" "${NSP}w$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
  t1=${EPOCHREALTIME/./}
  pids=()
  for ((i = 0; i < w; i++)); do invoke "$2" "$3" DEL "$1-w$i" "${NSP}w$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
  for ((i = 0; i < w; i++)); do ip netns del "${NSP}w$i"; done
  echo "$(( (t1 - t0) / 1000 )) $fails"
}

declare -A R
for who in ours ref; do
  bin=$OURS; [[ $who == ref ]] && bin=$REF
  sequential "$who" "$bin" "$TMP/$who.json"
  read -r R[$who.add.min] R[$who.add.med] R[$who.add.p95] < <(stats <"$TMP/$who.add")
  read -r R[$who.del.min] R[$who.del.med] R[$who.del.p95] < <(stats <"$TMP/$who.del")
  read -r R[$who.cpu.add] R[$who.cpu.del] <"$TMP/$who.cpu"
  for width in 16 64; do
    : >"$TMP/$who.wave$width"; f=0
    for ((k = 0; k < WAVES; k++)); do
      read -r ms fails < <(wave "$who" "$bin" "$TMP/$who.json" "$width")
      echo "$ms" >>"$TMP/$who.wave$width"; f=$((f + fails))
    done
    read -r _ R[$who.wave$width] _ < <(stats <"$TMP/$who.wave$width")
    R[$who.fail$width]=$f
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
echo "smartnic CNI benchmark: macvlan ($MODE) + host-local on a veth master; N=$N sequential cycles, $WAVES waves per width"
printf '%-10s %-22s %-22s %-16s %-16s %s\n' plugin "ADD ms min/med/p95" "DEL ms min/med/p95" "wave16 ms (fail)" "wave64 ms (fail)" "CPU ms/ADD,DEL"
for who in ours ref; do
  name=$(basename "$OURS"); [[ $who == ref ]] && name=$(basename "$REF")
  printf '%-10s %-22s %-22s %-16s %-16s %s\n' "$name" \
    "${R[$who.add.min]}/${R[$who.add.med]}/${R[$who.add.p95]}" "${R[$who.del.min]}/${R[$who.del.med]}/${R[$who.del.p95]}" \
    "${R[$who.wave16]} (${R[$who.fail16]})" "${R[$who.wave64]} (${R[$who.fail64]})" "${R[$who.cpu.add]},${R[$who.cpu.del]}"
done
echo "ratios (ours/reference): ADD median $(ratio "${R[ours.add.med]}" "${R[ref.add.med]}") (goal <= 0.25)," \
  "DEL median $(ratio "${R[ours.del.med]}" "${R[ref.del.med]}") (goal <= 0.95)," \
  "wave16 $(ratio "${R[ours.wave16]}" "${R[ref.wave16]}") (goal <= 0.25)," \
  "wave64 $(ratio "${R[ours.wave64]}" "${R[ref.wave64]}") (goal <= 0.25)"
echo "CPU per call (ours/reference): ADD $(ratio "${R[ours.cpu.add]}" "${R[ref.cpu.add]}"), DEL $(ratio "${R[ours.cpu.del]}" "${R[ref.cpu.del]}")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs): wall times on a busy machine are mostly waiting for a CPU"
echo "failures: ours $(( R[ours.fail16] + R[ours.fail64] )), reference $(( R[ref.fail16] + R[ref.fail64] ))"
