//! A training step's gradients through a conflict-aware sample-weighting stage
//! (`crate::sample_weighting`): the losses and the heads' gradients as in `Mlp::gradients`, and
//! the shared Jacobian rewritten from each sample's task Gram.

use super::loss::{loss_and_grad, Target};
use super::mlp::{linear, weight_t, Gradients, Mlp};
use super::PointGrams;
use crate::pause::finish;
use crate::sample_weighting::{SampleStageRecord, SampleWeightingSpec};
use nalgebra::DMatrix;

/// A step's gradients through a sample-weighting stage.
#[derive(Clone, Debug)]
pub struct StageGradients {
    /// The losses, the stage's J′ as `shared_jacobian`, the heads' gradients (unchanged).
    pub gradients: Gradients,
    /// The plain J (J_t = (1/B) Σ_i g_t(x_i)): what the recorded metrics describe.
    pub raw_jacobian: DMatrix<f64>,
    pub record: SampleStageRecord,
}

impl Mlp {
    /// [`Mlp::gradients`] with the shared Jacobian replaced by the stage's
    /// J′_t = (1/N) Σ_i Σ_s C_i[t][s] g_s(x_i) (`crate::sample_weighting`) at step `step` of the
    /// run, and the plain J. One batched forward pass, m batched backward passes for
    /// the samples' Grams, m for J′ and m for J: each row of the trunk-output gradient is remixed per sample, and the
    /// backward pass, linear in it, does the rest — no per-sample gradient vector is formed.
    pub fn stage_gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        stage: &SampleWeightingSpec,
        step: usize,
    ) -> Result<StageGradients, String> {
        finish(self.stage_gradients_paused(params, x, targets, stage, step))
    }

    /// [`Mlp::stage_gradients`], pausing after each layer (`crate::pause`).
    pub async fn stage_gradients_paused(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        stage: &SampleWeightingSpec,
        step: usize,
    ) -> Result<StageGradients, String> {
        self.check_inputs(params, x)?;
        self.check_targets(x, targets)?;
        let cache = self.trunk_forward(params, x).await;
        let h = cache.acts.last().expect("acts starts with x");
        let (b, m, layout) = (x.nrows(), self.num_tasks(), self.layout());
        let mut out = Gradients {
            losses: Vec::with_capacity(m),
            shared_jacobian: DMatrix::zeros(m, layout.shared_len),
            head_grads: Vec::with_capacity(m),
        };
        // Each task's per-sample gradient at the trunk's output: row i = ∂ℓ_t(x_i)/∂h (the
        // mean loss's gradient times B).
        let mut d_hs = Vec::with_capacity(m);
        for (t, s) in layout.heads.iter().enumerate() {
            let (loss, d_o) = loss_and_grad(self.config().heads[t].loss, &linear(params, s, h), &targets[t]);
            out.losses.push(loss);
            let mut head = h.tr_mul(&d_o).as_slice().to_vec();
            head.extend((0..s.fan_out).map(|j| d_o.column(j).sum()));
            out.head_grads.push(head);
            d_hs.push(d_o * weight_t(params, s).transpose() * b as f64);
        }
        let grams = PointGrams { m, grams: self.grams_from_output_grads(params, &cache, &d_hs) };
        let mix = stage.mix(&grams, step);
        let mut raw_jacobian = DMatrix::zeros(m, layout.shared_len);
        if layout.shared_len == 0 {
            return Ok(StageGradients { gradients: out, raw_jacobian, record: mix.record });
        }
        for t in 0..m {
            let row = self.trunk_backward(params, &cache, &d_hs[t] / b as f64).await;
            raw_jacobian.row_mut(t).copy_from_slice(&row);
            // Row i of dH′_t = (1/N) Σ_s C_i[t][s] · row i of dH_s (all zero when N = 0).
            let mut mixed = DMatrix::zeros(b, d_hs[t].ncols());
            for i in (0..b).filter(|_| mix.divisor > 0.0) {
                let c = &mix.coefficients_of(i)[t * m..(t + 1) * m];
                for (s, d_h) in d_hs.iter().enumerate().filter(|(s, _)| c[*s] != 0.0) {
                    let k = c[s] / mix.divisor;
                    mixed.row_mut(i).iter_mut().zip(d_h.row(i).iter()).for_each(|(acc, v)| *acc += k * v);
                }
            }
            let row = self.trunk_backward(params, &cache, mixed).await;
            out.shared_jacobian.row_mut(t).copy_from_slice(&row);
        }
        Ok(StageGradients { gradients: out, raw_jacobian, record: mix.record })
    }
}
