//! The numbers the merge-or-joint preset's card quotes, over seeds 0–4:
//! `cargo run --release -p concord-core --example merge_preset`.
//!
//! Per seed, every arena run of the preset is trained to step N (the joint runs Mean and UPGrad,
//! and the two single-task parents); the parents (other heads back to θ₀) are merged by task
//! arithmetic (λ = 0.4), TIES (λ = 1) and the projective merge (λ = 0.07), and each point's
//! per-task train losses (the full training set) are printed, with each merge's Entezari
//! barrier to parent 1 and parent 2 and where it sits on the plane of merged models.

use concord_core::merge::{as_parent, evaluate, MergeMethod, MergePlane, MergeSpec, Parents};
use concord_core::train::{Preset, Trainer};

fn main() {
    let preset = Preset::MergeOrJoint;
    let steps: Vec<usize> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').map(|v| v.parse().expect("steps")).collect())
        .unwrap_or(vec![200, 500]);
    for &n in &steps {
        println!("merge-or-joint at step {n}: train losses (circle, gauss)");
        for seed in 0..5u64 {
            let mut base = preset.config();
            base.seed = seed;
            base.steps = n;
            let runs: Vec<Trainer> = preset
                .runs()
                .iter()
                .map(|r| {
                    let mut t = Trainer::new(r.config(&base)).expect("a preset's run");
                    t.run_to_end(|_| {});
                    assert!(t.error().is_none(), "{:?}", t.error());
                    t
                })
                .collect();
            let probe = Trainer::new(base.clone()).unwrap();
            let layout = probe.mlp().unwrap().layout().clone();
            let theta0 = probe.params().to_vec();
            let parents = Parents {
                parents: (0..2).map(|t| as_parent(&layout, &theta0, runs[2 + t].params(), t)).collect(),
                base: theta0.clone(),
                layout,
            };
            let objective = probe.objective();
            let fmt = |l: &[f64]| format!("{:.3}, {:.3}", l[0], l[1]);
            let mut line = format!("  seed {seed}: θ₀ {}", fmt(&objective.losses(&theta0).unwrap()));
            for (k, label) in [(0, "mean"), (1, "upgrad")] {
                line += &format!(" | {label} {}", fmt(&objective.losses(runs[k].params()).unwrap()));
            }
            for t in 0..2 {
                line += &format!(" | parent {} {}", t + 1, fmt(&objective.losses(&parents.parents[t]).unwrap()));
            }
            println!("{line}");
            let plane = MergePlane::new(&parents.layout, &parents.base, &parents.parents).unwrap();
            for how in MergeMethod::ALL {
                let spec = MergeSpec::new(how, None).unwrap();
                let m = evaluate(&spec, &*objective, &parents).unwrap();
                let ([a, b], off) = plane.coords(&m.params);
                println!(
                    "    {:<16} λ {:<5} losses {}  barriers {:.3}, {:.3}  plane ({a:.2}, {b:.2}) off {off:.2}",
                    how.name(),
                    spec.lambda,
                    fmt(&m.losses),
                    m.barriers[0].entezari,
                    m.barriers[1].entezari
                );
            }
        }
    }
}
