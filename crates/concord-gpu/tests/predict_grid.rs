//! `GpuTrainer::predict` (the playground's 100 × 100 decision-boundary grid on the GPU) against
//! concord-core's `Mlp::predict_points` at the same parameters, on lavapipe; and
//! `GpuTrainer::predict_hidden` (the same pass, plus the trunk's activations at the network
//! view's thumbnail points) and `predict_hidden_neuron` (one neuron at every grid point, the
//! enlarged map) against `Mlp::hidden_activations`.
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
            let reference = g.mlp().unwrap().predict_points(&params, &pts).unwrap();
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

/// The network view's thumbnail rows: the 20 × 20 subgrid of the 100 × 100 grid whose cells
/// are the centres of 5 × 5 blocks (as the page's `grid::thumbnail_rows`).
fn thumbnail_rows() -> Vec<usize> {
    (0..20 * 20).map(|i| (5 * (i / 20) + 2) * GRID + 5 * (i % 20) + 2).collect()
}

/// `predict_hidden`: the trunk's activations gathered from the grid's forward pass at the
/// thumbnail rows against `Mlp::hidden_activations` at the same points (through the run's input
/// features) and the GPU's own read-back parameters, for tanh and ReLU, raw inputs and TF's
/// features, a trunk of 1 and of 3 layers. Activations are in [−1, 1] (tanh) or of order 1
/// (ReLU): |Δ| ≤ 1e-5 (1 + |a_cpu|), f32 forward arithmetic only (measured ~1e-7, printed).
/// The head outputs of the same call are the grid's (checked as above).
#[test]
fn the_trunks_activations_on_the_gpu_match_mlp_hidden_activations() {
    use concord_core::data::{feature_rows, Feature, FeatureSet};
    use concord_core::model::Activation;
    let rows = thumbnail_rows();
    let pts = grid_points();
    let cases = [
        (Activation::Tanh, vec![8, 8], false),
        (Activation::Relu, vec![8, 8], true),
        (Activation::Tanh, vec![12, 6, 4], true),
        (Activation::Relu, vec![5], false),
    ];
    for (act, hidden, features) in cases {
        let mut cfg = preset("xor-conflict").unwrap();
        cfg.steps = 20;
        let model = cfg.model.as_mut().unwrap();
        model.activation = act;
        model.hidden = hidden.clone();
        if features {
            let set = FeatureSet::new(&[Feature::X, Feature::Y, Feature::XSquared, Feature::SinX]).unwrap();
            model.input_dim = set.len();
            cfg.features = Some(set);
        }
        let mut g = GpuTrainer::new(gpu(), cfg.clone()).unwrap();
        g.steps(20).unwrap();
        pollster::block_on(g.read_history()).unwrap();
        let x = feature_rows(cfg.features.as_ref(), &pts);
        let (outs, acts) = pollster::block_on(g.predict_hidden(&x, &rows)).unwrap();
        let params = pollster::block_on(g.params()).unwrap();
        let sub = DMatrix::from_fn(rows.len(), x.ncols(), |r, c| x[(rows[r], c)]);
        let reference = g.mlp().unwrap().hidden_activations(&params, &sub).unwrap();
        assert_eq!(acts.len(), hidden.len());
        let mut worst = 0.0f64;
        for ((a, r), &w) in acts.iter().zip(&reference).zip(&hidden) {
            assert_eq!(a.shape(), (rows.len(), w));
            assert_eq!(a.shape(), r.shape());
            for (p, q) in a.iter().zip(r.iter()) {
                worst = worst.max((p - q).abs() / (1.0 + q.abs()));
            }
        }
        let mut worst_out = 0.0f64;
        for (o, r) in outs.iter().zip(&g.mlp().unwrap().forward(&params, &x).unwrap()) {
            assert_eq!(o.nrows(), GRID * GRID);
            for (a, b) in o.iter().zip(r.iter()) {
                worst_out = worst_out.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
        eprintln!("{act:?} {hidden:?} features {features}: worst activation gap {worst:.2e}, outputs {worst_out:.2e}");
        assert!(worst <= TOL, "{act:?} {hidden:?} features {features}: {worst:.2e} > {TOL:.0e}");
        assert!(worst_out <= TOL, "outputs: {worst_out:.2e}");
        // A dead model would pass trivially: the activations vary over the plane.
        assert!(reference.iter().all(|m| m.max() - m.min() > 1e-3), "{act:?}: activations are flat");
    }
}

#[test]
fn predict_hidden_rejects_rows_outside_the_inputs_and_keeps_predict_unchanged() {
    let mut g = GpuTrainer::new(gpu(), preset("xor-conflict").unwrap()).unwrap();
    let x = DMatrix::from_fn(10, 2, |r, c| r as f64 * 0.3 - c as f64);
    let err = pollster::block_on(g.predict_hidden(&x, &[3, 10])).unwrap_err().to_string();
    assert!(err.contains("row 10 is not one of the 10 inputs"), "{err}");
    // The gathers are extra dispatches on the same graph: plain predict gives the same outputs.
    let (outs, acts) = pollster::block_on(g.predict_hidden(&x, &[9, 0])).unwrap();
    assert_eq!(pollster::block_on(g.predict(&x)).unwrap(), outs);
    let reference = g.mlp().unwrap().hidden_activations(&pollster::block_on(g.params()).unwrap(), &x).unwrap();
    for (a, r) in acts.iter().zip(&reference) {
        for (c, v) in a.row(0).iter().zip(r.row(9).iter()) {
            assert!((c - v).abs() <= TOL, "row 9: {c} vs {v}");
        }
        for (c, v) in a.row(1).iter().zip(r.row(0).iter()) {
            assert!((c - v).abs() <= TOL, "row 0: {c} vs {v}");
        }
    }
}

/// `predict_hidden_neuron`: one neuron's activation at every one of the 100 × 100 grid rows
/// (the network view's enlarged map) against the column of `Mlp::hidden_activations` over the
/// whole grid at the GPU's read-back parameters — the first and last neuron of the first and
/// last layer, tanh with raw inputs and ReLU with TF's features; |Δ| ≤ 1e-5 (1 + |a_cpu|) as
/// above. The same call's thumbnails and outputs are `predict_hidden`'s exactly (the extra
/// gather reads, it does not change the pass), and a neuron outside the trunk is an error.
#[test]
fn one_neuron_at_full_resolution_on_the_gpu_matches_mlp_hidden_activations() {
    use concord_core::data::{feature_rows, Feature, FeatureSet};
    use concord_core::model::Activation;
    let rows = thumbnail_rows();
    let pts = grid_points();
    for (act, hidden, features) in [(Activation::Tanh, vec![8, 8], false), (Activation::Relu, vec![12, 6, 4], true)] {
        let mut cfg = preset("xor-conflict").unwrap();
        cfg.steps = 20;
        let model = cfg.model.as_mut().unwrap();
        model.activation = act;
        model.hidden = hidden.clone();
        if features {
            let set = FeatureSet::new(&[Feature::X, Feature::Y, Feature::XSquared, Feature::SinX]).unwrap();
            model.input_dim = set.len();
            cfg.features = Some(set);
        }
        let mut g = GpuTrainer::new(gpu(), cfg.clone()).unwrap();
        g.steps(20).unwrap();
        pollster::block_on(g.read_history()).unwrap();
        let x = feature_rows(cfg.features.as_ref(), &pts);
        let params = pollster::block_on(g.params()).unwrap();
        let reference = g.mlp().unwrap().hidden_activations(&params, &x).unwrap();
        let plain = pollster::block_on(g.predict_hidden(&x, &rows)).unwrap();
        let last = hidden.len() - 1;
        for (l, j) in [(0, 0), (0, hidden[0] - 1), (last, 0), (last, hidden[last] - 1)] {
            let (outs, acts, column) = pollster::block_on(g.predict_hidden_neuron(&x, &rows, (l, j))).unwrap();
            assert_eq!((&outs, &acts), (&plain.0, &plain.1), "the thumbnails and outputs are unchanged");
            assert_eq!(column.len(), GRID * GRID);
            let want = reference[l].column(j);
            let worst =
                column.iter().zip(want.iter()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f64::max);
            eprintln!("{act:?} {hidden:?} neuron ({l}, {j}): worst gap over the grid {worst:.2e}");
            assert!(worst <= TOL, "{act:?} {hidden:?} neuron ({l}, {j}): {worst:.2e} > {TOL:.0e}");
            assert!(want.max() - want.min() > 1e-3 || act == Activation::Relu, "neuron ({l}, {j}) is flat");
        }
    }
    let mut g = GpuTrainer::new(gpu(), preset("xor-conflict").unwrap()).unwrap();
    let x = DMatrix::from_fn(10, 2, |r, c| r as f64 * 0.3 - c as f64);
    let layers = g.mlp().unwrap().config().hidden.clone();
    let err = pollster::block_on(g.predict_hidden_neuron(&x, &[0], (0, layers[0]))).unwrap_err().to_string();
    assert!(err.contains("no neuron"), "{err}");
    let err = pollster::block_on(g.predict_hidden_neuron(&x, &[0], (layers.len(), 0))).unwrap_err().to_string();
    assert!(err.contains("no neuron"), "{err}");
}

#[test]
fn predict_rejects_inputs_of_the_wrong_width() {
    let mut g = GpuTrainer::new(gpu(), preset("xor-conflict").unwrap()).unwrap();
    let err = pollster::block_on(g.predict(&DMatrix::zeros(4, 3))).unwrap_err().to_string();
    assert!(err.contains("the inputs have 3 columns, the model takes 2"), "{err}");
}
