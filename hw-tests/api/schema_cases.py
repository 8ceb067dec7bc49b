#!/usr/bin/env python3
"""The CRD schema table of the api suite (20-schemas.sh), derived from the CRDs themselves.

    schema_cases.py constraints CRDS.json           the constraints, one a line (the reviewed list)
    schema_cases.py run CRDS.json BASES.json NS     sends every case to the API server

CRDS.json is `kubectl get crd ... -o json` (a List): the CRDs as the server has them, i.e. the
generated YAML of deploy/crds after the install. Every bound (minimum, maximum, minLength,
maxLength, minItems, maxItems, maxProperties), enum and pattern becomes one invalid object,
built from a valid base object (BASES.json: kind -> object, from deploy/examples) with the one
value replaced; every CEL rule (x-kubernetes-validations) needs its invalid object in CEL_CASES
below, and a rule without one (or a case whose rule is gone) is a failure. A case passes when
the server refuses it (dry run) with a cause that names the field and says what is wrong.
Constraints under `status` are sent as a patch of the status subresource of a real object.

Output of `run`: one line per check, `ok<TAB>what` or `fail<TAB>what<TAB>why` (why: JSON
string). Talks to $K8S_API with the admin client certificate in $K8S_PKI, CA $K8S_CA.
"""

import copy
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.request

BOUNDS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "maxProperties")

# What the server says for each kind of constraint (apiextensions' validation messages).
SAYS = {
    "minimum": lambda v: rf"greater than or equal to {num(v)}",
    "maximum": lambda v: rf"less than or equal to {num(v)}",
    "minLength": lambda v: rf"at least {num(v)} chars",
    "maxLength": lambda v: rf"(Too long|longer than|more than).*{num(v)}",
    "minItems": lambda v: rf"(at least|Required).*",
    "maxItems": lambda v: rf"(Too many|at most).*{num(v)}",
    "maxProperties": lambda v: rf"(Too many|at most).*{num(v)}",
    "enum": lambda v: r"Unsupported value",
    "pattern": lambda v: r"should match",
}

# Strings tried, in order, for a value that must match (a filler) or must not match a pattern.
SAMPLES = ["a", "ens1f0", "0000:3b:00.0", "15b3", "/var/log/x", "aa:bb:cc:dd:ee:ff", "a.b",
           "-bad-", "bad/value", "has space", "relative", "UPPER#x", "", "#",
           "02:00:00:00:00:00:00:01"]

