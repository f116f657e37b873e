//! The CPU trainer on MoE models: every router learns, runs reproduce, routing statistics are
//! recorded per step, and bad MoE configs are clear errors.

use super::*;
use crate::model::moe::{AuxWeights, RouterKind, TaskGate};

fn moe_run(router: RouterKind, aggregator: &str, steps: usize) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.method = crate::MethodSpec::parse(aggregator).unwrap();
    c.steps = steps;
    let mut spec = MoeSpec::new(router);
    spec.aux = AuxWeights {
        load_balance: 0.01,
        z_loss: 0.001,
        importance: 0.01,
        load: 0.01,
        mutual_info: 0.005,
        ..Default::default()
    };
    c.moe = Some(spec);
    c
}

fn routers() -> Vec<RouterKind> {
    vec![
        RouterKind::Softmax,
        RouterKind::Mmoe,
        RouterKind::NoisyTopK { k: 2 },
        RouterKind::Switch { capacity_factor: 1.25 },
        RouterKind::Top2 { capacity_factor: 1.25 },
        RouterKind::ExpertChoice { capacity_factor: 2.0 },
        RouterKind::Task { k: 1, gate: TaskGate::PerTask },
        RouterKind::Task { k: 2, gate: TaskGate::Embedding },
    ]
}

fn mean(l: &[f64]) -> f64 {
    l.iter().sum::<f64>() / l.len() as f64
}

#[test]
fn every_router_learns_with_mean_and_upgrad() {
    for router in routers() {
        for agg in ["mean", "upgrad"] {
            let c = moe_run(router, agg, 200);
            let before = mean(&Trainer::new(c.clone()).unwrap().train_losses().unwrap());
            let r = train(&c).unwrap();
            assert!(r.error.is_none(), "{} {agg}: {:?}", router.name(), r.error);
            let after = mean(&r.final_train_losses);
            assert!(after < 0.8 * before, "{} {agg}: {before} → {after}", router.name());
        }
    }
}

#[test]
fn moe_runs_reproduce_bit_for_bit_including_routing_noise() {
    let c = moe_run(RouterKind::NoisyTopK { k: 2 }, "pcgrad", 30);
    let a = train(&c).unwrap();
    assert_eq!(a, train(&c).unwrap());
    let mut c1 = c.clone();
    c1.seed = 1;
    assert_ne!(train(&c1).unwrap().params, a.params);
}

