//! An MoE run's hidden activations on the GPU (`GpuTrainer::predict_hidden` /
//! `predict_hidden_neuron` for the dense routers the GPU trains, `kernels::moe_hidden`) against
//! concord-core's `Moe::hidden_activations` (f64) at the GPU's own read-back parameters, on
//! lavapipe (a missing adapter is a failure, not a skip): the network view's thumbnails (the
//! 20 × 20 subgrid of the 100 × 100 grid: every pre-layer neuron, then every expert's hidden
//! neurons) and one neuron's map over the whole grid (a pre-layer neuron and the first and last
//! expert's), plus the same call's head outputs against `Moe::forward`.
//!
//! Tolerance: the CPU evaluates the GPU's parameters (f32 widened to f64), so the gap is the
//! f32 forward arithmetic only: |Δ| ≤ 1e-5 (1 + |a_cpu|), as `predict_grid.rs` for the MLP
//! (measured, printed: ≤ 8e-7). An MoE model takes the raw 2-D point (no input features).

mod common;
use common::gpu_arc as gpu;

use concord_core::data::feature_rows;
use concord_core::model::moe::RouterKind;
use concord_core::model::Activation;
use concord_core::train::{preset, MoeSpec, TrainConfig};
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

/// The page's `grid::thumbnail_rows`: the centres of the 5 × 5 blocks.
fn thumbnail_rows() -> Vec<usize> {
    (0..20 * 20).map(|i| (5 * (i / 20) + 2) * GRID + 5 * (i % 20) + 2).collect()
}

fn gap(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> f64 {
    a.zip(b).map(|(p, q)| (p - q).abs() / (1.0 + q.abs())).fold(0.0, f64::max)
}

fn moe_config(router: RouterKind, act: Activation, hidden: Vec<usize>) -> TrainConfig {
    let mut cfg = preset("xor-conflict").unwrap();
    cfg.steps = 20;
    let mut spec = MoeSpec::new(router);
    spec.experts = 3;
    spec.expert_hidden = 5;
    cfg.moe = Some(spec);
    let model = cfg.model.as_mut().unwrap();
    model.activation = act;
    model.hidden = hidden;
    cfg
}

#[test]
fn moe_hidden_activations_on_the_gpu_match_moe_hidden_activations() {
    let rows = thumbnail_rows();
    let pts = grid_points();
    let cases = [
        (RouterKind::Softmax, Activation::Tanh, vec![8]),
        (RouterKind::Mmoe, Activation::Relu, vec![6, 4]),
        (RouterKind::Mmoe, Activation::Tanh, vec![8, 8]),
    ];
    for (router, act, hidden) in cases {
        let cfg = moe_config(router, act, hidden.clone());
        let mut g = GpuTrainer::new(gpu(), cfg.clone()).unwrap();
        g.steps(20).unwrap();
        pollster::block_on(g.read_history()).unwrap();
        let moe = g.moe().expect("an MoE run").clone();
        let x = feature_rows(cfg.features.as_ref(), &pts);
        let params = pollster::block_on(g.params()).unwrap();
        let name = format!("{} {act:?} {hidden:?}", router.name());

        // The thumbnails: pre-layers, then the 3 experts' hidden layers, at the thumbnail rows.
        let (outs, acts) = pollster::block_on(g.predict_hidden(&x, &rows)).unwrap();
        let sub = DMatrix::from_fn(rows.len(), x.ncols(), |r, c| x[(rows[r], c)]);
        let reference = moe.hidden_activations(&params, &sub).unwrap();
        assert_eq!(acts.len(), hidden.len() + 3, "{name}");
        let mut worst = 0.0f64;
        for (a, r) in acts.iter().zip(&reference) {
            assert_eq!(a.shape(), r.shape(), "{name}");
            worst = worst.max(gap(a.iter().copied(), r.iter().copied()));
        }
        let want_outs = moe.forward(&params, &x).unwrap();
        let worst_out =
            outs.iter().zip(&want_outs).map(|(o, r)| gap(o.iter().copied(), r.iter().copied())).fold(0.0, f64::max);
        eprintln!("{name}: worst thumbnail gap {worst:.2e}, outputs {worst_out:.2e}");
        assert!(worst <= TOL, "{name}: thumbnails {worst:.2e} > {TOL:.0e}");
        assert!(worst_out <= TOL, "{name}: outputs {worst_out:.2e} > {TOL:.0e}");
        // A dead model would pass trivially: the expert neurons vary over the plane.
        for r in &reference[hidden.len()..] {
            assert!(r.max() - r.min() > 1e-3, "{name}: an expert's activations are flat");
        }

        // One neuron over the whole grid: the first pre-layer's first, the first expert's
        // first and the last expert's last; the thumbnails of the same call are unchanged.
        let full = moe.hidden_activations(&params, &x).unwrap();
        let last = acts.len() - 1;
        for (l, j) in [(0, 0), (hidden.len(), 0), (last, 4)] {
            let (o2, a2, column) = pollster::block_on(g.predict_hidden_neuron(&x, &rows, (l, j))).unwrap();
            assert_eq!((&o2, &a2), (&outs, &acts), "{name}: the thumbnails and outputs are unchanged");
            assert_eq!(column.len(), GRID * GRID);
            let worst = gap(column.iter().copied(), full[l].column(j).iter().copied());
            eprintln!("{name} neuron ({l}, {j}): worst gap over the grid {worst:.2e}");
            assert!(worst <= TOL, "{name} neuron ({l}, {j}): {worst:.2e} > {TOL:.0e}");
        }
        let err = pollster::block_on(g.predict_hidden_neuron(&x, &rows, (last + 1, 0))).unwrap_err().to_string();
        assert!(err.contains("no neuron"), "{err}");
        let err = pollster::block_on(g.predict_hidden_neuron(&x, &rows, (last, 5))).unwrap_err().to_string();
        assert!(err.contains("no neuron"), "{err}");
    }
}
