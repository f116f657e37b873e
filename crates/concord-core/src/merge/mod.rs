//! Model merging of single-task runs (dynamics.md §5): train one parent per task from the same
//! init θ₀, take the task vectors τ_t = θ_t − θ₀ of the trunk, merge them, and put each task's
//! own parent head on the merged trunk.
//!
//! **Setting (ours)**: only the trunk is merged; head t of the merged point is parent t's head t
//! (Ilharco et al. likewise merge only the encoder under fixed heads). Parent t is the preset's
//! run (same data, seed, optimizer, steps, batches) with the `constant` aggregator at the one-hot
//! weights e_t, so the trunk follows task t's gradient alone; the trainer gives every head its own
//! loss's gradient, and the optimizers are element-wise, so heads s ≠ t never touch the trunk or
//! head t. [`train_parents`] puts those other heads back to θ₀: parent t is then exactly "task t
//! trained alone, the other heads untouched", and its losses on the other tasks are those of
//! their initial heads on its trunk.
//!
//! Methods, each over flat vectors: [`task_arithmetic`] (θ₀ + λΣτ_t), [`ties`] (trim, elect,
//! disjoint mean) and [`projective`] (DOGE: project the shared update orthogonally to the tasks'
//! shared subspace). [`barrier`] measures the merged point's loss barrier to each parent.
//! [`evaluate`] merges parents already trained (the page's arena runs) and measures the merged
//! point; [`plane`] is the plane of merged models the page draws.

pub mod barrier;
pub mod evaluate;
pub mod plane;
pub mod projective;
pub mod task_arithmetic;
pub mod ties;

pub use barrier::{task_barriers, TaskBarrier, BARRIER_POINTS};
pub use evaluate::{evaluate, MergedPoint};
pub use plane::MergePlane;
pub use projective::{projective, ProjectiveConfig};
pub use task_arithmetic::task_arithmetic;
pub use ties::ties;

use crate::aggregators::AggregatorSpec;
use crate::model::Layout;
use crate::train::{TrainConfig, Trainer};
use crate::MethodSpec;

/// How the task vectors are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMethod {
    TaskArithmetic,
    Ties,
    Projective,
}

impl MergeMethod {
    pub const ALL: [MergeMethod; 3] = [MergeMethod::TaskArithmetic, MergeMethod::Ties, MergeMethod::Projective];

    pub fn name(self) -> &'static str {
        match self {
            MergeMethod::TaskArithmetic => "task-arithmetic",
            MergeMethod::Ties => "ties",
            MergeMethod::Projective => "projective",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        MergeMethod::ALL.into_iter().find(|m| m.name() == text.trim()).ok_or_else(|| {
            let names: Vec<_> = MergeMethod::ALL.iter().map(|m| m.name()).collect();
            format!("unknown merge method '{text}' (expected one of: {})", names.join(", "))
        })
    }

    /// The published default λ: 0.4 (the TIES notebook's task arithmetic), 1 (TIES), 0.07
    /// (FusionBench's DOGE `lamda`).
    pub fn default_lambda(self) -> f64 {
        match self {
            MergeMethod::TaskArithmetic => task_arithmetic::DEFAULT_LAMBDA,
            MergeMethod::Ties => ties::DEFAULT_LAMBDA,
            MergeMethod::Projective => projective::DEFAULT_LAMBDA,
        }
    }
}

/// A merge: the method and its λ (for `projective`, DOGE's `lamda`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergeSpec {
    pub how: MergeMethod,
    pub lambda: f64,
}

impl MergeSpec {
    pub fn new(how: MergeMethod, lambda: Option<f64>) -> Result<Self, String> {
        let lambda = lambda.unwrap_or(how.default_lambda());
        let ok = match how {
            MergeMethod::Projective => lambda.is_finite() && lambda > 0.0,
            _ => lambda.is_finite(),
        };
        if !ok {
            let what = if how == MergeMethod::Projective { "a positive number" } else { "a finite number" };
            return Err(format!("lambda for {} must be {what}, got {lambda}", how.name()));
        }
        Ok(MergeSpec { how, lambda })
    }
}

/// The trunk task vectors τ_t = θ_t[trunk] − θ₀[trunk].
pub fn trunk_task_vectors(layout: &Layout, base: &[f64], parents: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = layout.shared_len;
    parents.iter().map(|p| p[..n].iter().zip(&base[..n]).map(|(a, b)| a - b).collect()).collect()
}