# The invalid object of every CEL rule: (kind, fieldPath or None, start of the message) ->
# changes to the base spec (None deletes a key), or a function of the base object.
SRIOV_OFF = {"vlan": None, "spoofChk": None, "trust": None}
MACVLAN = {"mode": "macvlan", "resourceName": None, "master": "eth0", **SRIOV_OFF}
OVS = {"mode": "ovs", **SRIOV_OFF}
CEL_CASES = {
    ("NicPolicy", ".nodeSelector", "must select nodes"): {"nodeSelector": {}},
    ("NicPolicy", ".nicSelector", "is empty"): {"nicSelector": {}},
    ("NicPolicy", ".isRdma", "RDMA needs"): {"isRdma": True, "deviceType": "vfio-pci"},
    ("NicPolicy", ".eswitchMode", "switchdev needs Ethernet"):
        {"eswitchMode": "switchdev", "linkType": "ib"},
    ("NicPolicy", ".firmware", "not allowed with externallyManaged"):
        {"externallyManaged": True, "firmware": {"totalVfs": 64}},
    ("NicPolicy", ".firmware.totalVfs", "must be at least numVfs"):
        {"numVfs": 8, "firmware": {"totalVfs": 4}},
    ("NicPolicy", ".numVfs", "must be at least 1"): {"numVfs": 0},
    ("NicPolicy", ".wholePf", "a whole-PF pool creates no VFs"): {"wholePf": True, "numVfs": 4},
    ("NicPolicy", ".wholePf", "not allowed with eswitchMode"):
        {"wholePf": True, "numVfs": None, "eswitchMode": "legacy"},
    ("NicPolicy", ".wholePf", "a whole-PF pool takes whole PFs"):
        {"wholePf": True, "numVfs": None, "nicSelector": {"pfNames": ["ens1f0#0-3"]}},
    ("NicNetwork", ".resourceName", "is required in modes sriov and ovs"): {"resourceName": None},
    ("NicNetwork", ".resourceName", "modes macvlan and ipvlan need"): {**MACVLAN, "master": None},
    ("NicNetwork", ".master", "give either master or resourceName"):
        {**MACVLAN, "resourceName": "cx6_vf"},
    ("NicNetwork", ".master", "only for modes macvlan and ipvlan"): {"master": "eth0"},
    ("NicNetwork", ".vlan", "only for modes sriov and ovs"): {**MACVLAN, "vlan": 100},
    ("NicNetwork", ".vlanQoS", "only for mode sriov"): {**OVS, "vlan": 100, "vlanQoS": 1},
    ("NicNetwork", ".vlanProto", "only for mode sriov"): {**OVS, "vlan": 100, "vlanProto": "802.1q"},
    ("NicNetwork", ".spoofChk", "only for mode sriov"): {**OVS, "spoofChk": True},
    ("NicNetwork", ".trust", "only for mode sriov"): {**OVS, "trust": True},
    ("NicNetwork", ".linkState", "only for mode sriov"): {**OVS, "linkState": "auto"},
    ("NicNetwork", ".minTxRate", "only for mode sriov"): {**OVS, "minTxRate": 10},
    ("NicNetwork", ".maxTxRate", "only for mode sriov"): {**OVS, "maxTxRate": 10},
    ("NicNetwork", ".macvlanMode", "only for mode macvlan"):
        {**MACVLAN, "mode": "ipvlan", "macvlanMode": "bridge"},
    ("NicNetwork", ".macvlanSourceMacs", "only with macvlanMode source"):
        {**MACVLAN, "macvlanMode": "bridge", "macvlanSourceMacs": ["02:00:00:00:00:01"]},
    ("NicNetwork", ".macvlanMode", "macvlanMode source needs"): {**MACVLAN, "macvlanMode": "source"},
    ("NicNetwork", ".ipvlanMode", "only for mode ipvlan"): {**MACVLAN, "ipvlanMode": "l2"},
    ("NicNetwork", ".ovs", "only for mode ovs"): {"ovs": {"bridge": "br-int"}},
    ("NicNetwork", ".vlanQoS", "a non-zero VLAN priority"): {"vlan": 0, "vlanQoS": 3},
    ("NicNetwork", ".vlanProto", "802.1ad needs"): {"vlan": None, "vlanProto": "802.1ad"},
    ("NicNetwork", ".minTxRate", "must not be above maxTxRate"): {"minTxRate": 200, "maxTxRate": 100},
    ("NicNetwork", ".mtu", "not allowed in mode sriov"): {"mtu": 1500},
    ("NicNetwork", ".ovs.trunk", "give either vlan"):
        {**OVS, "vlan": 100, "ovs": {"trunk": [{"minId": 1, "maxId": 10}]}},
    ("NicNetwork", ".capabilities", "keys must be CNI capability names"):
        {"capabilities": {"bad-key": True}},
    ("NicNetwork", ".minId", "minId must not be above maxId"):
        {**OVS, "ovs": {"trunk": [{"minId": 10, "maxId": 5}]}},
    ("NicPool", None, "must be a node count"): {"maxUnavailable": "150%"},
    ("NicOperatorConfig", None, "only the object named"):
        lambda o: {**o, "metadata": {**o["metadata"], "name": "not-default"}},
}

def num(v):
    return int(v) if float(v).is_integer() else v


def crds_of(path):
    items = json.load(open(path))["items"]
    return {c["spec"]["names"]["kind"]: c for c in items}


def schema_of(crd):
    v = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return v["schema"]["openAPIV3Schema"]


