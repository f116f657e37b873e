//! Every GPU weighting on the CAGrad toys through `concord_gpu::backend` (GpuToy) against the
//! CPU `Trainer` on the same `TrainConfig` (f64, the reference), and `backend()`'s refusal of a
//! method the GPU lacks.
//!
//! Random is the exception: the CPU's `Random` draws from ChaCha, the GPU from the PCG stream
//! that core's `rlw_pcg_weights` reproduces; its reference is the same toy + optimizer loop in
//! f64 with those weights.

mod common;
use common::gpu_arc;

use concord_core::aggregators::rlw_pcg_weights;
use concord_core::metrics::StepMetrics;
use concord_core::train::StepRecord;
use concord_core::train::{
    now, Backend, DataSource, History, Preset, Snapshot, TrainConfig, TrainOptimizer, Trainer, HISTORY_CAP,
};
use concord_core::{MethodSpec, Problem, ProblemKind};
use nalgebra::{DMatrix, DVector};

/// The method texts run on the toys: every GPU method (Constant needs its weights, TrimmedMean
/// its trim, which two tasks allow only as 0).
fn method_text(name: &str) -> String {
    match name {
        "constant" => "constant:weights=0.3;0.7".into(),
        "trimmed-mean" => "trimmed-mean:trim_number=0".into(),
        other => other.into(),
    }
}

fn toy_config(
    problem: ProblemKind,
    start: [f64; 2],
    method: &str,
    optimizer: TrainOptimizer,
    steps: usize,
) -> TrainConfig {
    let mut c = Preset::CagradToy.config();
    c.data = DataSource::Toy { problem, start };
    c.method = MethodSpec::parse(&method_text(method)).unwrap();
    c.optimizer = optimizer;
    c.steps = steps;
    c.seed = 7;
    c.record_every = 25;
    c
}

fn gpu_run(config: &TrainConfig) -> Snapshot {
    let mut b = concord_gpu::backend(gpu_arc(), config.clone()).unwrap();
    assert_eq!(b.submit(config.steps).unwrap(), config.steps);
    pollster::block_on(b.read_back()).unwrap()
}

fn cpu_run(config: &TrainConfig) -> Snapshot {
    if config.method.aggregator.name() == "random" {
        return random_reference(config);
    }
    let mut t = Trainer::new(config.clone()).unwrap();
    Backend::submit(&mut t, config.steps).unwrap();
    now(Backend::read_back(&mut t)).unwrap().unwrap()
}

/// The CPU loop with the GPU's Random stream (see the module doc).
fn random_reference(config: &TrainConfig) -> Snapshot {
    let DataSource::Toy { problem, start } = config.data else { unreachable!() };
    let toy = problem.toy();
    let mut opt = config.optimizer.build(2);
    let mut x = start.to_vec();
    let mut records = Vec::new();
    for t in 0..config.steps {
        let j = toy.jacobian(&x);
        let w = rlw_pcg_weights(config.seed as u32, t as u32, 2);
        let d = [j[0][0] * w[0] + j[1][0] * w[1], j[0][1] * w[0] + j[1][1] * w[1]];
        if t % config.record_every == 0 || t + 1 == config.steps {
            let jm = DMatrix::from_fn(2, 2, |r, c| j[r][c]);
            records.push(StepRecord {
                step: t,
                losses: toy.losses(&x),
                loss_weights: None,
                aggregator_weights: Some(w.as_slice().to_vec()),
                metrics: StepMetrics::new(&jm, &DVector::from_vec(d.to_vec()), None),
                test_losses: None,
                moe: None,
                samples: None,
                sample_stage: None,
                dynamics: None,
            });
        }
        opt.step(&mut x, &d);
    }
    Snapshot {
        steps_done: config.steps,
        new_records: records,
        train_losses: toy.losses(&x),
        params: x,
        test_losses: None,
        error: None,
    }
}

