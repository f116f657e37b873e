//! Routers and aux losses against hand-computed cases (values worked out from the formulas in
//! the comments, not read off the code), finite-difference checks of the whole MoE backprop,
//! capacity overflow, ties and empty experts.

use super::routing::{capacity, top_k};
use super::*;
use crate::model::{Activation, HeadConfig, LossKind, Target};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f64 = 1e-12;

/// Logits whose softmax is exactly the given probabilities (rows summing to 1).
fn logits_of(probs: &[&[f64]]) -> DMatrix<f64> {
    DMatrix::from_fn(probs.len(), probs[0].len(), |r, c| probs[r][c].ln())
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn dense_softmax_of_0_and_ln3_is_a_quarter_and_three_quarters() {
    let r = dense_softmax::route(DMatrix::from_row_slice(1, 2, &[0.0, 3f64.ln()]));
    assert!(close(r.combine[(0, 0)], 0.25, TOL) && close(r.combine[(0, 1)], 0.75, TOL));
    assert_eq!(r.dispatch.sum(), 2.0);
}

#[test]
fn switch_drops_the_third_token_of_a_full_expert() {
    // T = 4, E = 2, cf = 1 → C = ⌊4/2⌋ = 2. Tokens 0–2 prefer expert 0, token 3 expert 1.
    let l = DMatrix::from_row_slice(4, 2, &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    let r = switch::route(l, 1.0);
    let p = std::f64::consts::E / (1.0 + std::f64::consts::E); // softmax([1, 0])₀
    assert_eq!(r.capacity, Some(2));
    assert_eq!(r.dropped, 1);
    assert!(close(r.combine[(0, 0)], p, TOL) && close(r.combine[(1, 0)], p, TOL));
    assert_eq!((r.combine[(2, 0)], r.combine[(2, 1)]), (0.0, 0.0), "token 2 passes through the residual");
    assert!(close(r.combine[(3, 1)], p, TOL));
    assert_eq!(r.winners(), vec![Some(0), Some(0), None, Some(1)]);
}

#[test]
fn ties_go_to_the_lower_index() {
    assert_eq!(top_k(&[1.0, 1.0, 1.0], 2), vec![0, 1]);
    assert_eq!(top_k(&[0.0, 2.0, 2.0, 1.0], 3), vec![1, 2, 3]);
    // Switch on equal logits: everything to expert 0 (capacity T), nothing dropped.
    let r = switch::route(DMatrix::zeros(3, 3), 3.0);
    assert_eq!(r.dispatch.column(0).sum(), 3.0);
    assert_eq!(r.dropped, 0);
    // Expert choice with equal scores takes the lowest token indices: k = ⌊4·1/2⌋ = 2.
    let r = expert_choice::route(DMatrix::zeros(4, 2), 1.0);
    for e in 0..2 {
        assert_eq!(r.dispatch.column(e).iter().copied().collect::<Vec<_>>(), vec![1.0, 1.0, 0.0, 0.0]);
    }
}

#[test]
fn top2_first_choices_take_slots_before_second_choices() {
    // T = 2, E = 3, cf = 1 → C = ⌊1·2·2/3⌋ = 1.
    // Token 0: p = (.3, .5, .2) → e₁ = 1, e₂ = 0; token 1: p = (.6, .1, .3) → e₁ = 0, e₂ = 2.
    // Expert 0's slot goes to token 1's first choice; token 0's second choice is dropped.
    let r = top2::route(logits_of(&[&[0.3, 0.5, 0.2], &[0.6, 0.1, 0.3]]), 1.0);
    assert_eq!(r.capacity, Some(1));
    assert_eq!(r.dropped, 1);
    assert!(close(r.combine[(0, 1)], 0.5 / 0.8, 1e-12));
    assert_eq!(r.combine[(0, 0)], 0.0);
    assert!(close(r.combine[(1, 0)], 0.6 / 0.9, 1e-12));
    assert!(close(r.combine[(1, 2)], 0.3 / 0.9, 1e-12));
}

#[test]
fn expert_choice_gives_tokens_zero_one_or_several_experts() {
    // c = 1.5, T = 3, E = 2 → k = ⌊2.25⌋ = 2. Expert 0 takes tokens 1, 0 (.7, .6); expert 1
    // takes 2, 0 (.9, .4): token 0 gets both.
    let r = expert_choice::route(logits_of(&[&[0.6, 0.4], &[0.7, 0.3], &[0.1, 0.9]]), 1.5);
    let want = [[0.6, 0.4], [0.7, 0.0], [0.0, 0.9]];
    for (t, row) in want.iter().enumerate() {
        for (e, &w) in row.iter().enumerate() {
            assert!(close(r.combine[(t, e)], w, 1e-12), "({t},{e}) {}", r.combine[(t, e)]);
        }
    }
    // c = 1 → k = 1: expert 0 takes token 0 (.9), expert 1 token 2 (.3); token 1 gets none.
    let r = expert_choice::route(logits_of(&[&[0.9, 0.1], &[0.8, 0.2], &[0.7, 0.3]]), 1.0);
    assert_eq!(r.winners(), vec![Some(0), None, Some(1)]);
}

#[test]
fn noisy_topk_without_noise_is_softmax_over_the_kept_logits() {
    // h = (1, 2, 3), k = 2 → softmax(2, 3) on experts 1, 2 = (1/(1+e), e/(1+e)).
    let r = noisy_topk::route(DMatrix::from_row_slice(1, 3, &[1.0, 2.0, 3.0]), DMatrix::zeros(1, 3), None, 2);
    let e = std::f64::consts::E;
    assert_eq!(r.combine[(0, 0)], 0.0);
    assert!(close(r.combine[(0, 1)], 1.0 / (1.0 + e), TOL) && close(r.combine[(0, 2)], e / (1.0 + e), TOL));
}

#[test]
fn noisy_topk_noise_and_smooth_load_match_the_formula() {
    // h = (0, 0), raw noise 0 → σ = ln 2 + 0.01; ε = (1, −1) → H = (σ, −σ), k = 1 keeps expert 0.
    // Load: expert 0 is in the top 1, θ = H₁ = −σ → Φ((0 + σ)/σ) = Φ(1); expert 1: θ = H₀ → Φ(−1).
    let eps = DMatrix::from_row_slice(1, 2, &[1.0, -1.0]);
    let r = noisy_topk::route(DMatrix::zeros(1, 2), DMatrix::zeros(1, 2), Some(eps), 1);
    let sigma = 2f64.ln() + 0.01;
    let n = r.noise.as_ref().unwrap();
    assert!(close(n.noisy[(0, 0)], sigma, TOL) && close(n.noisy[(0, 1)], -sigma, TOL));
    assert_eq!((r.combine[(0, 0)], r.combine[(0, 1)]), (1.0, 0.0));
    let load = noisy_topk::smooth_load(&r, 1).unwrap();
    assert!(close(load[0], 0.841_344_746_068_542_9, 1e-13), "{load:?}");
    assert!(close(load[1], 0.158_655_253_931_457_05, 1e-13), "{load:?}");
}

#[test]
fn task_router_keeps_top_k_probabilities_unnormalised() {
    // p = (.5, .3, .2), k = 2 → G = (.5, .3, 0).
    let r = task_routing::route(logits_of(&[&[0.5, 0.3, 0.2]]), 2);
    assert!(close(r.combine[(0, 0)], 0.5, 1e-12) && close(r.combine[(0, 1)], 0.3, 1e-12));
    assert_eq!(r.combine[(0, 2)], 0.0);
}

#[test]
fn capacity_is_floor_of_cf_times_tokens_over_experts() {
    assert_eq!(capacity(1.25, 50, 4, 50), 15); // ⌊15.625⌋
    assert_eq!(capacity(2.0, 2 * 10, 4, 10), 10); // ⌊10⌋, clamped to T
    assert_eq!(capacity(0.01, 8, 4, 8), 1); // never below 1
}

#[test]
fn load_balance_is_n_sum_f_p_and_one_when_uniform() {
    // f = (1, 0), P = (.75, .25), N = 2 → 2·(1·.75) = 1.5.
    let p = DMatrix::from_row_slice(2, 2, &[0.75, 0.25, 0.75, 0.25]);
    assert!(close(load_balance::value(&p), 1.5, TOL));
    let u = DMatrix::from_element(4, 4, 0.25);
    // argmax ties → expert 0 for all, f = (1,0,0,0), P_0 = .25 → 4·.25 = 1.
    assert!(close(load_balance::value(&u), 1.0, TOL));
}

#[test]
fn z_loss_is_the_mean_squared_logsumexp() {
    // lse(0, 0) = ln 2, lse(ln 3, 0) = ln 4 = 2 ln 2 → ((ln2)² + 4(ln2)²)/2 = 2.5 (ln 2)².
    let l = DMatrix::from_row_slice(2, 2, &[0.0, 0.0, 3f64.ln(), 0.0]);
    let ln2 = 2f64.ln();
    assert!(close(z_loss::value(&l), 2.5 * ln2 * ln2, TOL));
}

#[test]
fn cv_squared_uses_the_population_variance() {
    // (1, 3): mean 2, population variance 1 → 1/4.
    assert!(close(cv_squared::value(&[1.0, 3.0]), 0.25, 1e-9));
    assert_eq!(cv_squared::value(&[2.0, 2.0, 2.0]), 0.0);
    assert_eq!(cv_squared::value(&[0.0, 0.0]), 0.0);
}

#[test]
fn mutual_info_loss_on_diagonal_and_uniform_joints() {
    // Diagonal P = diag(½, ½): r = ½/(½·½) = 2 → L = −2·½·ln(2 + 1e-4); MI = ln 2.
    let d = DMatrix::from_row_slice(2, 2, &[0.5, 0.0, 0.0, 0.5]);
    assert!(close(mutual_info::value(&d), -(2.0001f64).ln(), TOL));
    assert!(close(mutual_info::mutual_information(&d), 2f64.ln(), TOL));
    // Uniform P = ¼: r = 1 → L = −ln(1.0001), MI = 0.
    let u = DMatrix::from_element(2, 2, 0.25);
    assert!(close(mutual_info::value(&u), -(1.0001f64).ln(), TOL));
    assert!(close(mutual_info::mutual_information(&u), 0.0, TOL));
}

/// Finite differences of the loss gradients that have closed forms in the aux files.
#[test]
fn aux_loss_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let h = 1e-6;
    let v: Vec<f64> = (0..4).map(|_| rng.random_range(0.1..2.0)).collect();
    let g = cv_squared::gradient(&v);
    for i in 0..4 {
        let (mut a, mut b) = (v.clone(), v.clone());
        a[i] += h;
        b[i] -= h;
        let num = (cv_squared::value(&a) - cv_squared::value(&b)) / (2.0 * h);
        assert!(close(g[i], num, 1e-7), "cv² {i}: {} vs {num}", g[i]);
    }
    let p = DMatrix::from_fn(3, 4, |_, _| rng.random_range(0.01..0.2));
    let d = mutual_info::d_joint(&p);
    for i in 0..12 {
        let (mut a, mut b) = (p.clone(), p.clone());
        a[i] += h;
        b[i] -= h;
        let num = (mutual_info::value(&a) - mutual_info::value(&b)) / (2.0 * h);
        assert!(close(d[i], num, 1e-6), "MI {i}: {} vs {num}", d[i]);
    }
    let l = DMatrix::from_fn(3, 4, |_, _| rng.random_range(-2.0..2.0));
    let d = z_loss::d_logits(&l);
    for i in 0..12 {
        let (mut a, mut b) = (l.clone(), l.clone());
        a[i] += h;
        b[i] -= h;
        let num = (z_loss::value(&a) - z_loss::value(&b)) / (2.0 * h);
        assert!(close(d[i], num, 1e-7), "z {i}: {} vs {num}", d[i]);
    }
}

fn model(router: RouterKind, aux: AuxWeights) -> Moe {
    Moe::new(MoeConfig {
        input_dim: 2,
        hidden: vec![3],
        activation: Activation::Tanh,
        experts: 3,
        expert_hidden: 3,
        router,
        aux,
        heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Bce }, HeadConfig { out_dim: 2, loss: LossKind::Mse }],
        head_init_scale: 1.0,
        tied_head_init: false,
    })
    .unwrap()
}

