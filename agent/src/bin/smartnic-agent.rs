//! `smartnic-agent`: the node agent.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("smartnic-agent: the cluster mode is not implemented yet")
}
