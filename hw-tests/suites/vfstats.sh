#!/bin/bash
# suite: vfstats - per-VF traffic metrics: smartnic-agent's /metrics (smartnic_vf_*) read during traffic between two VFs in two pods attached by the CNI
# needs: smartnic-agent smartnic
#
#   Two VFs of SMARTNIC_TEST_PF go into two pod namespaces through the smartnic CNI plugin (mode
#   sriov, the pod named in CNI_ARGS as a runtime does); pod a sends pod b a stream of UDP
#   datagrams and pings it.
#   `smartnic-agent --metrics-only` serves /metrics; it is read before, during and after the
#   traffic:
#   - one line per VF and counter, labelled pf, vf, pci_address, and namespace/pod from the
#     CNI's records; smartnic_vf_stats_up 1;
#   - each value equals what the kernel reports through the PF (`ip -s -j link show PF`, the
#     same IFLA_VF_STATS), read just before and just after the scrape;
#   - the counters of both VFs rose during the traffic, when the PF's driver counts per VF at
#     all: a driver without ndo_get_vf_stats makes the kernel report zeros, and the check then
#     says so (SKIP) instead of passing.
# Environment: SMARTNIC_TEST_PF (the lab sets its first igb PF).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMARTNIC=${SMARTNIC:-$(lab_bin smartnic)}
AGENT=${SMARTNIC_AGENT:-$(lab_bin smartnic-agent)}
if ! need_root; then
  skip "vfstats suite" "needs root (it moves VFs into network namespaces)"
  summary
fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then
  skip "vfstats suite" "SMARTNIC_TEST_PF is not set (no SR-IOV PF)"
  summary
fi
if [ -z "$SMARTNIC" ] || [ -z "$AGENT" ]; then
  fail "smartnic and smartnic-agent are built" "smartnic='$SMARTNIC' smartnic-agent='$AGENT'"
  summary
fi
if ! have_jq; then
  fail "jq (or gojq) is installed"
  summary
fi

PF=$SMARTNIC_TEST_PF
DEV=/sys/class/net/$PF/device
STATE=$T_TMP/cni-state
ADDR=127.0.0.1:9839
export SMARTNIC_CNI_STATE_DIR=$STATE

section "two VFs of $PF in two pods"
on_exit "echo 0 > $DEV/sriov_numvfs"
echo 0 >"$DEV/sriov_numvfs"
echo 2 >"$DEV/sriov_numvfs"
ip link set "$PF" up
if ! wait_for 20 test -e "$DEV/virtfn1/net"; then
  fail "2 VFs with netdevs on $PF" "$(ls "$DEV/virtfn1/" 2>&1)"
  summary
fi
VF0=$(basename "$(readlink -f "$DEV/virtfn0")")
VF1=$(basename "$(readlink -f "$DEV/virtfn1")")
printf '{"resourceList":[{"resourceName":"lab","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pfs":[{"pciAddress":"%s"}]}]}]}' \
  "$(basename "$(readlink -f "$DEV")")" >"$T_TMP/device-plugin.json"
export SMARTNIC_CNI_READY_FILE=$T_TMP/device-plugin.json
conf() { # $1 = deviceID, $2 = address
  printf '{"cniVersion":"1.1.0","name":"labstats","type":"smartnic","mode":"sriov","deviceID":"%s","ipam":{"type":"static","addresses":[{"address":"%s"}]}}' "$1" "$2"
}
for p in a b; do ip netns add "vfs$p" && on_exit "ip netns del vfs$p"; done
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=pod-a" cni ADD ca /run/netns/vfsa net1 "$(conf "$VF0" 10.58.0.1/24)"
if [ "$CNI_RC" = 0 ]; then ok "ADD $VF0 into pod lab/pod-a"; else fail "ADD $VF0 into pod lab/pod-a" "$(cni_diag)"; summary; fi
on_exit "CNI_COMMAND=DEL CNI_CONTAINERID=ca CNI_NETNS=/run/netns/vfsa CNI_IFNAME=net1 $SMARTNIC <<<'$(conf "$VF0" 10.58.0.1/24)'"
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=pod-b" cni ADD cb /run/netns/vfsb net1 "$(conf "$VF1" 10.58.0.2/24)"
if [ "$CNI_RC" = 0 ]; then ok "ADD $VF1 into pod lab/pod-b"; else fail "ADD $VF1 into pod lab/pod-b" "$(cni_diag)"; summary; fi
on_exit "CNI_COMMAND=DEL CNI_CONTAINERID=cb CNI_NETNS=/run/netns/vfsb CNI_IFNAME=net1 $SMARTNIC <<<'$(conf "$VF1" 10.58.0.2/24)'"
if wait_for 20 ip netns exec vfsa ping -c 1 -W 1 10.58.0.2; then
  ok "pod a pings pod b over the VFs"
else
  fail "pod a pings pod b over the VFs" "$(ip -n vfsa -s link show net1; ip -n vfsb -s link show net1)"
fi

section "smartnic-agent --metrics-only"
"$AGENT" --metrics-only --metrics-addr "$ADDR" --host-root / --cni-state-dir "$STATE" \
  >"$T_TMP/agent.log" 2>&1 &