def walk(node, path):
    """(path, schema node) for every node; path segments: names, and [] for array items."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, path + [name])
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], path + ["[]"])


def dotted(path, index=True):
    s = ""
    for seg in path:
        s += ("[0]" if index else "[]") if seg == "[]" else ("." if s else "") + seg
    return s


def constraints(crds):
    """(kind, path, constraint, value, schema node) of every CRD, in a stable order."""
    out = []
    for kind in sorted(crds):
        for path, node in walk(schema_of(crds[kind]), []):
            for c in BOUNDS + ("enum", "pattern"):
                if c in node:
                    out.append((kind, path, c, node[c], node))
            for rule in node.get("x-kubernetes-validations") or []:
                out.append((kind, path, "rule", rule, node))
    return out


def describe(kind, path, c, value):
    if c == "rule":
        return f"{kind} {dotted(path, False) or '(object)'} rule[{value.get('fieldPath', '')}]: {value['message']}"
    return f"{kind} {dotted(path, False)} {c} {json.dumps(num(value) if c in BOUNDS else value)}"


def matches(pattern, s):
    try:
        return re.search(pattern, s) is not None
    except re.error:
        return False


def filler(node):
    """A small value that passes `node`'s schema (required fields only)."""
    t = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if node.get("x-kubernetes-int-or-string"):
        return 1
    if t == "object":
        props = node.get("properties") or {}
        return {k: filler(props[k]) for k in node.get("required") or [] if k in props}
    if t == "array":
        return []
    if t == "integer" or t == "number":
        return int(max(node.get("minimum", 0), 1 if "maximum" in node else 0))
    if t == "boolean":
        return False
    if "pattern" in node:
        return next((s for s in SAMPLES if s and matches(node["pattern"], s)), "a")
    return "a" * max(int(node.get("minLength", 1)), 1)


def bad_value(c, value, node):
    if c == "minimum":
        return num(value) - 1
    if c == "maximum":
        return num(value) + 1
    if c == "minLength":
        return ""
    if c == "maxLength":
        good = filler(node)
        ok = [s for s in ("a", "0", good) if s and matches(node.get("pattern", ""), s * 2)]
        return (ok[0] if ok else "a") * (int(value) + 1)
    if c in ("minItems", "maxItems"):
        item = filler(node.get("items") or {})
        n = int(value) - 1 if c == "minItems" else int(value) + 1
        return [copy.deepcopy(item) for _ in range(max(n, 0))]
    if c == "maxProperties":
        v = filler(node.get("additionalProperties") or {"type": "string"})
        return {f"key{i}": v for i in range(int(value) + 1)}
    if c == "enum":
        return "not-" + str(value[0])
    if c == "pattern":
        return next(s for s in SAMPLES if not matches(value, s))
    raise ValueError(c)


def put(obj, schema, path, value):
    """Sets `value` at `path` in `obj`, making the objects and arrays on the way (fillers)."""
    node, cur = schema, obj
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        if seg == "[]":
            node = node["items"]
            if last:
                cur[:] = [value]
                return
            if not cur:
                cur.append(filler(node))
            cur = cur[0]
        else:
            node = node["properties"][seg]
            if last:
                cur[seg] = value
                return
            if not isinstance(cur.get(seg), (dict, list)):
                cur[seg] = filler(node)
                if node.get("type") == "array":
                    cur[seg] = []
            cur = cur[seg]


