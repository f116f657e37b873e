//! Routing statistics of one batch, per task (what the MoE panel and the CLI JSON show).

use super::aux::AuxValues;
use super::routing::Routing;
use super::{load_balance, mutual_info};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRouting {
    /// Fraction of the batch's tokens each expert processes for this task (after capacity).
    #[serde(with = "crate::train::float_serde::floats")]
    pub load: Vec<f64>,
    /// P_i: mean router probability of each expert.
    #[serde(with = "crate::train::float_serde::floats")]
    pub router_prob: Vec<f64>,
    /// f_i: fraction of tokens whose top-1 expert (by probability) is i.
    #[serde(with = "crate::train::float_serde::floats")]
    pub top1_fraction: Vec<f64>,
    /// Token→expert assignments dropped for capacity.
    pub dropped: usize,
    /// Tokens no expert processed (they passed through the residual only).
    pub unrouted: usize,
    pub capacity: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingStats {
    pub tasks: Vec<TaskRouting>,
    /// P(t,e): router probability mass of task t on expert e over all tokens (rows: tasks).
    #[serde(with = "crate::train::float_serde::float_rows")]
    pub task_expert: Vec<Vec<f64>>,
    pub aux: AuxValues,
}

impl TaskRouting {
    pub fn from_routing(r: &Routing) -> Self {
        let t = r.tokens() as f64;
        TaskRouting {
            load: r.dispatch.column_iter().map(|c| c.sum() / t).collect(),
            router_prob: load_balance::mean_probs(&r.probs),
            top1_fraction: load_balance::top1_fractions(&r.probs),
            dropped: r.dropped,
            unrouted: r.dispatch.row_iter().filter(|row| row.sum() == 0.0).count(),
            capacity: r.capacity,
        }
    }
}

impl RoutingStats {
    /// The statistics of one batch from its gate groups' routings (`group_of[t]`: the group that
    /// routes task t) and its aux-loss values: the CPU pass's routings and a GPU step's read-back
    /// ones (`Moe::routing_stats`) go through this one function.
    pub fn from_routings(routings: &[Routing], group_of: &[usize], aux: AuxValues) -> Self {
        let task_probs: Vec<&DMatrix<f64>> = group_of.iter().map(|&g| &routings[g].probs).collect();
        RoutingStats {
            tasks: group_of.iter().map(|&g| TaskRouting::from_routing(&routings[g])).collect(),
            task_expert: matrix_rows(&mutual_info::joint(&task_probs)),
            aux,
        }
    }
}

pub fn matrix_rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    m.row_iter().map(|r| r.iter().copied().collect()).collect()
}
