//! `smartnic-dra` (wired in a later step).

fn main() {}