fn random_params(m: &Moe, rng: &mut ChaCha8Rng) -> Vec<f64> {
    // Random everywhere (noisy gates start at 0, which would make every routing a tie).
    (0..m.layout().total_len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn batch(rng: &mut ChaCha8Rng, b: usize) -> (DMatrix<f64>, Vec<Target>) {
    let x = DMatrix::from_fn(b, 2, |_, _| rng.random_range(-2.0..2.0));
    let y0 = DMatrix::from_fn(b, 1, |_, _| f64::from(u8::from(rng.random_bool(0.5))));
    let y1 = DMatrix::from_fn(b, 2, |_, _| rng.random_range(-1.0..1.0));
    (x, vec![Target::Values(y0), Target::Values(y1)])
}

const ALL_AUX: AuxWeights =
    AuxWeights { load_balance: 0.3, z_loss: 0.2, importance: 0.5, load: 0.7, mutual_info: 0.4, entropy: 0.0 };

fn routers() -> Vec<RouterKind> {
    vec![
        RouterKind::Softmax,
        RouterKind::Mmoe,
        RouterKind::NoisyTopK { k: 2 },
        RouterKind::Switch { capacity_factor: 1.0 },
        RouterKind::Top2 { capacity_factor: 1.0 },
        RouterKind::ExpertChoice { capacity_factor: 1.0 },
        RouterKind::Task { k: 2, gate: TaskGate::PerTask },
        RouterKind::Task { k: 1, gate: TaskGate::Embedding },
    ]
}

/// Central differences with h = 1e-6 (routing decisions do not flip for random data at this
/// step); |analytic − numeric| ≤ 1e-6·(1 + |analytic|).
#[test]
fn moe_backprop_matches_finite_differences_for_every_router() {
    let h = 1e-6;
    for (i, router) in routers().into_iter().enumerate() {
        let m = model(router, ALL_AUX);
        let mut rng = ChaCha8Rng::seed_from_u64(10 + i as u64);
        let p = random_params(&m, &mut rng);
        let (x, y) = batch(&mut rng, 7);
        let noise = Some(99);
        let g = m.gradients(&p, &x, &y, noise).unwrap();
        let base = m.losses_with_noise(&p, &x, &y, noise).unwrap();
        assert_eq!(base, g.tasks.losses);
        for j in 0..m.layout().total_len {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[j] += h;
            b[j] -= h;
            let la = m.losses_with_noise(&a, &x, &y, noise).unwrap();
            let lb = m.losses_with_noise(&b, &x, &y, noise).unwrap();
            for t in 0..2 {
                let num = (la[t] - lb[t]) / (2.0 * h);
                let ana = if j < m.layout().shared_len {
                    g.tasks.shared_jacobian[(t, j)]
                } else {
                    let r = m.layout().head_range(t);
                    if r.contains(&j) {
                        g.tasks.head_grads[t][j - r.start]
                    } else {
                        0.0
                    }
                };
                assert!(
                    (ana - num).abs() <= 1e-6 * (1.0 + ana.abs()),
                    "{} param {j} task {t}: {ana} vs {num}",
                    router.name()
                );
            }
            if j < m.layout().shared_len {
                let aa = m.aux_values(&a, &x, noise).unwrap().total;
                let ab = m.aux_values(&b, &x, noise).unwrap().total;
                let num = (aa - ab) / (2.0 * h);
                let ana = g.aux_grad[j];
                assert!(
                    (ana - num).abs() <= 1e-6 * (1.0 + ana.abs()),
                    "{} aux param {j}: {ana} vs {num}",
                    router.name()
                );
            }
        }
        if matches!(router, RouterKind::Switch { .. } | RouterKind::Top2 { .. }) {
            assert!(
                g.stats.tasks[0].dropped > 0,
                "{}: the check should cover a batch with dropped tokens",
                router.name()
            );
        }
    }
}

#[test]
fn an_empty_expert_gets_no_gradient_and_no_load() {
    // Zero gate weights: every Switch logit ties, so every token goes to expert 0 (capacity
    // T with cf = 3) and experts 1, 2 stay empty.
    let m = model(RouterKind::Switch { capacity_factor: 3.0 }, AuxWeights::default());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut p = random_params(&m, &mut rng);
    for v in &mut p[m.layout().gates[0].range()] {
        *v = 0.0;
    }
    let (x, y) = batch(&mut rng, 6);
    let g = m.gradients(&p, &x, &y, None).unwrap();
    for e in 1..3 {
        let r = m.layout().experts[e].range();
        assert!(g.tasks.shared_jacobian.columns(r.start, r.len()).iter().all(|v| *v == 0.0));
        assert_eq!(g.stats.tasks[0].load[e], 0.0);
    }
    assert_eq!(g.stats.tasks[0].load[0], 1.0);
    let r0 = m.layout().experts[0].range();
    assert!(g.tasks.shared_jacobian.columns(r0.start, r0.len()).iter().any(|v| *v != 0.0));
}

#[test]
fn dropped_tokens_pass_through_the_residual() {
    // Capacity 1 of 6 tokens (cf small): 5 tokens get no expert and h = a.
    let m = model(RouterKind::Switch { capacity_factor: 0.1 }, AuxWeights::default());
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let p = random_params(&m, &mut rng);
    let (x, _) = batch(&mut rng, 6);
    let r = &m.routings(&p, &x).unwrap()[0];
    assert_eq!(r.capacity, Some(1));
    assert_eq!(r.dropped, 6 - r.dispatch.sum() as usize);
    assert!(r.dropped >= 3, "with C = 1 per expert at most 3 of 6 tokens are kept");
    let winners = r.winners();
    assert_eq!(winners.iter().filter(|w| w.is_none()).count(), r.dropped);
}

#[test]
fn per_task_routers_route_each_task_with_its_own_gate() {
    let m = model(RouterKind::Mmoe, AuxWeights::default());
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let p = random_params(&m, &mut rng);
    let (x, _) = batch(&mut rng, 5);
    let r = m.routings(&p, &x).unwrap();
    assert_eq!(m.layout().gates.len(), 2);
    assert_ne!(r[0].probs, r[1].probs);
    let shared = model(RouterKind::Softmax, AuxWeights::default());
    let p = random_params(&shared, &mut rng);
    let r = shared.routings(&p, &x).unwrap();
    assert_eq!(r[0].probs, r[1].probs);
}

#[test]
fn bad_configs_are_errors_not_panics() {
    let base = model(RouterKind::Softmax, AuxWeights::default()).config().clone();
    let cases: Vec<(MoeConfig, &str)> = vec![
        (MoeConfig { experts: 0, ..base.clone() }, "experts"),
        (MoeConfig { router: RouterKind::NoisyTopK { k: 4 }, ..base.clone() }, "k must be"),
        (MoeConfig { router: RouterKind::Switch { capacity_factor: f64::NAN }, ..base.clone() }, "capacity factor"),
        (MoeConfig { router: RouterKind::Top2 { capacity_factor: 1.0 }, experts: 1, ..base.clone() }, "at least 2"),
        (MoeConfig { aux: AuxWeights { z_loss: -1.0, ..Default::default() }, ..base.clone() }, "z_loss"),
        (MoeConfig { expert_hidden: 0, ..base.clone() }, "expert_hidden"),
    ];
    for (c, needle) in cases {
        let e = Moe::new(c).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
    assert!(RouterKind::from_name("switch", Some(2), None, TaskGate::PerTask).unwrap_err().contains("takes no k"));
    assert!(RouterKind::from_name("bogus", None, None, TaskGate::PerTask).unwrap_err().contains("unknown router"));
    let m = model(RouterKind::Softmax, AuxWeights::default());
    let p = m.init_params(0);
    let x = DMatrix::from_row_slice(1, 2, &[f64::NAN, 0.0]);
    assert!(m.forward(&p, &x).unwrap_err().contains("not finite"));
}
