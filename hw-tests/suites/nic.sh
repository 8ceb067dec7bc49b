#!/bin/bash
# suite: nic - the host layer through smartnicctl against a real kernel: SR-IOV, VF settings, vfio-pci, devlink/switchdev
# needs: smartnicctl
#
# Two parts, each skipped with a reason when its hardware is absent:
#   SR-IOV  on the PF named by SMARTNIC_TEST_PF: VF count, inventory, VF settings
#           (rtnetlink), VF driver binding (vfio-pci), back to 0 VFs.
#   devlink on a netdevsim device: eswitch modes, ports and representors, port
#           function, rate leaf, ethtool features of a representor.
#
# Environment:
#   SMARTNIC_TEST_PF         PF netdev (the lab sets its first igb); unset: SR-IOV part skipped.
#                            The PF must have 0 VFs; it ends with 0 VFs (and up, if it was up).
#   SMARTNIC_TEST_NUMVFS     VFs to create (default 2)
#   SMARTNIC_TEST_LAB=1      also check what is known of the lab's emulated 82576 (igb/igbvf,
#                            7 VFs, no min rate, no link-state control); set by the lab
#   SMARTNIC_TEST_VF_UNSUPPORTED  the VF settings this host's NIC refuses, space-separated, from
#                            min-tx-rate link-state (lab default: both; elsewhere: none). Each
#                            setting must then fail, and every other one must work and read back.
#   SMARTNIC_TEST_BAD_DRIVER a loaded driver that refuses the VFs, for the bind rollback check
#                            (default: the PF's driver)
#   SMARTNIC_TEST_NETDEVSIM  auto (default: run when the module loads) | 1 (required) | 0 (skip)
#   LAB_BREAK=1              expect one VF more than the PF has, to watch the suite fail
#   SMARTNICCTL              the binary under test (default: smartnicctl on PATH, then target/)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What this host's NIC is declared to refuse (the lab's igb: both).
if lab; then VF_UNSUPPORTED=${SMARTNIC_TEST_VF_UNSUPPORTED-min-tx-rate link-state}
else VF_UNSUPPORTED=${SMARTNIC_TEST_VF_UNSUPPORTED-}; fi
vf_refuses() { [[ " $VF_UNSUPPORTED " == *" $1 "* ]]; }
driver_of() { local l; l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) && echo "${l##*/}"; }
netdev_of() { local n; for n in "/sys/bus/pci/devices/$1/net/"*; do [ -e "$n" ] && { echo "${n##*/}"; return; }; done; }
group_of() { local l; l=$(readlink "/sys/bus/pci/devices/$1/iommu_group" 2>/dev/null) && echo "${l##*/}"; }
vf_bdf() { local l; l=$(readlink -f "$PFDEV/virtfn$1" 2>/dev/null) && echo "${l##*/}"; }
# The discover entry of the PF, from the last ctl_json call.
nic_of() { jq -c --arg a "$PFBDF" '.nics[]? | select(.pciAddress == $a)' <<<"$CTL_OUT" 2>/dev/null; }

if ! need_root; then
  skip "nic suite" "needs root (it changes SR-IOV and devlink state)"
  summary
fi
if ! have_jq; then
  fail "jq (or gojq) is installed (the suite reads smartnicctl's JSON with it)"
  summary
fi
ctl_ok "smartnicctl runs ($SMARTNICCTL)" --version

