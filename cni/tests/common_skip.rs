//! The project's skip report: `SKIP <name>: <reason>` written straight to the process's stdout
//! (a `println!` is captured and dropped for a passing test), which `scripts/check.sh` counts.

use std::io::Write;

/// Reports `test` as skipped for `reason`.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}
