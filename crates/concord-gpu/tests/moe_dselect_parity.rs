//! DSelect-k on the GPU trainer (`kernels::moe_dselect` on `kernels::moe_train`) against
//! concord-core's `Moe::gradients` (f64) on Mesa lavapipe (a missing adapter is a failure, not a
//! skip), with the tolerances of `moe_arch_parity.rs` (one batch: 1e-4 of each block's largest
//! entry; 200 steps: |Δ|/(|cpu| + 1e-3) ≤ 2e-5, parameters within 1e-5).
//! One batch: the losses, every entry of the per-task shared Jacobian (pre-layers and experts),
//! each task's own block (its z and w layers, its head) and the regularisers' gradient over
//! every parameter — for 3 and 5 experts (N not a power of 2: the missing-mass term is on),
//! 4 experts with the entropy term on, k = 2 and 3 and γ = 1 and 2.
//! Measured (xor-conflict, lavapipe): one batch ≤ 7.4e-7; 200 steps mean 5.3e-6, upgrad + entropy
//! 1.4e-5, parameters within 1.7e-6.

mod common;
use common::{arch_gradient_gap, gpu, records_gap, train_both};

use concord_core::model::moe::{AuxWeights, RouterKind};
use concord_core::train::{preset, MoeSpec, Precision, TrainConfig, TrainOptimizer, Trainer};
use concord_core::MethodSpec;
use concord_gpu::moe_aux_gradient;

fn spec(k: usize, gamma: f64, experts: usize, entropy: f64) -> MoeSpec {
    MoeSpec {
        experts,
        aux: AuxWeights { entropy, ..AuxWeights::default() },
        ..MoeSpec::new(RouterKind::DselectK { k, gamma })
    }
}

/// The worst relative gap of one batch's losses, J, task blocks and regulariser gradient.
fn gradient_gap(spec: MoeSpec) -> f64 {
    let mut c = preset("xor-conflict").unwrap();
    c.moe = Some(spec);
    let cpu = Trainer::new(c).unwrap();
    let moe = cpu.moe().unwrap();
    let (x, y) = cpu.train_data().unwrap();
    let want = moe.gradients(cpu.params(), x, y, None).unwrap();
    let lay = moe.layout();
    // Losses, J and each task's own block (its z and w layers, its head).
    let mut worst = arch_gradient_gap(&cpu);
    // The regularisers' gradient: full length (the z layers are task-owned), per block.
    let aux = pollster::block_on(moe_aux_gradient(gpu(), moe, cpu.params(), x, y, None)).unwrap();
    assert_eq!(aux.len(), want.aux_grad.len());
    let aux_size: f64 = want.aux_grad.iter().map(|v| v.abs()).sum();
    assert!(aux_size > 1e-6, "the case must have a regulariser gradient: {aux_size}");
    let blocks = lay.shared_blocks().into_iter().map(|(_, r)| r).chain(lay.task_ranges.iter().cloned());
    for range in blocks {
        let scale = range.clone().map(|j| want.aux_grad[j].abs()).fold(0.0, f64::max).max(1e-6);
        for j in range {
            worst = worst.max((want.aux_grad[j] - f64::from(aux[j])).abs() / scale);
        }
    }
    worst
}

#[test]
fn dselect_k_matches_the_cpu_gradients() {
    // (k, γ, experts, entropy λ): N = 3 and 5 (missing mass on), N = 4 with the entropy on.
    for (k, gamma, experts, entropy) in [(2, 1.0, 3, 0.0), (3, 2.0, 5, 0.1), (2, 1.0, 4, 0.5)] {
        let worst = gradient_gap(spec(k, gamma, experts, entropy));
        eprintln!("dselect-k (k {k}, γ {gamma}, {experts} experts, λ {entropy}): worst relative gap {worst:e}");
        assert!(worst <= 1e-4, "dselect-k k {k} γ {gamma} N {experts}: {worst:e}");
    }
}

fn train_config(spec: MoeSpec, aggregator: &str, steps: usize) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.steps = steps;
    c.precision = Precision::F64;
    c.method = MethodSpec::parse(aggregator).unwrap();
    c.moe = Some(spec);
    // As moe_arch_parity.rs: Adam at 3e-3.
    c.optimizer = TrainOptimizer::adam(3e-3);
    c
}

const TOL: f64 = 2e-5;

#[test]
fn dselect_k_runs_train_as_on_the_cpu_for_200_steps() {
    // mean with 3 experts (k = 2: the missing-mass term joins every update after the
    // aggregator), and upgrad with 5 experts, k = 2, γ = 2 and the entropy on.
    let runs = [
        ("mean, 3 experts", train_config(spec(2, 1.0, 3, 0.0), "mean", 200)),
        ("upgrad, 5 experts, entropy", train_config(spec(2, 2.0, 5, 0.05), "upgrad", 200)),
    ];
    for (what, cfg) in runs {
        let (cpu, rec) = train_both(&cfg, 64);
        assert_eq!(rec.history.len(), cfg.steps);
        let worst = records_gap(&cpu, &rec);
        let params_gap = cpu.params().iter().zip(&rec.params).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let init = Trainer::new(cfg.clone()).unwrap();
        let lay = init.moe().unwrap().layout();
        let moved = (lay.task_ranges.iter().flat_map(|r| r.clone()))
            .map(|j| (rec.params[j] - init.params()[j]).abs())
            .fold(0.0, f64::max);
        eprintln!("dselect-k / {what}: worst relative gap {worst:e}, |Δparam| ≤ {params_gap:e}, gates moved {moved:e}");
        assert!(worst <= TOL, "dselect-k / {what}: {worst:e}");
        assert!(params_gap <= 1e-5, "dselect-k / {what}: parameters {params_gap:e} apart");
        assert!(moved > 1e-3, "dselect-k / {what}: the task blocks did not train ({moved:e})");
    }
}

/// The routers' aux losses do not apply to DSelect-k's gates (the CPU adds only its own
/// regularisers): the config refuses them on every backend; with its own entropy the GPU takes it.
#[test]
fn router_aux_losses_with_dselect_k_are_a_config_error_and_its_entropy_trains_on_the_gpu() {
    let mut c = preset("xor-conflict").unwrap();
    let mut s = spec(2, 1.0, 3, 0.0);
    s.aux.load_balance = 0.1;
    c.moe = Some(s);
    let why = Trainer::new(c).err().expect("a config error");
    assert!(why.to_string().contains("load_balance applies to a routed MoE block"), "{why}");
    assert_eq!(
        concord_gpu::gpu_moe_unsupported(
            Trainer::new(train_config(spec(2, 1.0, 3, 0.1), "mean", 1)).unwrap().moe().unwrap()
        ),
        None
    );
}
