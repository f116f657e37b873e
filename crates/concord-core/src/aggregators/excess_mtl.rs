//! ExcessMTL (He et al., ICML 2024, "Robust Multi-Task Learning with Excess Risks"), torchjd 0.18
//! `_excess_mtl.py` semantics (methods-wave2.md §1a).
//!
//! State: S = 0 (m × n), w = 1/m, baseline e⁰ unset, t = 0. Each call:
//!     S ← S + J⊙J,   e_i = Σ_k J_ik² / √(S_ik + 1e-7)        (AdaGrad-style excess-risk proxy)
//! During the first `n_warmup_steps` calls e is summed and w stays uniform. The first call after
//! warmup sets the baseline: e⁰ = the warmup mean (and e ← e/(e⁰ + 1e-7)) or, without warmup,
//! e⁰ = e with e used raw on that call; later calls use e/(e⁰ + 1e-7). Then
//!     w ← softmax(log w + η·e),   d = Jᵀw.
//! Weighted (d = Jᵀw), but w depends on J elementwise (the per-coordinate S), not on G: it
//! implements [`Aggregator`] directly. No documented property row (torchjd). Stateful: the state
//! is re-initialised when the shape (m, n) changes, as torchjd's does.
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use super::{Aggregation, Aggregator};
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "excess-mtl",
    label: "ExcessMTL",
    description:
        "Exponentiated-gradient task weights driven by per-task excess-risk estimates (AdaGrad-scaled squared gradients).",
    params: &[
        param(
            "robust_step_size",
            ParamDefault::Value("1"),
            // torchjd: > 0. A step of 1e3 already saturates the softmax at every call.
            Range::Positive { max: 1e3 },
            "step size η of the exponentiated weight update (must be > 0)",
        ),
        param(
            "n_warmup_steps",
            ParamDefault::Value("0"),
            Range::Count { max: 1_000_000 },
            "calls with uniform weights that only collect the baseline excess risk",
        ),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; returns weights (d = Jᵀw) that depend on J elementwise, not on G; stateful"),
    ),
    gramian_weighted: false,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

/// The torchjd constant added under the square root and to the baseline.
const EPS: f64 = 1e-7;

#[derive(Clone, Debug)]
pub struct ExcessMtl {
    robust_step_size: f64,
    n_warmup_steps: u64,
    state: Option<State>,
}

#[derive(Clone, Debug)]
struct State {
    /// Σ J⊙J over the calls (m × n).
    sq_grad_sum: DMatrix<f64>,
    /// The current weights (on the simplex).
    weights: DVector<f64>,
    warmup_sum: DVector<f64>,
    baseline: Option<DVector<f64>>,
    steps: u64,
}

impl ExcessMtl {
    /// torchjd's checks: robust_step_size > 0 (finite here).
    pub fn new(robust_step_size: f64, n_warmup_steps: u64) -> Result<Self, String> {
        if !(robust_step_size.is_finite() && robust_step_size > 0.0) {
            return Err(format!("robust_step_size must be positive, got {robust_step_size}"));
        }
        Ok(ExcessMtl { robust_step_size, n_warmup_steps, state: None })
    }
}

impl Default for ExcessMtl {
    /// torchjd's defaults: η = 1, no warmup.
    fn default() -> Self {
        ExcessMtl { robust_step_size: 1.0, n_warmup_steps: 0, state: None }
    }
}

