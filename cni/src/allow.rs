//! The administrator's [`TenantAllowList`] applied to one request before anything runs: the
//! configuration comes from a tenant (a NicNetwork, a NetworkAttachmentDefinition of their own,
//! a pod annotation), the plugin runs as root, so every host path and host interface it names
//! must be one the administrator allowed on this node.

use std::{fs, io, path::Path};

use crds::cni::{TenantAllowList, interface_refusal};
use serde_json::Value;

use crate::{
    config::NetConf,
    env::{CniEnv, Command},
    error::{CniError, code},
};

/// The `CNI_ARGS` key in which Multus and the kubelet's runtimes pass the pod's namespace.
pub const ARG_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";

/// Largest allow-list file read (it is the administrator's, but a root process bounds it).
const MAX_FILE: u64 = 1 << 20;

/// Reads the node's allow-list; a missing file is the empty list (defaults only).
pub fn load(path: &Path) -> Result<TenantAllowList, CniError> {
    let bad = |e: String| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("cannot read the node's allow-list {}: {e}", path.display()),
        )
    };
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TenantAllowList::default()),
        Err(e) => return Err(bad(e.to_string())),
        Ok(m) if m.len() > MAX_FILE => return Err(bad(format!("larger than {MAX_FILE} bytes"))),
        Ok(_) => {}
    }
    let bytes = fs::read(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

fn refused(msg: String) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// Refuses a configuration that names a host path or interface the allow-list does not grant;
/// drops a `resolvConf` it does not grant (with a warning in `conf.warnings`).
pub fn enforce(conf: &mut NetConf, env: &CniEnv, allow: &TenantAllowList) -> Result<(), CniError> {
    let ns = env.arg(ARG_POD_NAMESPACE);
    if let Some(m) = &conf.conf.master
        && let Some(why) = interface_refusal(&allow.masters, "master", m, ns)
    {
        return Err(refused(format!("key master: {why}")));
    }
    if let Some(b) = &conf.conf.bridge
        && let Some(why) = interface_refusal(&allow.bridges, "bridge", b, ns)
    {
        return Err(refused(format!("key bridge: {why}")));
    }
    let Some(Value::Object(ipam)) = conf.conf.ipam.as_mut() else {
        return Ok(());
    };
    match ipam.get("dataDir") {
        None => {}
        Some(Value::String(d)) if allow.admits_data_dir(d) => {}
        Some(d) if env.command == Command::Del => {
            // An ADD with this dataDir was refused, so nothing of ours is there to release, and
            // a DEL that fails is retried by the runtime for ever: the rest of the DEL goes on,
            // without IPAM (nothing is written under the path).
            let why = format!(
                "ipam.dataDir {d} is not allowed (neither {} nor in the administrator's \
                 allow-list): DEL releases no address there",
                crds::cni::DEFAULT_IPAM_DATA_DIR
            );
            conf.conf.ipam = None;
            conf.raw.remove("ipam");
            conf.warnings.push(why);
            return Ok(());
        }
        Some(d) => {
            return Err(refused(format!(
                "key ipam.dataDir: {d} is neither {} nor in the administrator's allow-list \
                 (NicOperatorConfig spec.tenantAllowList.ipamDataDirs)",
                crds::cni::DEFAULT_IPAM_DATA_DIR
            )));
        }
    }
    let drop_resolv = match ipam.get("resolvConf") {
        None => false,
        Some(Value::String(f)) => !allow.admits_resolv_conf(f),
        Some(_) => true,
    };
    if drop_resolv {
        let was = ipam.remove("resolvConf").unwrap_or_default();
        if let Some(Value::Object(raw_ipam)) = conf.raw.get_mut("ipam") {
            raw_ipam.remove("resolvConf");
        }
        conf.warnings.push(format!(
            "ipam.resolvConf {was} dropped: not in the administrator's allow-list \
             (NicOperatorConfig spec.tenantAllowList.resolvConfs)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crds::cni::HostInterfaceGrant;
    use serde_json::json;

    use super::*;

    fn env(ns: Option<&str>) -> CniEnv {
        CniEnv {
            command: Command::Add,
            container_id: "c1".into(),
            netns: Some("/var/run/netns/p".into()),
            ifname: "net1".into(),
            args: ns
                .map(|n| vec![(ARG_POD_NAMESPACE.into(), n.into())])
                .unwrap_or_default(),
            path: vec![],
        }
    }

    fn conf(extra: Value) -> NetConf {
        let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "smartnic", "mode": "macvlan", "master": "eth1"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        NetConf::parse(v.to_string().as_bytes(), &env(None)).unwrap()
    }

    fn allow() -> TenantAllowList {
        TenantAllowList {
            ipam_data_dirs: vec!["/var/lib/smartnic/ipam".into()],
            resolv_confs: vec!["/etc/smartnic/resolv.conf".into()],
            masters: vec![HostInterfaceGrant {
                name: "eth1".into(),
                namespaces: Some(vec!["team-a".into()]),
            }],
            bridges: vec![HostInterfaceGrant {
                name: "br-tenant".into(),
                namespaces: None,
            }],
        }
    }

    #[test]
    fn master_only_where_granted() {
        let mut c = conf(json!({}));
        enforce(&mut c, &env(Some("team-a")), &allow()).unwrap();
        for (ns, expect) in [
            (Some("team-b"), "not allowed for namespace team-b"),
            (None, "not allowed for namespace (unknown)"),
        ] {
            let e = enforce(&mut conf(json!({})), &env(ns), &allow()).unwrap_err();
            assert!(e.msg.contains(expect), "{}", e.msg);
        }
        let e = enforce(
            &mut conf(json!({"master": "mgmt0"})),
            &env(Some("team-a")),
            &allow(),
        )
        .unwrap_err();
        assert!(
            e.msg.contains("not in the administrator's allow-list"),
            "{}",
            e.msg
        );
        let e = enforce(
            &mut conf(json!({})),
            &env(Some("team-a")),
            &TenantAllowList::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
    }

    #[test]
    fn bridges_only_where_granted() {
        let mut ovs = conf(json!({"mode": "ovs", "bridge": "br-tenant"}));
        ovs.conf.master = None;
        enforce(&mut ovs, &env(None), &allow()).unwrap();
        ovs.conf.bridge = Some("br-int".into());
        let e = enforce(&mut ovs, &env(None), &allow()).unwrap_err();
        assert!(e.msg.contains("key bridge"), "{}", e.msg);
    }

    #[test]
    fn data_dirs_and_resolv_confs() {
        let a = allow();
        let e = env(Some("team-a"));
        for ok in ["/var/lib/cni/networks", "/var/lib/smartnic/ipam"] {
            let mut c = conf(
                json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": ok}}),
            );
            enforce(&mut c, &e, &a).unwrap();
        }
        for bad in [json!("/etc"), json!("/etc/cron.d"), json!(7)] {
            let mut c = conf(
                json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": bad}}),
            );
            let err = enforce(&mut c, &e, &a).unwrap_err();
            assert!(err.msg.contains("key ipam.dataDir"), "{}", err.msg);
            // DEL: no IPAM at all (nothing under the path), the rest goes on, and says why
            let del = CniEnv {
                command: Command::Del,
                ..e.clone()
            };
            enforce(&mut c, &del, &a).unwrap();
            assert!(c.conf.ipam.is_none() && c.raw.get("ipam").is_none());
            assert!(
                c.warnings[0].contains("DEL releases no address"),
                "{:?}",
                c.warnings
            );
        }
        let mut c = conf(
            json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "resolvConf": "/etc/shadow"}}),
        );
        enforce(&mut c, &e, &a).unwrap();
        assert!(c.conf.ipam.as_ref().unwrap().get("resolvConf").is_none());
        assert!(c.raw["ipam"].get("resolvConf").is_none());
        assert!(c.warnings[0].contains("dropped"), "{:?}", c.warnings);
        let mut c = conf(
            json!({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "resolvConf": "/etc/smartnic/resolv.conf"}}),
        );
        enforce(&mut c, &e, &a).unwrap();
        assert!(c.conf.ipam.as_ref().unwrap().get("resolvConf").is_some());
    }

    #[test]
    fn a_missing_file_allows_only_the_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            load(&tmp.path().join("none")).unwrap(),
            TenantAllowList::default()
        );
        let p = tmp.path().join("bad.json");
        fs::write(&p, b"{").unwrap();
        assert!(load(&p).unwrap_err().msg.contains("allow-list"));
        fs::write(&p, serde_json::to_vec(&allow()).unwrap()).unwrap();
        assert_eq!(load(&p).unwrap(), allow());
    }
}
