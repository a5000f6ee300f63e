//! Farm balancing: which members of a farm a caller may pick, and the two built-in policies.
//!
//! One implementation serves every caller: the Rust client library's local picks, the REST
//! API's `GET /v1/services/<name>/pick` for callers in other languages, and the simulator's
//! callers, whose picks the `farm_chaos` checkers judge. Like the rest of `core` it is pure:
//! a round-robin turn and a Monte Carlo draw arrive as inputs.
//!
//! - A member may be picked when it is not draining and its weight is above zero.
//! - **Round robin** goes through the pickable members in the order given (instance order,
//!   as the registry lists them): turn `t` picks position `t mod n`. A member that joins or
//!   leaves shifts the rotation by one position, no more.
//! - **Monte Carlo** picks a member with probability proportional to its share,
//!   `weight / (1 + load)`: a member reporting load gets fewer picks, one at weight 0 none.

/// What balancing needs to know of a member.
pub trait Candidate {
    fn weight(&self) -> u32;
    fn load(&self) -> u64;
    fn draining(&self) -> bool;
}

/// Whether a member may be picked at all.
pub fn pickable(member: &impl Candidate) -> bool {
    !member.draining() && member.weight() > 0
}

/// A member's share of Monte Carlo picks: `weight / (1 + load)`.
pub fn share(member: &impl Candidate) -> f64 {
    f64::from(member.weight()) / (1.0 + member.load() as f64)
}

/// Round robin's pick at turn `turn` among `count` members, if there is any.
pub fn round_robin(turn: u64, count: usize) -> Option<usize> {
    (count > 0).then(|| (turn % count as u64) as usize)
}

/// Monte Carlo's pick for a uniform `draw` in `[0, 1)`: a member with probability
/// proportional to its share; none if no member has a share.
pub fn monte_carlo<C: Candidate>(members: &[C], draw: f64) -> Option<usize> {
    let total: f64 = members.iter().map(share).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut point = draw.clamp(0.0, 1.0) * total;
    for (index, member) in members.iter().enumerate() {
        let member_share = share(member);
        point -= member_share;
        if point < 0.0 && member_share > 0.0 {
            return Some(index);
        }
    }
    // Rounding left the point at the very end: the last member with a share.
    members.iter().rposition(|member| share(member) > 0.0)
}

/// `n` distinct members (at most every one with a share) drawn by their shares, without
/// replacement; `draw` gives one uniform number in `[0, 1)` per pick.
pub fn monte_carlo_distinct<C: Candidate>(
    members: &[C],
    n: usize,
    mut draw: impl FnMut() -> f64,
) -> Vec<usize> {
    let mut left: Vec<usize> = (0..members.len())
        .filter(|&index| share(&members[index]) > 0.0)
        .collect();
    let mut picked = Vec::with_capacity(n.min(left.len()));
    while picked.len() < n && !left.is_empty() {
        let remaining: Vec<&C> = left.iter().map(|&index| &members[index]).collect();
        let Some(position) = monte_carlo(&remaining, draw()) else {
            break;
        };
        picked.push(left.remove(position));
    }
    picked
}

impl<C: Candidate> Candidate for &C {
    fn weight(&self) -> u32 {
        (*self).weight()
    }
    fn load(&self) -> u64 {
        (*self).load()
    }
    fn draining(&self) -> bool {
        (*self).draining()
    }
}

