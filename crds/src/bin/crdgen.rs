//! Prints the generated CRD YAML (filled in with the CRD types).
fn main() {}
