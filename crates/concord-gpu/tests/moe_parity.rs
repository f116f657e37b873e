//! The WGSL MoE routing core against concord-core's routers, on Mesa lavapipe (a missing
//! adapter is a failure, not a skip). Inputs are rounded to f32 once and the CPU reference runs
//! in f64 on exactly those values. Routing decisions (dispatch, slots, dropped counts, f_i,
//! load) must match exactly; values within the stated tolerances (measured worst cases in the
//! comments). Cases: every router on random batches, exact ties, capacity overflow, empty experts.

mod common;
use common::gpu;

use concord_core::model::moe::routing::{logsumexp_rows, Routing};
use concord_core::model::moe::{
    cv_squared, dense_softmax, expert_choice, load_balance, mmoe, noisy_topk, switch, task_routing, top2, z_loss,
    RouterKind, TaskGate,
};
use concord_gpu::kernels::moe::{combine, dispatch, route, NONE};
use concord_gpu::{GpuRouter, GpuRouting};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Values: |gpu − cpu| ≤ ABS + REL·|cpu| (measured worst case over all cases: 1.7e-7 on
/// probabilities and combine weights).
const ABS: f64 = 2e-6;
const REL: f64 = 2e-6;

fn close(g: f32, c: f64) -> bool {
    (g as f64 - c).abs() <= ABS + REL * c.abs()
}

fn core_route(router: &RouterKind, logits: DMatrix<f64>) -> Routing {
    match *router {
        RouterKind::Softmax => dense_softmax::route(logits),
        RouterKind::Mmoe => mmoe::route(logits),
        RouterKind::NoisyTopK { k } => {
            let z = DMatrix::zeros(logits.nrows(), logits.ncols());
            noisy_topk::route(logits, z, None, k)
        }
        RouterKind::Switch { capacity_factor } => switch::route(logits, capacity_factor),
        RouterKind::Top2 { capacity_factor } => top2::route(logits, capacity_factor),
        RouterKind::ExpertChoice { capacity_factor } => expert_choice::route(logits, capacity_factor),
        RouterKind::Task { k, .. } => task_routing::route(logits, k),
        // The extraction architectures gate per task over their own experts: not this kernel.
        RouterKind::Cgc { .. } | RouterKind::Ple { .. } | RouterKind::DselectK { .. } => {
            panic!("{} is not a routed MoE block", router.name())
        }
    }
}

/// The CPU logits x·Wᵀ in f64 from the f32 inputs.
fn logits(x: &[f32], t: usize, d: usize, w: &[f32], e: usize) -> DMatrix<f64> {
    DMatrix::from_fn(t, e, |r, c| (0..d).map(|i| x[r * d + i] as f64 * w[c * d + i] as f64).sum())
}

fn run(router: &RouterKind, x: &[f32], t: usize, d: usize, w: &[f32], e: usize) -> (GpuRouting, Routing) {
    let g = pollster::block_on(route(gpu(), x, t, d, w, e, GpuRouter::from_core(router, t, e))).unwrap();
    (g, core_route(router, logits(x, t, d, w, e)))
}

/// Every output of the GPU routing against the core routing and the core's statistics.
fn assert_parity(what: &str, g: &GpuRouting, c: &Routing) {
    let (t, e) = (c.tokens(), c.experts());
    let lse = logsumexp_rows(&c.logits);
    for (r, want) in lse.iter().enumerate() {
        assert!(close(g.lse[r], *want), "{what}: lse[{r}] {} vs {want}", g.lse[r]);
        for x in 0..e {
            let i = r * e + x;
            assert!(close(g.logits[i], c.logits[(r, x)]), "{what}: logit ({r},{x})");
            assert!(close(g.probs[i], c.probs[(r, x)]), "{what}: prob ({r},{x}) {} vs {}", g.probs[i], c.probs[(r, x)]);
            assert_eq!(g.dispatch[i] as f64, c.dispatch[(r, x)], "{what}: dispatch ({r},{x})");
            assert!(
                close(g.combine[i], c.combine[(r, x)]),
                "{what}: combine ({r},{x}) {} vs {}",
                g.combine[i],
                c.combine[(r, x)]
            );
            assert_eq!(g.slot[i] != NONE, c.dispatch[(r, x)] > 0.0, "{what}: slot ({r},{x})");
        }
    }
    // Slots: each processed token sits in its expert's buffer at its slot, and nowhere else.
    for x in 0..e {
        for s in 0..g.buffer_slots {
            let tok = g.token_of_slot[x * g.buffer_slots + s];
            if tok != NONE {
                assert_eq!(g.slot[tok as usize * e + x], s as u32, "{what}: expert {x} slot {s}");
            }
        }
        let filled = (0..g.buffer_slots).filter(|s| g.token_of_slot[x * g.buffer_slots + s] != NONE).count();
        assert_eq!(filled as f64, c.dispatch.column(x).sum(), "{what}: expert {x} fill");
    }
    assert_eq!(g.dropped.iter().sum::<u32>() as usize, c.dropped, "{what}: dropped");
    let f = load_balance::top1_fractions(&c.probs);
    let p = load_balance::mean_probs(&c.probs);
    let load = cv_squared::hard_load(&c.dispatch);
    let imp = cv_squared::importance(&c.combine);
    for x in 0..e {
        // f_i as a token count must match exactly (the fraction itself is f32 on the GPU).
        assert_eq!((g.top1_fraction[x] as f64 * t as f64).round(), (f[x] * t as f64).round(), "{what}: f[{x}]");
        assert!(close(g.top1_fraction[x], f[x]), "{what}: f[{x}]");
        assert!(close(g.mean_prob[x], p[x]), "{what}: P[{x}]");
        assert_eq!(g.load[x] as f64, load[x], "{what}: load[{x}]");
        assert!((g.importance[x] as f64 - imp[x]).abs() <= 1e-5 * (1.0 + imp[x]), "{what}: importance[{x}]");
    }
    let z = z_loss::value(&c.logits);
    assert!((g.z_loss as f64 - z).abs() <= 1e-5 * (1.0 + z), "{what}: z-loss {} vs {z}", g.z_loss);
}

fn routers() -> Vec<RouterKind> {
    vec![
        RouterKind::Softmax,
        RouterKind::Mmoe,
        RouterKind::NoisyTopK { k: 2 },
        RouterKind::Switch { capacity_factor: 1.25 },
        RouterKind::Switch { capacity_factor: 0.5 },
        RouterKind::Top2 { capacity_factor: 1.0 },
        RouterKind::ExpertChoice { capacity_factor: 1.0 },
        RouterKind::ExpertChoice { capacity_factor: 2.0 },
        RouterKind::Task { k: 2, gate: TaskGate::PerTask },
    ]
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.random_range(-1.0..1.0) * scale) as f32).collect()
}

