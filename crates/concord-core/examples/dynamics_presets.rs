//! The numbers the training-dynamics presets' cards quote, over seeds 0–4:
//! `cargo run --release -p concord-core --example dynamics_presets` (about a minute).
//!
//! - sam-flattens: λmax of the total train loss (power iteration, PyHessian's defaults) and the
//!   summed train loss at step 500, per run; SAM's plain-vs-SAM cosine range.
//! - spam-spike: the steps whose spike score passes √θ = √5000, and SPAM's first clipped steps.
//! - alternating-vs-joint: the test losses at step 500.
//! - sequential-gap: task 1's test loss at the switch, its worst after it, and the last value.

use concord_core::dynamics::StabilityGap;
use concord_core::landscape::{top_eigenvalue, CurvatureConfig};
use concord_core::train::{Preset, Trainer};

fn run(preset: Preset, k: usize, seed: u64, steps: usize) -> Trainer {
    let mut base = preset.config();
    base.seed = seed;
    base.steps = steps;
    let mut t = Trainer::new(preset.runs()[k].config(&base)).expect("a preset's run");
    t.run_to_end(|_| {});
    if let Some(e) = t.error() {
        println!("  (stopped: {e})");
    }
    t
}

fn main() {
    let seeds = 0..5u64;
    println!("sam-flattens: λmax / train loss at step 500");
    for k in 0..Preset::SamFlattens.runs().len() {
        let label = Preset::SamFlattens.runs()[k].label();
        let mut cells = Vec::new();
        let mut cos = (f64::INFINITY, f64::NEG_INFINITY);
        for seed in seeds.clone() {
            let t = run(Preset::SamFlattens, k, seed, 500);
            let objective = t.objective();
            let lambda = top_eigenvalue(&*objective, t.params(), None, &CurvatureConfig::default()).map(|e| e.value);
            let loss: f64 = t.train_losses().map(|l| l.iter().sum()).unwrap_or(f64::NAN);
            cells.push(format!("{:.2}/{loss:.3}", lambda.unwrap_or(f64::NAN)));
            for r in t.history() {
                if let Some(c) = r.dynamics.as_ref().and_then(|d| d.sam_cosine) {
                    cos = (cos.0.min(c), cos.1.max(c));
                }
            }
        }
        let cos = if cos.0.is_finite() { format!("  SAM cosine {:.3}–{:.3}", cos.0, cos.1) } else { String::new() };
        println!("  {label}: {}{cos}", cells.join("  "));
    }
    println!("spam-spike: steps with spike score > √5000 (first 6) | SPAM's first clipped steps");
    let limit = 5000f64.sqrt();
    for k in 0..Preset::SpamSpike.runs().len() {
        println!("  {}", Preset::SpamSpike.runs()[k].label());
        for seed in seeds.clone() {
            let t = run(Preset::SpamSpike, k, seed, 450);
            let over: Vec<usize> = t
                .history()
                .iter()
                .filter(|r| r.dynamics.as_ref().and_then(|d| d.spike_score).is_some_and(|v| v > limit))
                .map(|r| r.step)
                .take(6)
                .collect();
            let clipped: Vec<usize> = t
                .history()
                .iter()
                .filter(|r| r.dynamics.as_ref().is_some_and(|d| d.spikes_clipped > 0))
                .map(|r| r.step)
                .take(3)
                .collect();
            println!("    seed {seed}: {over:?} | {clipped:?}");
        }
    }
    println!("alternating-vs-joint: test losses (circle, gauss) at step 500");
    for k in 0..Preset::AlternatingVsJoint.runs().len() {
        let cells: Vec<String> = seeds
            .clone()
            .map(|seed| {
                let t = run(Preset::AlternatingVsJoint, k, seed, 500);
                let l = t.test_losses().and_then(|r| r.ok()).unwrap_or_default();
                format!("{:.3},{:.3}", l.first().unwrap_or(&f64::NAN), l.get(1).unwrap_or(&f64::NAN))
            })
            .collect();
        println!("  {}: {}", Preset::AlternatingVsJoint.runs()[k].label(), cells.join("  "));
    }
    println!("sequential-gap: task 1's test loss at the switch (step 149) → worst in steps 150–299 @ step, last");
    for k in 0..Preset::SequentialGap.runs().len() {
        let cells: Vec<String> = seeds
            .clone()
            .map(|seed| {
                let t = run(Preset::SequentialGap, k, seed, 300);
                let series: Vec<f64> = t.history().iter().filter_map(|r| Some(r.test_losses.as_ref()?[0])).collect();
                match StabilityGap::of_losses(&series, 149) {
                    Some(g) => format!("{:.3}→{:.3}@{} {:.3}", g.at_switch, g.worst, g.worst_at, g.last),
                    None => "-".into(),
                }
            })
            .collect();
        println!("  {}: {}", Preset::SequentialGap.runs()[k].label(), cells.join("  "));
    }
}
