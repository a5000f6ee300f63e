//! Shrinking a non-linearizable partition to the few operations that show why.
//!
//! Two passes, both within their own step budget:
//! 1. Prefix: the shortest prefix (in invocation order, growing by doubling) that is already
//!    not linearizable. Operations invoked later are dropped.
//! 2. Relaxation: from the latest operation back to the first, each operation with a known
//!    answer is relaxed to "unknown outcome" (it may take effect at any time after its
//!    invocation, or never, and its answer matches anything). If the partition is still not
//!    linearizable, the operation's answer was not needed and it stays relaxed.
//!
//! Relaxing rather than deleting keeps the explanation honest: a stale read is explained by
//! the read *and* the writes that make it stale, not by "a read of a value never written".
//! Every relaxed operation can float to many places, so each attempt has a step allowance
//! proportional to the prefix; an attempt that exceeds it keeps its operation, and the
//! explanation is then valid but not minimal.

use super::model::Model;
use super::search::{SearchOperation, SearchOutcome, StepBudget, search};

/// Steps allowed to one relaxation attempt: a base, plus this many per operation of the prefix.
const ATTEMPT_STEPS_BASE: u64 = 1_000;
const ATTEMPT_STEPS_PER_OPERATION: u64 = 50;

/// Returns the indexes (into `operations`, ascending) of the operations whose known answers
/// conflict, and whether the shrinking finished within the budget.
pub(crate) fn minimize_violation<M: Model>(
    model: &M,
    initial_state: &M::State,
    operations: Vec<SearchOperation<'_, M::Input, M::Output>>,
    budget: &mut StepBudget,
) -> (Vec<usize>, bool) {
    let mut by_invocation: Vec<usize> = (0..operations.len()).collect();
    by_invocation.sort_by_key(|&index| (operations[index].invoked_at, index));
    let mut candidate: Vec<SearchOperation<'_, M::Input, M::Output>> = by_invocation
        .iter()
        .map(|&index| operations[index].clone())
        .collect();
    let Some(prefix_length) = shortest_failing_prefix(model, initial_state, &candidate, budget)
    else {
        return (known_operations(&operations, &by_invocation), false);
    };
    candidate.truncate(prefix_length);
    let mut finished = true;
    let attempt_steps_max = ATTEMPT_STEPS_BASE + ATTEMPT_STEPS_PER_OPERATION * prefix_length as u64;
    for position in (0..candidate.len()).rev() {
        if candidate[position].completed_at.is_none() {
            continue;
        }
        let original = candidate[position].clone();
        candidate[position].output = None;
        candidate[position].completed_at = None;
        let mut attempt_budget = budget.split(attempt_steps_max);
        let outcome = search(
            model,
            initial_state.clone(),
            &candidate,
            &mut attempt_budget,
        );
        budget.absorb(attempt_budget);
        match outcome {
            SearchOutcome::NotLinearizable => {}
            SearchOutcome::Linearizable => candidate[position] = original,
            SearchOutcome::BudgetExhausted => {
                candidate[position] = original;
                finished = false;
                if budget.remaining == 0 {
                    break;
                }
            }
        }
    }
    let mut kept: Vec<usize> = (0..prefix_length)
        .filter(|&position| candidate[position].completed_at.is_some())
        .map(|position| by_invocation[position])
        .collect();
    kept.sort_unstable();
    (kept, finished)
}

/// The length of the shortest prefix of `ordered` (operations in invocation order), among
/// 1, 2, 4, ... and the whole, that is not linearizable; `None` when the budget ran out.
fn shortest_failing_prefix<M: Model>(
    model: &M,
    initial_state: &M::State,
    ordered: &[SearchOperation<'_, M::Input, M::Output>],
    budget: &mut StepBudget,
) -> Option<usize> {
    let mut length = 1;
    while length < ordered.len() {
        match search(model, initial_state.clone(), &ordered[..length], budget) {
            SearchOutcome::NotLinearizable => return Some(length),
            SearchOutcome::Linearizable => length *= 2,
            SearchOutcome::BudgetExhausted => return None,
        }
    }
    Some(ordered.len())
}

/// Every operation with a known answer, ascending: the unshrunk explanation.
fn known_operations<Input, Output>(
    operations: &[SearchOperation<'_, Input, Output>],
    by_invocation: &[usize],
) -> Vec<usize> {
    let mut known: Vec<usize> = by_invocation
        .iter()
        .copied()
        .filter(|&index| operations[index].completed_at.is_some())
        .collect();
    known.sort_unstable();
    known
}
