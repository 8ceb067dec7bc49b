//! Crash points at the executor's step boundaries, for the crash tests (the SIGKILL test of
//! the real binary on fixture trees, `agent/tests/crash_binary.rs`, and the lab's `agent`
//! suite). Compiled into every build and inert unless [`ENV`] is set: without it a boundary is
//! one relaxed load of a `OnceLock`.
//!
//! `SMARTNIC_AGENT_FAILPOINT=<point>` makes the agent stop at that boundary: the thread that
//! reaches it prints `failpoint <n> <name>: stopped, waiting for SIGKILL` on stderr and parks
//! forever, so that the test kills the process with `kill -9` exactly there (the other PFs'
//! threads go on until the signal lands, as they would on a real crash). `<point>` is:
//!
//! - `N` (a number from 1): the N-th boundary the process reaches, counted over all PFs and
//!   plans of the process (a test raises N until a run ends without stopping: then every
//!   boundary of the plan was hit once);
//! - a boundary name, stopping at its first occurrence:
//!   - `recorded`: the plan is recorded as in progress, the hand-off file not yet rewritten;
//!   - `published`: the hand-off file no longer offers the pools of the PFs about to change;
//!   - `before:<kind>`: the step (e.g. `before:set-num-vfs`) is recorded as the PF's current
//!     step and not yet run;
//!   - `after:<kind>`: the step has run and the next one is not yet recorded;
//!   - `pf-done`: a PF's last step ran and its pools are back in the hand-off file;
//!   - `steps-done`: every PF and node step ran; the spec is not yet recorded as applied;
//!   - `applied`: the spec is recorded as applied.
//!
//! A value that is neither is reported once and ignored.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The environment variable that arms a crash point.
pub const ENV: &str = "SMARTNIC_AGENT_FAILPOINT";

#[derive(Debug, PartialEq, Eq)]
enum Point {
    Nth(usize),
    Named(String),
}

fn parse(value: &str) -> Option<Point> {
    if let Ok(n) = value.parse::<usize>() {
        return (n > 0).then_some(Point::Nth(n));
    }
    let named = matches!(
        value,
        "recorded" | "published" | "pf-done" | "steps-done" | "applied"
    ) || value
        .strip_prefix("before:")
        .or_else(|| value.strip_prefix("after:"))
        .is_some_and(|k| !k.is_empty());
    named.then(|| Point::Named(value.to_owned()))
}

fn armed() -> Option<&'static Point> {
    static POINT: OnceLock<Option<Point>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            let value = std::env::var(ENV).ok()?;
            let point = parse(&value);
            if point.is_none() {
                tracing::warn!(
                    value,
                    "{ENV} is neither a boundary number nor a name; ignored"
                );
            }
            point
        })
        .as_ref()
}

/// Called at each boundary named `name` (see the module documentation).
pub fn boundary(name: &str) {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static NAMED_HIT: AtomicBool = AtomicBool::new(false);
    let Some(point) = armed() else {
        return;
    };
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let hit = match point {
        Point::Nth(k) => *k == n,
        Point::Named(p) => p == name && !NAMED_HIT.swap(true, Ordering::SeqCst),
    };
    if hit {
        eprintln!("failpoint {n} {name}: stopped, waiting for SIGKILL");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse() {
        assert_eq!(parse("7"), Some(Point::Nth(7)));
        assert_eq!(parse("0"), None);
        assert_eq!(
            parse("after:set-num-vfs"),
            Some(Point::Named("after:set-num-vfs".into()))
        );
        assert_eq!(parse("published"), Some(Point::Named("published".into())));
        assert_eq!(parse("before:"), None);
        assert_eq!(parse("somewhere"), None);
    }
}