/// (|Δx|, worst relative loss difference, worst weight difference) of one run.
fn compare(config: &TrainConfig) -> (f64, f64, f64) {
    let got = gpu_run(config);
    let want = cpu_run(config);
    assert_eq!(got.error, None);
    assert_eq!(got.steps_done, config.steps, "the GPU took fewer steps (cut by the adapter?)");
    assert_eq!(got.new_records.len(), want.new_records.len());
    let dx = ((got.params[0] - want.params[0]).powi(2) + (got.params[1] - want.params[1]).powi(2)).sqrt();
    let (mut dl, mut dw) = (0.0f64, 0.0f64);
    for (g, w) in got.new_records.iter().zip(&want.new_records) {
        assert_eq!(g.step, w.step);
        for (a, b) in g.losses.iter().zip(&w.losses) {
            dl = dl.max((a - b).abs() / b.abs().max(1.0));
        }
        // TrimmedMean and GradDrop report no weights (d is not Jᵀw), on both backends.
        assert_eq!(g.aggregator_weights.is_some(), w.aggregator_weights.is_some(), "step {}", g.step);
        if let (Some(gw), Some(ww)) = (&g.aggregator_weights, &w.aggregator_weights) {
            let scale = ww.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
            for (a, b) in gw.iter().zip(ww) {
                dw = dw.max((a - b).abs() / scale);
            }
        }
        assert_eq!(g.metrics.norms.len(), 2);
    }
    for (a, b) in got.train_losses.iter().zip(&want.train_losses) {
        dl = dl.max((a - b).abs() / b.abs().max(1.0));
    }
    (dx, dl, dw)
}

fn check_method(name: &str) {
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    let mut cases = Vec::new();
    // Two published starts of each problem. Not (0, 0) and (9, 9) of the scaled toy: there the
    // two gradients are collinear to ~1e-8 (sech²(9) ≈ 6e-8; on x₂ = 0 both gates switch), so G
    // has an eigenvalue below f32's resolution of G and the eigendecomposition methods' rank
    // cutoffs decide differently in f32 and f64 (measured after 300 steps: IMTL-G |Δx| 0.12 from
    // (0, 0); Aligned-MTL 1.7e-2 and IMTL-G 3.6e-3 from (9, 9)); every other method matches there.
    for (problem, start) in [
        (ProblemKind::CagradToy, [-8.5, 7.5]),
        (ProblemKind::CagradToy, [9.0, 9.0]),
        (ProblemKind::CagradToyScaled, [-8.5, 7.5]),
        (ProblemKind::CagradToyScaled, [-7.5, -0.5]),
    ] {
        cases.push(toy_config(problem, start, name, TrainOptimizer::adam(1e-3), 300));
    }
    // Larger steps: Adam 2e-2 and plain SGD 1e-2 on the smooth bowl (x₂ < 0).
    cases.push(toy_config(ProblemKind::CagradToy, [-8.5, -5.0], name, TrainOptimizer::adam(2e-2), 200));
    // Two stateful methods take their SGD steps on the plain toy's bowl instead. From (9, −1)
    // SDMGrad's run is chaotic (its inner iteration flips w across the simplex from step to step
    // and f32 rounding decides the side after 65 steps: toy_stateful.rs `cases`), and GradVac's
    // reaches x₂ = 0 at step 94, where the two gradients are antiparallel to 1e-13: its
    // correction divides by √(1 − φ̂²), the f64 run takes the non-finite fallback w = 1 there and
    // the f32 run does not (measured: the runs agree to 3e-4 in w until then, 2.6e-2 in x after).
    let (problem, start) = match name {
        "sdmgrad" | "gradvac" => (ProblemKind::CagradToy, [-8.5, -5.0]),
        _ => (ProblemKind::CagradToyScaled, [9.0, -1.0]),
    };
    cases.push(toy_config(problem, start, name, TrainOptimizer::sgd(1e-2, 0.0), 200));
    for c in &cases {
        let (dx, dl, dw) = compare(c);
        eprintln!(
            "{name} {} from {:?} {}: |Δx| {dx:e}, loss {dl:e}, w {dw:e}",
            c.data.kind(),
            c.data_start(),
            c.optimizer.name()
        );
        worst = (worst.0.max(dx), worst.1.max(dl), worst.2.max(dw));
        // Tolerances: see `every_gpu_method_runs_on_the_toys`.
        assert!(dx <= 1e-4, "{name} from {:?}: |Δx| = {dx:e}", c.data_start());
        assert!(dl <= 1e-4, "{name} from {:?}: relative loss difference {dl:e}", c.data_start());
        assert!(dw <= 2e-3, "{name} from {:?}: weight difference {dw:e}", c.data_start());
    }
    eprintln!("{name}: worst |Δx| {:e}, loss {:e}, w {:e}", worst.0, worst.1, worst.2);
}

