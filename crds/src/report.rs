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

#[cfg(test)]
mod tests {
    use super::*;

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
