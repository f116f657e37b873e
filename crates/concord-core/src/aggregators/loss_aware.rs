//! The one `Aggregator` impl shared by the loss-aware aggregators whose update is a step of
//! their own state on (losses, J) and reports no weights (MoCo, DB-MTL): without losses every
//! L_i = 1 (callers without losses refuse them), and the f32 path widens J because the state is
//! f64.
use nalgebra::{DMatrix, DVector};

/// A loss-aware aggregator's step on its f64 state.
pub(crate) trait LossAwareStep {
    /// The update d (length n) from the losses and J (m × n); advances the state.
    fn step(&mut self, losses: &[f64], jacobian: &DMatrix<f64>) -> DVector<f64>;
    /// Forget the state (`Aggregator::reset`).
    fn clear(&mut self);
}

/// `impl Aggregator for $t` through its [`LossAwareStep`] (a macro: the blanket
/// `impl<W: Weighting> Aggregator for W` leaves no room for a second blanket impl).
macro_rules! loss_aware_aggregator {
    ($t:ty) => {
        impl $crate::aggregators::Aggregator for $t {
            fn aggregate(&mut self, jacobian: &nalgebra::DMatrix<f64>) -> $crate::aggregators::Aggregation {
                self.aggregate_with_losses(jacobian, &vec![1.0; jacobian.nrows()])
            }

            fn aggregate_with_losses(
                &mut self,
                jacobian: &nalgebra::DMatrix<f64>,
                losses: &[f64],
            ) -> $crate::aggregators::Aggregation {
                let update = $crate::aggregators::loss_aware::LossAwareStep::step(self, losses, jacobian);
                $crate::aggregators::Aggregation { update, weights: None }
            }

            fn aggregate_f32_with_losses(
                &mut self,
                jacobian: &$crate::aggregators::JacobianF32,
                losses: &[f64],
            ) -> $crate::aggregators::AggregationF32 {
                let d = $crate::aggregators::loss_aware::LossAwareStep::step(self, losses, &jacobian.to_f64());
                $crate::aggregators::AggregationF32 { update: d.iter().map(|&x| x as f32).collect(), weights: None }
            }

            fn reset(&mut self) {
                $crate::aggregators::loss_aware::LossAwareStep::clear(self);
            }
        }
    };
}
pub(crate) use loss_aware_aggregator;
