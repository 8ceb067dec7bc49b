//! `smartnic`: the CNI plugin (not yet implemented).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("the smartnic CNI plugin is not implemented yet")
}