impl Candidate for crate::store::services::MemberEntry {
    fn weight(&self) -> u32 {
        self.weight
    }
    fn load(&self) -> u64 {
        self.load
    }
    fn draining(&self) -> bool {
        self.draining
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[derive(Clone, Debug)]
    struct Member {
        weight: u32,
        load: u64,
        draining: bool,
    }

    impl Candidate for Member {
        fn weight(&self) -> u32 {
            self.weight
        }
        fn load(&self) -> u64 {
            self.load
        }
        fn draining(&self) -> bool {
            self.draining
        }
    }

    fn member(weight: u32, load: u64) -> Member {
        Member {
            weight,
            load,
            draining: false,
        }
    }

    /// Draws `draws` Monte Carlo picks at `seed` and returns the count per member.
    fn monte_carlo_counts(members: &[Member], seed: u64, draws: u32) -> Vec<f64> {
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        let mut counts = vec![0.0; members.len()];
        for _ in 0..draws {
            let index = monte_carlo(members, random.random()).expect("a member has a share");
            counts[index] += 1.0;
        }
        counts
    }

    fn chi_square(counts: &[f64], members: &[Member], draws: u32) -> f64 {
        let total: f64 = members.iter().map(share).sum();
        counts
            .iter()
            .zip(members)
            .filter(|(_, member)| share(*member) > 0.0)
            .map(|(observed, member)| {
                let expected = share(member) / total * f64::from(draws);
                (observed - expected).powi(2) / expected
            })
            .sum()
    }

    #[test]
    fn monte_carlo_follows_weight_over_one_plus_load() {
        // Shares 3, 1, 1 (weight 2 at load 1) and 0.
        let members = [member(3, 0), member(1, 0), member(2, 1), member(0, 0)];
        let draws = 60_000;
        let counts = monte_carlo_counts(&members, 42, draws);
        assert_eq!(counts[3], 0.0, "a zero weight is never picked");
        // 2 degrees of freedom: 13.8 is the 0.1% critical value.
        let chi = chi_square(&counts, &members, draws);
        assert!(chi < 13.8, "chi-square {chi:.2} for {counts:?}");
    }

    #[test]
    fn the_chi_square_test_would_notice_a_skewed_balancer() {
        // The same counts judged against other weights fail: the test above has teeth.
        let members = [member(3, 0), member(1, 0), member(2, 1)];
        let draws = 60_000;
        let counts = monte_carlo_counts(&members, 42, draws);
        let skewed = [member(2, 0), member(1, 0), member(2, 1)];
        assert!(chi_square(&counts, &skewed, draws) > 13.8);
    }

    #[test]
    fn nothing_to_pick_gives_none() {
        assert_eq!(round_robin(5, 0), None);
        assert_eq!(monte_carlo::<Member>(&[], 0.5), None);
        assert_eq!(monte_carlo(&[member(0, 0), member(0, 3)], 0.5), None);
        assert_eq!(monte_carlo(&[member(1, 0)], 0.999_999_999), Some(0));
        assert_eq!(monte_carlo(&[member(1, 0), member(0, 0)], 1.0), Some(0));
    }

    #[test]
    fn distinct_picks_take_each_member_once_and_skip_zero_shares() {
        let members = [member(1, 0), member(0, 0), member(5, 0)];
        let mut random = ChaCha8Rng::seed_from_u64(3);
        let mut picked = monte_carlo_distinct(&members, 5, || random.random());
        picked.sort_unstable();
        assert_eq!(picked, [0, 2]);
    }

    proptest! {
        /// Over any number of whole rounds, and any turn to start from, every member gets the
        /// same number of picks; part of a round leaves every count within one of the others.
        #[test]
        fn round_robin_is_even_within_one(count in 1usize..20, start in any::<u64>(), picks in 0usize..200) {
            let mut counts = vec![0usize; count];
            for turn in 0..picks as u64 {
                counts[round_robin(start.wrapping_add(turn), count).unwrap()] += 1;
            }
            let (low, high) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            prop_assert!(high - low <= 1, "{counts:?}");
        }

        /// Monte Carlo never picks a member without a share (weight 0), and the callers'
        /// filter never lets a draining one through.
        #[test]
        fn a_zero_weight_or_draining_member_is_never_picked(
            members in proptest::collection::vec((0u32..4, 0u64..10, any::<bool>()), 1..12),
            draws in proptest::collection::vec(0.0f64..1.0, 1..50),
        ) {
            let members: Vec<Member> = members
                .into_iter()
                .map(|(weight, load, draining)| Member { weight, load, draining })
                .collect();
            let candidates: Vec<&Member> = members.iter().filter(|m| pickable(*m)).collect();
            for draw in draws {
                if let Some(index) = monte_carlo(&candidates, draw) {
                    prop_assert!(candidates[index].weight > 0 && !candidates[index].draining);
                } else {
                    prop_assert!(candidates.is_empty());
                }
            }
        }
    }
}
