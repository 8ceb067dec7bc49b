//! Whether a SIGTERM is an uninstall: pure, from what the API server said about the agent's own
//! DaemonSet.
//!
//! A pod gets SIGTERM on an uninstall and just as well on a rolling update, a `kubectl delete
//! pod`, or a node shutdown. Only an uninstall may reset the node: resetting VFs on an update
//! would pull them out of running pods. The rule:
//!
//! | at start (arming) | at SIGTERM | decision |
//! |---|---|---|
//! | never read the DaemonSet | anything | keep (the check was never shown to work here) |
//! | read it, uid U | read it, uid U, no `deletionTimestamp` | keep: a restart |
//! | read it, uid U | read it, another uid | keep: replaced, the new DaemonSet's agent takes over |
//! | read it, uid U | `deletionTimestamp` set (foreground deletion) | uninstall |
//! | read it, uid U | 404 (background deletion: the object is gone before its pods) | uninstall |
//! | read it, uid U | 401 (the ServiceAccount is deleted: its tokens are rejected) | uninstall |
//! | read it, uid U | 403 (our Role or binding is deleted) | uninstall |
//! | read it, uid U | any other error, or no answer in time | keep, and log why |
//!
//! Arming first matters: a DaemonSet renamed by an overlay, or RBAC that never granted the read,
//! answers 404 or 403 on every restart; refusing to arm on those keeps every rolling update from
//! looking like an uninstall. `kubectl delete -k` deletes in the rendered order (the Namespace,
//! the ServiceAccounts and the RBAC come before the DaemonSets); `helm uninstall` deletes the
//! DaemonSets first, then the RBAC, then the ServiceAccounts, without waiting for the pods. The
//! pods get SIGTERM only when the garbage collector (or the namespace controller) gets to them,
//! so by then either order usually has removed the RBAC or the ServiceAccount too: 401 and 403
//! count, as long as the same check worked at start.

/// What the API server answered about the agent's DaemonSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The object, with its uid and whether it is being deleted (`deletionTimestamp`).
    Found {
        /// `metadata.uid`.
        uid: String,
        /// `metadata.deletionTimestamp` is set.
        deleting: bool,
    },
    /// 404.
    NotFound,
    /// 401: our token is rejected.
    Unauthorized,
    /// 403: our token is valid, the read is not allowed (any more).
    Forbidden,
    /// Any other error (the message).
    Error(String),
    /// No answer in time.
    TimedOut,
}

/// What the agent does when it stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Reset the node and remove our files ([`super::clean`]).
    Uninstall(String),
    /// Leave the node as it is; the reason, for the log.
    Keep(String),
}

/// The decision at SIGTERM. `armed` is the uid of the DaemonSet read at start (`None`: the read
/// never succeeded); `now` is what the API server answers now. See the module documentation.
pub fn decide(armed: Option<&str>, now: &Lookup) -> Decision {
    let Some(uid) = armed else {
        return Decision::Keep(format!(
            "the agent's DaemonSet was never read since the start ({}), so an uninstall cannot be told from a restart",
            describe(now)
        ));
    };
    match now {
        Lookup::Found {
            uid: u,
            deleting: false,
        } if u == uid => Decision::Keep("the DaemonSet is live: a restart".into()),
        Lookup::Found { uid: u, .. } if u != uid => Decision::Keep(format!(
            "the DaemonSet was replaced (uid {uid} -> {u}): its new pod takes over"
        )),
        Lookup::Found { .. } => Decision::Uninstall("the DaemonSet is being deleted".into()),
        Lookup::NotFound => Decision::Uninstall("the DaemonSet is deleted (404)".into()),
        Lookup::Unauthorized => Decision::Uninstall(
            "the API server rejects our token (401): the ServiceAccount is deleted".into(),
        ),
        Lookup::Forbidden => Decision::Uninstall(
            "reading the DaemonSet is forbidden now (403): our RBAC is deleted".into(),
        ),
        Lookup::Error(_) | Lookup::TimedOut => Decision::Keep(format!(
            "cannot tell an uninstall from a restart: {}",
            describe(now)
        )),
    }
}