#[test]
fn every_router_matches_the_cpu_on_random_batches() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (t, d, e) in [(7, 2, 3), (37, 3, 4), (128, 5, 8), (300, 4, 16)] {
        let x = random(&mut rng, t * d, 2.0);
        let w = random(&mut rng, e * d, 1.0);
        for router in routers() {
            let (g, c) = run(&router, &x, t, d, &w, e);
            assert_parity(&format!("{} T={t} E={e}", router.name()), &g, &c);
        }
    }
}

#[test]
fn ties_go_to_the_lower_index_on_both_sides() {
    // Zero gate weights: every logit is 0, every probability exactly 1/E on CPU and GPU.
    let (t, d, e) = (10, 3, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = random(&mut rng, t * d, 1.0);
    let w = vec![0.0f32; e * d];
    for router in routers() {
        let (g, c) = run(&router, &x, t, d, &w, e);
        assert_parity(&format!("ties {}", router.name()), &g, &c);
    }
    // Hand check: Switch (cf 2 → capacity ⌊2·10/4⌋ = 5) sends every token to expert 0, keeps
    // tokens 0–4 and drops 5–9; experts 1–3 stay empty.
    let (g, _) = run(&RouterKind::Switch { capacity_factor: 2.0 }, &x, t, d, &w, e);
    assert_eq!(g.dropped, vec![5, 0, 0, 0]);
    assert_eq!(&g.token_of_slot[..5], &[0, 1, 2, 3, 4]);
    assert_eq!(g.load, vec![5.0, 0.0, 0.0, 0.0]);
    assert_eq!(g.top1_fraction, vec![1.0, 0.0, 0.0, 0.0]);
    // Expert choice (c = 1 → k = ⌊10/4⌋ = 2) on equal scores: every expert takes tokens 0 and 1.
    let (g, _) = run(&RouterKind::ExpertChoice { capacity_factor: 1.0 }, &x, t, d, &w, e);
    for x in 0..e {
        assert_eq!(&g.token_of_slot[x * 2..x * 2 + 2], &[0, 1]);
    }
}

#[test]
fn capacity_overflow_drops_the_same_tokens() {
    // Positive gate rows with one dominant expert: most tokens want expert 0.
    let (t, d, e) = (40, 2, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f32> = (0..t * d).map(|_| rng.random_range(0.5f32..1.5)).collect();
    let w = vec![2.0, 2.0, 0.1, 0.3, -0.2, 0.1, 0.0, -1.0];
    for router in [RouterKind::Switch { capacity_factor: 1.0 }, RouterKind::Top2 { capacity_factor: 1.0 }] {
        let (g, c) = run(&router, &x, t, d, &w, e);
        assert!(c.dropped > 0, "{}: the case must overflow", router.name());
        assert_parity(&format!("overflow {}", router.name()), &g, &c);
    }
}

#[test]
fn dispatch_and_combine_match_the_cpu_mixture() {
    let (t, d, e, h) = (33, 3, 4, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let gx = random(&mut rng, t * d, 2.0);
    let w = random(&mut rng, e * d, 1.0);
    let a = random(&mut rng, t * h, 1.0);
    // Expert e: y = tanh(M_e·a_t), a fixed random H × H map.
    let maps: Vec<Vec<f64>> = (0..e).map(|_| (0..h * h).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
    let expert = |ex: usize, row: &[f64]| -> Vec<f64> {
        (0..h).map(|i| (0..h).map(|j| maps[ex][i * h + j] * row[j]).sum::<f64>().tanh()).collect()
    };
    for router in [
        RouterKind::Switch { capacity_factor: 0.75 },
        RouterKind::Top2 { capacity_factor: 1.0 },
        RouterKind::ExpertChoice { capacity_factor: 1.5 },
        RouterKind::Softmax,
    ] {
        let (g, c) = run(&router, &gx, t, d, &w, e);
        let buf = pollster::block_on(dispatch(gpu(), &g, &a, h)).unwrap();
        // The dispatched rows are the tokens' rows, bit for bit; empty slots are 0.
        let mut out = vec![0.0f32; buf.len()];
        for x in 0..e {
            for s in 0..g.buffer_slots {
                let base = (x * g.buffer_slots + s) * h;
                let row = &buf[base..base + h];
                match g.token_of_slot[x * g.buffer_slots + s] {
                    NONE => assert!(row.iter().all(|v| *v == 0.0)),
                    tok => {
                        assert_eq!(row, &a[tok as usize * h..tok as usize * h + h]);
                        let y = expert(x, &row.iter().map(|v| *v as f64).collect::<Vec<_>>());
                        for (o, v) in out[base..base + h].iter_mut().zip(y) {
                            *o = v as f32;
                        }
                    }
                }
            }
        }
        let hg = pollster::block_on(combine(gpu(), &g, &a, &out, h)).unwrap();
        // CPU: h = a + Σ_e combine[t,e]·E_e(a_t) from the core's routing.
        for tok in 0..t {
            let row: Vec<f64> = a[tok * h..tok * h + h].iter().map(|v| *v as f64).collect();
            let mut want = row.clone();
            for x in 0..e {
                if c.combine[(tok, x)] != 0.0 {
                    for (wv, y) in want.iter_mut().zip(expert(x, &row)) {
                        *wv += c.combine[(tok, x)] * y;
                    }
                }
            }
            for (i, wv) in want.iter().enumerate() {
                // f32 products of weights ≤ 1 and |y| ≤ 1, summed over ≤ E terms: ≲ 1e-6.
                assert!(
                    (hg[tok * h + i] as f64 - wv).abs() <= 1e-5,
                    "{} h[{tok},{i}] {} vs {wv}",
                    router.name(),
                    hg[tok * h + i]
                );
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let g = gpu();
    let r = GpuRouter::TopK { k: 1, renormalise: false, capacity: None };
    assert!(pollster::block_on(route(g, &[0.0; 5], 2, 2, &[0.0; 4], 2, r)).is_err());
    assert!(pollster::block_on(route(g, &[f32::NAN; 4], 2, 2, &[0.0; 4], 2, r)).is_err());
    let r3 = GpuRouter::TopK { k: 3, renormalise: false, capacity: None };
    assert!(pollster::block_on(route(g, &[0.0; 4], 2, 2, &[0.0; 4], 2, r3)).is_err());
    let big = GpuRouter::TopK { k: 1, renormalise: false, capacity: None };
    assert!(pollster::block_on(route(g, &vec![0.0; 70_000], 70_000, 1, &[0.0; 2], 2, big)).is_err());
}
