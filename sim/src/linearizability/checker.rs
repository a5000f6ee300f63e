//! The entry point: check a whole history against a model, partition by partition, within a
//! deterministic step budget, and explain a violation with a small set of operations.

use super::explanation::minimize_violation;
use super::history::{History, OperationId};
use super::model::{Model, Partition};
use super::search::{SearchOperation, SearchOutcome, StepBudget, search};
use std::fmt::{self, Debug};

/// Limits of one check. Budgets count search steps, not time, so a verdict is the same on
/// every machine and every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Search steps allowed for the whole history. When they run out the verdict is
    /// [`Verdict::Unknown`], never [`Verdict::Linearizable`].
    pub steps_max: u64,
    /// Further search steps allowed to shrink the explanation of a violation.
    pub explanation_steps_max: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            steps_max: 20_000_000,
            explanation_steps_max: 2_000_000,
        }
    }
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations, consistent with real time, explains every answer.
    Linearizable,
    /// No such order exists.
    NotLinearizable(Violation),
    /// The step budget ran out before the search could decide.
    Unknown {
        /// The partition being searched when the budget ran out.
        partition: String,
    },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The partition that cannot be linearized (for the key-value model, its keys).
    pub partition: String,
    /// Operations whose answers cannot all be explained together, in history order. Even if
    /// every other operation of the partition were allowed to take effect at any time after
    /// its invocation, or never, these answers would still conflict.
    pub operations: Vec<OperationId>,
    /// True when the explanation was shrunk as far as the method allows; false when its
    /// budget ran out first (the operations listed are then a larger, still valid, witness).
    pub minimized: bool,
}

impl Violation {
    /// A readable account of the violation: one line per operation involved.
    pub fn explain<Input: Debug, Output: Debug>(&self, history: &History<Input, Output>) -> String {
        let mut text = format!("not linearizable on {}:\n", self.partition);
        for &id in &self.operations {
            if let Some(operation) = history.operation(id) {
                let answer = match operation.output() {
                    Some(output) => format!("{output:?}"),
                    None => String::from("unknown"),
                };
                let completed = operation
                    .completed_at()
                    .map_or(String::from("?"), |time| time.to_string());
                text.push_str(&format!(
                    "  {id} {} [{} .. {completed}] {:?} -> {answer}\n",
                    operation.client, operation.invoked_at, operation.input
                ));
            }
        }
        text
    }
}

/// The verdict and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub verdict: Verdict,
    /// Operations in partitions whose search finished (all of them when linearizable).
    pub operations_checked: usize,
    /// Partitions the model split the history into.
    pub partitions: usize,
    /// Search steps spent deciding, not counting the explanation.
    pub steps_used: u64,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match &self.verdict {
            Verdict::Linearizable => String::from("linearizable"),
            Verdict::NotLinearizable(violation) => {
                format!("not linearizable on {}", violation.partition)
            }
            Verdict::Unknown { partition } => format!("unknown (budget spent on {partition})"),
        };
        write!(
            formatter,
            "{verdict}: {} operations checked in {} partitions, {} steps",
            self.operations_checked, self.partitions, self.steps_used
        )
    }
}

/// Checks `history` against `model`.
///
/// Partitions are searched smallest first, so that a tight budget decides as many of them as
/// possible; the first violation found ends the check.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
) -> CheckReport
where
    M::Input: Debug,
    M::Output: Debug,
{
    let mut partitions = model.partition(history);
    partitions.sort_by(|left, right| {
        (left.operations.len(), &left.label).cmp(&(right.operations.len(), &right.label))
    });
    let mut budget = StepBudget::new(options.steps_max);
    let mut report = CheckReport {
        verdict: Verdict::Linearizable,
        operations_checked: 0,
        partitions: partitions.len(),
        steps_used: 0,
    };
    for partition in &partitions {
        let operations = search_operations(history, &partition.operations);
        let outcome = search(
            model,
            model.initial_state(partition),
            &operations,
            &mut budget,
        );
        report.steps_used = budget.used;
        match outcome {
            SearchOutcome::Linearizable => {
                report.operations_checked += partition.operations.len();
            }
            SearchOutcome::NotLinearizable => {
                report.operations_checked += partition.operations.len();
                report.verdict = Verdict::NotLinearizable(explain_partition(
                    model, partition, operations, options,
                ));
                return report;
            }
            SearchOutcome::BudgetExhausted => {
                report.verdict = Verdict::Unknown {
                    partition: partition.label.clone(),
                };
                return report;
            }
        }
    }
    report
}

/// The search's view of some operations of a history, in the order given.
fn search_operations<'history, Input, Output>(
    history: &'history History<Input, Output>,
    ids: &[OperationId],
) -> Vec<SearchOperation<'history, Input, Output>> {
    ids.iter()
        .map(|&id| {
            let operation = &history.operations()[id.0];
            SearchOperation {
                input: &operation.input,
                output: operation.output(),
                invoked_at: operation.invoked_at,
                completed_at: operation.completed_at(),
            }
        })
        .collect()
}

fn explain_partition<M: Model>(
    model: &M,
    partition: &Partition,
    operations: Vec<SearchOperation<'_, M::Input, M::Output>>,
    options: &CheckOptions,
) -> Violation {
    let mut budget = StepBudget::new(options.explanation_steps_max);
    let initial_state = model.initial_state(partition);
    let (kept, minimized) = minimize_violation(model, &initial_state, operations, &mut budget);
    Violation {
        partition: partition.label.clone(),
        operations: kept
            .into_iter()
            .map(|index| partition.operations[index])
            .collect(),
        minimized,
    }
}
