# shellcheck shell=bash
# Part of hw-tests/suites/peers.sh (sourced): table 4, the device plugins on one table of pools.

section "4. device plugin, same selectors"
PF2=${SMARTNIC_TEST_PF2:-}
if [ -z "$PF2" ] && [ "${SMARTNIC_LAB_GUEST:-0}" = 1 ]; then
  for d in /sys/bus/pci/drivers/igb/0000:*/net/*; do
    [ -e "$d" ] && [ "${d##*/}" != "$PF" ] && { PF2=${d##*/}; break; }
  done
fi
dp_part() {
  if [ -z "$PF2" ]; then skip "4: device plugin" "no second PF (set SMARTNIC_TEST_PF2)"; return; fi
  local dev=/sys/class/net/$PF2/device pfbdf i l
  pfbdf=$(readlink -f "$dev"); pfbdf=${pfbdf##*/}
  on_exit "echo 0 > $dev/sriov_numvfs"
  [ "$(cat "$dev/sriov_numvfs")" = 0 ] || echo 0 >"$dev/sriov_numvfs"
  echo 4 >"$dev/sriov_numvfs"
  ip link set "$PF2" up
  local V=()
  for i in 0 1 2 3; do
    wait_for 30 test -e "$dev/virtfn$i/net" || { fail "4: VF $i of $PF2 has a netdev"; return; }
    l=$(readlink -f "$dev/virtfn$i"); V[$i]=${l##*/}
  done
  wait_for 20 grep -qx 1 "/sys/class/net/$PF2/carrier"
  local vendor device
  vendor=$(sed 's/^0x//' "/sys/bus/pci/devices/${V[0]}/vendor") device=$(sed 's/^0x//' "/sys/bus/pci/devices/${V[0]}/device")

  # The one table: resource, first VF, last VF (of PF2, on the kernel driver).
  local TABLE="peers_a 0 1
peers_b 2 4"
  local D=$W/dp
  mkdir -p "$D/plugins"
  jq -n -c --arg pf "$PF2" --arg bdf "$pfbdf" --arg t "$TABLE" '{resourceList: [$t | split("\n")[] | split(" ") |
    {resourceName: .[0], resourcePrefix: "smartnic.io", deviceType: "netdevice", isRdma: false, excludeTopology: false,
     selectors: [{pfs: [{pciAddress: $bdf, name: $pf, vfs: [{first: (.[1] | tonumber), last: (.[2] | tonumber)}]}]}]}]}' >"$D/ours.json"
  jq -n -c --arg pf "$PF2" --arg v "$vendor" --arg d "$device" --arg t "$TABLE" '{resourceList: [$t | split("\n")[] | split(" ") |
    {resourceName: .[0], resourcePrefix: "smartnic.io", deviceType: "netDevice",
     selectors: [{vendors: [$v], devices: [$d], drivers: ["igbvf"], pfNames: ["\($pf)#\(.[1])-\(.[2])"]}]}]}' >"$D/sriovdp.json"
  note "pools, ours:    $(cat "$D/ours.json")"
  note "pools, sriovdp: $(cat "$D/sriovdp.json")"

  local KLOG=$D/kubelet.log
  "$STUB" --plugin-dir "$D/plugins" kubelet >"$KLOG" 2>&1 &
  local stub=$!
  on_exit "kill $stub"
  wait_for 10 test -S "$D/plugins/kubelet.sock" || { fail "4: dp-kubelet-stub serves kubelet.sock" "$(cat "$KLOG")"; return; }
  local t_start
  t_start=$(now_ms)
  "$DP" --config "$D/ours.json" --plugin-dir "$D/plugins" --devinfo-dir "$D/devinfo" --log-format json 2>"$D/dp.log" &
  local dp=$!
  on_exit "kill $dp"
  lists() { jq -c --arg r "smartnic.io/$1" 'select(.event == "list" and .resource == $r)' "$KLOG" 2>/dev/null; }
  ids() { lists "$1" | tail -n 1 | jq -r '[.devices[] | "\(.id):\(.health)"] | join(" ")'; }
  ids_are() { [ "$(ids "$1")" = "$2" ]; }
  if ! wait_for 60 sh -c "grep -q '\"event\":\"list\".*peers_a' '$KLOG' && grep -q '\"event\":\"list\".*peers_b' '$KLOG'"; then
    fail "4: both pools listed by ListAndWatch" "$(cat "$KLOG")"$'\n'"$(tail -n 5 "$D/dp.log")"
    return
  fi
  local first reg
  first=$(jq -s -r '[.[] | select(.event == "list") | .t] | min' "$KLOG")
  reg=$(jq -s -r '[.[] | select(.event == "register") | .t] | min' "$KLOG")
  local T_FIRST="$((first - t_start)) ms (registered after $((reg - t_start)) ms)"
  expect_eq "4: peers_a advertises $PF2 VFs 0-1, Healthy" "$(ids peers_a)" "${V[0]}:Healthy ${V[1]}:Healthy"
  expect_eq "4: peers_b advertises $PF2 VFs 2-3 (VF 4 does not exist yet), Healthy" "$(ids peers_b)" "${V[2]}:Healthy ${V[3]}:Healthy"

  # Allocate: the RPC as the stub times it, else the stub process.
  : >"$D/alloc"
  local out t0 t1 k bad=0
  for k in $(seq 1 "$N"); do
    t0=${EPOCHREALTIME/./}
    out=$("$STUB" --plugin-dir "$D/plugins" allocate --endpoint smartnic.io_peers_a.sock "${V[0]}" 2>&1) || { bad=1; break; }
    t1=${EPOCHREALTIME/./}
    jq -r --arg us "$((t1 - t0))" '(.rpcUs // ($us | tonumber))' <<<"$out" >>"$D/alloc"
  done
  if [ "$bad" = 0 ]; then
    expect_eq "4: Allocate ${V[0]}: PCIDEVICE_SMARTNIC_IO_PEERS_A" "$(jq -r '.containers[0].envs.PCIDEVICE_SMARTNIC_IO_PEERS_A' <<<"$out")" "${V[0]}"
  else
    fail "4: Allocate ${V[0]}" "$out"
  fi
  local T_ALLOC
  T_ALLOC=$(median <"$D/alloc")

  # PF down: the stub's timestamp of the first all-Unhealthy list after the command returned.
  local lines T_DOWN="never"
  lines=$(wc -l <"$KLOG")
  t0=$(now_ms); ip link set "$PF2" down; t1=$(now_ms)
  sleep 3
  unhealthy() { tail -n +"$((lines + 1))" "$KLOG" | jq -c 'select(.event == "list" and (.resource | endswith("peers_a")) and ([.devices[].health] | unique) == ["Unhealthy"])' 2>/dev/null | head -n 1; }
  if wait_for 10 sh -c "[ -n \"\$(tail -n +$((lines + 1)) '$KLOG' | grep Unhealthy)\" ]"; then
    local t2
    t2=$(unhealthy | jq -r .t)
    if [ -n "$t2" ]; then
      T_DOWN="$((t2 - t1)) ms after ip returned ($((t2 - t0)) ms after it started)"
      ok "4: $PF2 down: peers_a's VFs Unhealthy ($T_DOWN)"
    else
      fail "4: $PF2 down: every VF of peers_a Unhealthy" "$(tail -n 3 "$KLOG")"
    fi
  else
    fail "4: $PF2 down: VFs turn Unhealthy" "$(tail -n 3 "$KLOG")"
  fi
  ip link set "$PF2" up
  wait_for 20 ids_are peers_a "${V[0]}:Healthy ${V[1]}:Healthy" || fail "4: $PF2 up: peers_a Healthy again" "$(ids peers_a)"

  # A new VF: igb changes the count through 0. From the write of the new count to the list with it.
  local T_NEW="never"
  echo 0 >"$dev/sriov_numvfs"
  t0=$(now_ms)
  echo 5 >"$dev/sriov_numvfs"
  t1=$(now_ms)
  l=$(readlink -f "$dev/virtfn4"); V[4]=${l##*/}
  if wait_for 60 ids_are peers_b "${V[2]}:Healthy ${V[3]}:Healthy ${V[4]}:Healthy"; then
    local t2
    t2=$(lists peers_b | jq -c --arg v "${V[4]}" 'select([.devices[] | select(.health == "Healthy") | .id] | index($v))' | head -n 1 | jq -r .t)
    T_NEW="$((t2 - t0)) ms after the write of sriov_numvfs (which took $((t1 - t0)) ms)"
    ok "4: new VF ${V[4]} advertised in peers_b ($T_NEW)"
  else
    fail "4: new VF ${V[4]} advertised in peers_b" "$(ids peers_b)"
  fi
  kill "$dp" 2>/dev/null; wait "$dp" 2>/dev/null

  echo "#"
  echo "# table 4: device plugin, same pools (peers_a = $PF2 VFs 0-1, peers_b = $PF2 VFs 2-4; one table, both formats above)"
  printf '# %-28s | %-52s | %s\n' "" "ours (smartnic-device-plugin)" "sriovdp"
  local dp_theirs="not built (module refused by the proxy); per its code:"
  printf '# %-28s | %-52s | %s\n' "advertised device IDs" "$(ids peers_a | sed 's/:Healthy//g'), $(ids peers_b | sed 's/:Healthy//g')" "$dp_theirs the same (ID = PCI address)"
  printf '# %-28s | %-52s | %s\n' "start to first ListAndWatch" "$T_FIRST" "not run"
  printf '# %-28s | %-52s | %s\n' "Allocate median ($N calls)" "$T_ALLOC ms (the RPC, from the stub)" "not run"
  printf '# %-28s | %-52s | %s\n' "PF link down -> Unhealthy" "$T_DOWN" "never (its probe is a TO-DO: Healthy forever)"
  printf '# %-28s | %-52s | %s\n' "new VF -> advertised" "$T_NEW" "never without a restart (discovers once at start)"
  echo "#"
}
dp_part
