//! Load generator of the scale benchmark (`hw-tests/api/bench-scale.sh`): N simulated nodes
//! against a real API server, doing what each node's agent would do, without any host.
//!
//! ```text
//! scale_load nodes  --count N --inventory FILE   Node objects sim-0..sim-N-1 and, for each, its
//!                                                NicNodeState with the inventory in FILE as status
//!                                                (server-side apply, the agent's field manager)
//! scale_load agents                              for every NicNodeState whose spec generation is
//!                                                new, the status an agent writes after applying it
//!                                                (Succeeded at that generation, the inventory
//!                                                kept), until killed
//! scale_load wait --count N --contains TEXT      returns once N NicNodeStates carry TEXT in their
//!                                                spec (JSON); prints the milliseconds it took
//! ```
//!
//! The client is the usual kubeconfig (`KUBECONFIG`). Writes go `--concurrency` at a time (the
//! agents of a cluster write in parallel too).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use crds::{
    CONDITION_SYNCED, FIELD_MANAGER_AGENT, LABEL_MANAGED_BY, LABEL_NODE, MANAGED_BY, NicNodeState,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    /// Writes in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the nodes and their inventories.
    Nodes {
        #[arg(long)]
        count: usize,
        /// JSON: the `nics` of a NicNodeState status (`smartnicctl discover -o json`).
        #[arg(long)]
        inventory: std::path::PathBuf,
    },
    /// Acknowledge every new spec like an agent that applied it.
    Agents,
    /// Wait until COUNT node states' specs contain TEXT.
    Wait {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        contains: String,
    },
}

fn now() -> String {
    crds::k8s::jiff::Timestamp::now().to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client::try_default().await.context("no kubeconfig")?;
    let limit = Arc::new(Semaphore::new(args.concurrency.max(1)));
    match args.cmd {
        Cmd::Nodes { count, inventory } => nodes(client, limit, count, &inventory).await,
        Cmd::Agents => agents(client, limit).await,
        Cmd::Wait { count, contains } => wait(client, count, &contains).await,
    }
}

async fn nodes(
    client: Client,
    limit: Arc<Semaphore>,
    count: usize,
    inventory: &std::path::Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(inventory)
        .with_context(|| format!("cannot read {}", inventory.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", inventory.display()))?;
    let nics = doc.get("nics").cloned().unwrap_or(doc);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let (client, limit, nics) = (client.clone(), limit.clone(), nics.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            one_node(client, &format!("sim-{i}"), nics).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "{count} nodes and node states in {} ms",
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn one_node(client: Client, name: &str, nics: Value) -> anyhow::Result<()> {
    let pp = PatchParams::apply("scale-load").force();
    let node = Api::<Node>::all(client.clone())
        .patch(
            name,
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "bench": "scale"}},
            })),
        )
        .await
        .with_context(|| format!("cannot create Node {name}"))?;
    // untyped: the answer has no spec yet, which the typed NicNodeState requires
    let states = Api::<DynamicObject>::all_with(client, &ApiResource::erase::<NicNodeState>(&()));
    let agent = PatchParams::apply(FIELD_MANAGER_AGENT).force();
    states
        .patch(
            name,
            &agent,
            &Patch::Apply(json!({
                "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
                "metadata": {
                    "name": name,
                    "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: name},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                        "uid": node.uid().unwrap_or_default()}],
                },
                // as the agent creates it (the schema requires a spec)
                "spec": {},
            })),
        )
        .await
        .with_context(|| format!("cannot create NicNodeState {name}"))?;
    states
        .patch_status(
            name,
            &agent,
            &Patch::Apply(json!({
                "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
                "metadata": {"name": name},
                "status": {"nics": nics},
            })),
        )
        .await
        .with_context(|| format!("cannot write the inventory of NicNodeState {name}"))?;
    Ok(())
}

async fn agents(client: Client, limit: Arc<Semaphore>) -> anyhow::Result<()> {
    let api = Api::<NicNodeState>::all(client.clone());
    let status = Api::<DynamicObject>::all_with(client, &ApiResource::erase::<NicNodeState>(&()));
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(s) = events.try_next().await? {
        let (name, generation) = (s.name_any(), s.metadata.generation.unwrap_or_default());
        let has_spec = !s.spec.interfaces.is_empty();
        if !has_spec || acked.get(&name) == Some(&generation) {
            continue;
        }
        acked.insert(name.clone(), generation);
        // The whole status, as the agent writes it: an apply by the agent's field manager that
        // left out `nics` would remove the inventory it applied before, and the operator keeps
        // the last spec of a node that reports no inventory (no later policy change lands).
        let nics = s
            .status
            .as_ref()
            .map(|st| st.nics.clone())
            .unwrap_or_default();
        let (api, permit) = (status.clone(), limit.clone().acquire_owned().await?);
        tokio::spawn(async move {
            let _permit = permit;
            let body = json!({
                "apiVersion": "smartnic.io/v1alpha1", "kind": "NicNodeState",
                "metadata": {"name": name},
                "status": {
                    "nics": nics,
                    "syncStatus": "Succeeded",
                    "appliedGeneration": generation,
                    "conditions": [{"type": CONDITION_SYNCED, "status": "True", "reason": "Applied",
                        "message": "simulated", "lastTransitionTime": now(),
                        "observedGeneration": generation}],
                },
            });
            let pp = PatchParams::apply(FIELD_MANAGER_AGENT);
            if let Err(e) = api.patch_status(&name, &pp, &Patch::Apply(body)).await {
                eprintln!("cannot acknowledge generation {generation} of {name}: {e}");
            }
        });
    }
    Ok(())
}

async fn wait(client: Client, count: usize, contains: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let api = Api::<NicNodeState>::all(client);
    let mut done: HashSet<String> = HashSet::new();
    let mut events = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(s) = events.try_next().await? {
        let spec = serde_json::to_string(&s.spec)?;
        if spec.contains(contains) {
            done.insert(s.name_any());
        } else {
            done.remove(&s.name_any());
        }
        if done.len() >= count {
            println!("{}", started.elapsed().as_millis());
            return Ok(());
        }
    }
    anyhow::bail!(
        "the watch ended with {} of {count} node states done",
        done.len()
    )
}