trait Start {
    fn data_start(&self) -> [f64; 2];
}

impl Start for TrainConfig {
    fn data_start(&self) -> [f64; 2] {
        match self.data {
            DataSource::Toy { start, .. } => start,
            _ => [f64::NAN; 2],
        }
    }
}

/// Every method of the GPU table (MoDo, SDMGrad and GradVac with their memory, TrimmedMean and
/// GradDrop from J), both problems, two published starts each (Adam 1e-3, 300 steps) plus a
/// larger Adam and an SGD run, every 25th step's record compared. Tolerances (measured worst on
/// lavapipe over all methods in brackets): |Δx| ≤ 1e-4 [8.7e-6 MGDA], relative loss ≤ 1e-4
/// [1.0e-5 Random, SGD], weights ≤ 2e-3·max(1, Σ|w|) [6.4e-4 ConFIG, 2.4e-4 IMTL-G: both divide
/// by gradient norms / eigenvalues of the f32 G].
#[test]
fn every_gpu_method_runs_on_the_toys() {
    let names = concord_gpu::toy_gpu_methods();
    assert_eq!(names.len(), 17, "{names:?}");
    for name in names {
        check_method(name);
    }
}

/// The GPU trainer methods the fused toy kernel does not run are refused with a reason, never
/// run wrongly: Krum (two tasks; the CPU refuses too) and the ones whose weights the trainer takes
/// from the CPU (`host_weighting`: the fused kernel never leaves the GPU between steps).
#[test]
fn the_toy_refuses_the_gpu_methods_it_does_not_run() {
    let toy = concord_gpu::toy_gpu_methods();
    let missing: Vec<_> = concord_gpu::gpu_trainer_methods().into_iter().filter(|n| !toy.contains(n)).collect();
    assert_eq!(missing, ["krum", "nash-mtl", "fairgrad", "excess-mtl", "pcd", "cr-mogm", "moco", "db-mtl"]);
    for name in missing {
        let method = match name {
            "krum" => "krum:n_byzantine=0".to_string(),
            "fairgrad" => "fairgrad:alpha=1".to_string(),
            _ => name.to_string(),
        };
        let mut c = Preset::CagradToy.config();
        c.method = MethodSpec::parse(&method).unwrap();
        let err = match concord_gpu::backend(gpu_arc(), c) {
            Ok(_) => panic!("{name} should be refused on the toy"),
            Err(e) => e.to_string(),
        };
        let why = if name == "krum" { "needs m ≥ n_byzantine + 3" } else { "the fused toy kernel cannot" };
        assert!(err.contains(why), "{name}: {err}");
    }
}

