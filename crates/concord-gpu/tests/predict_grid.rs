//! `GpuTrainer::predict` (the playground's 100 × 100 decision-boundary grid on the GPU) against
//! concord-core's `Mlp::predict_points` at the same parameters, on lavapipe.
//!
//! Tolerance: the CPU reference evaluates the GPU's own parameters (read back, f32 widened to
//! f64), so the gap is the forward pass's f32 arithmetic only: |Δ| ≤ 1e-5 (1 + |o_cpu|) for every
//! head output (outputs of order 1 on this grid; measured ~1e-6, printed).

mod common;
use common::gpu_arc as gpu;

use concord_core::train::preset;
use concord_gpu::GpuTrainer;
use nalgebra::DMatrix;

const GRID: usize = 100;
const TOL: f64 = 1e-5;

/// Cell centres of a GRID × GRID grid over [−6, 6]², row by row from the top (as the page's).
fn grid_points() -> Vec<[f64; 2]> {
    let (extent, h) = (6.0, 12.0 / GRID as f64);
    (0..GRID * GRID)
        .map(|i| [-extent + ((i % GRID) as f64 + 0.5) * h, extent - ((i / GRID) as f64 + 0.5) * h])
        .collect()
}

#[test]
fn the_grid_on_the_gpu_matches_the_cpu_forward_pass_as_training_goes_on() {
    for name in ["xor-conflict", "circle-vs-gauss"] {
        let mut cfg = preset(name).unwrap();
        cfg.steps = 40;
        let mut g = GpuTrainer::new(gpu(), cfg).unwrap();
        let pts = grid_points();
        let x = DMatrix::from_fn(pts.len(), 2, |r, c| pts[r][c]);
        // At the initial parameters, then after 40 steps (the cached graph sees new parameters).
        for steps in [0usize, 40] {
            g.steps(steps).unwrap();
            pollster::block_on(g.read_history()).unwrap();
            let outs = pollster::block_on(g.predict(&x)).unwrap();
            let params = pollster::block_on(g.params()).unwrap();
            let reference = g.mlp().predict_points(&params, &pts).unwrap();
            assert_eq!(outs.len(), reference.len());
            let mut worst = 0.0f64;
            for (o, r) in outs.iter().zip(&reference) {
                assert_eq!(o.shape(), r.shape());
                assert_eq!(o.nrows(), GRID * GRID);
                for (a, b) in o.iter().zip(r.iter()) {
                    worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                }
            }
            eprintln!("{name} after {steps} steps: worst grid gap {worst:.2e}");
            assert!(worst <= TOL, "{name} after {steps} steps: {worst:.2e} > {TOL:.0e}");
        }
    }
}

#[test]
fn predict_rejects_inputs_of_the_wrong_width() {
    let mut g = GpuTrainer::new(gpu(), preset("xor-conflict").unwrap()).unwrap();
    let err = pollster::block_on(g.predict(&DMatrix::zeros(4, 3))).unwrap_err().to_string();
    assert!(err.contains("the inputs have 3 columns, the model takes 2"), "{err}");
}
