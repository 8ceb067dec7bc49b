//! A fuzz harness that runs inside `cargo test` for a bounded time, for the decoders of input
//! the project does not control (kernel messages here, tenant configuration in the CNI). Each
//! target has a committed corpus, `<corpus>/<target>/*`: every file is decoded as it is, then
//! `FUZZ_CASES` (default 3000) mutations of them (bit flips, cuts, splices, inserted or random
//! bytes). The check may refuse any input; a panic fails the test and proptest shrinks the
//! input, which then belongs in the corpus.

use std::path::Path;

use proptest::prelude::*;

/// The files of `dir/target`, sorted by name.
pub fn corpus(dir: &Path, target: &str) -> Vec<Vec<u8>> {
    let dir = dir.join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Generated inputs per target: `FUZZ_CASES`, default 3000.
pub fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// A corpus entry changed the ways fuzzers change them.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..64),
        0u8..4,
    )
        .prop_map(move |(a, b, flips, cut, splice, junk, how)| {
            let mut v = seeds[a].clone();
            for (i, x) in flips {
                if !v.is_empty() {
                    let at = i.index(v.len());
                    v[at] ^= x;
                }
            }
            match how {
                0 => v.truncate(cut.index(v.len() + 1)),
                1 => {
                    let other = &seeds[b];
                    let at = splice.index(other.len() + 1);
                    v.extend_from_slice(&other[at..]);
                }
                2 => {
                    let at = cut.index(v.len() + 1);
                    v.splice(at..at, junk);
                }
                _ => v = junk,
            }
            v
        })
}

/// Runs `check` on every corpus file of `dir/target`, then on [`cases`] mutations of them.
pub fn run(dir: &Path, target: &str, check: impl Fn(&[u8])) {
    let seeds = corpus(dir, target);
    assert!(!seeds.is_empty(), "corpus {target} is empty");
    for s in &seeds {
        check(s);
    }
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&mutated(seeds), |input| {
        check(&input);
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz target {target}: {e}");
    }
}