AGENT_PID=$!
on_exit "kill $AGENT_PID"
scrape() { busybox wget -q -O - "http://$ADDR/metrics" 2>/dev/null; }
if wait_for 20 scrape; then ok "/metrics answers"; else fail "/metrics answers" "$(cat "$T_TMP/agent.log")"; summary; fi

# value METRICS NAME VF: the sample of counter NAME for VF index VF of $PF
value() {
  printf '%s\n' "$1" | sed -n "s/^smartnic_vf_$2_total{pf=\"$PF\",vf=\"$3\",[^}]*} \([0-9]*\)$/\1/p"
}
# kernel VF FIELD: the PF's IFLA_VF_STATS for VF as iproute2 prints them (.rx.packets, ...)
kernel() {
  ip -s -j link show "$PF" | jq -r --argjson vf "$1" \
    ".[0].vfinfo_list[] | select(.vf == \$vf) | .stats$2 // empty"
}

M=$(scrape)
expect_match "stats up" "$M" $'\n''smartnic_vf_stats_up 1'$'\n'
expect_match "VF 0 labelled with its address and pod" "$M" \
  "smartnic_vf_rx_packets_total\\{pf=\"$PF\",vf=\"0\",pci_address=\"$VF0\",namespace=\"lab\",pod=\"pod-a\"\\} [0-9]+"
expect_match "VF 1 labelled with its address and pod" "$M" \
  "smartnic_vf_tx_bytes_total\\{pf=\"$PF\",vf=\"1\",pci_address=\"$VF1\",namespace=\"lab\",pod=\"pod-b\"\\} [0-9]+"
for c in rx_packets tx_packets rx_bytes tx_bytes rx_broadcast_packets rx_multicast_packets rx_dropped_packets tx_dropped_packets; do
  n=$(printf '%s\n' "$M" | grep -c "^smartnic_vf_${c}_total{pf=\"$PF\",")
  expect_eq "one $c line per VF" "$n" 2
done

# Each value lies between the kernel's readings taken just before and just after the scrape.
k1=$(kernel 0 .rx.packets); t1=$(kernel 0 '.tx.packets // .stats.tx.tx_packets')
M=$(scrape)
k2=$(kernel 0 .rx.packets); t2=$(kernel 0 '.tx.packets // .stats.tx.tx_packets')
r=$(value "$M" rx_packets 0); t=$(value "$M" tx_packets 0)
note "VF 0: kernel rx_packets $k1..$k2, /metrics $r; kernel tx_packets $t1..$t2, /metrics $t"
if [ -n "$k1" ] && [ -n "$r" ] && [ "$k1" -le "$r" ] && [ "$r" -le "$k2" ] \
  && [ -n "$t" ] && [ "$t1" -le "$t" ] && [ "$t" -le "$t2" ]; then
  ok "VF 0's counters are the kernel's (IFLA_VF_STATS through the PF)"
else
  fail "VF 0's counters are the kernel's (IFLA_VF_STATS through the PF)" "$(ip -s -j link show "$PF" | jq -c '.[0].vfinfo_list[0]')"
fi

section "traffic between the pods"
before=$(scrape)
# a → b: a stream of UDP datagrams (bash's /dev/udp); both ways: a ping a second
ip netns exec vfsa bash -c 'for i in $(seq 3000); do printf x >/dev/udp/10.58.0.2/9; done' 2>/dev/null &
UDP=$!
ip netns exec vfsa ping -q -c 6 -s 1000 10.58.0.2 >"$T_TMP/ping.log" 2>&1 &
PING=$!
sleep 3
during=$(scrape)
wait "$PING" "$UDP"
note "$(tail -n 2 "$T_TMP/ping.log" | tr '\n' ' ')"
after=$(scrape)
pod_tx=$(ip netns exec vfsa cat /sys/class/net/net1/statistics/tx_packets)
note "pod a's net1 sent $pod_tx packets (its own netdev counter)"
rose=1
for vf in 0 1; do
  for c in rx_packets tx_packets rx_bytes tx_bytes; do
    b=$(value "$before" "$c" "$vf"); d=$(value "$during" "$c" "$vf"); a=$(value "$after" "$c" "$vf")
    note "VF $vf $c: before $b, during $d, after $a"
    { [ -n "$b" ] && [ -n "$d" ] && [ -n "$a" ] && [ "$b" -lt "$d" ] && [ "$d" -lt "$a" ]; } || rose=0
  done
done
all_zero=$(printf '%s\n' "$after" | grep "^smartnic_vf_.*_total{pf=\"$PF\"," | grep -vc ' 0$')
if [ "$rose" = 1 ]; then
  ok "both VFs' rx/tx packets and bytes rose during the traffic and after it"
elif [ "$all_zero" = 0 ] && [ "${pod_tx:-0}" -gt 300 ]; then
  skip "both VFs' counters rose during the traffic" \
    "$(basename "$(readlink "$DEV/driver")") reports no per-VF counters: every IFLA_VF_STATS value is 0 after $pod_tx packets (the driver has no ndo_get_vf_stats)"
else
  fail "both VFs' counters rose during the traffic" "$(printf '%s\n' "$after" | grep "^smartnic_vf_")"
fi
expect_match "stats still up after the traffic" "$after" $'\n''smartnic_vf_stats_up 1'$'\n'

summary
