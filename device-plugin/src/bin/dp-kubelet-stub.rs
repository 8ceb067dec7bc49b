//! `dp-kubelet-stub`: a TEST TOOL standing in for the kubelet where there is none (the hw-tests
//! lab). Not part of the product and not shipped.
//!
//! ```text
//! dp-kubelet-stub kubelet  --plugin-dir DIR
//!     serves Registration on DIR/kubelet.sock; for every registration, opens ListAndWatch on the
//!     plugin and prints one JSON line per event on stdout until killed:
//!       {"event":"register","resource":..,"endpoint":..,"version":..,"preferred":true,"t":MS}
//!       {"event":"list","resource":..,"devices":[{"id":..,"health":..,"numa":N|null}],"t":MS}
//!     (t: milliseconds since the Unix epoch, to compare with `date +%s%3N`)
//! dp-kubelet-stub allocate --plugin-dir DIR --endpoint SOCK ID...
//!     calls Allocate for one container and prints the answer as JSON, with `rpcUs`: the call's
//!     time in microseconds (connecting not included)
//! dp-kubelet-stub preferred --plugin-dir DIR --endpoint SOCK --size N [--must ID]... ID...
//!     calls GetPreferredAllocation and prints the chosen IDs as a JSON array
//! ```

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty,
    PreferredAllocationRequest, RegisterRequest,
    device_plugin_client::DevicePluginClient,
    registration_server::{Registration, RegistrationServer},
};
use device_plugin::kubelet::connect;
use serde_json::json;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// A kubelet stand-in for tests (not shipped).
#[derive(Parser)]
#[command(
    name = "dp-kubelet-stub",
    about = "TEST TOOL: a kubelet stand-in for the device plugin"
)]
struct Cli {
    /// The device-plugin directory.
    #[arg(long, global = true, default_value = "/var/lib/kubelet/device-plugins")]
    plugin_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve Registration and print registrations and ListAndWatch updates as JSON lines.
    Kubelet,
    /// Call Allocate for one container.
    Allocate {
        /// Socket file name of the plugin.
        #[arg(long)]
        endpoint: String,
        /// Device IDs.
        ids: Vec<String>,
    },
    /// Call GetPreferredAllocation for one container.
    Preferred {
        /// Socket file name of the plugin.
        #[arg(long)]
        endpoint: String,
        /// Allocation size.
        #[arg(long)]
        size: i32,
        /// Must-include device IDs.
        #[arg(long)]
        must: Vec<String>,
        /// Available device IDs.
        ids: Vec<String>,
    },
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

struct Stub {
    dir: PathBuf,
}

#[tonic::async_trait]
impl Registration for Stub {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let r = req.into_inner();
        println!(
            "{}",
            json!({"event": "register", "resource": r.resource_name, "endpoint": r.endpoint,
                   "version": r.version,
                   "preferred": r.options.is_some_and(|o| o.get_preferred_allocation_available),
                   "t": now_ms() as u64})
        );
        // like the kubelet: answer first, then dial the plugin and follow ListAndWatch
        let path = self.dir.join(&r.endpoint);
        tokio::spawn(async move {
            if let Err(e) = follow(path, r.resource_name.clone()).await {
                println!(
                    "{}",
                    json!({"event": "error", "resource": r.resource_name, "error": format!("{e:#}"), "t": now_ms() as u64})
                );
            }
        });
        Ok(Response::new(Empty {}))
    }
}

async fn follow(path: PathBuf, resource: String) -> anyhow::Result<()> {
    let mut c = DevicePluginClient::new(connect(&path).await?);
    c.get_device_plugin_options(Empty {}).await?;
    let mut s = c.list_and_watch(Empty {}).await?.into_inner();
    while let Some(m) = s.message().await? {
        let devices: Vec<_> = m
            .devices
            .iter()
            .map(|d| {
                json!({"id": d.id, "health": d.health,
                       "numa": d.topology.as_ref().and_then(|t| t.nodes.first()).map(|n| n.id)})
            })
            .collect();
        println!(
            "{}",
            json!({"event": "list", "resource": resource, "devices": devices, "t": now_ms() as u64})
        );
    }
    println!(
        "{}",
        json!({"event": "closed", "resource": resource, "t": now_ms() as u64})
    );
    Ok(())
}

async fn client(
    cli: &Cli,
    endpoint: &str,
) -> anyhow::Result<DevicePluginClient<tonic::transport::Channel>> {
    let path = cli.plugin_dir.join(endpoint);
    let ch = connect(&path)
        .await
        .with_context(|| format!("connect to {}", path.display()))?;
    Ok(DevicePluginClient::new(ch))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Kubelet => {
            let sock = cli.plugin_dir.join("kubelet.sock");
            std::fs::create_dir_all(&cli.plugin_dir)?;
            let _ = std::fs::remove_file(&sock);
            let listener =
                UnixListener::bind(&sock).with_context(|| format!("bind {}", sock.display()))?;
            tonic::transport::Server::builder()
                .add_service(RegistrationServer::new(Stub {
                    dir: cli.plugin_dir.clone(),
                }))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Cmd::Allocate { endpoint, ids } => {
            let mut c = client(&cli, endpoint).await?;
            let t0 = std::time::Instant::now();
            let r = c
                .allocate(AllocateRequest {
                    container_requests: vec![ContainerAllocateRequest {
                        devices_ids: ids.clone(),
                    }],
                })
                .await
                .map_err(|s| anyhow::anyhow!("Allocate: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            let containers: Vec<_> = r
                .container_responses
                .iter()
                .map(|c| {
                    let devices: Vec<_> = c
                        .devices
                        .iter()
                        .map(|d| json!({"containerPath": d.container_path, "hostPath": d.host_path, "permissions": d.permissions}))
                        .collect();
                    json!({"envs": c.envs, "devices": devices, "annotations": c.annotations,
                           "mounts": c.mounts.len()})
                })
                .collect();
            let rpc_us = t0.elapsed().as_micros() as u64;
            println!("{}", json!({ "containers": containers, "rpcUs": rpc_us }));
        }
        Cmd::Preferred {
            endpoint,
            size,
            must,
            ids,
        } => {
            let mut c = client(&cli, endpoint).await?;
            let r = c
                .get_preferred_allocation(PreferredAllocationRequest {
                    container_requests: vec![ContainerPreferredAllocationRequest {
                        available_device_i_ds: ids.clone(),
                        must_include_device_i_ds: must.clone(),
                        allocation_size: *size,
                    }],
                })
                .await
                .map_err(|s| anyhow::anyhow!("GetPreferredAllocation: {}", s.message()))?
                .into_inner();
            let ids: Vec<String> = r
                .container_responses
                .into_iter()
                .flat_map(|c| c.device_i_ds)
                .collect();
            println!("{}", json!(ids));
        }
    }
    Ok(())
}
