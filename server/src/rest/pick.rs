//! Picking farm members for callers that are not Rust (`GET /v1/services/<name>/pick`).
//!
//! Candidates are the members that are not draining and have a weight above zero. Round robin
//! goes through them in instance order with a counter per group kept by the serving node (so
//! each node runs its own rotation: even per node, not across nodes). Monte Carlo draws with
//! probability proportional to `weight / (1 + load)`, without replacement when several are
//! asked for.

use rafting_core::store::services::MemberEntry;
use rand::Rng;

/// The members that may be picked, in instance order.
pub fn candidates(members: &[MemberEntry]) -> Vec<&MemberEntry> {
    members
        .iter()
        .filter(|member| !member.draining && member.weight > 0)
        .collect()
}

/// `n` distinct members (at most all of them) starting at position `counter` of the rotation.
pub fn round_robin<'a>(
    candidates: &[&'a MemberEntry],
    counter: u64,
    n: usize,
) -> Vec<&'a MemberEntry> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let start = (counter % candidates.len() as u64) as usize;
    (0..n.min(candidates.len()))
        .map(|offset| candidates[(start + offset) % candidates.len()])
        .collect()
}

/// A member's share in Monte Carlo picks.
pub fn share(member: &MemberEntry) -> f64 {
    f64::from(member.weight) / (1.0 + member.load as f64)
}

/// `n` distinct members (at most all of them) drawn by their shares, without replacement.
pub fn monte_carlo<'a>(
    candidates: &[&'a MemberEntry],
    random: &mut impl Rng,
    n: usize,
) -> Vec<&'a MemberEntry> {
    let mut left: Vec<&MemberEntry> = candidates.to_vec();
    let mut picked = Vec::with_capacity(n.min(left.len()));
    while picked.len() < n && !left.is_empty() {
        let total: f64 = left.iter().map(|member| share(member)).sum();
        let mut point = random.random::<f64>() * total;
        let mut chosen = left.len() - 1;
        for (position, member) in left.iter().enumerate() {
            point -= share(member);
            if point < 0.0 {
                chosen = position;
                break;
            }
        }
        picked.push(left.remove(chosen));
    }
    picked
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
    fn monte_carlo_follows_weight_over_one_plus_load() {
        // Shares 3, 1 and 1 (weight 2 with load 1).
        let members = [
            member("a", 3, 0, false),
            member("b", 1, 0, false),
            member("c", 2, 1, false),
        ];
        let candidates = candidates(&members);
        let mut random = rand::rngs::StdRng::seed_from_u64(42);
        let mut counts = [0f64; 3];
        let draws = 50_000;
        for _ in 0..draws {
            let picked = monte_carlo(&candidates, &mut random, 1);
            counts[(picked[0].instance.as_bytes()[0] - b'a') as usize] += 1.0;
        }
        let expected = [0.6, 0.2, 0.2].map(|p| p * f64::from(draws));
        let chi_square: f64 = counts
            .iter()
            .zip(expected)
            .map(|(observed, expected)| (observed - expected).powi(2) / expected)
            .sum();
        // 2 degrees of freedom: 13.8 is the 0.1% critical value.
        assert!(
            chi_square < 13.8,
            "chi-square {chi_square:.2} for {counts:?}"
        );
        let distinct = monte_carlo(&candidates, &mut random, 5);
        assert_eq!(distinct.len(), 3, "at most every candidate, each once");
    }
}
