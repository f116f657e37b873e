//! CGC, PLE and DSelect-k: the reference's "Test this" properties and values (methods-wave2.md
//! §3), finite-difference checks of the whole backprop (J's columns, the task-owned blocks and
//! the regulariser gradient), task isolation, and routing-stat sums.

use super::super::{AuxWeights, Moe, MoeConfig, RouterKind};
use super::*;
use crate::model::{Activation, HeadConfig, LossKind, Target};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(router: RouterKind, experts: usize, tasks: usize) -> MoeConfig {
    let heads = [HeadConfig { out_dim: 1, loss: LossKind::Bce }, HeadConfig { out_dim: 2, loss: LossKind::Mse }];
    MoeConfig {
        input_dim: 2,
        hidden: vec![3],
        activation: Activation::Tanh,
        experts,
        expert_hidden: 3,
        router,
        aux: AuxWeights::default(),
        heads: (0..tasks).map(|t| heads[t % 2]).collect(),
        head_init_scale: 1.0,
        tied_head_init: false,
    }
}

fn batch(rng: &mut ChaCha8Rng, b: usize, tasks: usize) -> (DMatrix<f64>, Vec<Target>) {
    let x = DMatrix::from_fn(b, 2, |_, _| rng.random_range(-2.0..2.0));
    let y = (0..tasks)
        .map(|t| {
            Target::Values(if t % 2 == 0 {
                DMatrix::from_fn(b, 1, |_, _| f64::from(u8::from(rng.random_bool(0.5))))
            } else {
                DMatrix::from_fn(b, 2, |_, _| rng.random_range(-1.0..1.0))
            })
        })
        .collect();
    (x, y)
}

fn architectures() -> Vec<(RouterKind, usize, usize, f64)> {
    // (router, experts, tasks, entropy weight)
    vec![
        (RouterKind::Cgc { task_experts: 1 }, 2, 2, 0.0),
        (RouterKind::Cgc { task_experts: 2 }, 1, 3, 0.0),
        (RouterKind::Ple { task_experts: 1 }, 2, 2, 0.0),
        (RouterKind::Ple { task_experts: 2 }, 1, 3, 0.0),
        (RouterKind::DselectK { k: 2, gamma: 1.0 }, 4, 2, 0.3),
        (RouterKind::DselectK { k: 2, gamma: 4.0 }, 3, 2, 0.5),
        (RouterKind::DselectK { k: 1, gamma: 3.0 }, 5, 3, 0.0),
    ]
}

/// Every parameter, every task: the analytic J column / task-block entry against central
/// differences (h = 1e-6, |analytic − numeric| ≤ 1e-6·(1 + |analytic|)); a parameter in another
/// task's block must not move this task's loss (numeric derivative 0). The regulariser
/// gradient (DSelect-k) is checked the same way over all parameters.
#[test]
fn backprop_matches_finite_differences() {
    let h = 1e-6;
    for (i, (router, experts, tasks, entropy)) in architectures().into_iter().enumerate() {
        let mut cfg = config(router, experts, tasks);
        cfg.aux.entropy = entropy;
        let m = Moe::new(cfg).unwrap();
        let l = m.layout().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(40 + i as u64);
        // DSelect-k selectors live in (−γ/2, γ/2): keep its z weights small so most smooth steps
        // are inside (a saturated step has zero gradient and would test nothing).
        let scale = if matches!(router, RouterKind::DselectK { .. }) { 0.4 } else { 1.0 };
        let p: Vec<f64> = (0..l.total_len).map(|_| scale * rng.random_range(-1.0..1.0)).collect();
        let (x, y) = batch(&mut rng, 6, tasks);
        let g = m.gradients(&p, &x, &y, None).unwrap();
        assert_eq!(g.tasks.losses, m.losses(&p, &x, &y).unwrap());
        assert_eq!(g.aux_grad.len(), l.total_len);
        let (mut checked_shared, mut checked_own) = (0, 0);
        for j in 0..l.total_len {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[j] += h;
            b[j] -= h;
            let la = m.losses(&a, &x, &y).unwrap();
            let lb = m.losses(&b, &x, &y).unwrap();
            for t in 0..tasks {
                let num = (la[t] - lb[t]) / (2.0 * h);
                let r = l.head_range(t);
                let ana = if j < l.shared_len {
                    checked_shared += usize::from(num.abs() > 1e-9);
                    g.tasks.shared_jacobian[(t, j)]
                } else if r.contains(&j) {
                    checked_own += usize::from(num.abs() > 1e-9);
                    g.tasks.head_grads[t][j - r.start]
                } else {
                    0.0
                };
                assert!(
                    (ana - num).abs() <= 1e-6 * (1.0 + ana.abs()),
                    "{} param {j} task {t}: {ana} vs {num}",
                    router.name()
                );
            }
            let aa = m.aux_values(&a, &x, None).unwrap().total;
            let ab = m.aux_values(&b, &x, None).unwrap().total;
            let num = (aa - ab) / (2.0 * h);
            assert!(
                (g.aux_grad[j] - num).abs() <= 1e-6 * (1.0 + num.abs()),
                "{} aux param {j}: {} vs {num}",
                router.name(),
                g.aux_grad[j]
            );
        }
        assert!(checked_shared > 0 && checked_own > 0, "{}: the check saw non-zero gradients", router.name());
        if let RouterKind::DselectK { .. } = router {
            let v = m.aux_values(&p, &x, None).unwrap();
            assert!(v.selector_entropy > 0.0);
            assert_eq!(v.missing_mass > 0.0, !experts.is_power_of_two());
            assert!((v.total - (entropy * v.selector_entropy + v.missing_mass)).abs() < 1e-12);
        }
    }
}