# ======================================================================= SR-IOV
sriov_part() {
  local PF=$SMARTNIC_TEST_PF
  PFDEV=/sys/class/net/$PF/device
  section "SR-IOV on $PF"
  if [ ! -e "$PFDEV/sriov_totalvfs" ]; then
    fail "$PF is an SR-IOV capable PCI function" "no $PFDEV/sriov_totalvfs"
    return
  fi
  PFBDF=$(readlink -f "$PFDEV"); PFBDF=${PFBDF##*/}
  local total num start pfdrv i
  total=$(cat "$PFDEV/sriov_totalvfs")
  start=$(cat "$PFDEV/sriov_numvfs")
  num=${SMARTNIC_TEST_NUMVFS:-2}
  pfdrv=$(driver_of "$PFBDF")
  note "PF $PF = $PFBDF, driver $pfdrv, sriov_totalvfs $total"
  if [ "$start" != 0 ]; then
    fail "$PF starts with 0 VFs" "it has $start; the suite would destroy them (set sriov_numvfs to 0 first)"
    return
  fi
  if lab; then
    expect_eq "lab PF driver" "$pfdrv" igb
  fi
  on_exit "echo 0 > $PFDEV/sriov_numvfs"
  # igb refuses a VF max rate (EINVAL) unless the PF link is up at 1000 Mb/s.
  if [ "$(cat "/sys/class/net/$PF/operstate")" != up ]; then
    ip link set "$PF" up && on_exit "ip link set $PF down"
  fi
  wait_for 10 grep -qx 1 "/sys/class/net/$PF/carrier" || note "$PF has no carrier"

  # --- VF count
  if ctl_ok "sriov numvfs $PFBDF 1" sriov numvfs "$PFBDF" 1; then
    expect_eq "sysfs sriov_numvfs after sriov numvfs $PFBDF 1" "$(cat "$PFDEV/sriov_numvfs")" 1
  fi
  # sriov_drivers_autoprobe: read and write, back to on.
  if ctl_ok "sriov autoprobe $PF off" sriov autoprobe "$PF" off; then
    expect_eq "  ...says off, sysfs sriov_drivers_autoprobe is 0" "$CTL_OUT $(cat "$PFDEV/sriov_drivers_autoprobe")" \
      "$PF ($PFBDF): sriov_drivers_autoprobe off 0"
  fi
  if ctl_ok "sriov autoprobe $PFBDF on" sriov autoprobe "$PFBDF" on; then
    expect_eq "  ...sysfs sriov_drivers_autoprobe is 1" "$(cat "$PFDEV/sriov_drivers_autoprobe")" 1
  fi
  if ctl_ok "sriov numvfs $PF $num" sriov numvfs "$PF" "$num"; then
    expect_eq "sysfs sriov_numvfs after sriov numvfs $PF $num" "$(cat "$PFDEV/sriov_numvfs")" "$num"
    check "virtfn0..virtfn$((num - 1)) links exist" test -e "$PFDEV/virtfn$((num - 1))"
    expect_match "  ...reports that 1 -> $num destroyed VF 0 and that every VF has a netdev" "$CTL_OUT" \
      "sriov_numvfs 1 -> $num: destroyed VF 0, created $num; every VF has a netdev after"
    # numvfs waits for each VF's driver and netdev: no waiting here.
    for ((i = 0; i < num; i++)); do
      expect_eq "VF $i has a driver and a netdev when numvfs returns" \
        "$([ -n "$(driver_of "$(vf_bdf $i)")" ] && echo driver) $([ -n "$(netdev_of "$(vf_bdf $i)")" ] && echo netdev)" "driver netdev"
    done
  else
    note "setting up $num VFs through sysfs to test the rest"
    echo 0 >"$PFDEV/sriov_numvfs"; echo "$num" >"$PFDEV/sriov_numvfs"
    for ((i = 0; i < num; i++)); do wait_for 30 sh -c "ls $PFDEV/virtfn$i/net/ | grep -q ."; done
  fi
  if lab; then
    for ((i = 0; i < num; i++)); do
      expect_eq "VF $i is bound to igbvf" "$(driver_of "$(vf_bdf $i)")" igbvf
    done
  fi

  # --- inventory
  local want_total=$total nic want got
  [ "${LAB_BREAK:-0}" = 1 ] && want_total=$((total + 1)) && note "LAB_BREAK=1: expecting totalVfs $want_total"
  if ctl_json "discover -o json" discover -o json; then
    nic=$(nic_of)
    if [ -z "$nic" ]; then
      fail "discover lists the PF $PFBDF" "$(jq -c '[.nics[]?.pciAddress]' <<<"$CTL_OUT")"
    else
      ok "discover lists the PF $PFBDF"
      expect_eq "discover: PF name and driver" "$(jq -r '"\(.name) \(.driver)"' <<<"$nic")" "$PF $pfdrv"
      lab && expect_eq "discover: totalVfs of the 82576" "$(jq -r .totalVfs <<<"$nic")" "$want_total"
      lab && expect_eq "discover: no eswitchMode for igb (no devlink)" "$(jq -r '.eswitchMode // "absent"' <<<"$nic")" absent
      lab && expect_eq "discover: every igb PF listed" \
        "$(jq -r '[.nics[]? | select(.driver == "igb") | .pciAddress] | sort | join(" ")' <<<"$CTL_OUT")" \
        "$(cd /sys/bus/pci/drivers/igb && ls -d 0000:* | sort | tr '\n' ' ' | sed 's/ $//')"
      lab || expect_eq "discover: totalVfs = sriov_totalvfs" "$(jq -r .totalVfs <<<"$nic")" "$want_total"
      expect_eq "discover: numVfs and number of VFs listed" "$(jq -r '"\(.numVfs) \(.vfs | length)"' <<<"$nic")" "$num $num"
      for ((i = 0; i < num; i++)); do
        local bdf physfn
        bdf=$(vf_bdf $i)
        physfn=$(readlink -f "/sys/bus/pci/devices/$bdf/physfn"); physfn=${physfn##*/}
        want="vfId=$i pci=$bdf physfn=$PFBDF driver=$(driver_of "$bdf") name=$(netdev_of "$bdf")"
        got=$(jq -r --argjson i "$i" --arg pf "$physfn" \
          '.vfs[]? | select(.vfId == $i) | "vfId=\(.vfId) pci=\(.pciAddress) physfn=\($pf) driver=\(.driver // "") name=\(.name // "")"' <<<"$nic")
        expect_eq "discover: VF $i agrees with sysfs (virtfn$i, physfn, driver, netdev)" "$got" "$want"
      done
    fi
  fi
  if ctl_ok "discover (table) exits 0" discover; then
    expect_match "discover table names $PF" "$CTL_OUT" "$PF"
  fi

  section "links (rtnetlink) of $PF"
  if ctl_json "link show $PF -o json" link show "$PF" -o json; then
    expect_eq "link show: name, mtu, mac and up agree with sysfs" \
      "$(jq -r '.links[0] | "\(.name) mtu=\(.mtu) mac=\(.mac) up=\(.up)"' <<<"$CTL_OUT")" \
      "$PF mtu=$(cat "/sys/class/net/$PF/mtu") mac=$(cat "/sys/class/net/$PF/address") up=true"
  fi
  if ctl_json "link show -o json (all links)" link show -o json; then
    local names="lo $PF" n
    for ((i = 0; i < num; i++)); do names+=" $(netdev_of "$(vf_bdf $i)")"; done
    names=$(tr ' ' '\n' <<<"$names" | grep . | sort | tr '\n' ' ')
    expect_eq "link show lists lo, $PF and the VF netdevs" \
      "$(jq -r --arg want "$names" '($want | split(" ")) as $w | [.links[]?.name | select(. as $n | $w | index([$n]))] | sort | join(" ")' <<<"$CTL_OUT") " \
      "$names"
  fi
  ctl_fails "link show of a missing link fails" link show nosuchlink0 \
    && expect_match "  ...error names nosuchlink0" "$CTL_ERR" "nosuchlink0"

  vf_part "$PF" "$num" "$total"
  vfio_part "$PF" "$num"
  bind_rollback_part "$PF" "$num"

  # --- back to 0
  if ctl_ok "sriov numvfs $PF 0" sriov numvfs "$PF" 0; then
    expect_eq "sysfs sriov_numvfs is 0, no virtfn0" "$(cat "$PFDEV/sriov_numvfs") $(test -e "$PFDEV/virtfn0" && echo virtfn0)" "0 "
    expect_eq "  ...reports the VFs it destroyed" "$CTL_OUT" "$PF ($PFBDF): sriov_numvfs $num -> 0: destroyed VFs 0-$((num - 1)), created 0"
  fi
  if ctl_json "discover -o json after 0 VFs" discover -o json; then
    expect_eq "discover: numVfs 0, no VFs" "$(jq -r '"\(.numVfs) \(.vfs | length)"' <<<"$(nic_of)")" "0 0"
  fi
  if ctl_fails "sriov numvfs $PF $((total + 1)) (more than sriov_totalvfs) fails" sriov numvfs "$PF" $((total + 1)); then
    expect_match "  ...and the error names $PF or $PFBDF" "$CTL_ERR" "$PF|$PFBDF"
  fi
  echo 0 >"$PFDEV/sriov_numvfs" 2>/dev/null
}

# vf_json N: the "vf show" entry of VF N from the last ctl_json call.
vf_json() { jq -c --argjson n "$1" '.vfs[]? | select(.vf == $n)' <<<"$CTL_OUT" 2>/dev/null; }
vf_fields='"mac=\(.mac) vlan=\(.vlan // 0) qos=\(.qos // 0) spoofchk=\(.spoofchk) trust=\(.trust) maxTxRate=\(.maxTxRate // 0)"'
# What the kernel reports, through iproute2, in the same form.
ip_vf_fields() {
  ip -j link show "$1" 2>/dev/null | jq -r --argjson n "$2" '.[0].vfinfo_list[]? | select(.vf == $n)
    | "mac=\(.address) vlan=\(.vlan_list[0].vlan // 0) qos=\(.vlan_list[0].qos // 0) spoofchk=\(.spoofchk) trust=\(.trust) maxTxRate=\(.rate.max_tx // 0)"'
}

# An error must follow the contract: "error: ..." naming the PF and the setting.
error_names() {  # error_names WHAT PF SETTING-REGEX
  expect_match "  ...error starts with 'error:'" "$CTL_ERR" "^error: "
  expect_match "  ...error names $2 and the $1" "$CTL_ERR" "($2.*($3))|(($3).*$2)"
}

vf_part() {
  local PF=$1 num=$2 total=$3 mac0=02:00:5e:10:00:01 mac1=02:00:5e:10:00:02
  section "VF settings (rtnetlink) on $PF"
  ctl_ok "vf set --vf 0 --mac $mac0" vf set "$PF" --vf 0 --mac $mac0
  ctl_ok "vf set --vf 0 --vlan 10 --qos 3" vf set "$PF" --vf 0 --vlan 10 --qos 3
  ctl_ok "vf set --vf 0 --spoofchk off" vf set "$PF" --vf 0 --spoofchk off
  ctl_ok "vf set --vf 0 --trust on" vf set "$PF" --vf 0 --trust on
  ctl_ok "vf set --vf 0 --max-tx-rate 100" vf set "$PF" --vf 0 --max-tx-rate 100
  local want0="mac=$mac0 vlan=10 qos=3 spoofchk=false trust=true maxTxRate=100"
  have_tool ip "kernel (ip link) shows VF 0 as set" \
    && expect_eq "kernel (ip link) shows VF 0 as set" "$(ip_vf_fields "$PF" 0)" "$want0"
  if ctl_json "vf show $PF -o json" vf show "$PF" -o json; then
    expect_eq "vf show: pf" "$(jv .pf)" "$PF"
    expect_eq "vf show: $num VFs" "$(jv '.vfs | length')" "$num"
    expect_eq "vf show: VF 0 reads back as set" "$(jq -r "$vf_fields" <<<"$(vf_json 0)")" "$want0"
    expect_eq "vf show: VF 0 vlanProto and linkState" "$(jq -r '"\(.vlanProto) \(.linkState)"' <<<"$(vf_json 0)")" "802.1Q auto"
  fi

  # Several settings in one request, on VF 1.
  local want1="mac=$mac1 vlan=20 qos=0 spoofchk=true trust=false maxTxRate=50"
  if [ "$num" -ge 2 ]; then
    ctl_ok "vf set --vf 1 --mac --vlan 20 --spoofchk on --trust off --max-tx-rate 50 (one call)" \
      vf set "$PF" --vf 1 --mac $mac1 --vlan 20 --spoofchk on --trust off --max-tx-rate 50
    ctl_json "vf show after the combined call" vf show "$PF" -o json \
      && expect_eq "vf show: VF 1 reads back as set" "$(jq -r "$vf_fields" <<<"$(vf_json 1)")" "$want1"
  fi
  ctl_ok "vf set --vf 0 --vlan 0 --max-tx-rate 0 (clear)" vf set "$PF" --vf 0 --vlan 0 --max-tx-rate 0
  ctl_json "vf show after clearing" vf show "$PF" -o json \
    && expect_eq "vf show: VF 0 vlan and max rate cleared" "$(jq -r '"vlan=\(.vlan // 0) maxTxRate=\(.maxTxRate // 0)"' <<<"$(vf_json 0)")" "vlan=0 maxTxRate=0"

  # Settings the NIC may not have: declared per host (VF_UNSUPPORTED), so each outcome is checked.
  note "declared unsupported VF settings on this host: ${VF_UNSUPPORTED:-none}"
  ctl vf set "$PF" --vf 0 --min-tx-rate 10
  if vf_refuses min-tx-rate; then
    if [ "$CTL_RC" != 0 ] && [ "$CTL_RC" -lt 101 ] && ! ctl_usage_error; then
      ok "vf set --min-tx-rate 10 fails (declared unsupported$(lab && echo ': igb has no minimum rate'))"
      diag "error text: $CTL_ERR"
      error_names "min rate" "$PF" "min.?(tx.?)?rate"
      lab && expect_match "  ...error carries the kernel's EINVAL" "$CTL_ERR" "invalid argument"
    else
      fail "vf set --min-tx-rate 10 fails (declared unsupported)" "$(ctl_diag)"
    fi
  elif [ "$CTL_RC" = 0 ]; then
    ok "vf set --min-tx-rate 10 (declared supported)"
    ctl_json "vf show" vf show "$PF" -o json \
      && expect_eq "vf show: VF 0 minTxRate" "$(jq -r '.minTxRate' <<<"$(vf_json 0)")" 10
    ctl vf set "$PF" --vf 0 --min-tx-rate 0
  else
    fail "vf set --min-tx-rate 10 (declared supported; add min-tx-rate to SMARTNIC_TEST_VF_UNSUPPORTED if this NIC has none)" "$(ctl_diag)"
  fi
  ctl vf set "$PF" --vf 0 --link-state enable
  if vf_refuses link-state; then
    if [ "$CTL_RC" != 0 ] && [ "$CTL_RC" -lt 101 ] && ! ctl_usage_error; then
      ok "vf set --link-state enable fails (declared unsupported$(lab && echo ': igb has no VF link-state control'))"
      diag "error text: $CTL_ERR"
      error_names "link state" "$PF" "link.?state"
      lab && expect_match "  ...error carries the kernel's EOPNOTSUPP" "$CTL_ERR" "not supported"
    else
      fail "vf set --link-state enable fails (declared unsupported)" "$(ctl_diag)"
    fi
  elif [ "$CTL_RC" = 0 ]; then
    ok "vf set --link-state enable (declared supported)"
    ctl_json "vf show" vf show "$PF" -o json \
      && expect_eq "vf show: VF 0 linkState" "$(jq -r '.linkState' <<<"$(vf_json 0)")" enable
    ctl vf set "$PF" --vf 0 --link-state auto
  else
    fail "vf set --link-state enable (declared supported; add link-state to SMARTNIC_TEST_VF_UNSUPPORTED if this NIC has none)" "$(ctl_diag)"
  fi
  if vf_refuses link-state; then
    # Settings apply in order and the first failure stops: the rate before it sticks.
    ctl_fails "vf set --max-tx-rate 30 --link-state enable fails at the link state" \
      vf set "$PF" --vf 0 --max-tx-rate 30 --link-state enable
    ctl_json "vf show" vf show "$PF" -o json \
      && expect_eq "  ...the max rate before it was applied" "$(jq -r '.maxTxRate // 0' <<<"$(vf_json 0)")" 30
    ctl vf set "$PF" --vf 0 --max-tx-rate 0
  fi
  ctl_fails "vf set on a missing PF fails" vf set nosuchpf0 --vf 0 --trust on \
    && expect_match "  ...error names nosuchpf0" "$CTL_ERR" "nosuchpf0"
  ctl_fails "vf set on VF $total (no such VF) fails" vf set "$PF" --vf "$total" --trust on \
    && expect_match "  ...error names $PF" "$CTL_ERR" "$PF"
}

vfio_part() {
  local PF=$1 num=$2 vf bdf group orig
  vf=$((num - 1))
  bdf=$(vf_bdf $vf)
  section "VF $vf ($bdf) to vfio-pci and back"
  group=$(group_of "$bdf")
  if [ -z "$group" ]; then
    skip "VF to vfio-pci" "no IOMMU group for $bdf: the host has no (enabled) IOMMU (the lab has one unless --no-iommu)"
    return
  fi
  if ! modprobe vfio-pci 2>/dev/null && [ ! -d /sys/bus/pci/drivers/vfio-pci ]; then
    fail "vfio-pci module loads"
    return
  fi
  orig=$(driver_of "$bdf")
  on_exit "echo > /sys/bus/pci/devices/$bdf/driver_override"
  if ctl_ok "sriov driver --pci $bdf vfio-pci" sriov driver --pci "$bdf" vfio-pci; then
    expect_eq "sysfs: $bdf is bound to vfio-pci" "$(driver_of "$bdf")" vfio-pci
    check "/dev/vfio/$group exists" test -e "/dev/vfio/$group"
    if ctl_json "discover -o json with a vfio-pci VF" discover -o json; then
      expect_eq "discover: VF $vf has no netdev, driver vfio-pci, its IOMMU group" \
        "$(jq -r --argjson i "$vf" '.vfs[]? | select(.vfId == $i) | "name=\(.name // "-") driver=\(.driver) iommuGroup=\(.iommuGroup)"' <<<"$(nic_of)")" \
        "name=- driver=vfio-pci iommuGroup=$group"
    fi
  fi
  ctl_ok "sriov driver --pci $bdf none (unbind)" sriov driver --pci "$bdf" none \
    && expect_eq "sysfs: $bdf has no driver" "$(driver_of "$bdf")" ""
  if [ -n "$orig" ]; then
    if ctl_ok "sriov driver --pci $bdf $orig (back)" sriov driver --pci "$bdf" "$orig"; then
      expect_eq "sysfs: $bdf is bound to $orig again" "$(driver_of "$bdf")" "$orig"
      lab && check "VF $vf netdev is back" wait_for 20 sh -c "ls /sys/bus/pci/devices/$bdf/net/ | grep -q ."
    fi
  fi
  ctl_fails "sriov driver on a missing PCI address fails" sriov driver --pci 0000:ff:1f.7 vfio-pci \
    && expect_match "  ...error names 0000:ff:1f.7" "$CTL_ERR" "0000:ff:1f\.7"
}

# A bind to a driver that refuses the VF: rolled back to the previous driver,
# driver_override cleared.
bind_rollback_part() {
  local PF=$1 num=$2 vf bdf orig bad
  vf=$((num - 1))
  bdf=$(vf_bdf $vf)
  bad=${SMARTNIC_TEST_BAD_DRIVER:-$(driver_of "$PFBDF")}
  section "failing bind of VF $vf ($bdf) to $bad is rolled back"
  orig=$(driver_of "$bdf")
  if [ -z "$orig" ] || [ ! -d "/sys/bus/pci/drivers/$bad" ]; then
    skip "bind rollback" "VF $bdf has no driver or driver $bad is not loaded"
    return
  fi
  on_exit "echo > /sys/bus/pci/devices/$bdf/driver_override"
  if ctl_fails "sriov driver --pci $bdf $bad fails ($bad refuses a VF)" sriov driver --pci "$bdf" "$bad" --wait-secs 5; then
    expect_match "  ...error says it was rolled back to $orig" "$CTL_ERR" "rolled back: on $orig again, driver_override cleared"
  fi
  expect_eq "sysfs: $bdf is on $orig again, driver_override empty" \
    "$(driver_of "$bdf") $(cat "/sys/bus/pci/devices/$bdf/driver_override")" "$orig (null)"
  lab && check "VF $vf netdev is back" wait_for 20 sh -c "ls /sys/bus/pci/devices/$bdf/net/ | grep -q ."
  if ctl_ok "sriov driver --pci $bdf $orig (already there)" sriov driver --pci "$bdf" "$orig"; then
    expect_eq "  ...says nothing changed" "$CTL_OUT" "$bdf: driver is already $orig"
  fi
}

# ===================================================================== netdevsim
nsim_part() {
  local mode=${SMARTNIC_TEST_NETDEVSIM:-auto}
  section "devlink and switchdev on netdevsim"
  if [ "$mode" = 0 ]; then
    skip "netdevsim" "SMARTNIC_TEST_NETDEVSIM=0"
    return
  fi
  if [ ! -d /sys/bus/netdevsim ] && ! modprobe netdevsim 2>/dev/null; then
    if lab || [ "$mode" = 1 ]; then fail "netdevsim module loads"; else skip "netdevsim" "the netdevsim module is not available"; fi
    return
  fi
  local id=10
  while [ -e "/sys/bus/netdevsim/devices/netdevsim$id" ]; do id=$((id + 1)); done
  local DEV=netdevsim/netdevsim$id NSYS=/sys/bus/netdevsim/devices/netdevsim$id nspf n
  if ! echo "$id 1" >/sys/bus/netdevsim/new_device; then
    fail "create netdevsim$id (1 port)"
    return
  fi
  on_exit "echo $id > /sys/bus/netdevsim/del_device"
  wait_for 10 sh -c "ls $NSYS/net/ | grep -q ."
  for n in "$NSYS"/net/*; do nspf=${n##*/}; done
  check "netdevsim$id: port netdev $nspf, 2 VFs" sh -c "test -n '$nspf' && echo 2 > $NSYS/sriov_numvfs"

  if ctl_json "devlink dev -o json" devlink dev -o json; then
    expect_eq "devlink dev lists $DEV" "$(jq -r --arg d "$DEV" '.devices[]? | select(. == $d)' <<<"$CTL_OUT")" "$DEV"
  fi
  ctl_ok "devlink dev (table)" devlink dev && expect_match "devlink dev table names $DEV" "$CTL_OUT" "$DEV"
  ctl_json "devlink info $DEV -o json" devlink info "$DEV" -o json \
    && expect_eq "devlink info: dev and driver" "$(jq -r '"\(.dev) \(.driver)"' <<<"$CTL_OUT")" "$DEV netdevsim"
  ctl_json "devlink eswitch show $DEV -o json" devlink eswitch show "$DEV" -o json \
    && expect_eq "eswitch starts in legacy mode" "$(jv .mode)" legacy
  if ctl_ok "devlink eswitch set $DEV --mode switchdev" devlink eswitch set "$DEV" --mode switchdev; then
    ctl_json "devlink eswitch show (switchdev)" devlink eswitch show "$DEV" -o json \
      && expect_eq "eswitch reads back switchdev" "$(jv .mode)" switchdev
    have_tool devlink "kernel (devlink tool) agrees: switchdev" \
      && expect_eq "kernel (devlink tool) agrees: switchdev" "$(devlink -j dev eswitch show "$DEV" | jq -r '.dev[].mode')" switchdev
  else
    note "switching to switchdev with the devlink tool to test the rest"
    devlink dev eswitch set "$DEV" mode switchdev
  fi

  # --- ports and representors
  local ports vfports rep0 idx0 switch_id
  if ctl_json "devlink port $DEV -o json" devlink port "$DEV" -o json; then
    ports=$CTL_OUT
    vfports=$(jq -c '[.ports[]? | select(.flavour == "pcivf")] | sort_by(.vfNumber)' <<<"$ports")
    expect_eq "2 pcivf ports with vfNumber 0 and 1, pfNumber 0" \
      "$(jq -r '[.[] | "vf\(.vfNumber)/pf\(.pfNumber)"] | join(" ")' <<<"$vfports")" "vf0/pf0 vf1/pf0"
    expect_eq "the physical port is $nspf" \
      "$(jq -r '[.ports[]? | select(.flavour == "physical") | .netdev] | join(" ")' <<<"$ports")" "$nspf"
    switch_id=$(cat "/sys/class/net/$nspf/phys_switch_id" 2>/dev/null)
    local p rep vfn
    for p in $(jq -r '.[] | "\(.vfNumber):\(.netdev // "")"' <<<"$vfports"); do
      vfn=${p%%:*}; rep=${p#*:}
      expect_eq "representor of VF $vfn ($rep): sysfs phys_port_name and phys_switch_id agree" \
        "$(cat "/sys/class/net/$rep/phys_port_name" 2>/dev/null) $(cat "/sys/class/net/$rep/phys_switch_id" 2>/dev/null)" \
        "pf0vf$vfn $switch_id"
      ctl_ok "sriov representor $nspf --vf $vfn (devlink port dump)" sriov representor "$nspf" --vf "$vfn" --source \
        && expect_eq "  ...found through its devlink port: $rep" "${CTL_OUT% devlink port *}" "$rep" \
        && expect_match "  ...and says it came from devlink" "$CTL_OUT" " devlink port $DEV/[0-9]+$"
      ctl_ok "sriov representor $nspf --vf $vfn --sysfs (sysfs names)" sriov representor "$nspf" --vf "$vfn" --sysfs \
        && expect_eq "  ...the host layer's sysfs lookup agrees with devlink: $rep" "$CTL_OUT" "$rep"
    done
    rep0=$(jq -r '.[0].netdev // empty' <<<"$vfports")
    idx0=$(jq -r '.[0].index // empty' <<<"$vfports")
    if ctl_json "devlink port -o json (all devices)" devlink port -o json; then
      expect_eq "  ...includes the ports of $DEV" \
        "$(jq -r --arg d "$DEV" '[.ports[]? | select(.dev == $d)] | length' <<<"$CTL_OUT")" "$(jq -r '.ports | length' <<<"$ports")"
    fi
  fi
  # Fall back to the devlink tool for the representor, to test the rest.
  if { [ -z "$rep0" ] || [ -z "$idx0" ]; } && have_tool devlink "VF 0's representor from the devlink tool"; then
    note "taking VF 0's representor from the devlink tool"
    rep0=$(devlink -j port show "$DEV" | jq -r '.port | to_entries[] | select(.value.vfnum == 0) | .value.netdev')
    idx0=$(devlink -j port show "$DEV" | jq -r '.port | to_entries[] | select(.value.vfnum == 0) | .key | split("/")[-1]')
  fi

  # --- discover on a host with a non-PCI NIC
  if ctl_json "discover -o json with netdevsim present (not PCI) exits 0" discover -o json; then
    local rep_d
    rep_d=$(jq -r --arg n "$nspf" '.nics[]? | select(.name == $n) | .vfs[]? | select(.vfId == 0) | .representor // empty' <<<"$CTL_OUT")
    if jq -e --arg n "$nspf" '.nics[]? | select(.name == $n)' <<<"$CTL_OUT" >/dev/null; then
      expect_eq "discover: VF 0 representor of $nspf agrees with devlink" "$rep_d" "$rep0"
    else
      skip "discover: representor field of netdevsim VFs" "discover lists PCI functions only and netdevsim is not PCI"
    fi
  fi
  ctl_ok "discover (table) with netdevsim present exits 0" discover

  # --- port function and rate
  if ctl_fails "devlink port function set $DEV/$idx0 --hw-addr fails (netdevsim has no port function ops)" \
       devlink port function set "$DEV/$idx0" --hw-addr 02:00:5e:10:01:01; then
    expect_match "  ...with the kernel's extack text" "$CTL_ERR" "Port doesn't support function attributes"
  fi
  # Rates read back through smartnicctl and, where installed, the devlink tool.
  rate_of() { # rate_of FIELD: FIELD of $DEV/$idx0 as smartnicctl reads it back
    ctl devlink rate show "$DEV/$idx0" -o json
    [ "$CTL_RC" = 0 ] && jq -r --arg f "$1" '.rates[0][$f] // empty' <<<"$CTL_OUT"
  }
  if ctl_ok "devlink rate set $DEV/$idx0 --tx-max 12500000 (100 Mbit/s)" devlink rate set "$DEV/$idx0" --tx-max 12500000; then
    expect_eq "devlink rate show $DEV/$idx0 reads back txMax 12500000" "$(rate_of txMax)" 12500000
    have_tool devlink "kernel (devlink tool) shows tx_max 12500000" \
      && expect_eq "kernel (devlink tool) shows tx_max 12500000" \
        "$(devlink -j port function rate show "$DEV/$idx0" 2>/dev/null | jq -r '.rate[].tx_max // empty')" 12500000
  fi
  if ctl_ok "devlink rate set $DEV/$idx0 --tx-share 1250000" devlink rate set "$DEV/$idx0" --tx-share 1250000; then
    expect_eq "devlink rate show reads back txShare 1250000, txMax kept" "$(rate_of txShare) $(rate_of txMax)" "1250000 12500000"
    have_tool devlink "kernel (devlink tool) shows tx_share 1250000" \
      && expect_eq "kernel (devlink tool) shows tx_share 1250000" \
        "$(devlink -j port function rate show "$DEV/$idx0" 2>/dev/null | jq -r '.rate[].tx_share // empty')" 1250000
  fi
  ctl_fails "devlink rate show of a missing rate object fails" devlink rate show "$DEV/nosuchnode" \
    && expect_match "  ...error names it" "$CTL_ERR" "no rate object $DEV/nosuchnode"
  # netdevsim wants whole Mbit/s and says so in the extack.
  ctl_fails "devlink rate set --tx-max 1000 (not whole Mbit/s) fails" devlink rate set "$DEV/$idx0" --tx-max 1000 \
    && expect_match "  ...with the kernel's extack text" "$CTL_ERR" "not in link speed units"

  # --- ethtool features of a representor
  if [ -n "$rep0" ] && ctl_json "ethtool features $rep0 -o json" ethtool features "$rep0" -o json; then
    expect_eq "ethtool features: ifname, hw-tc-offload off and changeable" \
      "$(jq -r '"\(.ifname) \(.features["hw-tc-offload"].active) fixed=\(.features["hw-tc-offload"].fixed)"' <<<"$CTL_OUT")" \
      "$rep0 false fixed=false"
    if ctl_ok "ethtool set $rep0 hw-tc-offload on" ethtool set "$rep0" hw-tc-offload on; then
      ctl_json "ethtool features after on" ethtool features "$rep0" -o json \
        && expect_eq "hw-tc-offload reads back on" "$(jv '.features["hw-tc-offload"].active')" true
      have_tool ethtool "kernel (ethtool -k) agrees" \
        && expect_match "kernel (ethtool -k) agrees" "$(ethtool -k "$rep0")" "hw-tc-offload: on"
      ctl_ok "ethtool set $rep0 hw-tc-offload off" ethtool set "$rep0" hw-tc-offload off
    fi
  fi

  # --- back to legacy
  if ctl_ok "devlink eswitch set $DEV --mode legacy" devlink eswitch set "$DEV" --mode legacy; then
    ctl_json "devlink eswitch show (legacy)" devlink eswitch show "$DEV" -o json \
      && expect_eq "eswitch reads back legacy" "$(jv .mode)" legacy
    ctl_json "devlink port $DEV after legacy" devlink port "$DEV" -o json \
      && expect_eq "no pcivf ports in legacy mode" "$(jq -r '[.ports[]? | select(.flavour == "pcivf")] | length' <<<"$CTL_OUT")" 0
  fi
}

# ======================================================================= links
# links: veth, macvlan (every mode), ipvlan (every mode and flag), vlan (802.1Q, 802.1ad), bridge
# master, move+rename into a namespace, addresses and routes (IPv4, IPv6) through smartnicctl,
# read back with smartnicctl's JSON and cross-checked with iproute2 (ip -j -d). Everything lives
# on a veth parent and in a namespace of the suite's own, so no NIC is touched. ipvlan and vlan
# are skipped with the reason off the lab when the kernel lacks them; the lab's kernel has both.
# ljq FILTER: jq over the first link of the last `link show -o json`.
ljq() { jq -r ".links[0] | $1" <<<"$CTL_OUT" 2>/dev/null; }
# ipj NS DEV FILTER: jq over `ip -d -j link show DEV` (in NS when NS is not "-").
ipj() {
  local ns=$1 dev=$2 f=$3
  if [ "$ns" = - ]; then ip -d -j link show "$dev" 2>/dev/null | jq -r ".[0] | $f"
  else ip -n "$ns" -d -j link show "$dev" 2>/dev/null | jq -r ".[0] | $f"; fi
}
# kernel_has KIND: the kernel knows this link kind (loads its module on demand).
kernel_has() {
  local m=$1
  [ "$m" = vlan ] && m=8021q
  modprobe "$m" 2>/dev/null
  case $1 in
    vlan) [ -d /proc/net/vlan ] || grep -qw 8021q /proc/modules 2>/dev/null ;;
    *) grep -qw "$m" /proc/modules 2>/dev/null || [ -d "/sys/module/$m" ] ;;
  esac
}

links_part() {
  section "links, addresses and routes (rtnetlink) through smartnicctl"
  if ! command -v ip >/dev/null; then
    skip "links part" "iproute2 (ip) is not installed: nothing to cross-check with"
    return
  fi
  local NS=nlt-lab NSP d mode i id proto
  ip netns add "$NS" 2>/dev/null
  on_exit "ip netns del $NS"
  for d in /run/netns /var/run/netns; do [ -e "$d/$NS" ] && NSP=$d/$NS && break; done
  if [ -z "$NSP" ]; then
    fail "ip netns add $NS makes a namespace file" "none in /run/netns or /var/run/netns"
    return
  fi
  on_exit "ip link del nlt-p0"
  on_exit "ip link del nlt-br"
  on_exit "ip link del nlt-v2"

  # --- veth
  if ctl_ok "link add nlt-p0 --mtu 1400 --up veth --peer nlt-p1" link add nlt-p0 --mtu 1400 --up veth --peer nlt-p1; then
    ctl_json "link show nlt-p0 -o json" link show nlt-p0 -o json \
      && expect_eq "  ...reads back kind veth, mtu 1400, up" "$(ljq '"\(.kind) \(.mtu) \(.up)"')" "veth 1400 true"
    expect_eq "  ...kernel (ip -d -j) agrees" "$(ipj - nlt-p0 '"\(.linkinfo.info_kind) \(.mtu) \(.flags | index(["UP"]) != null)"')" "veth 1400 true"
  fi
  ctl_ok "link set nlt-p1 --up" link set nlt-p1 --up
  if ctl_ok "link add nlt-v2 veth --peer nlt-v3 --peer-netns $NSP (peer made in the namespace)" \
       link add nlt-v2 veth --peer nlt-v3 --peer-netns "$NSP"; then
    ctl_json "link show -n $NS nlt-v3 -o json" link show -n "$NS" nlt-v3 -o json \
      && expect_eq "  ...the peer is in $NS" "$(ljq .kind)" veth
    expect_eq "  ...kernel agrees: nlt-v3 in $NS, not here" \
      "$(ipj "$NS" nlt-v3 .linkinfo.info_kind) $(ip link show nlt-v3 >/dev/null 2>&1 && echo here)" "veth "
  fi

  # --- macvlan, every mode (passthru alone: it takes the parent for itself)
  for mode in bridge private vepa source; do
    local extra=()
    [ "$mode" = source ] && extra=(--source-mac 02:00:5e:20:00:01 --source-mac 02:00:5e:20:00:02)
    if ctl_ok "link add nlt-mv-$mode macvlan --parent nlt-p0 --mode $mode" link add "nlt-mv-$mode" macvlan --parent nlt-p0 --mode "$mode" "${extra[@]}"; then
      ctl_json "link show nlt-mv-$mode -o json" link show "nlt-mv-$mode" -o json \
        && expect_eq "  ...reads back macvlan mode $mode on nlt-p0" \
          "$(ljq '"\(.kind) \(.details.mode)"') $(ljq .parent)" "macvlan $mode $(cat /sys/class/net/nlt-p0/ifindex)"
      expect_eq "  ...kernel agrees: mode $mode" "$(ipj - "nlt-mv-$mode" .linkinfo.info_data.mode)" "$mode"
    fi
  done
  if [ -e /sys/class/net/nlt-mv-source ]; then
    ctl_json "link show nlt-mv-source -o json" link show nlt-mv-source -o json \
      && expect_eq "  ...source MACs read back" "$(ljq '.details.sourceMacs | join(" ")')" "02:00:5e:20:00:01 02:00:5e:20:00:02"
    expect_eq "  ...kernel agrees on the source MACs" \
      "$(ipj - nlt-mv-source '.linkinfo.info_data.macaddr_data | sort | join(" ")')" "02:00:5e:20:00:01 02:00:5e:20:00:02"
  fi
  for mode in bridge private vepa source; do ctl link del "nlt-mv-$mode"; done
  if ctl_ok "link add nlt-mv-pt macvlan --parent nlt-p0 --mode passthru" link add nlt-mv-pt macvlan --parent nlt-p0 --mode passthru; then
    ctl_json "link show nlt-mv-pt -o json" link show nlt-mv-pt -o json \
      && expect_eq "  ...reads back passthru" "$(ljq .details.mode)" passthru
    expect_eq "  ...kernel agrees: passthru" "$(ipj - nlt-mv-pt .linkinfo.info_data.mode)" passthru
    ctl_ok "link del nlt-mv-pt" link del nlt-mv-pt \
      && expect_eq "  ...kernel: nlt-mv-pt is gone" "$(ip link show nlt-mv-pt >/dev/null 2>&1 && echo present)" ""
  fi
  if ctl_fails "link add on a missing parent fails" link add nlt-mv-x macvlan --parent nlt-nosuch; then
    expect_match "  ...error names the link, the parent and ENODEV" "$CTL_ERR" "macvlan nlt-mv-x on nlt-nosuch: parent nlt-nosuch not found \(ENODEV\)"
  fi

  # --- ipvlan, every mode and flag
  if ! lab && ! kernel_has ipvlan; then
    skip "ipvlan" "this kernel has no ipvlan (module ipvlan not available)"
  else
    for i in "l2 bridge" "l3 private" "l3s vepa"; do
      set -- $i
      if ctl_ok "link add nlt-ipv-$1 ipvlan --parent nlt-p0 --mode $1 --flag $2" link add "nlt-ipv-$1" ipvlan --parent nlt-p0 --mode "$1" --flag "$2"; then
        ctl_json "link show nlt-ipv-$1 -o json" link show "nlt-ipv-$1" -o json \
          && expect_eq "  ...reads back ipvlan $1 $2" "$(ljq '"\(.kind) \(.details.mode) \(.details.flag)"')" "ipvlan $1 $2"
        expect_eq "  ...kernel agrees: mode $1" "$(ipj - "nlt-ipv-$1" .linkinfo.info_data.mode)" "$1"
        expect_match "  ...kernel agrees: $2" "$(ip -d link show "nlt-ipv-$1")" "ipvlan +mode +$1 +$2"
        ctl link del "nlt-ipv-$1"
      fi
    done
  fi

  # --- vlan, 802.1Q and 802.1ad
  if ! lab && ! kernel_has vlan; then
    skip "vlan" "this kernel has no 802.1Q support (module 8021q not available)"
  else
    for i in "10 802.1q 802.1Q" "20 802.1ad 802.1ad"; do
      set -- $i
      id=$1 proto=$2
      if ctl_ok "link add nlt-p0.$id vlan --parent nlt-p0 --id $id --proto $proto" link add "nlt-p0.$id" vlan --parent nlt-p0 --id "$id" --proto "$proto"; then
        ctl_json "link show nlt-p0.$id -o json" link show "nlt-p0.$id" -o json \
          && expect_eq "  ...reads back vlan $id $3" "$(ljq '"\(.kind) \(.details.id) \(.details.proto)"')" "vlan $id $3"
        expect_eq "  ...kernel agrees: id $id protocol $3" "$(ipj - "nlt-p0.$id" '"\(.linkinfo.info_data.id) \(.linkinfo.info_data.protocol)"')" "$id $3"
      fi
    done
    ctl_fails "vlan id 4095 fails" link add nlt-p0.4095 vlan --parent nlt-p0 --id 4095 \
      && expect_match "  ...error names the link" "$CTL_ERR" "nlt-p0\.4095"
  fi

  # --- link set: name, MTU, MAC, down/up
  if ctl_ok "link set nlt-p1 --down --name nlt-p1r --mtu 9000 --mac 02:00:5e:20:01:01 --up" \
       link set nlt-p1 --down --name nlt-p1r --mtu 9000 --mac 02:00:5e:20:01:01 --up; then
    ctl_json "link show nlt-p1r -o json" link show nlt-p1r -o json \
      && expect_eq "  ...reads back name, mtu, mac, up" "$(ljq '"\(.name) \(.mtu) \(.mac) \(.up)"')" "nlt-p1r 9000 02:00:5e:20:01:01 true"
    expect_eq "  ...kernel agrees" "$(ipj - nlt-p1r '"\(.ifname) \(.mtu) \(.address)"')" "nlt-p1r 9000 02:00:5e:20:01:01"
  fi
  ctl_ok "link set nlt-p1r --down" link set nlt-p1r --down \
    && expect_eq "  ...kernel: nlt-p0 lost its carrier" "$(cat /sys/class/net/nlt-p0/carrier 2>/dev/null)" 0
  ctl_fails "link set of a missing link fails" link set nlt-nosuch --mtu 1500 \
    && expect_match "  ...error names the operation and the link" "$CTL_ERR" "set mtu 1500 on nlt-nosuch"

  # --- master / nomaster
  if ctl_ok "link add nlt-br bridge" link add nlt-br bridge \
     && ctl_ok "link set nlt-p1r --master nlt-br" link set nlt-p1r --master nlt-br; then
    ctl_json "link show nlt-p1r -o json" link show nlt-p1r -o json \
      && expect_eq "  ...reads back master = nlt-br's index" "$(ljq .master)" "$(cat /sys/class/net/nlt-br/ifindex)"
    expect_eq "  ...kernel agrees" "$(ipj - nlt-p1r .master)" nlt-br
    ctl_ok "link set nlt-p1r --nomaster" link set nlt-p1r --nomaster \
      && expect_eq "  ...kernel: no master" "$(ipj - nlt-p1r '.master // "none"')" none
  fi

  # --- move and rename in one request
  if ctl_ok "link add nlt-mv0 macvlan --parent nlt-p0 --mode bridge" link add nlt-mv0 macvlan --parent nlt-p0 --mode bridge \
     && ctl_ok "link set nlt-mv0 --netns $NS --name net1 --up (move+rename)" link set nlt-mv0 --netns "$NS" --name net1 --up; then
    ctl_json "link show -n $NS net1 -o json" link show -n "$NS" net1 -o json \
      && expect_eq "  ...net1 in $NS, macvlan, up" "$(ljq '"\(.name) \(.kind) \(.up)"')" "net1 macvlan true"
    expect_eq "  ...kernel agrees: net1 in $NS, nlt-mv0 gone here" \
      "$(ipj "$NS" net1 .linkinfo.info_kind) $(ip link show nlt-mv0 >/dev/null 2>&1 && echo here)" "macvlan "
  fi

  # --- addresses, IPv4 and IPv6, in the namespace
  ctl_ok "addr add net1 10.77.0.2/24 -n $NS" addr add net1 10.77.0.2/24 -n "$NS"
  ctl_ok "addr add net1 2001:db8:77::2/64 -n $NS" addr add net1 2001:db8:77::2/64 -n "$NS"
  if ctl_json "addr show net1 -n $NS -o json" addr show net1 -n "$NS" -o json; then
    expect_eq "  ...reads back both (global scope)" \
      "$(jq -r '[.addresses[] | select(.scope == "global") | .address] | sort | join(" ")' <<<"$CTL_OUT")" "10.77.0.2/24 2001:db8:77::2/64"
    expect_eq "  ...kernel (ip -j addr) agrees" \
      "$(ip -n "$NS" -j addr show net1 | jq -r '[.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | sort | join(" ")')" \
      "10.77.0.2/24 2001:db8:77::2/64"
  fi
  ctl_fails "addr add of an existing address fails" addr add net1 10.77.0.2/24 -n "$NS" \
    && expect_match "  ...error names the address and the link" "$CTL_ERR" "10\.77\.0\.2/24 on net1.*exists"

  # --- routes
  ctl_ok "route add 10.78.0.0/16 --via 10.77.0.1 --metric 30 -n $NS" route add 10.78.0.0/16 --via 10.77.0.1 --metric 30 -n "$NS"
  ctl_ok "route add 10.79.0.0/16 --dev net1 --table 100 -n $NS" route add 10.79.0.0/16 --dev net1 --table 100 -n "$NS"
  ctl_ok "route add default --via 2001:db8:77::1 --dev net1 -n $NS" route add default --via 2001:db8:77::1 --dev net1 -n "$NS"
  if ctl_json "route show -n $NS -o json" route show -n "$NS" -o json; then
    expect_eq "  ...reads back via, dev, metric" \
      "$(jq -r '.routes[] | select(.destination == "10.78.0.0/16") | "\(.gateway) \(.dev) \(.metric)"' <<<"$CTL_OUT")" "10.77.0.1 net1 30"
    expect_eq "  ...kernel (ip -j route) agrees" \
      "$(ip -n "$NS" -j route show 10.78.0.0/16 | jq -r '.[0] | "\(.gateway) \(.dev) \(.metric)"')" "10.77.0.1 net1 30"
  fi
  ctl_json "route show --table 100 -n $NS -o json" route show --table 100 -n "$NS" -o json \
    && expect_eq "  ...table 100: scope link on net1" "$(jq -r '.routes[0] | "\(.destination) \(.scope) \(.dev)"' <<<"$CTL_OUT")" "10.79.0.0/16 link net1"
  ctl_json "route show -6 -n $NS -o json" route show -6 -n "$NS" -o json \
    && expect_eq "  ...IPv6 default via 2001:db8:77::1" "$(jq -r '.routes[] | select(.destination == "::/0") | .gateway' <<<"$CTL_OUT")" "2001:db8:77::1"
  expect_eq "  ...kernel agrees on the IPv6 default" "$(ip -n "$NS" -6 -j route show default | jq -r '.[0].gateway')" "2001:db8:77::1"
  ctl_fails "route via an unreachable gateway fails" route add 10.80.0.0/16 --via 10.99.0.1 -n "$NS" \
    && expect_match "  ...error names the route" "$CTL_ERR" "add route 10\.80\.0\.0/16 via 10\.99\.0\.1"
  ctl_ok "route del 10.78.0.0/16 -n $NS" route del 10.78.0.0/16 -n "$NS" \
    && expect_eq "  ...kernel: gone" "$(ip -n "$NS" route show 10.78.0.0/16)" ""
  ctl_ok "route del 10.79.0.0/16 --table 100 -n $NS" route del 10.79.0.0/16 --table 100 -n "$NS"
  ctl_ok "addr del net1 10.77.0.2/24 -n $NS" addr del net1 10.77.0.2/24 -n "$NS" \
    && expect_eq "  ...kernel: gone" "$(ip -n "$NS" -4 -j addr show net1 | jq -r '[.[0].addr_info[]?] | length')" 0

  # --- delete
  ctl_ok "link del nlt-p0 (its macvlans and vlans go with it)" link del nlt-p0
  expect_eq "  ...kernel: nlt-p0, its peer and its children are gone" \
    "$(ls /sys/class/net | grep -E '^nlt-(p0|p1r|p0\.)' | tr '\n' ' ')$(ip -n "$NS" link show net1 >/dev/null 2>&1 && echo net1)" ""
}

if [ -n "${SMARTNIC_TEST_PF:-}" ]; then
  sriov_part
else
  skip "SR-IOV part" "no PF given: set SMARTNIC_TEST_PF=<PF netdev> (its VFs are created and removed)"
fi
nsim_part
links_part
summary
