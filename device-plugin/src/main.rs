//! `smartnic-device-plugin`: the kubelet device plugin (not yet implemented).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("smartnic-device-plugin is not implemented yet")
}