impl ExcessMtl {
    fn weights(&mut self, j: &DMatrix<f64>) -> DVector<f64> {
        let (m, n) = j.shape();
        if m == 0 {
            return DVector::zeros(0);
        }
        if j.iter().any(|v| !v.is_finite()) {
            // torchjd would poison its state with NaN for good; keep the state and the weights.
            let kept = self.state.as_ref().filter(|s| s.weights.len() == m);
            return kept.map_or(DVector::from_element(m, 1.0 / m as f64), |s| s.weights.clone());
        }
        if self.state.as_ref().is_none_or(|s| s.sq_grad_sum.shape() != (m, n)) {
            self.state = Some(State {
                sq_grad_sum: DMatrix::zeros(m, n),
                weights: DVector::from_element(m, 1.0 / m as f64),
                warmup_sum: DVector::zeros(m),
                baseline: None,
                steps: 0,
            });
        }
        let st = self.state.as_mut().expect("set above");
        let mut e = DVector::zeros(m);
        for k in 0..n {
            for i in 0..m {
                let sq = j[(i, k)] * j[(i, k)];
                let s = &mut st.sq_grad_sum[(i, k)];
                *s += sq;
                e[i] += sq / (*s + EPS).sqrt();
            }
        }
        if st.steps < self.n_warmup_steps {
            st.warmup_sum += &e;
            st.steps += 1;
            return st.weights.clone();
        }
        st.steps += 1;
        match &st.baseline {
            Some(b) => e.zip_apply(b, |x, b| *x /= b + EPS),
            None if self.n_warmup_steps > 0 => {
                let b = &st.warmup_sum / self.n_warmup_steps as f64;
                e.zip_apply(&b, |x, b| *x /= b + EPS);
                st.baseline = Some(b);
            }
            // The official code's behaviour: the first call's excess risk is the baseline and is
            // used raw on this call.
            None => st.baseline = Some(e.clone()),
        }
        // softmax(log w + η e), in log space so that a huge e saturates instead of overflowing.
        let logits: Vec<f64> =
            st.weights.iter().zip(e.iter()).map(|(w, e)| w.ln() + self.robust_step_size * e).collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        let w = DVector::from_iterator(m, exp.iter().map(|x| x / sum));
        if w.iter().all(|x| x.is_finite()) {
            st.weights = w;
        }
        st.weights.clone()
    }
}

impl Aggregator for ExcessMtl {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        let w = self.weights(jacobian);
        Aggregation { update: super::combine(jacobian, &w), weights: Some(w) }
    }

    fn reset(&mut self) {
        self.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn j1() -> DMatrix<f64> {
        DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, -1.0])
    }
    fn j2() -> DMatrix<f64> {
        DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 1.0, 1.0])
    }

    /// methods-wave2.md §1a "Test this" (torchjd 0.18 values).
    #[test]
    fn matches_the_reference_sequence() {
        let mut a = ExcessMtl::default();
        let first = a.aggregate(&j1());
        assert_abs_diff_eq!(first.weights.unwrap(), DVector::from_vec(vec![0.268941, 0.731059]), epsilon = 1e-6);
        assert_abs_diff_eq!(first.update, DVector::from_vec(vec![2.462117, -0.193176]), epsilon = 1e-6);
        let w2 = a.aggregate(&j1()).weights.unwrap();
        assert_abs_diff_eq!(w2, DVector::from_vec(vec![0.268941, 0.731059]), epsilon = 1e-6);
        let w3 = a.aggregate(&j2()).weights.unwrap();
        assert_abs_diff_eq!(w3, DVector::from_vec(vec![0.341333, 0.658667]), epsilon = 1e-6);
    }

    #[test]
    fn warmup_keeps_uniform_weights_then_uses_the_warmup_mean() {
        let mut a = ExcessMtl::new(0.5, 2).unwrap();
        let want = [[0.5, 0.5], [0.5, 0.5], [0.463714, 0.536286], [0.493672, 0.506328]];
        for (j, w) in [j1(), j2(), j1(), j2()].iter().zip(want) {
            assert_abs_diff_eq!(a.aggregate(j).weights.unwrap(), DVector::from_row_slice(&w), epsilon = 1e-6);
        }
        Aggregator::reset(&mut a);
        assert_abs_diff_eq!(a.aggregate(&j1()).weights.unwrap(), DVector::from_vec(vec![0.5, 0.5]), epsilon = 0.0);
    }

    #[test]
    fn a_shape_change_restarts_and_bad_input_keeps_the_state() {
        let mut a = ExcessMtl::default();
        a.aggregate(&j1());
        let w = a.aggregate(&DMatrix::from_row_slice(1, 2, &[1.0, 1.0])).weights.unwrap();
        assert_eq!(w, DVector::from_vec(vec![1.0]));
        let mut bad = j1();
        bad[(0, 0)] = f64::NAN;
        let w = a.aggregate(&bad).weights.unwrap();
        assert!(w.iter().all(|x| x.is_finite()));
        assert!(ExcessMtl::new(0.0, 0).is_err() && ExcessMtl::new(f64::NAN, 0).is_err());
    }
}
