#!/usr/bin/env bash
# Benchmarks the smartnic CNI plugin against the reference macvlan plugin in one run, on the same
# macvlan + host-local network (a veth master made for the run), invoked as a runtime invokes a
# plugin: CNI_* environment, config on stdin, one fork+exec per call, wall-clock time around it.
#
#   cni/bench/cni-bench.sh [SMARTNIC_BINARY] [N]
#
# SMARTNIC_BINARY defaults to the binary as shipped (static, built for start-up time):
#   cargo build --profile cni -p cni --bin smartnic --target x86_64-unknown-linux-musl
#
# Prints, for each plugin: ADD and DEL min/median/p95 (N sequential ADD/DEL cycles after WARMUP,
# the two plugins taking turns, the first of each pair alternating),
# the mean CPU time (user+sys, from the kernel's accounting of the child) per ADD and per DEL, which
# a busy machine changes far less than wall time,
# then the median wall time of parallel ADD waves of 16 and 64 pods (WAVES waves each, every pod in
# its own netns) with the failure count, and finally our/reference ratios. Needs root and jq.
# Env: REF (default /usr/lib/cni/macvlan), WARMUP (3), WAVES (5), MODE (macvlan mode, bridge).
# Cleans up (links, netns, temp dir) on exit, and kills only the processes it started.
set -euo pipefail
OURS=$(readlink -f "${1:-target/x86_64-unknown-linux-musl/cni/smartnic}"); N=${2:-50}
REF=${REF:-/usr/lib/cni/macvlan}; WARMUP=${WARMUP:-3}; WAVES=${WAVES:-5}; MODE=${MODE:-bridge}
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 2; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }
[[ -x $OURS && -x $REF ]] || { echo "missing $OURS or $REF" >&2; exit 2; }
TMP=$(mktemp -d /tmp/smartnic-bench.XXXX)
# Our state directory is /run/smartnic/cni, a tmpfs on a node; /run need not be one where this
# runs, so the run keeps it in /dev/shm. The IPAM dataDir of both plugins is on disk, in $TMP.
SHM=$(mktemp -d /dev/shm/smartnic-bench.XXXX)
# The harness's own files (each call's output, `times`) go to tmpfs too: a new file on disk per
# call added the same disk work to both plugins' times.
OUT=$SHM/out; mkdir "$OUT"
MASTER=sbm$$; NSP=sbn$$
cleanup() {
  set +e
  for ns in $(ip netns list | awk '{print $1}' | grep "^$NSP" ); do ip netns del "$ns"; done
  ip link del "$MASTER" 2>/dev/null
  rm -rf "$TMP" "$SHM"
}
trap cleanup EXIT
ip link add "$MASTER" type veth peer name "${MASTER}p"
ip link set "$MASTER" up; ip link set "${MASTER}p" up
export SMARTNIC_CNI_STATE_DIR=$SHM/state
# The node's allow-list (what an administrator grants): the run's master and IPAM directory.
printf '{"masters":[{"name":"%s"}],"ipamDataDirs":["%s/ipam-ours"]}' "$MASTER" "$TMP" >"$SHM/allow.json"
export SMARTNIC_CNI_ALLOW_LIST=$SHM/allow.json

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
    "$1" <"$2" >"$OUT/out.$4" 2>&1
}

# For `invoke_exec ... &`: the background subshell becomes the plugin (one fork and one exec per
# pod, as a runtime does; `invoke ... &` forks twice, which doubled the harness's share of a wave).
invoke_exec() {
  CNI_COMMAND=$3 CNI_CONTAINERID=$4 CNI_NETNS=/run/netns/$5 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    exec "$1" <"$2" >"$OUT/out.$4" 2>&1
}

stats() { # reads ms values on stdin; prints "min median p95"
  sort -g | awk '{v[NR]=$1} END {n=NR; m=(n%2)?v[(n+1)/2]:(v[n/2]+v[n/2+1])/2; p=int(0.95*n+0.999); if(p<1)p=1;
    printf "%.2f %.2f %.2f\n", v[1], m, v[p]}'
}

