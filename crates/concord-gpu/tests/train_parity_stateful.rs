//! `GpuTrainer` against concord-core's CPU `Trainer` for the weightings that select rows (Krum)
//! or keep state across steps (MoDo's λ, SDMGrad's w, GradVac's cosine targets, in the GPU
//! weighting memory that the trainer keeps between steps): 200 steps each, the same measure and
//! tolerance as `train_parity.rs` (|Δ| / (|cpu| + 1e-3) ≤ 2e-5 on every step's batch and test
//! losses, aggregator weights and the final train losses; one case, stated below, looser), on
//! Mesa lavapipe.
//!
//! The stateful runs also show that the state matters: at some recorded step the run's weights
//! differ from what a fresh instance gives on that step's G (rebuilt from the recorded norms
//! and cosines), by more than 1e-2 — a GPU that forgot its state between steps would fail the
//! parity check.

mod common;
use common::{f64_config as config, recorded_gram, rel, train_both};

use concord_core::aggregators::registry;
use concord_core::MethodSpec;
use nalgebra::DMatrix;

const TOL: f64 = 2e-5;

/// The worst relative difference of every step's losses and test losses and of the final train
/// losses; that of every step's aggregator weights; and the largest gap between a recorded step's weights and a fresh
/// instance's weights on that step's G.
fn compare(preset: &str, agg: &str, params: &[(String, String)], steps: usize) -> (f64, f64, f64) {
    let mut cfg = config(preset, steps);
    cfg.method = MethodSpec::from_parts(agg, params, None).unwrap();
    cfg.seed = 3;
    let (cpu, rec) = train_both(&cfg, 64);
    assert_eq!(rec.history.len(), steps);
    let mut worst = 0.0f64;
    let mut worst_w = 0.0f64;
    let mut state_gap = 0.0f64;
    for (c, gr) in cpu.history().iter().zip(&rec.history) {
        assert_eq!(c.step, gr.step);
        for (a, b) in c.losses.iter().zip(&gr.losses) {
            worst = worst.max(rel(*a, *b));
        }
        if let (Some(ct), Some(gt)) = (&c.test_losses, &gr.test_losses) {
            for (a, b) in ct.iter().zip(gt) {
                worst = worst.max(rel(*a, *b));
            }
        }
        let (cw, gw) = (c.aggregator_weights.as_ref().unwrap(), gr.aggregator_weights.as_ref().unwrap());
        for (a, b) in cw.iter().zip(gw) {
            worst_w = worst_w.max(rel(*a, *b));
        }
        // G from the recorded norms and cosines; J = its symmetric square root (JJᵀ = G).
        let m = cw.len();
        let g = recorded_gram(c);
        let eig = g.clone().symmetric_eigen();
        let root = &eig.eigenvectors
            * DMatrix::from_diagonal(&eig.eigenvalues.map(|l| l.max(0.0).sqrt()))
            * eig.eigenvectors.transpose();
        let fresh = registry::build(agg, params, m, cfg.seed).unwrap().aggregate(&root).weights.unwrap();
        // Relative to the weights' size.
        let scale = fresh.amax().max(1e-12);
        for (a, b) in cw.iter().zip(fresh.iter()) {
            state_gap = state_gap.max((a - b).abs() / scale);
        }
    }
    for (a, b) in cpu.train_losses().unwrap().iter().zip(&rec.final_train_losses) {
        worst = worst.max(rel(*a, *b));
    }
    (worst, worst_w, state_gap)
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn krum_200_steps_match_the_cpu_trainer() {
    // Three tasks (Krum needs m ≥ f + 3); n_selected = 2 averages the closest pair.
    let (worst, worst_w, _) =
        compare("sinusoid-phases", "krum", &kv(&[("n_byzantine", "0"), ("n_selected", "2")]), 200);
    eprintln!("krum: worst relative difference {worst:e} (losses), {worst_w:e} (weights)");
    assert!(worst <= TOL && worst_w <= TOL, "{worst:e} {worst_w:e}");
}

#[test]
fn stateful_weightings_200_steps_match_the_cpu_trainer_and_their_state_matters() {
    // (preset, method, parameters, tolerance of the losses, of the weights). Measured on
    // lavapipe (losses, weights): modo 9.7e-7, 3.0e-7; sdmgrad 2.3e-6, 2.4e-6; gradvac on
    // circle-vs-gauss 1.7e-6, 3.8e-6.
    type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, f64, f64);
    let cases: Vec<Case> = vec![
        ("circle-vs-gauss", "modo", kv(&[]), TOL, TOL),
        // lr 0.5 and one inner step: the stored w carries the run (torchjd's lr = 10 amplifies
        // f32 rounding over many calls; see weights_registry.rs).
        ("circle-vs-gauss", "sdmgrad", kv(&[("lr", "0.5"), ("n_iter", "1")]), TOL, TOL),
        ("circle-vs-gauss", "gradvac", kv(&[]), TOL, TOL),
        // Three tasks, so GradVac's seeded visiting order matters too. Its corrections divide by
        // √(1 − φ̂²), which amplifies the f32 rounding of the EMA targets: measured 2.1e-5
        // (losses) and 1.6e-4 (weights) over 200 steps, hence 5e-5 and 1e-3 here.
        ("sinusoid-phases", "gradvac", kv(&[]), 5e-5, 1e-3),
    ];
    for (preset, agg, params, tol, tol_w) in cases {
        let (worst, worst_w, gap) = compare(preset, agg, &params, 200);
        eprintln!(
            "{agg} on {preset}: worst relative difference {worst:e} (losses), {worst_w:e} (weights); state gap {gap:e}"
        );
        assert!(worst <= tol, "{agg} on {preset}: losses {worst:e}");
        assert!(worst_w <= tol_w, "{agg} on {preset}: weights {worst_w:e}");
        assert!(gap > 1e-2, "{agg} on {preset}: the state changed nothing ({gap:e})");
    }
}