/// Task-owned blocks are contiguous, follow the shared part in task order and end at the
/// last parameter.
#[test]
fn task_blocks_tile_the_parameters_after_the_shared_part() {
    for (router, experts, tasks, _) in architectures() {
        let m = Moe::new(config(router, experts, tasks)).unwrap();
        let l = m.layout();
        let mut end = l.shared_len;
        for t in 0..tasks {
            assert_eq!(l.head_range(t).start, end);
            end = l.head_range(t).end;
            assert!(l.head_range(t).contains(&l.heads[t].weight.start));
        }
        assert_eq!(end, l.total_len);
    }
}

/// CGC shares only the shared experts (and pre-layers); PLE also shares its level-1 task
/// experts and shared gate; DSelect-k shares its experts.
#[test]
fn shared_parameters_are_what_several_tasks_read() {
    let expert = (3 * 3 + 3) * 2; // width 3 (the pre-layer) → expert_hidden 3 → 3
    let pre = 2 * 3 + 3;
    let cgc = Moe::new(config(RouterKind::Cgc { task_experts: 2 }, 2, 2)).unwrap();
    assert_eq!(cgc.layout().shared_len, pre + 2 * expert);
    assert_eq!(cgc.layout().experts.len(), 2);
    // PLE: level 1 = 2 shared + 2·1 task experts + a shared gate (3 → 4, with bias); level 2 = 2 shared.
    let ple = Moe::new(config(RouterKind::Ple { task_experts: 1 }, 2, 2)).unwrap();
    assert_eq!(ple.layout().shared_len, pre + 6 * expert + (3 * 4 + 4));
    assert_eq!(ple.layout().gates.len(), 1);
    let ds = Moe::new(config(RouterKind::DselectK { k: 2, gamma: 1.0 }, 4, 2)).unwrap();
    assert_eq!(ds.layout().shared_len, pre + 4 * expert);
}

