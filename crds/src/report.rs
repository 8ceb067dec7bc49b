//! How every binary of the project words a failure: `error: <what> : <cause> : <cause>`, each
//! cause once. Library errors often repeat their source in their own message (`cannot reach
//! ovsdb-server: No such file or directory (os error 2)` with that same `io::Error` as source);
//! printing the chain naively says the cause twice.

use std::error::Error;

/// `e` and its causes joined with `: `, leaving out a cause whose text the message so far
/// already contains.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// A duration as a person reads it: `60 s`, `1.5 s`, `250 ms`, `2 min 5 s` (never
/// `60.0002433s`).
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        let tenths = (secs * 10.0).round() / 10.0;
        return if tenths.fract() == 0.0 {
            format!("{tenths:.0} s")
        } else {
            format!("{tenths:.1} s")
        };
    }
    let whole = secs.round() as u64;
    match (whole / 60, whole % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_says_them() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_micros(60_000_243)), "1 min");
        assert_eq!(human_duration(Duration::from_millis(60_000)), "1 min");
        assert_eq!(human_duration(Duration::from_millis(125_400)), "2 min 5 s");
        assert_eq!(human_duration(Duration::from_millis(1_500)), "1.5 s");
        assert_eq!(human_duration(Duration::from_millis(2_000)), "2 s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_millis(30_200)), "30 s");
    }

    #[derive(Debug)]
    struct Outer(std::io::Error, bool);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.1 {
                write!(f, "cannot reach ovsdb-server: {}", self.0)
            } else {
                f.write_str("cannot reach ovsdb-server")
            }
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::from_raw_os_error(2);
        assert_eq!(
            error_chain(&Outer(io(), true)),
            "cannot reach ovsdb-server: No such file or directory (os error 2)"
        );
        assert_eq!(
            error_chain(&Outer(io(), false)),
            "cannot reach ovsdb-server: No such file or directory (os error 2)"
        );
    }
}