/// Whether a start-up read arms the check: only a live DaemonSet does, giving its uid.
pub fn arms(at_start: &Lookup) -> Option<&str> {
    match at_start {
        Lookup::Found {
            uid,
            deleting: false,
        } => Some(uid),
        _ => None,
    }
}

fn describe(l: &Lookup) -> String {
    match l {
        Lookup::Found { uid, deleting } => {
            format!(
                "found, uid {uid}{}",
                if *deleting { ", deleting" } else { "" }
            )
        }
        Lookup::NotFound => "not found (404)".into(),
        Lookup::Unauthorized => "unauthorized (401)".into(),
        Lookup::Forbidden => "forbidden (403)".into(),
        Lookup::Error(e) => format!("error: {e}"),
        Lookup::TimedOut => "no answer in time".into(),
    }
}

/// Who still holds a VF or an attachment on this node (CNI records, DRA prepared claims), one
/// line each. Non-empty: the uninstall resets nothing and removes nothing.
pub fn holders_block(holders: &[String]) -> Option<String> {
    (!holders.is_empty()).then(|| {
        format!(
            "{} attachment(s) or claim(s) still hold devices: {}; the node is left as it is \
             (VFs, CNI binary and files): delete those pods before uninstalling",
            holders.len(),
            holders.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(uid: &str, deleting: bool) -> Lookup {
        Lookup::Found {
            uid: uid.into(),
            deleting,
        }
    }

    fn uninstall(d: &Decision) -> bool {
        matches!(d, Decision::Uninstall(_))
    }

    #[test]
    fn a_live_daemonset_is_a_restart() {
        let d = decide(Some("u1"), &found("u1", false));
        assert_eq!(d, Decision::Keep("the DaemonSet is live: a restart".into()));
    }

    #[test]
    fn a_deleted_or_deleting_daemonset_is_an_uninstall() {
        assert!(uninstall(&decide(Some("u1"), &Lookup::NotFound)));
        assert!(uninstall(&decide(Some("u1"), &found("u1", true))));
    }

    #[test]
    fn a_rejected_token_or_removed_rbac_is_an_uninstall() {
        assert!(uninstall(&decide(Some("u1"), &Lookup::Unauthorized)));
        assert!(uninstall(&decide(Some("u1"), &Lookup::Forbidden)));
    }

    #[test]
    fn a_replaced_daemonset_keeps_the_node() {
        for deleting in [false, true] {
            let d = decide(Some("u1"), &found("u2", deleting));
            assert!(
                matches!(&d, Decision::Keep(r) if r.contains("replaced")),
                "{d:?}"
            );
        }
    }

    #[test]
    fn errors_and_timeouts_keep_the_node_and_say_why() {
        let d = decide(Some("u1"), &Lookup::Error("connection refused".into()));
        assert!(
            matches!(&d, Decision::Keep(r) if r.contains("connection refused")),
            "{d:?}"
        );
        let d = decide(Some("u1"), &Lookup::TimedOut);
        assert!(
            matches!(&d, Decision::Keep(r) if r.contains("no answer in time")),
            "{d:?}"
        );
    }

    #[test]
    fn without_a_successful_read_at_start_nothing_is_an_uninstall() {
        for now in [
            Lookup::NotFound,
            Lookup::Unauthorized,
            Lookup::Forbidden,
            found("u1", true),
            found("u1", false),
            Lookup::TimedOut,
        ] {
            let d = decide(None, &now);
            assert!(
                matches!(&d, Decision::Keep(r) if r.contains("never read")),
                "{now:?}: {d:?}"
            );
        }
    }

    #[test]
    fn only_a_live_daemonset_arms_the_check() {
        assert_eq!(arms(&found("u1", false)), Some("u1"));
        for l in [
            found("u1", true),
            Lookup::NotFound,
            Lookup::Unauthorized,
            Lookup::Forbidden,
            Lookup::Error("x".into()),
            Lookup::TimedOut,
        ] {
            assert_eq!(arms(&l), None, "{l:?}");
        }
    }

    #[test]
    fn holders_block_the_uninstall_and_are_named() {
        assert_eq!(holders_block(&[]), None);
        let m = holders_block(&["pod ns1/p1 (VF 0000:3b:00.2)".into()]).unwrap_or_default();
        assert!(m.contains("pod ns1/p1 (VF 0000:3b:00.2)"), "{m}");
    }
}
