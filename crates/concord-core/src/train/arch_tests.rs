//! The CPU trainer on CGC, PLE and DSelect-k: each learns the two-task xor-conflict toy with
//! mean and UPGrad, runs reproduce, and the routing statistics are recorded.

use super::*;
use crate::model::moe::RouterKind;

fn arch_run(router: RouterKind, aggregator: &str, steps: usize) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.method = crate::MethodSpec::parse(aggregator).unwrap();
    c.steps = steps;
    let mut spec = MoeSpec::new(router);
    spec.aux.entropy = 1e-3;
    c.moe = Some(spec);
    c
}

fn mean(l: &[f64]) -> f64 {
    l.iter().sum::<f64>() / l.len() as f64
}

const ARCHITECTURES: [RouterKind; 4] = [
    RouterKind::Cgc { task_experts: 1 },
    RouterKind::Ple { task_experts: 1 },
    RouterKind::DselectK { k: 2, gamma: 1.0 },
    RouterKind::DselectK { k: 2, gamma: 1.0 },
];

#[test]
fn every_architecture_learns_the_two_task_toy() {
    for (i, router) in ARCHITECTURES.into_iter().enumerate() {
        for agg in ["mean", "upgrad"] {
            let mut c = arch_run(router, agg, 200);
            if i == 3 {
                c.moe.as_mut().unwrap().experts = 3; // N not a power of 2
            }
            let before = mean(&Trainer::new(c.clone()).unwrap().train_losses().unwrap());
            let r = train(&c).unwrap();
            assert!(r.error.is_none(), "{} {agg}: {:?}", router.name(), r.error);
            let after = mean(&r.final_train_losses);
            assert!(after < 0.8 * before, "{} {agg}: {before} → {after}", router.name());
            let last = r.history.last().and_then(|h| h.moe.as_ref()).expect("routing recorded");
            assert_eq!(last.routing.tasks.len(), 2);
            assert!(r.history.iter().all(|h| h.moe.is_some()));
        }
    }
}

#[test]
fn architecture_runs_reproduce_bit_for_bit() {
    let c = arch_run(RouterKind::Ple { task_experts: 1 }, "pcgrad", 20);
    assert_eq!(train(&c).unwrap(), train(&c).unwrap());
}