# Sets CPU to the children's CPU seconds so far (user + sys), from this shell's `times` (second
# line). `times` must run in this shell, not in a $(...) subshell, which has children of its own.
child_cpu() {
  times >"$OUT/times"
  CPU=$(awk 'NR==2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$OUT/times")
}

declare -A CADD CDEL
cycle() { # $1=name $2=plugin $3=conf $4=i ; one ADD+DEL in the plugin's netns, recorded after WARMUP
  local ns=${NSP}s$1 t0 t1 t2 c0 c1 c2
  child_cpu; c0=$CPU
  t0=${EPOCHREALTIME/./}
  invoke "$2" "$3" ADD "$1-s$4" "$ns" || { echo "$1 ADD failed:"; cat "$OUT/out.$1-s$4"; exit 1; }
  t1=${EPOCHREALTIME/./}
  child_cpu; c1=$CPU
  invoke "$2" "$3" DEL "$1-s$4" "$ns" || { echo "$1 DEL failed:"; cat "$OUT/out.$1-s$4"; exit 1; }
  t2=${EPOCHREALTIME/./}
  child_cpu; c2=$CPU
  if (($4 >= WARMUP)); then
    echo "$(( t1 - t0 ))" | awk '{print $1/1000}' >>"$TMP/$1.add"
    echo "$(( t2 - t1 ))" | awk '{print $1/1000}' >>"$TMP/$1.del"
    CADD[$1]=$(awk -v s="${CADD[$1]:-0}" -v a="$c0" -v b="$c1" 'BEGIN { print s + b - a }')
    CDEL[$1]=$(awk -v s="${CDEL[$1]:-0}" -v a="$c1" -v b="$c2" 'BEGIN { print s + b - a }')
  fi
}

# The two plugins take turns, cycle by cycle, so that both see the same machine: a DEL's time is
# mostly the kernel's wait for the device's last references, which drifts over a run.
sequential() {
  local i who
  for who in ours ref; do ip netns add "${NSP}s$who"; : >"$TMP/$who.add"; : >"$TMP/$who.del"; done
  # which goes first alternates: a DEL's kernel work (RCU grace periods, the device's last
  # references) overlaps the next calls, so a fixed order would favour the plugin that follows
  for ((i = 0; i < WARMUP + N; i++)); do
    if ((i % 2 == 0)); then
      cycle ours "$OURS" "$TMP/ours.json" "$i"
      cycle ref "$REF" "$TMP/ref.json" "$i"
    else
      cycle ref "$REF" "$TMP/ref.json" "$i"
      cycle ours "$OURS" "$TMP/ours.json" "$i"
    fi
  done
  for who in ours ref; do
    echo "${CADD[$who]} ${CDEL[$who]}" | awk -v n="$N" '{ printf "%.2f %.2f\n", $1 * 1000 / n, $2 * 1000 / n }' >"$TMP/$who.cpu"
    ip netns del "${NSP}s$who"
  done
}

# A wave: W pods' ADDs at once. Each pod's process is forked before the clock starts and waits at
# a barrier (a FIFO open on fd 9); the clock starts as the barrier opens, and each process then
# execs the plugin. So the wave times the plugins, not this shell forking W times in a row (about
# 0.5 ms a fork, serial: most of a 16-pod wave of a fast plugin), as a runtime starts pods from
# threads that are already running.
wave() { # $1=name $2=plugin $3=conf $4=width ; prints "wall_ms failures"
  local w=$4 i pids=() fails=0 t0 t1 go=$TMP/go.$1 lines
  for ((i = 0; i < w; i++)); do ip netns add "${NSP}w$i"; done
  rm -f "$go"; mkfifo "$go"; exec 9<>"$go"
  for ((i = 0; i < w; i++)); do
    (read -r -u 9 _; exec 9>&-; invoke_exec "$2" "$3" ADD "$1-w$i" "${NSP}w$i") &
    pids+=($!)
  done
  printf -v lines '%*s' "$w" ''; lines=${lines// /$'\n'}
  sleep 0.3 # every process is at the barrier
  t0=${EPOCHREALTIME/./}
  printf '%s' "$lines" >&9
  for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
  t1=${EPOCHREALTIME/./}
  exec 9>&-; rm -f "$go"
  pids=()
  for ((i = 0; i < w; i++)); do invoke_exec "$2" "$3" DEL "$1-w$i" "${NSP}w$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
  for ((i = 0; i < w; i++)); do ip netns del "${NSP}w$i"; done
  echo "$(( t1 - t0 ))" "$fails" | awk '{ printf "%.1f %d\n", $1 / 1000, $2 }'
}

declare -A R
sequential
for who in ours ref; do
  read -r R[$who.add.min] R[$who.add.med] R[$who.add.p95] < <(stats <"$TMP/$who.add")
  read -r R[$who.del.min] R[$who.del.med] R[$who.del.p95] < <(stats <"$TMP/$who.del")
  read -r R[$who.cpu.add] R[$who.cpu.del] <"$TMP/$who.cpu"
done
for width in 16 64; do
  for who in ours ref; do : >"$TMP/$who.wave$width"; R[$who.fail$width]=0; done
  for ((k = 0; k < WAVES; k++)); do
    order="ours ref"; ((k % 2)) && order="ref ours"
    for who in $order; do # taking turns, the first alternating, as above
      bin=$OURS; [[ $who == ref ]] && bin=$REF
      read -r ms fails < <(wave "$who" "$bin" "$TMP/$who.json" "$width")
      echo "$ms" >>"$TMP/$who.wave$width"; R[$who.fail$width]=$((R[$who.fail$width] + fails))
    done
  done
  for who in ours ref; do read -r _ R[$who.wave$width] _ < <(stats <"$TMP/$who.wave$width"); done
done
# The harness's own share, for reading the figures: the same calls of /bin/true.
floor_add=$(for ((i = 0; i < 20; i++)); do
  t0=${EPOCHREALTIME/./}; invoke /bin/true /dev/null ADD floor "${NSP}none" || true; t1=${EPOCHREALTIME/./}
  echo "$(( t1 - t0 ))" | awk '{print $1/1000}'
done | stats | cut -d' ' -f2)
read -r floor16 _ < <(wave floor /bin/true /dev/null 16)
read -r floor64 _ < <(wave floor /bin/true /dev/null 64)
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
echo "harness alone (/bin/true in place of a plugin): call ${floor_add} ms, wave16 ${floor16} ms, wave64 ${floor64} ms"
echo "CPU per call (ours/reference): ADD $(ratio "${R[ours.cpu.add]}" "${R[ref.cpu.add]}"), DEL $(ratio "${R[ours.cpu.del]}" "${R[ref.cpu.del]}")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs): wall times on a busy machine are mostly waiting for a CPU"
echo "failures: ours $(( R[ours.fail16] + R[ours.fail64] )), reference $(( R[ref.fail16] + R[ref.fail64] ))"
