//! Our in-process host-local and the reference `host-local` binary on one `dataDir` and one
//! range, in parallel: every address is handed out once, and DELs by either free what the other
//! allocated.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_skip;

use std::{
    collections::HashSet,
    io::Write,
    net::IpAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

use smartnic_cni::ipam::HostLocal;

const REFERENCE: &str = "/usr/lib/cni/host-local";

fn reference(cmd: &str, id: &str, conf: &str) -> Result<Option<IpAddr>, String> {
    let mut child = Command::new(REFERENCE)
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/var/run/netns/unused")
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    if cmd != "ADD" {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr = v["ips"][0]["address"].as_str().unwrap();
    Ok(Some(addr.split('/').next().unwrap().parse().unwrap()))
}

fn leases(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<IpAddr>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn ours_and_the_reference_share_one_range() {
    if !Path::new(REFERENCE).exists() {
        common_skip::skip(
            "ours_and_the_reference_share_one_range",
            &format!("{REFERENCE} is not installed"),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 10.77.0.2 .. 10.77.0.254 minus the gateway: 253 addresses for 2 × 4 × 25 = 200 ADDs.
    let ipam = serde_json::json!({"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]],
        "dataDir": tmp.path().to_str().unwrap()});
    let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "shared", "type": "host-local", "ipam": ipam})
        .to_string();
    let ours = Arc::new(HostLocal::parse(&ipam, "shared").unwrap());
    let got: Arc<Mutex<Vec<(String, IpAddr, bool)>>> = Arc::default();
    let mut threads = Vec::new();
    for t in 0..4 {
        let (mine, sink) = (ours.clone(), got.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..25 {
                let id = format!("ours-{t}-{i}");
                let r = mine.add(&id, "net1", &[]).unwrap();
                sink.lock().unwrap().push((id, r.ips[0].address.addr, true));
            }
        }));
        let (sink, c) = (got.clone(), conf.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..25 {
                let id = format!("ref-{t}-{i}");
                let ip = reference("ADD", &id, &c).unwrap().unwrap();
                sink.lock().unwrap().push((id, ip, false));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let got = got.lock().unwrap().clone();
    let unique: HashSet<IpAddr> = got.iter().map(|(_, ip, _)| *ip).collect();
    println!(
        "{} ADDs (100 ours, 100 reference), {} distinct addresses",
        got.len(),
        unique.len()
    );
    assert_eq!(got.len(), 200);
    assert_eq!(unique.len(), 200, "an address was handed out twice");
    let dir = tmp.path().join("shared");
    assert_eq!(leases(&dir), 200);
    // Each frees what the other allocated.
    for (id, _, by_ours) in &got {
        if *by_ours {
            reference("DEL", id, &conf).unwrap();
        } else {
            ours.del(id, "net1").unwrap();
        }
    }
    assert_eq!(leases(&dir), 0);
}
