//! Writes the CRD YAML of every smartnic.io resource into `deploy/crds/` (or the directory given as
//! the only argument), one file per CRD, plus the `kustomization.yaml` listing them. `--stdout`
//! prints only the CRDs, as one multi-document stream (for `kubectl apply -f -`).

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--stdout") {
        for f in &crds::generate::files()? {
            println!("---\n{}", f.contents.trim_end());
        }
        return Ok(());
    }
    let dir = match arg {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(crds::generate::OUTPUT_DIR),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for f in &crds::generate::output_files()? {
        let path = dir.join(&f.file_name);
        std::fs::write(&path, &f.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
