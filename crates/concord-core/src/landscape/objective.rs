//! What a landscape is drawn from: per-task losses and per-task gradients of a flat parameter
//! vector. One trait so that directions, interpolation and curvature work the same way for the
//! MLP (on a fixed data set) and for the analytic problems (x is the parameter vector).

use crate::model::moe::Moe;
use crate::model::{Gradients, Mlp, Target};
use crate::problems::Problem;
use nalgebra::DMatrix;

/// Per-task losses L_t(θ) and gradients ∇L_t(θ) over the whole parameter vector.
/// The total is the sum Σ_t L_t (the surface the reference draws beside the per-task ones).
pub trait Objective: Sync {
    fn dim(&self) -> usize;
    fn num_tasks(&self) -> usize;
    fn losses(&self, params: &[f64]) -> Result<Vec<f64>, String>;
    /// m × dim: row t = ∇L_t(θ).
    fn task_gradients(&self, params: &[f64]) -> Result<DMatrix<f64>, String>;

    /// ∇ of task `task`'s loss, or of the total when `task` is `None`.
    fn gradient(&self, params: &[f64], task: Option<usize>) -> Result<Vec<f64>, String> {
        let j = self.task_gradients(params)?;
        match task {
            Some(t) if t >= j.nrows() => Err(format!("task {t} does not exist ({} tasks)", j.nrows())),
            Some(t) => Ok(j.row(t).iter().copied().collect()),
            None => Ok((0..j.ncols()).map(|c| j.column(c).sum()).collect()),
        }
    }
}

/// The MLP on a fixed batch (usually the whole training set, as the reference evaluates).
pub struct MlpObjective<'a> {
    pub mlp: &'a Mlp,
    pub x: &'a DMatrix<f64>,
    pub targets: &'a [Target],
}

impl Objective for MlpObjective<'_> {
    fn dim(&self) -> usize {
        self.mlp.layout().total_len
    }

    fn num_tasks(&self) -> usize {
        self.mlp.num_tasks()
    }

    fn losses(&self, params: &[f64]) -> Result<Vec<f64>, String> {
        self.mlp.losses(params, self.x, self.targets)
    }

    /// The shared Jacobian row of task t followed by zeros except on head t's own block:
    /// task t's loss does not read the other heads.
    fn task_gradients(&self, params: &[f64]) -> Result<DMatrix<f64>, String> {
        let g = self.mlp.gradients(params, self.x, self.targets)?;
        let layout = self.mlp.layout();
        Ok(full_jacobian(&g, layout.total_len, |t| layout.head_range(t)))
    }
}

/// An MoE model on a fixed batch: the task losses without the auxiliary routing losses, and
/// without routing noise (noisy top-k evaluates its clean logits), so the surface is a
/// deterministic function of θ.
pub struct MoeObjective<'a> {
    pub moe: &'a Moe,
    pub x: &'a DMatrix<f64>,
    pub targets: &'a [Target],
}

impl Objective for MoeObjective<'_> {
    fn dim(&self) -> usize {
        self.moe.layout().total_len
    }

    fn num_tasks(&self) -> usize {
        self.moe.num_tasks()
    }

    fn losses(&self, params: &[f64]) -> Result<Vec<f64>, String> {
        self.moe.losses(params, self.x, self.targets)
    }

    fn task_gradients(&self, params: &[f64]) -> Result<DMatrix<f64>, String> {
        let g = self.moe.gradients(params, self.x, self.targets, None)?.tasks;
        let layout = self.moe.layout();
        Ok(full_jacobian(&g, layout.total_len, |t| layout.head_range(t)))
    }
}

/// Row t = ∇L_t over all parameters: the shared block from the task Jacobian, task t's own
/// head block, zeros on the other heads (task t's loss does not read them).
fn full_jacobian(
    g: &Gradients,
    total_len: usize,
    head_range: impl Fn(usize) -> std::ops::Range<usize>,
) -> DMatrix<f64> {
    let (m, shared) = g.shared_jacobian.shape();
    let mut j = DMatrix::zeros(m, total_len);
    j.columns_mut(0, shared).copy_from(&g.shared_jacobian);
    for t in 0..m {
        for (k, c) in head_range(t).enumerate() {
            j[(t, c)] = g.head_grads[t][k];
        }
    }
    j
}

/// An analytic problem (CAGrad toy, Pareto-MTL synthetic): x itself is θ.
pub struct ProblemObjective<'a, P: Problem + Sync>(pub &'a P);

impl<P: Problem + Sync> Objective for ProblemObjective<'_, P> {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn num_tasks(&self) -> usize {
        self.0.num_tasks()
    }

    fn losses(&self, params: &[f64]) -> Result<Vec<f64>, String> {
        check_len(params, self.dim())?;
        Ok(self.0.losses(params))
    }

    fn task_gradients(&self, params: &[f64]) -> Result<DMatrix<f64>, String> {
        check_len(params, self.dim())?;
        let rows = self.0.jacobian(params);
        Ok(DMatrix::from_fn(rows.len(), self.dim(), |r, c| rows[r][c]))
    }
}

pub(crate) fn check_len(v: &[f64], dim: usize) -> Result<(), String> {
    if v.len() != dim {
        return Err(format!("expected a vector of {dim} parameters, got {}", v.len()));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(format!("parameter {i} is not finite ({})", v[i]));
    }
    Ok(())
}
