//! The GPU trainer's MoE step records (`StepRecord.moe`: routing statistics per task, P(t,e),
//! the aux-loss values, the task-gradient cosine inside each expert) against the CPU trainer's,
//! for every router, on Mesa lavapipe (a missing adapter is a failure, not a skip).
//!
//! Runs: xor-conflict's MoE model, 100 steps of Adam 3e-3 (as `moe_train_parity.rs`, whose
//! 200-step trajectories agree to 2e-5; 100 here to keep CI's native stage short), every
//! `RECORD_EVERY`-th step recorded. Both sides record the same steps, and only those (the GPU
//! copies its routing on recorded steps only).
//!
//! Tolerances, and why:
//! - The discrete statistics — each task's expert load, top-1 fractions f_i, dropped and
//!   unrouted tokens, the capacity — are counts over the 50 tokens of a batch (one token is
//!   0.02), so they are compared **exactly**: both sides must make every routing decision alike
//!   (the one-batch test in `moe_train_parity.rs` shows no near tie on this data, and the
//!   trajectories stay within 2e-5).
//! - The continuous ones (P_i, P(t,e), the aux-loss values): f32 parameters and gate logits on
//!   the GPU against f64 on the CPU, so the trainer's own tolerance for its records (losses,
//!   weights): |Δ| ≤ `CONT_TOL`·(|cpu| + 1e-3) = 2e-5 relative. Measured (200 steps): 4.1e-7
//!   (task) … 3.8e-6 (expert choice); 100 steps: ≤ 1.5e-6.
//! - The per-expert cosines: the same undefined (`None`) entries — an expert a task sent no
//!   token gets an exactly zero gradient on both sides — and |Δcos| ≤ `COS_TOL` = 5e-5 elsewhere:
//!   J in f32 against f64 moves a cosine by J's relative f32 error over the angle, more than the
//!   statistics above where two rows are nearly parallel. Measured (200 steps): 1.0e-6 … 4.5e-6;
//!   100 steps: ≤ 2.2e-6.

mod common;
use common::{rel, train_both};

use concord_core::model::moe::{RouterKind, TaskGate};
use concord_core::train::{preset, MoeSpec, MoeStepRecord, Precision, TrainConfig, TrainOptimizer};
use concord_core::MethodSpec;

const STEPS: usize = 100;
const RECORD_EVERY: usize = 10;
const CONT_TOL: f64 = 2e-5;
const COS_TOL: f64 = 5e-5;

/// Every router the GPU trains, each set to select (capacity factors that drop tokens or leave
/// some unrouted, k < E), and the dense ones.
fn routers() -> [RouterKind; 8] {
    [
        RouterKind::Softmax,
        RouterKind::Mmoe,
        RouterKind::Switch { capacity_factor: 1.0 },
        RouterKind::Top2 { capacity_factor: 1.0 },
        RouterKind::NoisyTopK { k: 2 },
        RouterKind::ExpertChoice { capacity_factor: 1.0 },
        RouterKind::Task { k: 1, gate: TaskGate::PerTask },
        RouterKind::Task { k: 2, gate: TaskGate::Embedding },
    ]
}

fn config(router: RouterKind) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.steps = STEPS;
    c.record_every = RECORD_EVERY;
    c.precision = Precision::F64;
    c.method = MethodSpec::parse("mean").unwrap();
    c.moe = Some(MoeSpec::new(router));
    c.optimizer = TrainOptimizer::adam(3e-3);
    c
}