#[test]
fn the_toy_refuses_the_hybrids_naming_the_gpu_methods_and_the_mlp_takes_them() {
    for data in
        [DataSource::Toy { problem: ProblemKind::CagradToy, start: [-8.5, 7.5] }, Preset::XorConflict.config().data]
    {
        let mut c = Preset::XorConflict.config();
        if matches!(data, DataSource::Toy { .. }) {
            c = Preset::CagradToy.config();
        }
        c.data = data;
        let toy = matches!(c.data, DataSource::Toy { .. });
        // A loss-aware method (reads the task losses) names that reason on the toy; the MLP
        // trainer runs it with its update from the CPU (train_parity_host.rs).
        let moco = TrainConfig { method: MethodSpec::plain("moco"), ..c.clone() };
        match concord_gpu::backend(gpu_arc(), moco) {
            Err(e) if toy => assert!(e.to_string().contains("'moco' reads the task losses with J"), "{e}"),
            Err(e) => panic!("moco on the MLP: {e}"),
            Ok(_) => assert!(!toy, "the toy kernel took moco"),
        }
        // ExcessMTL: no kernel; a hybrid on the MLP, refused on the toy naming the GPU methods.
        c.method = MethodSpec::plain("excess-mtl");
        match concord_gpu::backend(gpu_arc(), c) {
            Err(e) if toy => {
                let err = e.to_string();
                assert!(err.contains("no GPU kernel for 'excess-mtl'"), "{err}");
                assert!(err.contains("the fused toy kernel cannot"), "{err}");
                assert!(err.contains(&format!("the GPU has: {}", concord_gpu::gpu_methods().join(", "))), "{err}");
            }
            Err(e) => panic!("excess-mtl on the MLP: {e}"),
            Ok(_) => assert!(!toy, "the toy kernel took excess-mtl"),
        }
    }
}

#[test]
fn backend_picks_the_toy_and_the_trainer() {
    let toy = concord_gpu::backend(
        gpu_arc(),
        toy_config(ProblemKind::CagradToy, [-8.5, 7.5], "upgrad", TrainOptimizer::adam(1e-3), 10),
    )
    .unwrap();
    assert_eq!(toy.kind(), concord_core::train::BackendKind::Gpu);
    let mut c = Preset::XorConflict.config();
    c.steps = 7;
    c.record_every = 3;
    let mut mlp = concord_gpu::backend(gpu_arc(), c).unwrap();
    assert_eq!(mlp.submit(100).unwrap(), 7);
    let snap = pollster::block_on(mlp.read_back()).unwrap();
    let steps: Vec<usize> = snap.new_records.iter().map(|r| r.step).collect();
    assert_eq!((snap.steps_done, steps), (7, vec![0, 3, 6]));
    assert!(snap.test_losses.is_some() && snap.error.is_none());
    // A second read-back brings no record twice.
    assert!(pollster::block_on(mlp.read_back()).unwrap().new_records.is_empty());
}

#[test]
fn toy_records_follow_record_every_and_read_backs_do_not_repeat() {
    let mut c = toy_config(ProblemKind::CagradToy, [-8.5, -5.0], "mgda", TrainOptimizer::adam(1e-3), 103);
    c.record_every = 10;
    let mut b = concord_gpu::backend(gpu_arc(), c).unwrap();
    assert_eq!(b.submit(45).unwrap(), 45);
    let first = pollster::block_on(b.read_back()).unwrap();
    assert_eq!(b.submit(1000).unwrap(), 58);
    assert_eq!(b.submit(1).unwrap(), 0);
    let second = pollster::block_on(b.read_back()).unwrap();
    let steps = |s: &Snapshot| s.new_records.iter().map(|r| r.step).collect::<Vec<_>>();
    assert_eq!(steps(&first), vec![0, 10, 20, 30, 40]);
    assert_eq!(steps(&second), vec![50, 60, 70, 80, 90, 100, 102]);
    assert_eq!((first.steps_done, second.steps_done), (45, 103));
}

#[test]
fn adamw_on_the_toy_matches_core() {
    let mut opt = TrainOptimizer::adamw(1e-2);
    if let TrainOptimizer::AdamW { weight_decay, .. } = &mut opt {
        *weight_decay = 0.5;
    }
    let (dx, dl, _) = compare(&toy_config(ProblemKind::CagradToy, [-8.5, -5.0], "cagrad", opt, 300));
    eprintln!("adamw: |Δx| {dx:e}, loss {dl:e}");
    assert!(dx <= 1e-4 && dl <= 1e-5, "adamw: |Δx| {dx:e}, loss {dl:e}");
}

