//! The task-experts claim, measured: on xor-conflict's opposed task pair, task-routed experts
//! (a gate per task, top-1) against a dense shared trunk of about the same size (184 vs 192
//! shared parameters), trained with Mean for the presets' 500 steps on seeds 0–4.
//!
//! Measured (this commit): mean cosine on the shared parameters MoE −0.003…+0.075, dense
//! −0.127…+0.126 — no consistent direction, so it is reported, not asserted. The conflicting
//! part, mean of min(cos, 0), is MoE −0.003…−0.013 against dense −0.117…−0.294: smaller on every
//! seed by a factor 9–90. That direction is what the test asserts (with a factor 3 margin).

use super::*;

#[test]
fn task_routed_experts_conflict_less_than_an_equal_size_dense_trunk_on_every_seed() {
    let moe_cfg = preset("task-experts").unwrap();
    let dense_cfg = preset("task-experts-dense").unwrap();
    let moe_model =
        crate::model::moe::Moe::new(moe_cfg.moe.as_ref().unwrap().model_config(moe_cfg.model.as_ref().unwrap()))
            .unwrap();
    let dense_model = crate::model::Mlp::new(dense_cfg.model.clone().unwrap()).unwrap();
    assert_eq!(moe_model.layout().shared_len, 184);
    assert_eq!(dense_model.layout().shared_len, 192);
    for seed in 0..5 {
        let run = |c: &TrainConfig| {
            let r = train(&TrainConfig { seed, ..c.clone() }).unwrap();
            assert!(r.error.is_none(), "seed {seed}: {:?}", r.error);
            ConflictSummary::of(&r).unwrap()
        };
        let (moe, dense) = (run(&moe_cfg), run(&dense_cfg));
        assert!(
            moe.mean_conflict > dense.mean_conflict / 3.0,
            "seed {seed}: MoE mean min(cos,0) {:.4} vs dense {:.4} (mean cos {:.3} vs {:.3})",
            moe.mean_conflict,
            dense.mean_conflict,
            moe.mean_cosine,
            dense.mean_cosine
        );
    }
}