fn zero_gates(ext: &Extraction, p: &mut [f64]) {
    for level in &ext.levels {
        for g in level.task_gates.iter().chain(&level.shared_gate) {
            p[g.z.weight.start..g.z.bias.end].iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// Reference: "with zero gate weights, o_k is the plain mean of its m_s + m_k experts".
#[test]
fn cgc_with_zero_gates_takes_the_plain_mean_of_its_experts() {
    let cfg = config(RouterKind::Cgc { task_experts: 2 }, 3, 2);
    let ext = Extraction::new(&cfg, Plan::of(&cfg.router).unwrap());
    let mut p = ext.init_params(3);
    zero_gates(&ext, &mut p);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (x, _) = batch(&mut rng, 4, 2);
    let cache = crate::pause::finish(ext.run_forward(&p, &x));
    let a = cache.pre_acts.last().unwrap();
    let la = &cache.levels[0];
    for k in 0..2 {
        let experts: Vec<&DMatrix<f64>> = la.shared.iter().chain(&la.task[k]).map(|e| &e.y).collect();
        let mean = experts.iter().fold(DMatrix::zeros(4, 3), |s, y| s + *y) / experts.len() as f64;
        let o = &cache.outputs[k] - a;
        assert!((o - mean).abs().max() < 1e-14);
    }
    // The routing stats say the same: 1/5 on each of the task's 5 experts, 0 on the other's.
    let routing = &crate::pause::finish(ext.routings(&p, &x))[1];
    let want = [0.2, 0.2, 0.2, 0.0, 0.0, 0.2, 0.2];
    for (c, w) in want.iter().enumerate() {
        assert!((routing.probs[(0, c)] - w).abs() < 1e-15);
    }
}

/// Reference: "changing task j's expert leaves o_k (k ≠ j) unchanged" — for CGC; for PLE it
/// holds at the last level only (level-1 task experts feed the shared gate).
#[test]
fn changing_one_tasks_expert_leaves_the_other_task_unchanged() {
    for router in [RouterKind::Cgc { task_experts: 1 }, RouterKind::Ple { task_experts: 1 }] {
        let cfg = config(router, 2, 2);
        let ext = Extraction::new(&cfg, Plan::of(&cfg.router).unwrap());
        let p = ext.init_params(8);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (x, _) = batch(&mut rng, 5, 2);
        let before = crate::pause::finish(ext.forward(&p, &x));
        let last = ext.levels.last().unwrap();
        let mut q = p.clone();
        q[last.task[0][0].range()].iter_mut().for_each(|v| *v += 0.5);
        let after = crate::pause::finish(ext.forward(&q, &x));
        assert_eq!(before[1], after[1], "{}: task 1 must not see task 0's expert", router.name());
        assert!((&before[0] - &after[0]).abs().max() > 1e-6, "{}: task 0 does", router.name());
        if let RouterKind::Ple { .. } = router {
            let mut q = p.clone();
            q[ext.levels[0].task[0][0].range()].iter_mut().for_each(|v| *v += 0.5);
            let after = crate::pause::finish(ext.forward(&q, &x));
            assert!((&before[1] - &after[1]).abs().max() > 1e-6, "PLE level 1 reaches task 1 via the shared gate");
        }
    }
}

/// The model's DSelect-k gate gives the reference's q when its selector layers are constant:
/// z = [[0.2, −0.1], [−0.3, 0.4]], w = [0, 0.5] (biases, zero weights), for N = 4 and N = 3.
#[test]
fn dselect_k_gate_reproduces_the_reference_q() {
    for (n, want) in [(4, vec![0.068460, 0.570812, 0.193615, 0.167112]), (3, vec![0.068460, 0.570812, 0.193615])] {
        let cfg = config(RouterKind::DselectK { k: 2, gamma: 1.0 }, n, 2);
        let ext = Extraction::new(&cfg, Plan::of(&cfg.router).unwrap());
        let mut p = ext.init_params(1);
        let gate = &ext.levels[0].task_gates[1];
        let w = gate.w.as_ref().unwrap();
        p[gate.z.weight.clone()].iter_mut().for_each(|v| *v = 0.0);
        p[w.weight.clone()].iter_mut().for_each(|v| *v = 0.0);
        p[gate.z.bias.clone()].copy_from_slice(&[0.2, -0.1, -0.3, 0.4]);
        p[w.bias.clone()].copy_from_slice(&[0.0, 0.5]);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (x, _) = batch(&mut rng, 3, 2);
        let r = &crate::pause::finish(ext.routings(&p, &x))[1];
        for row in 0..3 {
            for (c, q) in want.iter().enumerate() {
                assert!((r.probs[(row, c)] - q).abs() < 5e-7);
            }
        }
        let v = crate::pause::finish(ext.aux_values(&p, &x));
        // Task 1's gate gives the reference entropy 1.631970 (N = 4) and missing mass 2.493610
        // (N = 3) per token; task 0's random gate adds its own.
        assert!(v.selector_entropy > if n == 4 { 1.631970 } else { 0.0 });
        assert_eq!(v.missing_mass > 2.493610, n == 3);
    }
}

/// Usage sums: each task's P_i sums to 1 (CGC, PLE, DSelect-k with N = 2^b), the task–expert
/// joint sums to 1, and a task puts no mass on another task's experts.
#[test]
fn routing_stats_sum_to_one_and_respect_ownership() {
    for (router, experts, tasks, _) in architectures() {
        let m = Moe::new(config(router, experts, tasks)).unwrap();
        let p = m.init_params(11);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (x, y) = batch(&mut rng, 8, tasks);
        let s = m.gradients(&p, &x, &y, None).unwrap().stats;
        let joint: f64 = s.task_expert.iter().flatten().sum();
        let sums: Vec<f64> = s.tasks.iter().map(|t| t.router_prob.iter().sum()).collect();
        if matches!(router, RouterKind::DselectK { .. }) && !experts.is_power_of_two() {
            assert!(sums.iter().all(|v| *v < 1.0 && *v > 0.0), "{sums:?}");
            assert!(joint < 1.0);
        } else {
            assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-12), "{}: {sums:?}", router.name());
            assert!((joint - 1.0).abs() < 1e-12);
        }
        if let RouterKind::Cgc { task_experts: nt } | RouterKind::Ple { task_experts: nt } = router {
            for (t, row) in s.task_expert.iter().enumerate() {
                assert_eq!(row.len(), experts + tasks * nt);
                for (c, v) in row.iter().enumerate().skip(experts) {
                    assert_eq!(*v == 0.0, (c - experts) / nt != t, "{} task {t} expert {c}", router.name());
                }
            }
        }
        assert!(s.tasks.iter().all(|t| t.top1_fraction.iter().sum::<f64>() > 0.999));
    }
}

#[test]
fn bad_architecture_options_are_errors() {
    for (router, experts, want) in [
        (RouterKind::DselectK { k: 0, gamma: 1.0 }, 4, "k must be"),
        (RouterKind::DselectK { k: 5, gamma: 1.0 }, 4, "k must be"),
        (RouterKind::DselectK { k: 2, gamma: 0.0 }, 4, "gamma"),
        (RouterKind::DselectK { k: 2, gamma: f64::NAN }, 4, "gamma"),
        (RouterKind::Cgc { task_experts: 65 }, 2, "task experts"),
    ] {
        let err = Moe::new(config(router, experts, 2)).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
    // The routers' aux losses would train nothing on the task gates: an error for every
    // architecture, while a routed block and DSelect-k's own entropy take theirs.
    for (router, _, _, _) in architectures() {
        let mut c = config(router, 4, 2);
        c.aux.mutual_info = 0.1;
        let err = Moe::new(c).unwrap_err();
        assert!(err.contains("mutual_info applies to a routed MoE block"), "{err}");
    }
    let mut routed = config(RouterKind::Mmoe, 4, 2);
    routed.aux.mutual_info = 0.1;
    assert!(Moe::new(routed).is_ok());
    let mut own = config(RouterKind::DselectK { k: 2, gamma: 1.0 }, 4, 2);
    own.aux.entropy = 0.1;
    assert!(Moe::new(own).is_ok());
    let r = RouterKind::from_name("cgc", None, None, super::super::TaskGate::PerTask).unwrap();
    assert_eq!(r.with_arch_options(Some(3), None), Ok(RouterKind::Cgc { task_experts: 3 }));
    assert!(r.with_arch_options(None, Some(2.0)).unwrap_err().contains("gamma"));
    let d = RouterKind::from_name("dselect-k", Some(3), None, super::super::TaskGate::PerTask).unwrap();
    assert_eq!(d.with_arch_options(None, Some(2.0)), Ok(RouterKind::DselectK { k: 3, gamma: 2.0 }));
    assert!(d.with_arch_options(Some(1), None).unwrap_err().contains("task experts"));
    assert!(RouterKind::from_name("ple", Some(2), None, super::super::TaskGate::PerTask).is_err());
}

/// Configs written as JSON load with the defaults (task_experts 1, k 2, γ 1), and the
/// routers' names round-trip.
#[test]
fn architecture_configs_load_with_defaults() {
    let r: RouterKind = serde_json::from_str(r#"{"router":"cgc"}"#).unwrap();
    assert_eq!(r, RouterKind::Cgc { task_experts: 1 });
    let r: RouterKind = serde_json::from_str(r#"{"router":"dselect-k","k":3}"#).unwrap();
    assert_eq!(r, RouterKind::DselectK { k: 3, gamma: 1.0 });
    let r: RouterKind = serde_json::from_str(r#"{"router":"ple","task_experts":2}"#).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"router":"ple","task_experts":2}"#);
    let w: AuxWeights = serde_json::from_str(r#"{"z_loss":0.1}"#).unwrap();
    assert_eq!(w.entropy, 0.0);
}
