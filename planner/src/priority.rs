//! The one precedence rule between `NicPolicy` objects.
//!
//! **A lower `spec.priority` number wins. Between equal priorities, the policy whose name sorts
//! first (byte-wise ascending) wins.** So `priority: 10` beats `priority: 20`, and between two
//! `priority: 10` policies `a-fast` beats `b-slow`.
//!
//! Every place that orders policies (the node planner, the admission webhook's conflict
//! messages, status reports) calls [`cmp_precedence`]; nothing else orders policies. The rule is
//! total: two distinct policies never tie, because names are unique.

use std::cmp::Ordering;

use crds::NicPolicy;

/// Orders two policies by precedence: `Less` means `a` wins over `b`.
pub fn cmp_precedence(a_priority: u32, a_name: &str, b_priority: u32, b_name: &str) -> Ordering {
    a_priority.cmp(&b_priority).then_with(|| a_name.cmp(b_name))
}

/// [`cmp_precedence`] on two policy objects.
pub fn cmp_policies(a: &NicPolicy, b: &NicPolicy) -> Ordering {
    cmp_precedence(
        a.spec.priority,
        policy_name(a),
        b.spec.priority,
        policy_name(b),
    )
}

/// Sorts policies so that the winner comes first.
pub fn sort_by_precedence(policies: &mut [&NicPolicy]) {
    policies.sort_by(|a, b| cmp_policies(a, b));
}

/// The policy's name (`metadata.name`), empty when unset.
pub fn policy_name(p: &NicPolicy) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_number_wins_then_name_ascending() {
        assert_eq!(cmp_precedence(10, "z", 20, "a"), Ordering::Less);
        assert_eq!(cmp_precedence(20, "a", 10, "z"), Ordering::Greater);
        assert_eq!(cmp_precedence(10, "a-fast", 10, "b-slow"), Ordering::Less);
        assert_eq!(cmp_precedence(0, "x", 99, "a"), Ordering::Less);
    }

    #[test]
    fn sorting_puts_the_winner_first() {
        let mk = |name: &str, priority| {
            let mut p = NicPolicy::new(name, Default::default());
            p.spec.priority = priority;
            p
        };
        let (a, b, c) = (mk("b", 5), mk("a", 5), mk("c", 1));
        let mut v = vec![&a, &b, &c];
        sort_by_precedence(&mut v);
        let names: Vec<_> = v.iter().map(|p| policy_name(p)).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }
}
