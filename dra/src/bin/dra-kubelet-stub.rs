//! Test tool, not shipped: what the kubelet does with a DRA plugin, from the command line.
//!
//! ```text
//! dra-kubelet-stub REGISTRATION_SOCKET info
//! dra-kubelet-stub REGISTRATION_SOCKET prepare|unprepare NAMESPACE NAME UID
//! ```
//!
//! Asks the registration socket for the plugin's info (as the kubelet's plugin watcher does),
//! then calls the `v1.DRAPlugin` service at the endpoint it names, and prints the answer as one
//! JSON line. Exit status 1 when a call fails or a claim's answer carries an error.

use std::path::PathBuf;

use anyhow::{Context, bail};
use device_plugin::kubelet::connect;
use dra::dra_api::dra_plugin_client::DraPluginClient;
use dra::dra_api::{Claim, NodePrepareResourcesRequest, NodeUnprepareResourcesRequest};
use dra::registration_api::registration_client::RegistrationClient;
use dra::registration_api::{InfoRequest, RegistrationStatus};
use serde_json::json;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(reg) = args.first().map(PathBuf::from) else {
        bail!("usage: dra-kubelet-stub REGISTRATION_SOCKET info|prepare|unprepare [NS NAME UID]");
    };
    let mut registration = RegistrationClient::new(
        connect(&reg)
            .await
            .with_context(|| format!("connecting to {}", reg.display()))?,
    );
    let info = registration.get_info(InfoRequest {}).await?.into_inner();
    let claim = |i: usize| -> anyhow::Result<Vec<Claim>> {
        let get = |k: usize| args.get(k).cloned().context("NAMESPACE NAME UID expected");
        Ok(vec![Claim {
            namespace: get(i)?,
            name: get(i + 1)?,
            uid: get(i + 2)?,
        }])
    };
    let endpoint = PathBuf::from(&info.endpoint);
    match args.get(1).map(String::as_str) {
        Some("info") => {
            registration
                .notify_registration_status(RegistrationStatus {
                    plugin_registered: true,
                    error: String::new(),
                })
                .await?;
            println!(
                "{}",
                json!({ "type": info.r#type, "name": info.name, "endpoint": info.endpoint,
                        "supportedVersions": info.supported_versions })
            );
            Ok(true)
        }
        Some("prepare") => {
            let mut c = DraPluginClient::new(connect(&endpoint).await?);
            let r = c
                .node_prepare_resources(NodePrepareResourcesRequest { claims: claim(2)? })
                .await?
                .into_inner();
            let mut ok = true;
            let out: serde_json::Map<String, serde_json::Value> = r
                .claims
                .into_iter()
                .map(|(uid, r)| {
                    ok &= r.error.is_empty();
                    let devices: Vec<_> = r
                        .devices
                        .iter()
                        .map(|d| json!({ "requestNames": d.request_names, "poolName": d.pool_name,
                                         "deviceName": d.device_name, "cdiDeviceIds": d.cdi_device_ids }))
                        .collect();
                    (uid, json!({ "devices": devices, "error": r.error }))
                })
                .collect();
            println!("{}", serde_json::Value::Object(out));
            Ok(ok)
        }
        Some("unprepare") => {
            let mut c = DraPluginClient::new(connect(&endpoint).await?);
            let r = c
                .node_unprepare_resources(NodeUnprepareResourcesRequest { claims: claim(2)? })
                .await?
                .into_inner();
            let ok = r.claims.values().all(|r| r.error.is_empty());
            let out: serde_json::Map<String, serde_json::Value> = r
                .claims
                .into_iter()
                .map(|(uid, r)| (uid, json!({ "error": r.error })))
                .collect();
            println!("{}", serde_json::Value::Object(out));
            Ok(ok)
        }
        _ => bail!("info, prepare or unprepare expected"),
    }
}
