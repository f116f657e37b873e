//! The plane of merged models (**ours**, for the page's picture): every point has the trunk
//! θ₀ + a·τ₀ + b·τ₁ (τ_t the parents' trunk task vectors) and each task's own parent head, the
//! family [`super::merge`] draws from. Parent t's own-task loss sits at its corner (a, b) = e_t,
//! θ₀'s trunk at (0, 0), and task arithmetic at λ is the diagonal point (λ, λ) exactly. TIES and
//! the projective merge move the trunk off the plane: [`MergePlane::coords`] gives the
//! least-squares coordinates and the share of the trunk step left off it. Only the first two
//! tasks span the plane.

use crate::landscape::vector::{dot, norm};
use crate::model::Layout;

#[derive(Clone, Debug, PartialEq)]
pub struct MergePlane {
    /// θ₀'s trunk with head t from parent t (every t).
    pub origin: Vec<f64>,
    /// τ₀ and τ₁ over the trunk (`shared_len` entries).
    pub taus: [Vec<f64>; 2],
    /// The inverse of the 2 × 2 Gram matrix of the τs (row-major).
    inverse: [f64; 4],
}

impl MergePlane {
    pub fn new(layout: &Layout, base: &[f64], parents: &[Vec<f64>]) -> Result<Self, String> {
        if parents.len() < 2 || parents.len() != layout.heads.len() {
            return Err(format!("the plane needs one parent per task and two tasks or more, got {}", parents.len()));
        }
        let taus = super::trunk_task_vectors(layout, base, &parents[..2]);
        let (g00, g01, g11) = (dot(&taus[0], &taus[0]), dot(&taus[0], &taus[1]), dot(&taus[1], &taus[1]));
        let det = g00 * g11 - g01 * g01;
        // Parallel (or zero) task vectors span no plane.
        if !(det > 1e-12 * (g00 * g11).max(f64::MIN_POSITIVE)) {
            return Err("the task vectors are (nearly) parallel or zero: they span no plane".into());
        }
        let mut origin = base.to_vec();
        for (t, p) in parents.iter().enumerate() {
            let r = layout.head_range(t);
            origin[r.clone()].copy_from_slice(&p[r]);
        }
        let mut taus = taus.into_iter();
        let (a, b) = (taus.next().expect("two"), taus.next().expect("two"));
        Ok(MergePlane { origin, taus: [a, b], inverse: [g11 / det, -g01 / det, -g01 / det, g00 / det] })
    }

    /// The plane's point at (a, b).
    pub fn point(&self, a: f64, b: f64) -> Vec<f64> {
        let mut p = self.origin.clone();
        for (k, v) in p.iter_mut().take(self.taus[0].len()).enumerate() {
            *v += a * self.taus[0][k] + b * self.taus[1][k];
        }
        p
    }

    /// Least-squares (a, b) of θ's trunk step θ[trunk] − θ₀[trunk] on (τ₀, τ₁), and the share of
    /// that step off the plane, ‖residual‖ / ‖step‖ (0 for a step of zero). Heads are ignored.
    pub fn coords(&self, theta: &[f64]) -> ([f64; 2], f64) {
        let n = self.taus[0].len();
        let step: Vec<f64> = theta[..n].iter().zip(&self.origin[..n]).map(|(t, o)| t - o).collect();
        let (r0, r1) = (dot(&self.taus[0], &step), dot(&self.taus[1], &step));
        let a = self.inverse[0] * r0 + self.inverse[1] * r1;
        let b = self.inverse[2] * r0 + self.inverse[3] * r1;
        let residual: Vec<f64> =
            step.iter().enumerate().map(|(k, s)| s - a * self.taus[0][k] - b * self.taus[1][k]).collect();
        let size = norm(&step);
        ([a, b], if size > 0.0 { norm(&residual) / size } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, two_head_layout};
    use super::*;
    use crate::merge::{merge, MergeMethod, MergeSpec};

    /// 1 → 2 trunk (4 entries) and two 2 → 1 heads; parents by hand.
    fn setting() -> (Layout, Vec<f64>, Vec<Vec<f64>>) {
        let layout = two_head_layout(2);
        assert_eq!((layout.shared_len, layout.total_len), (4, 10));
        let base = vec![0.1, 0.2, 0.3, 0.4, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let p0 = vec![1.1, 0.2, 0.3, 0.9, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0];
        let p1 = vec![0.1, -0.8, 0.3, 0.4, 1.0, 1.0, 1.0, 7.0, 7.0, 7.0];
        (layout, base, vec![p0, p1])
    }

    /// Task arithmetic at λ lands on (λ, λ) with nothing off the plane; the corners are the
    /// parents' trunks; a trunk step along a third direction is all residue.
    #[test]
    fn task_arithmetic_is_the_diagonal() {
        let (layout, base, parents) = setting();
        let plane = MergePlane::new(&layout, &base, &parents).unwrap();
        assert_close(&plane.origin, &[0.1, 0.2, 0.3, 0.4, 5.0, 5.0, 5.0, 7.0, 7.0, 7.0], 0.0);
        for lambda in [0.4, 1.0, -0.3] {
            let m =
                merge(&MergeSpec::new(MergeMethod::TaskArithmetic, Some(lambda)).unwrap(), &layout, &base, &parents)
                    .unwrap();
            let ([a, b], off) = plane.coords(&m);
            assert!((a - lambda).abs() < 1e-12 && (b - lambda).abs() < 1e-12 && off < 1e-12, "{a} {b} {off}");
            assert_close(&plane.point(lambda, lambda), &m, 1e-15);
        }
        let ([a, b], off) = plane.coords(&parents[0]);
        assert!((a - 1.0).abs() < 1e-12 && b.abs() < 1e-12 && off < 1e-12);
        let mut third = base.clone();
        third[2] += 1.0; // τ₀ and τ₁ are zero at trunk entry 2
        let ([a, b], off) = plane.coords(&third);
        assert!(a.abs() < 1e-12 && b.abs() < 1e-12 && (off - 1.0).abs() < 1e-12);
        assert!(MergePlane::new(&layout, &base, &[parents[0].clone(), parents[0].clone()]).is_err());
    }
}