/// The largest continuous gap (relative) and cosine gap of one step's records; panics on a
/// discrete difference.
fn compare(what: &str, cpu: &MoeStepRecord, gpu: &MoeStepRecord) -> (f64, f64) {
    let (c, g) = (&cpu.routing, &gpu.routing);
    assert_eq!(c.tasks.len(), g.tasks.len(), "{what}");
    let mut cont = 0.0f64;
    for (t, (a, b)) in c.tasks.iter().zip(&g.tasks).enumerate() {
        assert_eq!(a.load, b.load, "{what}: task {t} load");
        assert_eq!(a.top1_fraction, b.top1_fraction, "{what}: task {t} f_i");
        assert_eq!((a.dropped, a.unrouted, a.capacity), (b.dropped, b.unrouted, b.capacity), "{what}: task {t}");
        for (x, y) in a.router_prob.iter().zip(&b.router_prob) {
            cont = cont.max(rel(*x, *y));
        }
    }
    for (x, y) in c.task_expert.iter().flatten().zip(g.task_expert.iter().flatten()) {
        cont = cont.max(rel(*x, *y));
    }
    let (xa, ya) = (&c.aux, &g.aux);
    for (x, y) in [
        (xa.load_balance, ya.load_balance),
        (xa.z_loss, ya.z_loss),
        (xa.importance_cv2, ya.importance_cv2),
        (xa.load_cv2, ya.load_cv2),
        (xa.mutual_info_loss, ya.mutual_info_loss),
        (xa.mutual_information, ya.mutual_information),
        (xa.total, ya.total),
    ] {
        cont = cont.max(rel(x, y));
    }
    assert_eq!(cpu.expert_cosine.len(), gpu.expert_cosine.len(), "{what}");
    let mut cos = 0.0f64;
    for (e, (a, b)) in cpu.expert_cosine.iter().zip(&gpu.expert_cosine).enumerate() {
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            match (x, y) {
                (Some(x), Some(y)) => cos = cos.max((x - y).abs()),
                (None, None) => {}
                _ => panic!("{what}: expert {e}'s cosine is defined on one side only: cpu {a:?} gpu {b:?}"),
            }
        }
    }
    (cont, cos)
}

/// One router's comparison: a line for the log, and the GPU's dropped and unrouted tokens
/// summed over the records.
fn check(router: RouterKind) -> (String, usize, usize) {
    let cfg = config(router);
    let (cpu, rec) = train_both(&cfg, 64);
    let want: Vec<usize> = (0..STEPS).filter(|s| s % RECORD_EVERY == 0 || s + 1 == STEPS).collect();
    assert_eq!(rec.history.iter().map(|h| h.step).collect::<Vec<_>>(), want);
    assert_eq!(cpu.history().len(), rec.history.len());
    let (mut cont, mut cos, mut dropped, mut unrouted) = (0.0f64, 0.0f64, 0, 0);
    for (c, g) in cpu.history().iter().zip(&rec.history) {
        let what = format!("{} step {}", router.name(), g.step);
        let (cm, gm) =
            (c.moe.as_ref().expect("the CPU records routing"), g.moe.as_ref().expect("the GPU records routing"));
        let (a, b) = compare(&what, cm, gm);
        cont = cont.max(a);
        cos = cos.max(b);
        dropped += gm.routing.tasks.iter().map(|t| t.dropped).sum::<usize>();
        unrouted += gm.routing.tasks.iter().map(|t| t.unrouted).sum::<usize>();
    }
    assert!(cont <= CONT_TOL, "{}: continuous statistics {cont:e}", router.name());
    assert!(cos <= COS_TOL, "{}: expert cosines {cos:e}", router.name());
    let line =
        format!("{}: continuous {cont:.1e}, cosines {cos:.1e}, dropped {dropped}, unrouted {unrouted}", router.name());
    (line, dropped, unrouted)
}

#[test]
fn every_routers_gpu_step_records_match_the_cpu_trainers() {
    // One thread per router (the two trainers of a router run one after another in it).
    let results: Vec<(String, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = routers().into_iter().map(|r| scope.spawn(move || check(r))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (line, _, _) in &results {
        eprintln!("{line}");
    }
    // The exact comparisons compare non-zero counts, not two zeros: switch and top-2 drop
    // tokens (capacity factor 1), expert choice leaves some without an expert.
    assert!(results[2].1 > 0 && results[3].1 > 0, "{results:?}");
    assert!(results[5].2 > 0, "{results:?}");
}
