#!/usr/bin/env python3
"""The cost of the per-pod device check at ADD: the kubelet's device checkpoint read and searched.

    cni/bench/checkpoint-bench.py [SMARTNIC_BINARY] [N]

SMARTNIC_BINARY defaults to the binary as shipped (see cni-bench.sh). Makes a node in a temp
directory (one VF in sysfs, one pool, a checkpoint of 110 pods with a VF and a GPU each and a
700-byte allocation response per entry, as a busy node has) and runs ADD N times with the
checkpoint and N times without (the pool check alone), the two taking turns. Both ADDs pass the
checks and then stop at the same place (the VF is not a real device here), so the difference is
the check. Prints the median and p95 wall time and the mean CPU time (user+sys, from the
kernel's accounting of the child). Needs root (a network namespace for CNI_NETNS).
"""

import base64, json, os, shutil, statistics, subprocess, sys, tempfile, time

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/x86_64-unknown-linux-musl/cni/smartnic")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
VF = "0000:3b:02.2"
tmp = tempfile.mkdtemp(prefix="smartnic-cp-bench.")
ns = f"scpb{os.getpid()}"
try:
    dev = os.path.join(tmp, "sys/bus/pci/devices", VF)
    os.makedirs(dev)
    open(os.path.join(dev, "vendor"), "w").write("0x15b3\n")
    open(os.path.join(dev, "device"), "w").write("0x101e\n")
    json.dump({"resourceList": [{"resourceName": "vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
                                 "selectors": [{"pciAddresses": [VF]}]}]}, open(os.path.join(tmp, "ready.json"), "w"))
    entries = []
    for i in range(110):
        for res in ("smartnic.io/vf", "nvidia.com/gpu"):
            d = VF if (i == 50 and res == "smartnic.io/vf") else "0000:5e:%02x.%d" % (i // 8, i % 8)
            entries.append({"PodUID": "uid-%03d" % i, "ContainerName": "app", "ResourceName": res,
                            "DeviceIDs": {"0": [d]}, "AllocResp": base64.b64encode(os.urandom(700)).decode()})
    cp = json.dumps({"Data": {"PodDeviceEntries": entries, "RegisteredDevices": {"smartnic.io/vf": [VF]}}, "Checksum": 1})
    open(os.path.join(tmp, "checkpoint"), "w").write(cp)
    conf = json.dumps({"cniVersion": "1.1.0", "name": "bench", "type": "smartnic", "mode": "sriov", "deviceID": VF}).encode()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    state = os.path.join(tmp, "state")
    base = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "net1", "CNI_NETNS": f"/var/run/netns/{ns}",
            "CNI_PATH": "/nonexistent", "SMARTNIC_CNI_STATE_DIR": state,
            "SMARTNIC_CNI_ALLOW_LIST": os.path.join(tmp, "none.json"),
            "SMARTNIC_CNI_READY_FILE": os.path.join(tmp, "ready.json"), "SMARTNIC_CNI_SYSFS": os.path.join(tmp, "sys"),
            "CNI_ARGS": "K8S_POD_NAMESPACE=a;K8S_POD_NAME=p;K8S_POD_UID=uid-050"}
    variants = {
        f"with the checkpoint ({len(cp) // 1024} KiB, {len(entries)} entries)": dict(base, SMARTNIC_CNI_KUBELET_CHECKPOINT=os.path.join(tmp, "checkpoint")),
        "without (pool check only)": dict(base, SMARTNIC_CNI_KUBELET_CHECKPOINT=os.path.join(tmp, "none")),
    }
    res = {k: ([], []) for k in variants}

    def run(env):
        r, w = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(r, 0)
            os.close(w)
            null = os.open("/dev/null", os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.execve(BIN, [BIN], env)
        os.close(r)
        os.write(w, conf)
        os.close(w)
        _, _, ru = os.wait4(pid, 0)
        return time.perf_counter() - t0, ru.ru_utime + ru.ru_stime

    for i in range(N + 10):
        order = list(variants.items()) if i % 2 == 0 else list(reversed(variants.items()))
        for k, env in order:
            shutil.rmtree(state, ignore_errors=True)
            wall, cpu = run(env)
            if i >= 10:
                res[k][0].append(wall)
                res[k][1].append(cpu)
    for k, (wall, cpu) in res.items():
        wall.sort()
        print(f"{k}: ADD wall median {statistics.median(wall) * 1e3:.2f} ms, p95 {wall[int(len(wall) * 0.95)] * 1e3:.2f} ms; "
              f"CPU mean {statistics.mean(cpu) * 1e3:.2f} ms")
finally:
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp, ignore_errors=True)
