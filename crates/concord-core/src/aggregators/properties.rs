//! Properties shared by every method (torchjd's `_asserts.py`, aggregators.md §5–§6).
use super::testing::{j_base, permute_rows, random_permutation, Normal, SHAPES};
use super::Method;
use approx::assert_abs_diff_eq;
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// torchjd's exact values on J_base (aggregators.md §6, atol 1e-4), through `Method::build`.
#[test]
fn exact_values_on_j_base() {
    let cases: [(Method, [f64; 3], [f64; 2]); 5] = [
        (Method::Mean, [1.0, 1.0, 1.0], [0.5, 0.5]),
        (Method::Sum, [2.0, 2.0, 2.0], [1.0, 1.0]),
        (Method::Mgda, [0.0, 1.0, 1.0], [0.6, 0.4]),
        (Method::PcGrad, [0.5848, 3.8012, 3.8012], [2.2222, 1.5789]),
        (Method::CaGrad { c: 0.5 }, [0.1835, 1.2041, 1.2041], [0.7041, 0.5000]),
    ];
    for (method, update, weights) in cases {
        let a = method.build(0).aggregate(&j_base());
        assert_abs_diff_eq!(a.update, DVector::from_row_slice(&update), epsilon = 1e-4);
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_row_slice(&weights), epsilon = 1e-4);
    }
}

/// torchjd's permutation-invariance assert, on the output A(J) (for CAGrad on rank-deficient
/// J the SOCP's minimiser w* need not be unique, but d is). Tolerance relative to ‖J‖_F:
/// 1e-9 for the closed forms and MGDA (same Frank–Wolfe path, only the rounding of sums
/// differs); 1e-4 for CAGrad, torchjd's default, because the SOCP fixes d only to about
/// √(solver tolerance) (~1e-6 seen).
fn perm_tolerance(method: Method) -> f64 {
    match method {
        Method::CaGrad { .. } => 1e-4,
        _ => 1e-9,
    }
}
#[test]
fn permutation_invariant() {
    let mut rng = Normal::new(12);
    for method in [Method::Mean, Method::Sum, Method::Mgda, Method::CaGrad { c: 0.5 }] {
        for &(m, n, r) in SHAPES.iter() {
            let j = rng.low_rank(m, n, r);
            let d = method.build(0).aggregate(&j).update;
            let scale = j.norm().max(1.0);
            for _ in 0..5 {
                let perm = random_permutation(&mut rng, m);
                let dp = method.build(0).aggregate(&permute_rows(&j, &perm)).update;
                let err = (&dp - &d).amax() / scale;
                assert!(
                    err < perm_tolerance(method),
                    "{} {m}×{n} rank {r}: permuted output differs by {err}",
                    method.name()
                );
            }
        }
    }
}

fn jacobian(m: usize, n: usize, seed: u64, scale: f64) -> DMatrix<f64> {
    Normal::new(seed).matrix(m, n) * scale
}

proptest! {
    // A fixed seed so that runs are reproducible, and no regression files written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 128,
        rng_seed: RngSeed::Fixed(0x00C0_4C0D),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// torchjd's structure assert: finite output for every finite J, over its scaled family
    /// (×0, ×1e-10 … ×1e15) and rank-deficient and zero matrices.
    #[test]
    fn finite_output_for_every_method(
        m in 1usize..=8,
        n in 1usize..=20,
        k in prop::sample::select(vec![None, Some(-10i32), Some(0), Some(3), Some(10), Some(15)]),
        rank_one in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let scale = k.map_or(0.0, |k| 10f64.powi(k));
        let mut j = jacobian(m, n, seed, scale);
        if rank_one {
            // Every row a multiple of the first: G has rank ≤ 1.
            let first = j.row(0).into_owned();
            for i in 1..m {
                let f = (i as f64) - 2.5;
                j.row_mut(i).copy_from(&(&first * f));
            }
        }
        for method in Method::ALL.into_iter().chain([Method::CaGrad { c: 0.0 }, Method::CaGrad { c: 2.0 }]) {
            let mut agg = method.build(seed);
            for _ in 0..2 {
                let a = agg.aggregate(&j);
                prop_assert_eq!(a.update.len(), n);
                prop_assert!(a.update.iter().all(|v| v.is_finite()), "{} update {}", method.name(), a.update);
                let w = a.weights.unwrap();
                prop_assert_eq!(w.len(), m);
                prop_assert!(w.iter().all(|v| v.is_finite()), "{} weights {}", method.name(), w);
            }
        }
    }

    #[test]
    fn permutation_invariant_prop(m in 1usize..=8, n in 1usize..=20, seed in any::<u64>()) {
        let j = jacobian(m, n, seed, 1.0);
        let perm = random_permutation(&mut Normal::new(seed ^ 0x5555), m);
        let jp = permute_rows(&j, &perm);
        for method in [Method::Mean, Method::Sum, Method::Mgda, Method::CaGrad { c: 0.5 }] {
            let d = method.build(0).aggregate(&j).update;
            let dp = method.build(0).aggregate(&jp).update;
            let err = (&dp - &d).amax() / j.norm().max(1.0);
            prop_assert!(err < perm_tolerance(method), "{}: {}", method.name(), err);
        }
    }
}