/// The stop contract through `Backend` (see the CLI's
/// `a_diverging_toy_run_reports_the_same_stop_on_both_backends` for why f32 and f64 stop at
/// different steps): far out on the log side (lr 1e10) a finite run stays finite on the GPU, as
/// on the CPU; at lr 1e30 one step reaches x ≈ (−1.3e30, …) with the quadratic gate open, where
/// the losses leave f32: the GPU stops there with the CPU trainer's first check and message, at
/// the CPU's point after that many steps, and takes no more steps.
#[test]
fn a_diverging_toy_run_stops_as_the_cpu_trainer_reports_it() {
    let sgd_sum = |lr: f64, steps: usize| {
        toy_config(ProblemKind::CagradToy, [-8.5, -5.0], "sum", TrainOptimizer::sgd(lr, 0.0), steps)
    };
    let finite = sgd_sum(1e10, 50);
    let (gpu, cpu) = (gpu_run(&finite), cpu_run(&finite));
    assert_eq!((gpu.error.as_deref(), gpu.steps_done), (None, 50), "{gpu:?}");
    assert_eq!((cpu.error.as_deref(), cpu.steps_done), (None, 50));
    let rel = |a: &[f64], b: &[f64]| ((a[0] - b[0]).hypot(a[1] - b[1])) / b[0].hypot(b[1]);
    assert!(rel(&gpu.params, &cpu.params) <= 1e-5, "GPU {:?} CPU {:?}", gpu.params, cpu.params);

    let diverging = sgd_sum(1e30, 200);
    let mut b = concord_gpu::backend(gpu_arc(), diverging.clone()).unwrap();
    b.submit(200).unwrap();
    let snap = pollster::block_on(b.read_back()).unwrap();
    assert_eq!(snap.steps_done, 1, "{snap:?}");
    assert_eq!(
        snap.error.as_deref(),
        Some(
            "step 1: a task loss is not finite ([inf, inf]); the run stopped, parameters kept at the last finite state"
        )
    );
    assert!(snap.params.iter().all(|v| v.is_finite()));
    let one = cpu_run(&sgd_sum(1e30, 1));
    assert!(rel(&snap.params, &one.params) <= 1e-6, "GPU {:?} CPU after 1 step {:?}", snap.params, one.params);
    // Stopped: nothing more is queued, and the state stays.
    assert_eq!(b.submit(10).unwrap(), 0);
    let again = pollster::block_on(b.read_back()).unwrap();
    assert_eq!((again.steps_done, again.params), (1, snap.params));
}

/// The stop reasons follow the CPU trainer's checks in its order (a loss at x, the Jacobian, the
/// update, the new position), with its text. A run whose loss at x leaves the float range stops
/// at that step with "a task loss is not finite", keeping x, on both backends: in f32 from
/// |x₁| ≈ 6e19 with the quadratic gate open (x₂ < 0), in f64 from ≈ 1e154. The GPU used to
/// check only the new position: it stepped on with infinite losses, and a record's loss
/// reported the stop later, in other words.
#[test]
fn a_non_finite_loss_stops_both_backends_with_the_cpu_trainers_reason() {
    let expected =
        "step 0: a task loss is not finite ([inf, inf]); the run stopped, parameters kept at the last finite state";
    for (start, method) in [([-1e20, -5.0], "sum"), ([3e19, -1.0], "mgda"), ([-1e20, -5.0], "upgrad")] {
        let config = toy_config(ProblemKind::CagradToy, start, method, TrainOptimizer::sgd(1e-3, 0.0), 40);
        let mut b = concord_gpu::backend(gpu_arc(), config).unwrap();
        b.submit(40).unwrap();
        let snap = pollster::block_on(b.read_back()).unwrap();
        assert_eq!((snap.error.as_deref(), snap.steps_done), (Some(expected), 0), "{method} from {start:?}: {snap:?}");
        assert_eq!(snap.params, start.to_vec(), "{method}: the start is kept");
        assert_eq!(b.submit(10).unwrap(), 0, "{method}: a stopped run takes no more steps");
    }
    // The CPU at its own overflow point: the same text and step.
    let cpu = cpu_run(&toy_config(ProblemKind::CagradToy, [-1e160, -5.0], "sum", TrainOptimizer::sgd(1e-3, 0.0), 40));
    assert_eq!((cpu.error.as_deref(), cpu.steps_done), (Some(expected), 0), "{cpu:?}");
    assert_eq!(cpu.params, vec![-1e160, -5.0]);
}

