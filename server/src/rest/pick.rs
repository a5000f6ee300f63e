//! Picking farm members for callers that are not Rust (`GET /v1/services/<name>/pick`).
//!
//! Candidates are the members that are not draining and have a weight above zero. Round robin
//! goes through them in instance order with a counter per group kept by the serving node (so
//! each node runs its own rotation: even per node, not across nodes). Monte Carlo draws with
//! probability proportional to `weight / (1 + load)`, without replacement when several are
//! asked for.

use rafting_core::farm::{self, pickable};
use rafting_core::store::services::MemberEntry;
use rand::Rng;

/// The members that may be picked, in instance order.
pub fn candidates(members: &[MemberEntry]) -> Vec<&MemberEntry> {
    members.iter().filter(|member| pickable(*member)).collect()
}

/// `n` distinct members (at most all of them) starting at position `counter` of the rotation.
pub fn round_robin<'a>(
    candidates: &[&'a MemberEntry],
    counter: u64,
    n: usize,
) -> Vec<&'a MemberEntry> {
    (0..n.min(candidates.len()) as u64)
        .filter_map(|offset| farm::round_robin(counter.wrapping_add(offset), candidates.len()))
        .map(|index| candidates[index])
        .collect()
}

/// `n` distinct members (at most all of them) drawn by their shares, without replacement.
pub fn monte_carlo<'a>(
    candidates: &[&'a MemberEntry],
    random: &mut impl Rng,
    n: usize,
) -> Vec<&'a MemberEntry> {
    farm::monte_carlo_distinct(candidates, n, || random.random())
        .into_iter()
        .map(|index| candidates[index])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::Millis;
    use rafting_core::store::SessionId;
    use rafting_core::store::services::Role;
    use rand::SeedableRng;

    fn member(instance: &str, weight: u32, load: u64, draining: bool) -> MemberEntry {
        MemberEntry {
            instance: instance.into(),
            role: Role::Active,
            addresses: Default::default(),
            priority: 0,
            weight,
            load,
            draining,
            drained_by_self: draining,
            drained_by_operator: false,
            meta: Default::default(),
            session: SessionId::new(1),
            expires_at: Millis(0),
        }
    }

    #[test]
    fn round_robin_is_even_over_the_live_members() {
        let members = [
            member("a", 1, 0, false),
            member("b", 1, 0, false),
            member("c", 1, 0, false),
        ];
        let candidates = candidates(&members);
        let mut counts = [0; 3];
        for counter in 0..300 {
            let picked = round_robin(&candidates, counter, 1);
            counts[(picked[0].instance.as_bytes()[0] - b'a') as usize] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
        let two = round_robin(&candidates, 2, 2);
        assert_eq!(
            two.iter().map(|m| m.instance.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
    }

    #[test]
    fn draining_and_zero_weight_members_are_never_picked() {
        let members = [
            member("a", 0, 0, false),
            member("b", 1, 0, true),
            member("c", 1, 0, false),
        ];
        let candidates = candidates(&members);
        assert_eq!(candidates.len(), 1);
        let mut random = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            assert_eq!(monte_carlo(&candidates, &mut random, 3)[0].instance, "c");
        }
    }

    #[test]
    fn monte_carlo_picks_distinct_members_by_share() {
        let members = [
            member("a", 3, 0, false),
            member("b", 1, 0, false),
            member("c", 2, 1, false),
        ];
        let candidates = candidates(&members);
        let mut random = rand::rngs::StdRng::seed_from_u64(42);
        let distinct = monte_carlo(&candidates, &mut random, 5);
        assert_eq!(distinct.len(), 3, "at most every candidate, each once");
        let mut names: Vec<&str> = distinct.iter().map(|m| m.instance.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
