//! The fast path (`Precision::F32`) against the f64 reference, run for run: 200-step runs of
//! every MLP preset with every Gramian-weighted method end within 1e-4 (relative) of the
//! reference's final losses.

use super::*;
use crate::aggregators::registry::AGGREGATORS;
use crate::method::MethodSpec;

/// The presets with an MLP (the fast path's models).
const MLP_PRESETS: [&str; 5] =
    ["xor-conflict", "circle-vs-gauss", "gradnorm-scales", "sinusoid-phases", "task-experts-dense"];

fn run(name: &str, method: &str, precision: Precision, steps: usize) -> RunRecord {
    let mut c = preset(name).unwrap();
    c.method = MethodSpec::parse(method).unwrap();
    c.steps = steps;
    c.precision = precision;
    train(&c).unwrap()
}

/// The method `name` with the parameters it requires for m tasks (`None`: it needs more tasks).
fn method_for(name: &str, m: usize) -> Option<String> {
    Some(match name {
        // Unequal weights, so it differs from mean.
        "constant" => format!("constant:weights={}", (1..=m).map(|i| i.to_string()).collect::<Vec<_>>().join(",")),
        "krum" if m < 3 => return None,
        "krum" => "krum:n_byzantine=0".into(),
        "fairgrad" => "fairgrad:alpha=1".into(),
        "trimmed-mean" if m < 3 => return None,
        "trimmed-mean" => "trimmed-mean:trim_number=1".into(),
        n => n.into(),
    })
}

/// The largest relative difference between two runs' final losses.
fn final_gap(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-12)).fold(0.0, f64::max)
}

/// |fast − reference| ≤ 1e-4·|reference| per task (and at most 1e-9 where the loss is ~0).
fn assert_losses_close(what: &str, fast: &[f64], reference: &[f64]) {
    for (t, (f, r)) in fast.iter().zip(reference).enumerate() {
        assert!(
            (f - r).abs() <= 1e-4 * r.abs() + 1e-9,
            "{what}: task {t} ends at {f} on the fast path, {r} on the reference"
        );
    }
}

/// How far the reference itself moves when its initial parameters change by ±1e-7 (relative,
/// alternating signs; two patterns) — the size of f32 rounding. Where a method's 200-step run is
/// chaotic, no f32 path (PyTorch's included) can end within 1e-4 of the f64 one.
fn reference_spread(config: &TrainConfig, reference: &[f64]) -> f64 {
    (0..2)
        .map(|k| {
            let mut t = Trainer::new(config.clone()).unwrap();
            t.params = t
                .params
                .iter()
                .enumerate()
                .map(|(i, v)| v * if (i + k) % 2 == 0 { 1.0 + 1e-7 } else { 1.0 - 1e-7 })
                .collect();
            t.run_to_end(|_| {});
            final_gap(&t.train_losses().unwrap(), reference)
        })
        .fold(0.0, f64::max)
}

/// Every Gramian-weighted method on preset `name`, 200 steps: the fast path's final losses are
/// within 1e-4 (relative) of the reference's. Where they are not, the reference must itself be
/// chaotic (its spread under a 1e-7 change of the start ≥ 1e-5) and the fast path within 10× that
/// spread.
fn compare_every_gramian_method(name: &str) {
    let m = Trainer::new(preset(name).unwrap()).unwrap().num_tasks();
    for info in AGGREGATORS.iter().filter(|a| a.gramian_weighted) {
        let Some(method) = method_for(info.name, m) else { continue };
        let mut config = preset(name).unwrap();
        config.method = MethodSpec::parse(&method).unwrap();
        config.steps = 200;
        config.precision = Precision::F64;
        let reference = train(&config).unwrap();
        let fast = train(&TrainConfig { precision: Precision::F32, ..config.clone() }).unwrap();
        let what = format!("{name} / {method}");
        assert!(reference.error.is_none() && fast.error.is_none(), "{what}: {:?} {:?}", reference.error, fast.error);
        assert_eq!(fast.steps_done, 200, "{what}");
        let gap = final_gap(&fast.final_train_losses, &reference.final_train_losses);
        if gap <= 1e-4 {
            continue;
        }
        let spread = reference_spread(&config, &reference.final_train_losses);
        assert!(
            spread >= 1e-5 && gap <= 10.0 * spread,
            "{what}: the fast path ends {gap:e} from the reference, whose own spread is {spread:e}"
        );
    }
}

#[test]
fn xor_conflict_fast_runs_match_the_reference() {
    compare_every_gramian_method(MLP_PRESETS[0]);
}

#[test]
fn circle_vs_gauss_fast_runs_match_the_reference() {
    compare_every_gramian_method(MLP_PRESETS[1]);
}

#[test]
fn gradnorm_scales_fast_runs_match_the_reference() {
    compare_every_gramian_method(MLP_PRESETS[2]);
}

#[test]
fn sinusoid_phases_fast_runs_match_the_reference() {
    compare_every_gramian_method(MLP_PRESETS[3]);
}

