//! Status conditions the operator owns: built with `observedGeneration`, and keeping
//! `lastTransitionTime` unless the status flips (so that `kubectl get -w` shows real
//! transitions, not every reconcile).

use crds::k8s::{Condition, Time, jiff::Timestamp};

/// A condition to set, without its timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type (`Valid`, `Ready`, `Applied`, `Draining`).
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message naming the field or object.
    pub message: String,
}

impl Cond {
    /// A new condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `existing` with each of `set` replaced or added (other types are kept, in their order; new
/// types are appended). A replaced condition keeps its `lastTransitionTime` when its status did
/// not change.
pub fn merge(
    existing: &[Condition],
    set: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for c in set {
        let status = status_str(c.status);
        let built = |ltt: Time| Condition {
            type_: c.type_.to_owned(),
            status: status.to_owned(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            observed_generation: generation,
            last_transition_time: ltt,
        };
        match out.iter_mut().find(|o| o.type_ == c.type_) {
            Some(o) => {
                let ltt = if o.status == status {
                    o.last_transition_time.clone()
                } else {
                    Time(now)
                };
                *o = built(ltt);
            }
            None => out.push(built(Time(now))),
        }
    }
    out
}

/// Whether `set` (at `generation`) is already what `existing` says, ignoring timestamps: when it
/// is, the status write can be skipped.
pub fn up_to_date(existing: &[Condition], set: &[Cond], generation: Option<i64>) -> bool {
    set.iter().all(|c| {
        existing.iter().any(|o| {
            o.type_ == c.type_
                && o.status == status_str(c.status)
                && o.reason == c.reason
                && o.message == c.message
                && o.observed_generation == generation
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_is_kept_unless_the_status_flips() {
        let first = merge(
            &[],
            &[Cond::new("Ready", true, "Rendered", "ok")],
            Some(1),
            at(100),
        );
        assert_eq!(first[0].last_transition_time, Time(at(100)));
        assert_eq!(first[0].observed_generation, Some(1));

        let same = merge(
            &first,
            &[Cond::new("Ready", true, "Rendered", "still ok")],
            Some(2),
            at(200),
        );
        assert_eq!(
            same[0].last_transition_time,
            Time(at(100)),
            "same status keeps the time"
        );
        assert_eq!(same[0].message, "still ok");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(
            &same,
            &[Cond::new("Ready", false, "Invalid", "bad")],
            Some(3),
            at(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn other_types_are_kept_and_new_ones_appended() {
        let existing = merge(
            &[],
            &[Cond::new("Synced", true, "Applied", "")],
            Some(1),
            at(1),
        );
        let out = merge(
            &existing,
            &[Cond::new("Draining", true, "Evicting", "2 pods")],
            Some(1),
            at(2),
        );
        let types: Vec<_> = out.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Synced", "Draining"]);
        assert!(up_to_date(
            &out,
            &[Cond::new("Draining", true, "Evicting", "2 pods")],
            Some(1)
        ));
        assert!(!up_to_date(
            &out,
            &[Cond::new("Draining", true, "Evicting", "1 pod")],
            Some(1)
        ));
        assert!(!up_to_date(
            &out,
            &[Cond::new("Draining", true, "Evicting", "2 pods")],
            Some(2)
        ));
    }
}