#[test]
fn routing_statistics_are_recorded_every_step() {
    let r = train(&moe_run(RouterKind::Switch { capacity_factor: 1.0 }, "mean", 20)).unwrap();
    let mlp = train(&TrainConfig { moe: None, ..moe_run(RouterKind::Softmax, "mean", 5) }).unwrap();
    assert!(mlp.history.iter().all(|s| s.moe.is_none()));
    for s in &r.history {
        let moe = s.moe.as_ref().expect("an MoE step records routing");
        assert_eq!(moe.routing.tasks.len(), 2);
        assert_eq!(moe.expert_cosine.len(), 4);
        for t in &moe.routing.tasks {
            // Top-1 with capacity ⌊1·50/4⌋ = 12: the processed share plus the dropped share is 1.
            assert_eq!(t.capacity, Some(12));
            let processed: f64 = t.load.iter().sum();
            assert!((processed + t.dropped as f64 / 50.0 - 1.0).abs() < 1e-12, "{processed} + {}", t.dropped);
            assert!(t.load.iter().all(|&l| l <= 12.0 / 50.0 + 1e-12));
            assert!((t.router_prob.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!((t.top1_fraction.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let pte: f64 = moe.routing.task_expert.iter().flatten().sum();
        assert!((pte - 1.0).abs() < 1e-12);
        assert!(moe.routing.aux.load_balance.is_finite() && moe.routing.aux.load_balance > 0.0);
    }
    // JSON round trip keeps the MoE records.
    let back: RunRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.history[3].moe, r.history[3].moe);
}

#[test]
fn bad_moe_configs_are_clear_errors() {
    let mut c = moe_run(RouterKind::Softmax, "mean", 5);
    c.moe.as_mut().unwrap().experts = 0;
    assert!(Trainer::new(c).err().unwrap().contains("moe model: experts"));
    let mut c = moe_run(RouterKind::NoisyTopK { k: 9 }, "mean", 5);
    assert!(c.validate().unwrap_err().contains("k must be"));
    c.moe.as_mut().unwrap().router = RouterKind::Switch { capacity_factor: f64::INFINITY };
    assert!(c.validate().unwrap_err().contains("capacity factor"));
    let mut p = preset("pareto-synthetic").unwrap();
    p.moe = Some(MoeSpec::new(RouterKind::Softmax));
    assert!(p.validate().unwrap_err().contains("leave moe out"));
}

/// The MoE model hands the aggregators the same m × d_shared Jacobian the MLP does, so every
/// registered aggregator runs on it: sinusoid-phases' 3 tasks (Krum needs m ≥ 3) through a
/// top-2 MoE, required parameters supplied, a few steps, finite results.
#[test]
fn every_aggregator_runs_on_an_moe_model() {
    for name in crate::aggregators::registry::names() {
        let mut c = preset("sinusoid-phases").unwrap();
        let text = match name {
            "constant" => "constant:weights=0.5;1;1.5",
            "krum" => "krum:n_byzantine=0",
            "trimmed-mean" => "trimmed-mean:trim_number=1",
            "fairgrad" => "fairgrad:alpha=1",
            other => other,
        };
        c.method = crate::MethodSpec::parse(text).unwrap();
        c.steps = 5;
        c.moe = Some(MoeSpec::new(RouterKind::Top2 { capacity_factor: 1.0 }));
        let r = train(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.error.is_none(), "{name}: {:?}", r.error);
        assert_eq!(r.steps_done, 5, "{name}");
        assert!(r.params.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn the_trainer_predicts_and_maps_winning_experts_for_moe_runs() {
    let mut t = Trainer::new(moe_run(RouterKind::Mmoe, "mean", 3)).unwrap();
    t.run_to_end(|_| {});
    let points = [[0.0, 0.0], [3.0, -2.0], [-5.0, 5.0]];
    let out = t.predict_points(&points).unwrap().unwrap();
    assert_eq!((out.len(), out[0].nrows()), (2, 3));
    let moe = t.moe().expect("an MoE run");
    assert!(t.mlp().is_none());
    let winners = moe.winning_experts(t.params(), &points).unwrap();
    assert_eq!(winners.len(), 2, "one map per task gate");
    // Dense routing: every point has a winner (the expert with the largest gate weight).
    assert!(winners.iter().flatten().all(|w| w.is_some_and(|e| e < 4)));
    // The plain preset predicts through the MLP.
    let p = Trainer::new(preset("xor-conflict").unwrap()).unwrap();
    assert_eq!(p.predict_points(&points).unwrap().unwrap().len(), 2);
}

/// The landscape tools see an MoE run too: its objective's task gradients (shared block and
/// each task's own head) match central finite differences of its task losses (a smooth
/// router, so the losses are differentiable everywhere).
#[test]
fn moe_objective_gradients_match_finite_differences() {
    let trainer = Trainer::new(moe_run(RouterKind::Softmax, "mean", 1)).unwrap();
    let objective = trainer.objective();
    let theta = trainer.params().to_vec();
    assert_eq!(objective.dim(), theta.len());
    let j = objective.task_gradients(&theta).unwrap();
    let h = 1e-6;
    for c in (0..theta.len()).step_by((theta.len() / 17).max(1)).chain([theta.len() - 1]) {
        let (mut up, mut down) = (theta.clone(), theta.clone());
        up[c] += h;
        down[c] -= h;
        let (lu, ld) = (objective.losses(&up).unwrap(), objective.losses(&down).unwrap());
        for t in 0..objective.num_tasks() {
            let fd = (lu[t] - ld[t]) / (2.0 * h);
            assert!((fd - j[(t, c)]).abs() <= 1e-6 * (1.0 + fd.abs()), "task {t} param {c}: fd {fd} vs {}", j[(t, c)]);
        }
    }
}

/// The aux-loss gradient joins the update after the aggregator: one full-batch SGD step
/// (lr 0.1, no momentum) with a z-loss moves the shared parameters by exactly −0.1·∇L_aux more
/// than the same step without it (the task Jacobian, hence Mean's d, is the same in both).
#[test]
fn the_aux_gradient_is_added_to_the_update() {
    let mut with_aux = moe_run(RouterKind::Switch { capacity_factor: 2.0 }, "mean", 1);
    with_aux.batch_size = None;
    with_aux.optimizer = TrainOptimizer::sgd(0.1, 0.0);
    with_aux.moe.as_mut().unwrap().aux = AuxWeights { z_loss: 0.5, load_balance: 0.2, ..Default::default() };
    let mut without = with_aux.clone();
    without.moe.as_mut().unwrap().aux = AuxWeights::default();
    let (a, b) = (train(&with_aux).unwrap(), train(&without).unwrap());

    let spec = with_aux.moe.as_ref().unwrap();
    let moe = crate::model::moe::Moe::new(spec.model_config(with_aux.model.as_ref().unwrap())).unwrap();
    let DataSource::TaskSet { config } = &with_aux.data else { panic!("xor-conflict is a task set") };
    let data = config.generate().unwrap();
    let losses: Vec<_> = with_aux.model.as_ref().unwrap().heads.iter().map(|h| h.loss).collect();
    let (x, y) = data.batch(data.train_indices(), &losses).unwrap();
    let g = moe.gradients(&moe.init_params(with_aux.seed), &x, &y, None).unwrap();
    assert!(g.aux_grad.iter().any(|v| v.abs() > 1e-6), "the case must have an aux gradient");
    let shared = moe.layout().shared_len;
    for j in 0..a.params.len() {
        let want = if j < shared { -0.1 * g.aux_grad[j] } else { 0.0 };
        assert!((a.params[j] - b.params[j] - want).abs() < 1e-12, "param {j}: {} vs {want}", a.params[j] - b.params[j]);
    }
}