#[test]
fn task_experts_dense_fast_runs_match_the_reference() {
    compare_every_gramian_method(MLP_PRESETS[4]);
}

/// Loss weightings on the fast path: one that reads J (GradNorm), one that needs the losses after
/// the step (FAMO), one stateful (DWA), and the per-coordinate aggregators (no Gramian weights).
#[test]
fn weightings_and_per_coordinate_methods_match_the_reference() {
    for (name, method) in [
        ("sinusoid-phases", "upgrad+gradnorm"),
        ("xor-conflict", "mgda+famo"),
        ("gradnorm-scales", "mean+dwa"),
        ("gradnorm-scales", "mean+uw"),
        ("circle-vs-gauss", "graddrop"),
        ("sinusoid-phases", "trimmed-mean:trim_number=1"),
    ] {
        let reference = run(name, method, Precision::F64, 200);
        let fast = run(name, method, Precision::F32, 200);
        let what = format!("{name} / {method}");
        assert!(reference.error.is_none() && fast.error.is_none(), "{what}: {:?} {:?}", reference.error, fast.error);
        assert_losses_close(&what, &fast.final_train_losses, &reference.final_train_losses);
    }
}

/// The precision reaches the step: the fast path runs for MLPs (numbers that differ from the
/// reference in the last digits), the reference for MoE models and the analytic problems.
#[test]
fn precision_picks_the_path() {
    let build = |name: &str, p: Precision| {
        let mut c = preset(name).unwrap();
        c.precision = p;
        Trainer::new(c).unwrap()
    };
    assert!(build("xor-conflict", Precision::F32).fast.is_some());
    assert!(build("xor-conflict", Precision::F64).fast.is_none());
    assert!(build("task-experts", Precision::F32).fast.is_none(), "MoE: no f32 path");
    assert!(build("pareto-synthetic", Precision::F32).fast.is_none(), "analytic: no f32 path");
    let f = run("xor-conflict", "upgrad", Precision::F32, 5);
    let r = run("xor-conflict", "upgrad", Precision::F64, 5);
    assert_ne!(f.params, r.params, "f32 and f64 runs should differ in rounding");
    assert_eq!(f.config.precision, Precision::F32);
}

/// Per-layer metrics come from the layer-by-layer Gramian: the same cosines as the reference's.
#[test]
fn layer_metrics_match_the_reference() {
    for method in ["upgrad", "graddrop"] {
        let mut c = preset("sinusoid-phases").unwrap();
        c.method = MethodSpec::parse(method).unwrap();
        c.steps = 3;
        c.layer_metrics = true;
        let mut f64c = c.clone();
        f64c.precision = Precision::F64;
        let (fast, reference) = (train(&c).unwrap(), train(&f64c).unwrap());
        let (f, r) = (&fast.history[0].metrics, &reference.history[0].metrics);
        assert_eq!(f.layers.len(), r.layers.len());
        assert!(!r.layers.is_empty());
        for (fl, rl) in f.layers.iter().zip(&r.layers) {
            let (fv, rv) = (serde_json::to_value(fl).unwrap(), serde_json::to_value(rl).unwrap());
            let flat = |v: &serde_json::Value| -> Vec<f64> {
                let mut out = Vec::new();
                fn walk(v: &serde_json::Value, out: &mut Vec<f64>) {
                    match v {
                        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
                        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                        serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
                        _ => {}
                    }
                }
                walk(v, &mut out);
                out
            };
            let (a, b) = (flat(&fv), flat(&rv));
            assert_eq!(a.len(), b.len(), "{method}: layer metrics shape");
            assert!(!a.is_empty());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{method}: layer metric {x} vs {y}");
            }
        }
        for (x, y) in f.directional.iter().zip(&r.directional) {
            assert!((x - y).abs() <= 1e-4 * (1e-6 + y.abs()), "{method}: J·d {x} vs {y}");
        }
    }
}

/// The wide trunk of `bench/wide-trunk.json` (2 → 64 → 64 tanh, 4 heads, batch 256): past
/// `SPLIT_FROM`, so every step's batch is cut in two halves (on two threads) — the same 1e-4.
#[test]
fn a_batch_cut_in_two_matches_the_reference() {
    let config: TrainConfig = serde_json::from_str(include_str!("../../../../bench/wide-trunk.json")).unwrap();
    let mlp = Mlp::new(config.model.clone().unwrap()).unwrap();
    let work = config.batch_size.unwrap() * crate::model::fast::FastMlp::new(&mlp).gradient_work();
    assert!(work >= crate::model::fast::SPLIT_FROM, "{work} multiply-adds: not cut");
    for method in ["mean", "upgrad"] {
        let mut c = config.clone();
        c.method = MethodSpec::parse(method).unwrap();
        c.steps = 200;
        c.precision = Precision::F64;
        let reference = train(&c).unwrap();
        let fast = train(&TrainConfig { precision: Precision::F32, ..c }).unwrap();
        assert!(reference.error.is_none() && fast.error.is_none(), "{method}");
        assert_losses_close(&format!("wide trunk / {method}"), &fast.final_train_losses, &reference.final_train_losses);
    }
}
