//! DB-MTL, dual-balancing (Lin et al. 2023; LibMTL `DB_MTL.py`, methods-wave2.md §2b). State:
//! B = 0 (m × n), t = 0. Each step, from the losses L and their shared-parameter gradients J:
//!     t ← t + 1,  G_log = rows g_i/(L_i + 1e-8)  (gradients of log(L_i + 1e-8)),
//!     B ← G_log + (β/t^{βσ})(B − G_log)           (EMA, zero start, no bias correction),
//!     α_i = max_j ‖B_j‖ / (‖B_i‖ + 1e-8),  d = Σ α_i B_i.
//!
//! **An aggregator that reads the losses** (`needs_losses`): LibMTL files it as a weighting, but
//! its update is built from the gradients J (tracked across steps in B) and the batch losses, not
//! from the losses alone, so it is not a loss weighting (those only return w with d = Jᵀw); and
//! d combines the *tracked* B, not the current J, so it is not Jᵀw either (no weights reported;
//! LibMTL logs ones). It runs wherever the trainer has the losses
//! (`Aggregator::aggregate_with_losses`); callers with a bare matrix refuse it. Its log-loss
//! gradients are the loss balancing half of the method, so a loss weighting on top is refused
//! (`MethodSpec::check_loss_aware`). Defaults β = 0.9, βσ = 0 (LibMTL). Losses enter through
//! `positive` (≥ 1e-12), so the 1/L blow-up stays finite. Stateful: `reset` and a change of J's
//! shape restart B and t.
use super::loss_aware::{loss_aware_aggregator, LossAwareStep};
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use crate::weightings::positive;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "db-mtl",
    label: "DB-MTL",
    description: "An EMA of the log-loss gradients g_i/L_i, every task scaled to the largest norm; d = Σ α_i B_i \
                  (LibMTL; reads the losses).",
    params: &[
        param("beta", ParamDefault::Value("0.9"), Range::UnitInterval, "EMA factor of the buffer (β/t^βσ)"),
        param(
            "beta_sigma",
            ParamDefault::Value("0"),
            Range::NonNegative { max: 10.0 },
            "decay exponent of the EMA factor",
        ),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some(
            "LibMTL, not in torchjd's table; d = Σ α_i B_i from tracked gradients, not Jᵀw; reads the losses; stateful",
        ),
    ),
    gramian_weighted: false,
    stateful: true,
    seeded: false,
    needs_losses: true,
};

#[derive(Clone, Debug)]
pub struct DbMtl {
    beta: f64,
    beta_sigma: f64,
    buffer: Option<DMatrix<f64>>,
    step: u64,
    alpha: DVector<f64>,
}

impl Default for DbMtl {
    /// LibMTL's defaults: `DB_beta` 0.9, `DB_beta_sigma` 0.
    fn default() -> Self {
        DbMtl::new(0.9, 0.0)
    }
}

impl DbMtl {
    pub fn new(beta: f64, beta_sigma: f64) -> Self {
        DbMtl { beta, beta_sigma, buffer: None, step: 0, alpha: DVector::zeros(0) }
    }

    /// The balancing factors α of the last step.
    pub fn alpha(&self) -> &DVector<f64> {
        &self.alpha
    }

    /// One step: the update d (length n). A shape change restarts the state.
    pub fn step(&mut self, losses: &[f64], jacobian: &DMatrix<f64>) -> DVector<f64> {
        let (m, n) = jacobian.shape();
        assert_eq!(losses.len(), m, "one loss per row of J");
        if self.buffer.as_ref().is_none_or(|b| b.shape() != (m, n)) {
            self.buffer = Some(DMatrix::zeros(m, n));
            self.step = 0;
        }
        self.step += 1;
        let rate = self.beta / (self.step as f64).powf(self.beta_sigma);
        let b = self.buffer.as_mut().expect("set above");
        for i in 0..m {
            let inv = 1.0 / (positive(losses[i]) + 1e-8);
            for k in 0..n {
                let g = jacobian[(i, k)] * inv;
                b[(i, k)] = g + rate * (b[(i, k)] - g);
            }
        }
        let norms: Vec<f64> = b.row_iter().map(|r| r.norm()).collect();
        let max = norms.iter().copied().fold(0.0, f64::max);
        self.alpha = DVector::from_iterator(m, norms.iter().map(|u| max / (u + 1e-8)));
        b.tr_mul(&self.alpha)
    }
}

impl LossAwareStep for DbMtl {
    fn step(&mut self, losses: &[f64], jacobian: &DMatrix<f64>) -> DVector<f64> {
        DbMtl::step(self, losses, jacobian)
    }

    fn clear(&mut self) {
        self.buffer = None;
        self.step = 0;
        self.alpha = DVector::zeros(0);
    }
}

loss_aware_aggregator!(DbMtl);

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// methods-wave2.md §2b "Test this" (a transcription of LibMTL's code).
    #[test]
    fn matches_the_transcribed_steps() {
        let mut db = DbMtl::default();
        let d = db.step(&[0.5, 2.0], &DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, -1.0]));
        assert_abs_diff_eq!(db.alpha().clone(), DVector::from_vec(vec![1.0, 2.828427]), epsilon = 1e-6);
        assert_abs_diff_eq!(d, DVector::from_vec(vec![0.624264, 0.258579]), epsilon = 1e-6);
        let d = db.step(&[0.4, 1.0], &DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 1.0, 1.0]));
        assert_abs_diff_eq!(db.alpha().clone(), DVector::from_vec(vec![1.0, 3.187960]), epsilon = 1e-6);
        assert_abs_diff_eq!(d, DVector::from_vec(vec![1.429171, 0.535338]), epsilon = 1e-6);
    }

    /// The same two steps through the registry (`db-mtl` as the CLI and the page name it), and
    /// `reset` restarts them.
    #[test]
    fn selectable_method_gives_the_same_steps() {
        let spec = crate::MethodSpec::parse("db-mtl").unwrap().aggregator;
        assert!(spec.needs_losses());
        let mut agg = spec.build(2, 0).unwrap();
        let j1 = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, -1.0]);
        for _ in 0..2 {
            let a = agg.aggregate_with_losses(&j1, &[0.5, 2.0]);
            assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.624264, 0.258579]), epsilon = 1e-6);
            assert!(a.weights.is_none(), "d = Σ α_i B_i is not Jᵀw");
            let j2 = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 1.0, 1.0]);
            let d = agg.aggregate_with_losses(&j2, &[0.4, 1.0]).update;
            assert_abs_diff_eq!(d, DVector::from_vec(vec![1.429171, 0.535338]), epsilon = 1e-6);
            agg.reset();
        }
    }
}