/// The merged parameter vector: θ₀'s trunk plus the merged trunk task vector, and head t from
/// parent t. `parents` has one full vector per task (as many as the layout's heads).
pub fn merge(spec: &MergeSpec, layout: &Layout, base: &[f64], parents: &[Vec<f64>]) -> Result<Vec<f64>, String> {
    if base.len() != layout.total_len || parents.iter().any(|p| p.len() != layout.total_len) {
        return Err(format!("every parameter vector must have the model's {} entries", layout.total_len));
    }
    if parents.len() != layout.heads.len() {
        return Err(format!("{} parents for {} tasks", parents.len(), layout.heads.len()));
    }
    let taus = trunk_task_vectors(layout, base, parents);
    let delta = match spec.how {
        MergeMethod::TaskArithmetic => task_arithmetic(&taus, spec.lambda),
        MergeMethod::Ties => ties(&taus, ties::DEFAULT_KEEP, spec.lambda),
        MergeMethod::Projective => {
            projective(&layout.trunk, &taus, &ProjectiveConfig { lamda: spec.lambda, ..Default::default() })?
        }
    };
    let mut merged = base.to_vec();
    for (m, d) in merged.iter_mut().zip(&delta) {
        *m += d;
    }
    for (t, p) in parents.iter().enumerate() {
        let r = layout.head_range(t);
        merged[r.clone()].copy_from_slice(&p[r]);
    }
    Ok(merged)
}

/// Parent t's method: `constant` at the one-hot weights e_t (no loss or sample weighting).
pub fn parent_method(m: usize, task: usize) -> Result<MethodSpec, String> {
    let weights: Vec<String> = (0..m).map(|s| if s == task { "1" } else { "0" }.to_string()).collect();
    let aggregator = AggregatorSpec::parse("constant", &[("weights".into(), weights.join(","))])?;
    Ok(MethodSpec { aggregator, weighting: None, sample_weighting: None })
}

/// Parent t as a merge takes it from a run trained with [`parent_method`]: its trunk and head
/// t, the other heads put back to θ₀ (the trainer gave them their own losses' gradients).
pub fn as_parent(layout: &Layout, base: &[f64], trained: &[f64], task: usize) -> Vec<f64> {
    let mut p = trained.to_vec();
    for s in (0..layout.heads.len()).filter(|&s| s != task) {
        let r = layout.head_range(s);
        p[r.clone()].copy_from_slice(&base[r]);
    }
    p
}

/// The parents of a merge and their common init.
#[derive(Clone, Debug, PartialEq)]
pub struct Parents {
    /// θ₀: the config's seeded init.
    pub base: Vec<f64>,
    /// θ_t for each task, heads s ≠ t at θ₀.
    pub parents: Vec<Vec<f64>>,
    pub layout: Layout,
}

