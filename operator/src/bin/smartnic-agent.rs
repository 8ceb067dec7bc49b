//! `smartnic-agent`: the node agent.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("smartnic-agent is not implemented yet")
}