/// A long toy run's history is thinned by whoever keeps it (`History`, as the page and the CLI
/// do): GpuToy restores it as the CPU trainer does, continuing after the last record, and the
/// continued run matches the CPU trainer restored from the same record (fresh optimizer
/// moments on both). GpuToy used to want one record per step ("the saved history's record i
/// says step …"). A run recorded every k-th step is refused, as the CPU trainer refuses it.
#[test]
fn a_toy_with_a_thinned_history_restores_after_its_last_record() {
    // SGD: no moments to restart, so a restored run goes on exactly as the uninterrupted one.
    let mut config = toy_config(ProblemKind::CagradToy, [-8.5, 7.5], "cagrad", TrainOptimizer::sgd(1e-3, 0.0), 6000);
    config.record_every = 1;
    let mut first = concord_gpu::backend(gpu_arc(), config.clone()).unwrap();
    first.submit(HISTORY_CAP + 1000).unwrap();
    let snap = pollster::block_on(first.read_back()).unwrap();
    assert_eq!((snap.steps_done, snap.error.as_deref()), (HISTORY_CAP + 1000, None));
    let history = History::from_records(snap.new_records).to_vec();
    assert!(history.len() < HISTORY_CAP + 1000, "thinned: {} records", history.len());
    assert_eq!(history.last().map(|r| r.step), Some(HISTORY_CAP + 999));

    let mut gpu = concord_gpu::backend(gpu_arc(), config.clone()).unwrap();
    gpu.restore(snap.params.clone(), history.clone()).unwrap();
    assert_eq!(gpu.steps_submitted(), HISTORY_CAP + 1000);
    gpu.submit(500).unwrap();
    let g = pollster::block_on(gpu.read_back()).unwrap();
    assert_eq!((g.steps_done, g.error.as_deref()), (HISTORY_CAP + 1500, None));

    let mut cpu = Trainer::new(config.clone()).unwrap();
    Backend::restore(&mut cpu, snap.params.clone(), history.clone()).unwrap();
    Backend::submit(&mut cpu, 500).unwrap();
    let c = now(Backend::read_back(&mut cpu)).unwrap().unwrap();
    assert_eq!(c.steps_done, HISTORY_CAP + 1500);
    let d = (g.params[0] - c.params[0]).hypot(g.params[1] - c.params[1]);
    // f32 vs f64 over 500 steps from the same point: the parity tests measure ≤ 1e-5 over 300.
    assert!(d <= 1e-4, "GPU {:?} vs CPU {:?}: {d:e}", g.params, c.params);
    first.submit(500).unwrap();
    let straight = pollster::block_on(first.read_back()).unwrap();
    let d = (g.params[0] - straight.params[0]).hypot(g.params[1] - straight.params[1]);
    assert!(d <= 1e-5, "restored {:?} vs uninterrupted {:?}: {d:e}", g.params, straight.params);

    let mut sparse = config;
    sparse.record_every = 100;
    let mut b = concord_gpu::backend(gpu_arc(), sparse).unwrap();
    let e = b.restore(snap.params, history).unwrap_err().to_string();
    assert!(e.contains("only a run that records every step can be restored"), "{e}");
}
