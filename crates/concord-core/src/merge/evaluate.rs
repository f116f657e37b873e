//! One merge of parents already trained, measured: the merged vector, its per-task losses on
//! the objective (the training set) and its barrier to each parent. The page merges its arena's
//! parent runs with this; `concord merge` trains its own parents ([`super::train_parents`]).

use super::{merge, task_barriers, MergeSpec, Parents, TaskBarrier};
use crate::landscape::Objective;

#[derive(Clone, Debug, PartialEq)]
pub struct MergedPoint {
    pub spec: MergeSpec,
    pub params: Vec<f64>,
    /// Per-task loss at the merged point.
    pub losses: Vec<f64>,
    /// Task t's barrier along parent t → merged point.
    pub barriers: Vec<TaskBarrier>,
}

pub fn evaluate(spec: &MergeSpec, objective: &dyn Objective, parents: &Parents) -> Result<MergedPoint, String> {
    let params = merge(spec, &parents.layout, &parents.base, &parents.parents)?;
    let losses = objective.losses(&params)?;
    let barriers = task_barriers(objective, &parents.parents, &params)?;
    Ok(MergedPoint { spec: *spec, params, losses, barriers })
}
