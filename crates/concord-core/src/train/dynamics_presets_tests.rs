//! The training-dynamics presets show what their cards claim (the page's cards quote these
//! measurements; the browser tests check the same on the page).

use super::*;
use crate::dynamics::{RunSpec, StabilityGap};
use crate::landscape::{top_eigenvalue, CurvatureConfig};

fn run(preset: Preset, run: usize, seed: u64, steps: usize) -> Trainer {
    let mut base = preset.config();
    base.seed = seed;
    base.steps = steps;
    let spec: RunSpec = preset.runs()[run].clone();
    let mut t = Trainer::new(spec.config(&base)).unwrap();
    t.run_to_end(|_| {});
    assert!(t.error().is_none(), "{:?}", t.error());
    t
}

fn spike_scores(t: &Trainer) -> Vec<(usize, f64)> {
    t.history().iter().filter_map(|r| Some((r.step, r.dynamics.as_ref()?.spike_score?))).collect()
}

#[test]
fn sam_ends_flatter_than_adam() {
    // λmax of the total train loss at step 500; the card quotes seeds 0–4 (release runs).
    for seed in 0..2 {
        let lambda = |k: usize| {
            let t = run(Preset::SamFlattens, k, seed, 500);
            let objective = t.objective();
            let value = top_eigenvalue(&*objective, t.params(), None, &CurvatureConfig::default()).unwrap().value;
            value
        };
        let (adam, sam) = (lambda(0), lambda(1));
        assert!(sam < adam, "seed {seed}: SAM λmax {sam} vs Adam {adam}");
    }
}

#[test]
fn the_switch_is_a_spike_for_adam_and_spam_answers_it() {
    let limit = 5000f64.sqrt();
    let adam = run(Preset::SpamSpike, 0, 0, 200);
    assert!(
        spike_scores(&adam).iter().any(|&(s, v)| (150..=152).contains(&s) && v > limit),
        "Adam's spike score right after the switch: {:?}",
        &spike_scores(&adam)[140..160]
    );
    assert!(spike_scores(&adam).iter().all(|&(s, v)| s >= 150 || v < limit), "no spike before the switch");
    let spam = run(Preset::SpamSpike, 1, 0, 200);
    let clipped = spam.history()[150].dynamics.as_ref().unwrap().spikes_clipped;
    assert!(clipped > 0, "SPAM clips at the switch");
    let reset = run(Preset::SpamSpike, 2, 0, 200);
    let resets: Vec<usize> =
        reset.history().iter().filter(|r| r.dynamics.as_ref().unwrap().reset).map(|r| r.step).collect();
    assert_eq!(resets, vec![149]);
    assert!(spike_scores(&reset).iter().all(|&(_, v)| v < limit));
}

#[test]
fn joint_is_ahead_of_alternating_at_equal_steps() {
    let test = |k: usize| run(Preset::AlternatingVsJoint, k, 0, 500).test_losses().unwrap().unwrap();
    let (joint, alternating) = (test(0), test(1));
    assert!(joint[0] < alternating[0], "circle: joint {joint:?} alternating {alternating:?}");
    let tasks: Vec<usize> = run(Preset::AlternatingVsJoint, 1, 0, 4)
        .history()
        .iter()
        .map(|r| r.dynamics.as_ref().unwrap().task.unwrap())
        .collect();
    assert_eq!(tasks, vec![0, 1, 0, 1]);
}

#[test]
fn task_one_rises_after_the_switch() {
    let t = run(Preset::SequentialGap, 0, 0, 300);
    let series: Vec<f64> = t.history().iter().map(|r| r.test_losses.as_ref().unwrap()[0]).collect();
    assert_eq!(series.len(), 300, "evaluated every step");
    let gap = StabilityGap::of_losses(&series, 149).unwrap();
    assert!(gap.at_switch < 0.05 && gap.gap > 0.3, "{gap:?}");
    assert_eq!(t.config().dynamics.schedule.switches(3, 450), vec![150, 300]);
}

/// merge-or-joint's arena at `steps`: the trained runs, θ₀ and the parents as a merge takes them.
fn merge_arena(seed: u64, steps: usize) -> (Vec<Trainer>, crate::merge::Parents, Trainer) {
    use crate::merge::{as_parent, Parents};
    let runs: Vec<Trainer> = (0..4).map(|k| run(Preset::MergeOrJoint, k, seed, steps)).collect();
    let mut base = Preset::MergeOrJoint.config();
    base.seed = seed;
    let probe = Trainer::new(base).unwrap();
    let layout = probe.mlp().unwrap().layout().clone();
    let theta0 = probe.params().to_vec();
    let parents = (0..2).map(|t| as_parent(&layout, &theta0, runs[2 + t].params(), t)).collect();
    (runs, Parents { base: theta0, parents, layout }, probe)
}

/// The arena's parents are `train_parents`' (`concord merge`): runs 3 and 4 are the `constant`
/// aggregator at e₁, e₂ from the preset's shared init, bit for bit.
#[test]
fn the_arena_parents_are_train_parents() {
    let (_, parents, _) = merge_arena(0, 30);
    let mut config = Preset::MergeOrJoint.config();
    config.steps = 30;
    assert_eq!(crate::merge::train_parents(&config).unwrap(), parents);
}

/// The card's claim (seeds 0–4 in `examples/merge_preset.rs`, release): at step 500 both joint
/// runs' train losses are below every merge's on both tasks, and every merge's circle loss is
/// above the untrained θ₀'s. Measured: joint circle 0.041–0.077, gauss 0.008–0.027; merges
/// circle 0.715–3.65, gauss 0.054–2.31 (task arithmetic barrier to parent 1: 0.011–0.354); θ₀'s circle 0.69–0.79.
#[test]
fn the_joint_runs_beat_every_merge() {
    use crate::merge::{evaluate, MergeMethod, MergeSpec};
    for seed in 0..5 {
        let (runs, parents, probe) = merge_arena(seed, 500);
        let objective = probe.objective();
        let theta0 = objective.losses(&parents.base).unwrap();
        for how in MergeMethod::ALL {
            let m = evaluate(&MergeSpec::new(how, None).unwrap(), &*objective, &parents).unwrap();
            for joint in &runs[..2] {
                let l = objective.losses(joint.params()).unwrap();
                assert!(
                    l[0] < m.losses[0] && l[1] < m.losses[1],
                    "seed {seed} {}: joint {l:?} merged {:?}",
                    how.name(),
                    m.losses
                );
            }
            assert!(m.losses[0] > theta0[0], "seed {seed} {}: circle {} vs θ₀ {}", how.name(), m.losses[0], theta0[0]);
            assert!(m.barriers.iter().all(|b| b.entezari >= 0.0 && b.entezari.is_finite()));
        }
    }
}
