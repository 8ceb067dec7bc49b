//! Files given with `-f`: `-` is stdin everywhere, and the errors of the strict decoder are
//! printed one problem per line.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// The text of `-f FILE` (`-`: stdin).
pub(crate) fn read(file: &Path) -> anyhow::Result<String> {
    let mut s = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
    } else {
        s = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(s)
}

/// How messages name `-f FILE`.
pub(crate) fn name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "stdin".into()
    } else {
        file.display().to_string()
    }
}

/// A strict-decoding error as one message: several problems go on lines of their own.
pub(crate) fn decode_error(e: crds::strict::DecodeError) -> anyhow::Error {
    match e {
        crds::strict::DecodeError::Invalid(problems) if problems.len() > 1 => {
            let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            anyhow::anyhow!("{} problems:\n{}", problems.len(), lines.join("\n"))
        }
        other => other.into(),
    }
}
