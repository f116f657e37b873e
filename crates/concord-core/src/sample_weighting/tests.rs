//! Reference tests: small cases worked by hand, and the stage's J′ against explicit per-sample
//! gradient vectors (`Mlp::per_point_gradients`, itself checked against finite differences).

use super::*;
use crate::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, PointGradient, Target};
use crate::MethodSpec;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn grams_of(vectors: &[Vec<Vec<f64>>]) -> PointGrams {
    // vectors[i][t] = g_t(x_i).
    let m = vectors[0].len();
    let mut grams = Vec::new();
    for v in vectors {
        for s in 0..m {
            for t in 0..m {
                grams.push(v[s].iter().zip(&v[t]).map(|(a, b)| a * b).sum());
            }
        }
    }
    PointGrams { m, grams }
}

fn spec(text: &str) -> SampleWeightingSpec {
    MethodSpec::parse(&format!("mean+{text}")).unwrap().sample_weighting.unwrap()
}

#[test]
fn harmonize_by_hand_two_tasks() {
    // g1 = (1, 0), g2 = (−1, 1): g1·g2 = −1, ‖g1‖² = 1, ‖g2‖² = 2.
    // ĝ1 = g1 − (−1/2)·g2 = (0.5, 0.5); ĝ2 = g2 − (−1/1)·g1 = (0, 1).
    let (c, projected) = harmonize_coefficients(&[1.0, -1.0, -1.0, 2.0], 2);
    assert!(projected);
    assert_eq!(c, vec![1.0, 0.5, 1.0, 1.0]);
    // Agreeing gradients are left alone.
    let (c, projected) = harmonize_coefficients(&[1.0, 0.5, 0.5, 2.0], 2);
    assert!(!projected);
    assert_eq!(c, vec![1.0, 0.0, 0.0, 1.0]);
    // A zero gradient projects nothing (and is not projected onto).
    let (c, projected) = harmonize_coefficients(&[0.0, 0.0, 0.0, 2.0], 2);
    assert!(!projected);
    assert_eq!(c, vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn harmonize_by_hand_three_tasks_in_order() {
    // g0 = (1, 0, 0), g1 = (−1, 1, 0), g2 = (0, −1, 1); fixed order s = 0, 1, 2.
    // ĝ0: ·g1 = −1 → ĝ0 = g0 + ½g1 = (½, ½, 0); ·g2 = −½ → ĝ0 += ¼g2 = (½, ¼, ¼).
    // ĝ1: ·g0 = −1 → ĝ1 = g1 + g0 = (0, 1, 0); ·g2 = −1 → ĝ1 += ½g2 = (0, ½, ½).
    // ĝ2: ·g0 = 0 → unchanged; ·g1 = −1 → ĝ2 = g2 + ½g1 = (−½, −½, 1).
    let g = grams_of(&[vec![vec![1.0, 0.0, 0.0], vec![-1.0, 1.0, 0.0], vec![0.0, -1.0, 1.0]]]);
    let (c, _) = harmonize_coefficients(g.gram(0), 3);
    let want = [[1.0, 0.5, 0.25], [1.0, 1.0, 0.5], [0.0, 0.5, 1.0]];
    for t in 0..3 {
        for s in 0..3 {
            assert!((c[t * 3 + s] - want[t][s]).abs() < 1e-15, "C[{t}][{s}] = {}", c[t * 3 + s]);
        }
    }
    // The vectors those coefficients make, by hand.
    let basis = [[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]];
    let hat: Vec<Vec<f64>> =
        (0..3).map(|t| (0..3).map(|k| (0..3).map(|s| c[t * 3 + s] * basis[s][k]).sum()).collect()).collect();
    assert_eq!(hat, vec![vec![0.5, 0.25, 0.25], vec![0.0, 0.5, 0.5], vec![-0.5, -0.5, 1.0]]);
}

#[test]
fn take_first_shares_ties_at_the_cut() {
    assert_eq!(take_first(&[3, 1, 2], 2), vec![0.0, 1.0, 1.0]);
    // Three tied for the last two slots: 2/3 each.
    let w = take_first(&[0, 5, 5, 5], 3);
    assert_eq!(w[0], 1.0);
    assert!(w[1..].iter().all(|v| (v - 2.0 / 3.0).abs() < 1e-15));
    assert_eq!(take_first(&[1, 2], 5), vec![1.0, 1.0]);
    assert_eq!(take_first(&[1, 2], 0), vec![0.0, 0.0]);
}

/// Six samples in 2-D with known min cosines: −1, −0.6, 0, 0.6, 1 and one with a zero gradient.
fn six() -> PointGrams {
    let unit = |deg: f64| vec![deg.to_radians().cos(), deg.to_radians().sin()];
    let angle = |c: f64| c.acos().to_degrees();
    let mut v: Vec<Vec<Vec<f64>>> =
        [-1.0, -0.6, 0.0, 0.6, 1.0].iter().map(|&c| vec![unit(0.0), unit(angle(c))]).collect();
    v.push(vec![vec![0.0, 0.0], unit(30.0)]);
    grams_of(&v)
}

#[test]
fn conflict_mask_by_hand() {
    let g = six();
    // top = 20 %: ⌈6·0.2⌉ = 2 samples masked, the two that conflict (cos −1 and −0.6).
    let mix = spec("conflict-mask:top=20").mix(&g, 0);
    let w: Vec<f64> = (0..6).map(|i| mix.coefficients_of(i)[0]).collect();
    assert_eq!(w, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(mix.divisor, 4.0);
    assert_eq!(mix.record.changed, 2.0);
    // top = 50 %: three slots but only two conflicting samples: cos = 0 is not a conflict.
    let mix = spec("conflict-mask:top=50").mix(&g, 0);
    assert_eq!(mix.divisor, 4.0);
    // top = 10 %: one slot, the most conflicting (cos −1).
    let mix = spec("conflict-mask").mix(&g, 0);
    let w: Vec<f64> = (0..6).map(|i| mix.coefficients_of(i)[3]).collect();
    assert_eq!(w, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    // Off-diagonal coefficients are zero: a weight, not a mix.
    assert!((0..6).all(|i| mix.coefficients_of(i)[1] == 0.0 && mix.coefficients_of(i)[2] == 0.0));
}

#[test]
fn curriculum_by_hand() {
    let g = six();
    // start 0.5, anneal 50 steps: q(0) = 0.5 → 3 of 6 let in: the zero-gradient sample (no
    // conflict) and cos 1, 0.6.
    let s = spec("curriculum:anneal=50");
    let mix = s.mix(&g, 0);
    let w: Vec<f64> = (0..6).map(|i| mix.coefficients_of(i)[0]).collect();
    assert_eq!(w, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(mix.record.kept_share, Some(0.5));
    assert_eq!(mix.record.changed, 3.0);
    // Step 25: q = 0.5 + 0.5·25/50 = 0.75 → round(4.5) = 5 (round half away from zero).
    let mix = s.mix(&g, 25);
    assert_eq!(mix.record.kept_share, Some(0.75));
    assert_eq!(mix.divisor, 5.0);
    assert_eq!(mix.coefficients_of(0)[0], 0.0, "cos −1 is the last let in");
    // From step 50 on: everyone.
    for step in [50, 99] {
        let mix = s.mix(&g, step);
        assert_eq!(mix.divisor, 6.0);
        assert_eq!(mix.record.changed, 0.0);
    }
    // At least one sample is always let in.
    let one = grams_of(&[vec![vec![1.0, 0.0], vec![-1.0, 0.0]]]);
    assert_eq!(spec("curriculum:start=0.01").mix(&one, 0).divisor, 1.0);
}

fn model() -> Mlp {
    let heads = vec![
        HeadConfig { out_dim: 1, loss: LossKind::Bce },
        HeadConfig { out_dim: 1, loss: LossKind::Mse },
        HeadConfig { out_dim: 3, loss: LossKind::SoftmaxCe },
    ];
    Mlp::new(MlpConfig {
        input_dim: 2,
        hidden: vec![6, 5],
        activation: Activation::Tanh,
        heads,
        tied_head_init: false,
        head_init_scale: 1.0,
    })
    .unwrap()
}

fn batch(n: usize, seed: u64) -> (DMatrix<f64>, Vec<Target>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = DMatrix::from_fn(n, 2, |_, _| rng.random_range(-2.0..2.0));
    let y = vec![
        Target::Values(DMatrix::from_fn(n, 1, |_, _| if rng.random_bool(0.5) { 1.0 } else { 0.0 })),
        Target::Values(DMatrix::from_fn(n, 1, |_, _| rng.random_range(-1.0..1.0))),
        Target::Classes((0..n).map(|_| rng.random_range(0..3)).collect()),
    ];
    (x, y)
}

/// J′ computed from the explicit per-sample gradient vectors: harmonize by projecting the
/// vectors themselves (PCGrad within each sample, fixed order), the weights by the stated
/// rules written out again here.
fn explicit_harmonized(per: &[DMatrix<f64>]) -> DMatrix<f64> {
    let (m, b, d) = (per.len(), per[0].nrows(), per[0].ncols());
    let mut j = DMatrix::zeros(m, d);
    for i in 0..b {
        for t in 0..m {
            let mut hat = per[t].row(i).clone_owned();
            for s in (0..m).filter(|&s| s != t) {
                let gs = per[s].row(i);
                let dot = hat.dot(&gs);
                if dot < 0.0 && gs.norm_squared() > 0.0 {
                    hat -= gs * (dot / gs.norm_squared());
                }
            }
            let mut row = j.row_mut(t);
            row += hat / b as f64;
        }
    }
    j
}

fn assert_close(got: &DMatrix<f64>, want: &DMatrix<f64>, what: &str) {
    let scale = want.amax().max(1e-300);
    let err = (got - want).amax() / scale;
    assert!(err <= 1e-12, "{what}: relative error {err:e}");
}

#[test]
fn stage_gradients_match_explicit_per_sample_vectors() {
    let mlp = model();
    let (x, y) = batch(24, 3);
    for seed in [1, 5] {
        let params = mlp.init_params(seed);
        let per = mlp.per_point_gradients(&params, &x, PointGradient::Loss, Some(&y)).unwrap();
        let plain = mlp.gradients(&params, &x, &y).unwrap();
        let min_cos: Vec<f64> = {
            let g = mlp.point_grams(&params, &x, PointGradient::Loss, Some(&y)).unwrap();
            (0..24).map(|i| g.min_cos(i).unwrap()).collect()
        };
        assert!(min_cos.iter().any(|c| *c < 0.0) && min_cos.iter().any(|c| *c > 0.0), "a mixed batch");

        let h = mlp.stage_gradients(&params, &x, &y, &spec("harmonize"), 0).unwrap();
        assert_close(&h.gradients.shared_jacobian, &explicit_harmonized(&per), "harmonize J′");
        assert_close(&h.raw_jacobian, &plain.shared_jacobian, "plain J");
        assert_eq!(h.gradients.losses, plain.losses);
        assert_eq!(h.gradients.head_grads, plain.head_grads);
        assert_eq!(h.record.changed, min_cos.iter().filter(|c| **c < 0.0).count() as f64);

        // The mask and the curriculum: the explicit mean over the samples the rule keeps.
        let mut order: Vec<usize> = (0..24).collect();
        order.sort_by(|a, b| min_cos[*a].total_cmp(&min_cos[*b]));
        let conflicting = min_cos.iter().filter(|c| **c < 0.0).count();
        let masked: Vec<usize> = order[..conflicting.min(3)].to_vec(); // top = 10 %: ⌈2.4⌉ = 3
        let keep_mask: Vec<usize> = (0..24).filter(|i| !masked.contains(i)).collect();
        let kept_curriculum: Vec<usize> = order[12..].to_vec(); // q(0) = 0.5: the 12 highest
        for (text, kept) in [("conflict-mask", keep_mask), ("curriculum", kept_curriculum)] {
            let got = mlp.stage_gradients(&params, &x, &y, &spec(text), 0).unwrap();
            let want = DMatrix::from_fn(3, per[0].ncols(), |t, k| {
                kept.iter().map(|&i| per[t][(i, k)]).sum::<f64>() / kept.len() as f64
            });
            assert_close(&got.gradients.shared_jacobian, &want, text);
        }
    }
}

#[test]
fn a_stage_that_changes_nothing_gives_the_plain_jacobian() {
    // The curriculum after its ramp (step 200 by default) lets every sample in: J′ = J.
    let mlp = model();
    let (x, y) = batch(16, 9);
    let params = mlp.init_params(2);
    let plain = mlp.gradients(&params, &x, &y).unwrap();
    let got = mlp.stage_gradients(&params, &x, &y, &spec("curriculum"), 200).unwrap();
    assert_close(&got.gradients.shared_jacobian, &plain.shared_jacobian, "curriculum at the end");
}

#[test]
fn specs_round_trip_and_reject_bad_input() {
    for text in ["harmonize", "curriculum:start=0.3:anneal=80", "conflict-mask:top=25"] {
        let s = spec(text);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SampleWeightingSpec>(&json).unwrap(), s, "{json}");
    }
    assert_eq!(spec("curriculum:start=0.3").get("anneal"), Some(200.0));
    assert!(SampleWeightingSpec::named("nope").unwrap_err().contains("unknown sample weighting"));
    let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert!(SampleWeightingSpec::parse("curriculum", &p("start", "0")).is_err());
    assert!(SampleWeightingSpec::parse("curriculum", &p("anneal", "NaN")).is_err());
    assert!(SampleWeightingSpec::parse("conflict-mask", &p("top", "101")).is_err());
    assert!(SampleWeightingSpec::parse("harmonize", &p("top", "1")).unwrap_err().contains("no parameter 'top'"));
    assert_eq!(descriptions().len(), NAMES.len());
}