def merge(spec, changes):
    out = copy.deepcopy(spec)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Api:
    def __init__(self):
        self.base = os.environ["K8S_API"]
        pki = os.environ["K8S_PKI"]
        self.ctx = ssl.create_default_context(cafile=os.environ["K8S_CA"])
        self.ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")

    def call(self, method, url, body, ctype="application/json"):
        req = urllib.request.Request(self.base + url, method=method, data=json.dumps(body).encode(),
                                     headers={"Content-Type": ctype, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"message": raw.decode(errors="replace")}


def collection(crd, ns):
    g, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    v = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
    scoped = f"/namespaces/{ns}" if crd["spec"]["scope"] == "Namespaced" else ""
    return f"/apis/{g}/{v}{scoped}/{plural}"


def refused(status, body, field, says):
    """None when the answer is a refusal naming `field` (None: any) and matching `says`."""
    if status < 400:
        return f"accepted (HTTP {status})"
    causes = (body.get("details") or {}).get("causes") or []
    for cause in causes:
        if (field is None or cause.get("field") == field) and re.search(says, cause.get("message", "")):
            return None
    if not causes and re.search(says, body.get("message", "")) and (field is None or field in body.get("message", "")):
        return None
    return f"HTTP {status}, no cause on {field or '(object)'} saying /{says}/: {body.get('message', body)}"


def run(crds, bases, ns):
    api = Api()
    out = []

    def report(what, why):
        out.append(f"ok\t{what}" if why is None else f"fail\t{what}\t{json.dumps(why)}")

    # the bases (the examples) must pass: every case differs from an accepted object in one place
    live = {}
    for kind, obj in sorted(bases.items()):
        crd = crds[kind]
        obj = copy.deepcopy(obj)
        obj["metadata"] = {"name": obj["metadata"]["name"]}
        if crd["spec"]["scope"] == "Namespaced":
            obj["metadata"]["namespace"] = ns
        name = obj["metadata"]["name"]
        api.call("DELETE", collection(crd, ns) + "/" + name, {})
        status, body = api.call("POST", collection(crd, ns) + "?dryRun=All", obj)
        report(f"{kind} {name} (valid) is accepted",
               None if status < 300 else f"HTTP {status}: {body.get('message', body)}")
        # a real object for the status cases
        status, body = api.call("POST", collection(crd, ns), obj)
        if status < 300:
            live[kind] = body
        bases[kind] = obj

    seen_rules = set()
    for kind, path, c, value, node in constraints(crds):
        crd, base = crds[kind], bases.get(kind)
        what = "refused: " + describe(kind, path, c, value)
        if base is None:
            report(what, f"no valid {kind} to start from (add one to deploy/examples)")
            continue
        schema = schema_of(crd)
        if c == "rule":
            fp = value.get("fieldPath")
            key = next((k for k in CEL_CASES if k[0] == kind and k[1] == fp
                        and value["message"].startswith(k[2])), None)
            if key is None:
                report(what, "no invalid object for this rule in CEL_CASES (schema_cases.py)")
                continue
            seen_rules.add(key)
            change = CEL_CASES[key]
            if callable(change):
                obj = change(copy.deepcopy(base))
            else:
                obj = copy.deepcopy(base)
                obj["spec"] = merge(obj.get("spec") or {}, change)
            # the error names the rule's fieldPath, else the node that holds the rule
            field = (dotted(path) + (fp or "")).lstrip(".") or None
            says = re.escape(value["message"])
            top = path[0] if path else "spec"
        else:
            obj = copy.deepcopy(base)
            put(obj, schema, path, bad_value(c, value, node))
            field = dotted(path)
            says = SAYS[c](value)
            top = path[0]
        url = collection(crd, ns)
        if top == "status":
            if kind not in live:
                report(what, f"could not create a {kind} to patch its status")
                continue
            status, body = api.call("PATCH", f"{url}/{obj['metadata']['name']}/status?dryRun=All",
                                    {"status": obj.get("status")}, "application/merge-patch+json")
        else:
            if kind != "NicOperatorConfig":
                obj["metadata"]["name"] = "schema-case"
            status, body = api.call("POST", url + "?dryRun=All", obj)
        report(what, refused(status, body, field, says))
    for key in sorted(set(CEL_CASES) - seen_rules, key=str):
        report(f"CEL case {key} has its rule in the CRD", "the CRD has no such rule any more")
    for kind, obj in live.items():
        api.call("DELETE", collection(crds[kind], ns) + "/" + obj["metadata"]["name"], {})
    print("\n".join(out))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "constraints":
        for kind, path, c, value, _ in constraints(crds_of(sys.argv[2])):
            print(describe(kind, path, c, value))
    elif len(sys.argv) == 5 and sys.argv[1] == "run":
        items = json.load(open(sys.argv[3]))["items"]
        bases = {o["kind"]: o for o in items}
        run(crds_of(sys.argv[2]), bases, sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