/// Trains one parent per task from `config`'s init (its data, seed, optimizer, steps and
/// batches; its method is replaced by [`parent_method`]). MLP models only: an analytic problem
/// has no trunk and heads, and an MoE model's layout is not the MLP's.
pub fn train_parents(config: &TrainConfig) -> Result<Parents, String> {
    let probe = Trainer::new(config.clone())?;
    let layout = match probe.mlp() {
        Some(mlp) => mlp.layout().clone(),
        None => {
            return Err(format!(
                "merging needs an MLP with a trunk and task heads; this run has {}",
                if probe.moe().is_some() { "an MoE model" } else { "no model (it trains x directly)" }
            ))
        }
    };
    let base = probe.params().to_vec();
    let m = probe.num_tasks();
    let mut parents = Vec::with_capacity(m);
    for t in 0..m {
        let mut c = config.clone();
        c.method = parent_method(m, t)?;
        let mut trainer = Trainer::new(c)?;
        trainer.run_to_end(|_| {});
        if let Some(e) = trainer.error() {
            return Err(format!("the parent of task {t} failed: {e}"));
        }
        parents.push(as_parent(&layout, &base, trainer.params(), t));
    }
    Ok(Parents { base, parents, layout })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::LayerSlice;
    use crate::train::{preset, Precision, TrainOptimizer};

    /// dynamics.md §5's three task vectors.
    pub(crate) const TAUS: [[f64; 5]; 3] =
        [[0.5, -0.1, 0.3, 0.0, -0.8], [-0.4, 0.2, 0.1, 0.6, -0.2], [0.3, -0.7, 0.05, -0.1, 0.4]];

    pub(crate) fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "entry {i}: {g} vs {w} (tol {tol}); got {got:?}");
        }
    }

    /// A 1 → `hidden` tanh trunk and two 1-output MSE heads.
    pub(crate) fn two_head_layout(hidden: usize) -> Layout {
        use crate::model::{Activation, HeadConfig, LossKind, MlpConfig};
        let config = MlpConfig {
            input_dim: 1,
            hidden: vec![hidden],
            activation: Activation::Tanh,
            heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Mse }; 2],
            tied_head_init: false,
            head_init_scale: 1.0,
        };
        Layout::new(&config)
    }

    /// Layout 1-1 trunk (w, b) then heads (w, b) × 2: the trunk is θ₀ + λΣτ by hand and each head
    /// is its own parent's, whatever λ.
    #[test]
    fn merge_puts_each_parents_head_on_the_merged_trunk() {
        let layout = two_head_layout(1);
        assert_eq!((layout.shared_len, layout.total_len), (2, 6));
        let base = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let parents = vec![vec![1.5, 1.0, 30.0, 40.0, 5.0, 6.0], vec![0.0, 2.5, 3.0, 4.0, 50.0, 60.0]];
        let spec = MergeSpec::new(MergeMethod::TaskArithmetic, Some(0.5)).unwrap();
        let merged = merge(&spec, &layout, &base, &parents).unwrap();
        // trunk: 1 + 0.5·(0.5 − 1) = 0.75; 2 + 0.5·(−1 + 0.5) = 1.75.
        assert_close(&merged, &[0.75, 1.75, 30.0, 40.0, 50.0, 60.0], 1e-15);
        assert!(merge(&spec, &layout, &base, &parents[..1]).is_err());
        assert!(MergeSpec::new(MergeMethod::Projective, Some(0.0)).is_err());
        assert!(MergeSpec::new(MergeMethod::Ties, Some(f64::NAN)).is_err());
        assert_eq!(MergeMethod::parse("ties"), Ok(MergeMethod::Ties));
        assert!(MergeMethod::parse("average").is_err());
    }

    /// One full-batch SGD step (lr 0.1, f64): parent t is θ₀ − 0.1·∇L_t(θ₀) on the trunk and head t,
    /// computed here from the objective's task gradient, and θ₀ on the other heads.
    #[test]
    fn a_parent_is_one_task_trained_alone() {
        let mut config = preset("xor-conflict").unwrap();
        config.steps = 1;
        config.batch_size = None;
        config.precision = Precision::F64;
        config.optimizer = TrainOptimizer::sgd(0.1, 0.0);
        let p = train_parents(&config).unwrap();
        let trainer = Trainer::new(config).unwrap();
        let objective = trainer.objective();
        for t in 0..2 {
            let g = objective.gradient(&p.base, Some(t)).unwrap();
            let want: Vec<f64> = p.base.iter().zip(&g).map(|(b, g)| b - 0.1 * g).collect();
            assert_close(&p.parents[t], &want, 1e-12);
            let other = p.layout.head_range(1 - t);
            assert_eq!(&p.parents[t][other.clone()], &p.base[other]);
        }
    }

    /// `tests/fixtures/merge/merge.json`, written by `tests/fixtures/make_merge_fixtures.py`: the
    /// three methods re-implemented in numpy on three task vectors over a 4→6→3 trunk. TA and TIES
    /// within 1e-14; DOGE (400 Adam steps, two SVDs per layer) within 1e-10.
    #[test]
    fn numpy_fixture_matches() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/merge/merge.json")).expect("fixture JSON");
        let floats = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
        };
        let taus: Vec<Vec<f64>> = v["taus"].as_array().unwrap().iter().map(floats).collect();
        let layers: Vec<LayerSlice> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(l, x)| {
                let r = |k: &str| x[k][0].as_u64().unwrap() as usize..x[k][1].as_u64().unwrap() as usize;
                LayerSlice {
                    name: format!("trunk.{l}"),
                    fan_in: x["fan_in"].as_u64().unwrap() as usize,
                    fan_out: x["fan_out"].as_u64().unwrap() as usize,
                    weight: r("weight"),
                    bias: r("bias"),
                }
            })
            .collect();
        assert_close(&task_arithmetic(&taus, 0.4), &floats(&v["task_arithmetic_0.4"]), 1e-14);
        assert_close(&ties(&taus, 0.2, 1.0), &floats(&v["ties_0.2_1"]), 1e-14);
        assert_close(&ties(&taus, 0.4, 0.7), &floats(&v["ties_0.4_0.7"]), 1e-14);
        let doge = |lamda, lr, steps, min_k| {
            let config = ProjectiveConfig { lamda, lr, steps, min_k, ..Default::default() };
            projective(&layers, &taus, &config).unwrap()
        };
        assert_close(&doge(0.07, 1e-4, 400, 1), &floats(&v["doge_default"]), 1e-10);
        assert_close(&doge(0.07, 1e-4, 400, 0), &floats(&v["doge_published_k"]), 1e-10);
        assert_close(&doge(0.5, 1e-2, 300, 1), &floats(&v["doge_fast"]), 1e-10);
    }

    #[test]
    fn analytic_runs_cannot_be_merged() {
        let err = train_parents(&preset("pareto-synthetic").unwrap()).unwrap_err();
        assert!(err.contains("MLP"), "{err}");
    }
}
