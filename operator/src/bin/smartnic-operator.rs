//! `smartnic-operator`: the cluster controller.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("smartnic-operator is not implemented yet")
}
