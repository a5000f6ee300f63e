//! The Wing & Gong search, with Lowe's memoization, over the operations of one partition.
//!
//! Every operation becomes two entries, its call and its return, sorted by time in a doubly
//! linked list. The search walks the list from the front. At a call it tries to linearize the
//! operation now: if the model accepts the operation's answer and the resulting (set of
//! linearized operations, state) pair was never seen before, the operation's two entries are
//! unlinked ("lifted") and the walk restarts from the front. At a return it has run out of
//! candidates: the operation that returns there should already have been linearized, so the
//! search undoes its most recent choice and tries the next candidate after it. The history is
//! linearizable when every operation with a known outcome has been lifted.
//!
//! The walk is iterative, with an explicit stack of choices, so long histories cannot overflow
//! the thread's stack. Lifting and unlifting are O(1) ("dancing links").
//!
//! An operation of unknown outcome returns at +infinity, after every known return. Reaching
//! such a return therefore means that every known operation has been linearized, and the
//! unknown ones still unlinked are taken never to have happened.

use super::history::Timestamp;
use super::model::Model;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, DefaultHasher};

/// One operation as the search sees it. `output` and `completed_at` are `None` together when
/// the outcome is unknown (or deliberately relaxed to unknown by the explanation minimizer).
pub(crate) struct SearchOperation<'history, Input, Output> {
    pub input: &'history Input,
    pub output: Option<&'history Output>,
    pub invoked_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl<Input, Output> Clone for SearchOperation<'_, Input, Output> {
    fn clone(&self) -> Self {
        Self {
            input: self.input,
            output: self.output,
            invoked_at: self.invoked_at,
            completed_at: self.completed_at,
        }
    }
}

/// A deterministic allowance of search steps, shared by every search of one check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepBudget {
    pub remaining: u64,
    pub used: u64,
}

impl StepBudget {
    pub fn new(steps_max: u64) -> Self {
        Self {
            remaining: steps_max,
            used: 0,
        }
    }

    /// A smaller allowance of at most `steps_max` steps, taken out of this one; give it back
    /// with [`StepBudget::absorb`].
    pub fn split(&self, steps_max: u64) -> Self {
        Self::new(steps_max.min(self.remaining))
    }

    /// Charges this allowance with the steps a split of it used.
    pub fn absorb(&mut self, split: StepBudget) {
        self.remaining -= split.used;
        self.used += split.used;
    }

    /// Takes one step; false when the allowance is spent.
    fn take(&mut self) -> bool {
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        self.used += 1;
        true
    }
}

/// How one search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    Linearizable,
    NotLinearizable,
    BudgetExhausted,
}

/// The call and return entries of all operations, as a doubly linked list over arrays.
/// Index 0 is the head sentinel and the last index the tail sentinel.
struct EntryList {
    next: Vec<usize>,
    previous: Vec<usize>,
    /// For each entry between the sentinels: its operation, and whether it is the call.
    operation_of_entry: Vec<(usize, bool)>,
    call_entry: Vec<usize>,
    return_entry: Vec<usize>,
}

const HEAD: usize = 0;

impl EntryList {
    fn new<Input, Output>(operations: &[SearchOperation<'_, Input, Output>]) -> Self {
        // Sort key: (returns at infinity last, time, calls before returns at equal times,
        // operation index for a deterministic order). Calls first at equal times makes
        // touching intervals concurrent, the permissive reading.
        let mut keyed: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            keyed.push((false, operation.invoked_at.0, false, index));
            let completed = operation.completed_at;
            keyed.push((
                completed.is_none(),
                completed.map_or(0, |time| time.0),
                true,
                index,
            ));
        }
        keyed.sort_unstable();
        let entry_count = keyed.len();
        let tail = entry_count + 1;
        let mut list = Self {
            next: (1..=tail).chain([tail]).collect(),
            previous: [HEAD].into_iter().chain(0..=entry_count).collect(),
            operation_of_entry: vec![(usize::MAX, false)],
            call_entry: vec![0; operations.len()],
            return_entry: vec![0; operations.len()],
        };
        for (position, (_, _, is_return, operation)) in keyed.into_iter().enumerate() {
            let entry = position + 1;
            list.operation_of_entry.push((operation, !is_return));
            if is_return {
                list.return_entry[operation] = entry;
            } else {
                list.call_entry[operation] = entry;
            }
        }
        list
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn unlink(&mut self, entry: usize) {
        let (before, after) = (self.previous[entry], self.next[entry]);
        self.next[before] = after;
        self.previous[after] = before;
    }

    fn relink(&mut self, entry: usize) {
        let (before, after) = (self.previous[entry], self.next[entry]);
        self.next[before] = entry;
        self.previous[after] = entry;
    }

    /// Removes an operation's call and return; undone by `unlift` in reverse order.
    fn lift(&mut self, operation: usize) {
        self.unlink(self.call_entry[operation]);
        self.unlink(self.return_entry[operation]);
    }

    fn unlift(&mut self, operation: usize) {
        self.relink(self.return_entry[operation]);
        self.relink(self.call_entry[operation]);
    }
}

/// A fixed-size set of operation indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(size: usize) -> Self {
        Self(vec![0; size.div_ceil(64)])
    }

    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

/// A fixed hasher, so that step counts (and thus budget verdicts) are the same on every run.
type FixedHasher = BuildHasherDefault<DefaultHasher>;

/// Searches for a linearization of `operations`, starting from `initial_state`.
pub(crate) fn search<M: Model>(
    model: &M,
    initial_state: M::State,
    operations: &[SearchOperation<'_, M::Input, M::Output>],
    budget: &mut StepBudget,
) -> SearchOutcome {
    let mut list = EntryList::new(operations);
    let tail = list.tail();
    let mut linearized = Bitset::new(operations.len());
    let mut seen: HashSet<(Bitset, M::State), FixedHasher> = HashSet::default();
    let mut choices: Vec<(usize, M::State)> = Vec::new();
    let mut state = initial_state;
    let mut entry = list.first();
    while entry != tail {
        if !budget.take() {
            return SearchOutcome::BudgetExhausted;
        }
        let (operation, is_call) = list.operation_of_entry[entry];
        if is_call {
            let candidate = &operations[operation];
            let next_state = model.step(&state, candidate.input, candidate.output);
            if let Some(next_state) = next_state {
                linearized.set(operation);
                if seen.insert((linearized.clone(), next_state.clone())) {
                    choices.push((operation, std::mem::replace(&mut state, next_state)));
                    list.lift(operation);
                    entry = list.first();
                    continue;
                }
                linearized.clear(operation);
            }
            entry = list.next[entry];
        } else if operations[operation].completed_at.is_none() {
            // Only operations of unknown outcome are left: they never took effect.
            return SearchOutcome::Linearizable;
        } else {
            let Some((undone, previous_state)) = choices.pop() else {
                return SearchOutcome::NotLinearizable;
            };
            state = previous_state;
            linearized.clear(undone);
            list.unlift(undone);
            entry = list.next[list.call_entry[undone]];
        }
    }
    SearchOutcome::Linearizable
}
