//! The page's presets: concord-core's (`train::Preset`: the multi-task runs and the two CAGrad
//! toys). A preset picks the data family and supplies the default of every other URL key from
//! core's typed config, so a link can name only what differs. Each has a short card: what
//! conflict to look for.

use concord_core::data::InputSource;
use concord_core::model::moe::RouterKind;
use concord_core::train::{DataSource, Preset as CorePreset};
use concord_core::ProblemKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    XorConflict,
    CircleVsGauss,
    ConflictWedge,
    GradnormScales,
    SinusoidPhases,
    ParetoSynthetic,
    TaskExperts,
    TaskExpertsDense,
    CagradToy,
    CagradToyScaled,
    SamFlattens,
    SpamSpike,
    AlternatingVsJoint,
    SequentialGap,
    MergeOrJoint,
}

/// The names, in the order of the preset select (also the URL's enum names).
pub const PRESET_NAMES: &[&str] = &[
    "xor-conflict",
    "circle-vs-gauss",
    "conflict-wedge",
    "gradnorm-scales",
    "sinusoid-phases",
    "pareto-synthetic",
    "task-experts",
    "task-experts-dense",
    "cagrad-toy",
    "cagrad-toy-scaled",
    "sam-flattens",
    "spam-spike",
    "alternating-vs-joint",
    "sequential-gap",
    "merge-or-joint",
];

/// The data a preset trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// TF-Playground tasks on shared 2-D points: every data control applies.
    TaskSet,
    GradNorm,
    Sinusoid,
    Pareto,
    Toy(ProblemKind),
}

impl Preset {
    pub const ALL: [Preset; 15] = [
        Preset::XorConflict,
        Preset::CircleVsGauss,
        Preset::ConflictWedge,
        Preset::GradnormScales,
        Preset::SinusoidPhases,
        Preset::ParetoSynthetic,
        Preset::TaskExperts,
        Preset::TaskExpertsDense,
        Preset::CagradToy,
        Preset::CagradToyScaled,
        Preset::SamFlattens,
        Preset::SpamSpike,
        Preset::AlternatingVsJoint,
        Preset::SequentialGap,
        Preset::MergeOrJoint,
    ];

    pub fn name(self) -> &'static str {
        PRESET_NAMES[Preset::ALL.iter().position(|p| *p == self).expect("listed")]
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn label(self) -> &'static str {
        match self {
            Preset::XorConflict => "XOR vs flipped XOR",
            Preset::CircleVsGauss => "Circle vs Gauss",
            Preset::ConflictWedge => "Circle vs circle flipped on a quarter",
            Preset::GradnormScales => "GradNorm: loss scales ×10⁴",
            Preset::SinusoidPhases => "Three phase-shifted sinusoids",
            Preset::ParetoSynthetic => "Pareto-MTL synthetic (ℝ²⁰)",
            Preset::TaskExperts => "Task-routed experts (MoE)",
            Preset::TaskExpertsDense => "Task-routed experts: dense twin",
            Preset::CagradToy => "CAGrad toy (toy.py)",
            Preset::CagradToyScaled => "CAGrad toy, L₁ × 0.1",
            Preset::SamFlattens => "SAM flattens",
            Preset::SpamSpike => "A spike and SPAM’s reset",
            Preset::AlternatingVsJoint => "Alternating vs joint",
            Preset::SequentialGap => "Sequential: the stability gap",
            Preset::MergeOrJoint => "Merge or train jointly?",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Preset::XorConflict
            | Preset::CircleVsGauss
            | Preset::ConflictWedge
            | Preset::TaskExperts
            | Preset::TaskExpertsDense
            | Preset::SamFlattens
            | Preset::AlternatingVsJoint
            | Preset::MergeOrJoint => Family::TaskSet,
            Preset::GradnormScales => Family::GradNorm,
            Preset::SinusoidPhases | Preset::SpamSpike | Preset::SequentialGap => Family::Sinusoid,
            Preset::ParetoSynthetic => Family::Pareto,
            Preset::CagradToy => Family::Toy(ProblemKind::CagradToy),
            Preset::CagradToyScaled => Family::Toy(ProblemKind::CagradToyScaled),
        }
    }

    pub fn is_toy(self) -> bool {
        matches!(self.family(), Family::Toy(_))
    }

    /// The toy problem (the first one for the multi-task presets, which do not use it).
    pub fn toy_problem(self) -> ProblemKind {
        match self.family() {
            Family::Toy(p) => p,
            _ => ProblemKind::CagradToy,
        }
    }

    /// concord-core's preset of the same name.
    pub fn core(self) -> CorePreset {
        CorePreset::ALL[Preset::ALL.iter().position(|p| *p == self).expect("listed")]
    }

    /// This preset's default for a URL key, derived from concord-core's typed preset
    /// (`config()`, `methods()`); `None` keeps the table's own default. Steps per frame is a
    /// page setting (the toys' runs are long and cheap).
    pub fn default_for(self, key: &str) -> Option<String> {
        let core = self.core();
        let c = core.config();
        let join = |v: Vec<String>| v.join(",");
        let num = |x: f64| format!("{x}");
        let model = c.model.as_ref();
        let task_set = match &c.data {
            DataSource::TaskSet { config } => Some(config),
            _ => None,
        };
        Some(match key {
            "arena" => join(core.runs().iter().map(|r| r.to_text()).collect()),
            "lr" => num(c.optimizer.lr()),
            "optimizer" => c.optimizer.name().to_string(),
            "seed" => c.seed.to_string(),
            "spf" if self.is_toy() => "200".into(),
            "batch" => c.batch_size?.to_string(),
            "hidden" => join(model?.hidden.iter().map(|w| w.to_string()).collect()),
            "activation" => model?.activation.name().to_string(),
            "losses" => join(model?.heads.iter().map(|h| h.loss.name().to_string()).collect()),
            "tiedHeads" => model.is_some_and(|m| m.tied_head_init).to_string(),
            "model" => if c.moe.is_some() { "moe" } else { "mlp" }.to_string(),
            "router" => c.moe.as_ref()?.router.name().to_string(),
            "experts" => c.moe.as_ref()?.experts.to_string(),
            "k" => match c.moe.as_ref()?.router {
                RouterKind::Task { k, .. } | RouterKind::NoisyTopK { k } => k.to_string(),
                _ => return None,
            },
            "tasks" => join(task_set?.tasks.iter().map(|d| d.name().to_string()).collect()),
            "inputs" => match task_set?.inputs {
                InputSource::Native { .. } => "native",
                InputSource::Union => "union",
                InputSource::Uniform => "uniform",
            }
            .to_string(),
            "noise" => ((task_set?.noise * 100.0).round() as u32).to_string(),
            "conflict" => num(task_set?.conflict.map_or(1.0, |k| k.kappa)),
            "conflictTask" => (task_set?.conflict?.task + 1).to_string(),
            "points" => match &c.data {
                DataSource::TaskSet { config } => config.n,
                DataSource::GradNorm { n_train, .. } => *n_train,
                DataSource::Sinusoid { config, .. } => config.n,
                _ => return None,
            }
            .to_string(),
            "trainRatio" => match &c.data {
                DataSource::TaskSet { config } => ((config.train_ratio * 100.0).round() as u32).to_string(),
                DataSource::Sinusoid { train_ratio, .. } => ((train_ratio * 100.0).round() as u32).to_string(),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The explanation card: what the preset is and what conflict to look for.
    pub fn card(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Preset::XorConflict => (
                "Two XOR tasks on the same points; the conflict knob κ flips task 2’s labels on a wedge of the plane (κ = −0.8: 90 %).",
                &[
                    "Cosine history: the first steps sit near −1 — the heads start tied, so the flipped labels pull the shared trunk in opposite directions.",
                    "The conflict is resolved by the heads: once head 2 flips its sign both tasks want the same XOR features and the cosine turns positive. Compare how fast each method gets there.",
                    "Heatmaps: task 2’s map is task 1’s with the colours swapped, except on the wedge (10 % of the plane) that the knob leaves alone.",
                    "Drag κ towards +1: the early conflict (and the red) disappears.",
                ],
            ),
            Preset::CircleVsGauss => (
                "Circle (a radial boundary) and Gauss (a diagonal split) labelled on one point set, through a small 6-6 trunk.",
                &[
                    "The tasks are unrelated rather than opposed: the cosine hovers around 0 and changes sign from batch to batch.",
                    "The conflict ratio shows how often the two gradients oppose; the loss-space trails show which task each method favours.",
                    "Turn on per-layer cosines to compare the layers; narrow the trunk to make the tasks compete for units.",
                ],
            ),
            Preset::ConflictWedge => (
                "Two circle tasks on the same points; the conflict knob (κ = 0.5) flips task 2’s labels on the lower-left quarter of the plane. The tasks agree on three quarters of it and fight on one. Mean trains beside Mean + Harmonize, which resolves the fight sample by sample.",
                &[
                    "Conflict map (under the heatmaps): at every point of the plane, the cosine between the two tasks’ gradients of the shared trunk, each task pushed towards its own prediction there. Blue: they pull the trunk the same way; red: they oppose.",
                    "Step or play and watch it: blue at first (the heads start tied, so both tasks predict the same), then thin red lines where the two tasks’ decision boundaries do not yet line up, and by step 300 or so the lower-left quarter is red: the tasks now predict opposite labels there and pull the shared features apart. The dark dots — training points whose two labels disagree — sit in it.",
                    "Later the colours fade towards white: the trunk grows features for each task, and their gradients turn orthogonal rather than opposed.",
                    "The cosine history (Task-gradient cosines) dips below 0 while they fight, but it is one number for the whole batch: it says that the tasks conflict, the map says where.",
                    "The second method is Mean + Harmonize (a sample weighting: within each training sample, a task gradient that opposes the other loses that component, then the batch is averaged). Compare the two maps: harmonizing settles each sample’s fight for the side the trunk already serves, so less of the quarter turns red — and task 2’s heatmap learns its flipped labels there worse (in the tests, over seeds 0–2, its test accuracy in the quarter fell from 0.82–0.85 to 0.67–0.80, and rose slightly elsewhere). Less conflict is not free.",
                    "The Sample-level conflict chart shows the same from the samples’ side: the share of training samples whose tasks oppose stays at the flipped quarter’s share (about 0.21), while the most opposed tenth carries more and more of the update under Mean.",
                    "At κ = 1 the tasks are identical and the map is blue everywhere. Flip more (κ = 0, the lower half) and the map stops tracing the flipped region: head 2 can learn to negate head 1, and then the gradients agree where the labels differ.",
                ],
            ),
            Preset::GradnormScales => (
                "GradNorm’s synthetic regression (50 inputs, 10 outputs per task) with σ = 1 and σ = 100: losses differ by 10⁴.",
                &[
                    "Not opposed directions but unequal scales: the σ = 100 task’s gradient is far larger and sets the mean’s direction.",
                    "Loss curves (log scale): GradNorm and UW (weight lr 0.01 here) re-weight the tasks; the σ = 1 loss falls further while the σ = 100 loss pays for it.",
                    "Loss space: the weightings’ trails bend towards the σ = 1 axis — a trade, not a free lunch.",
                    "No heatmap here: the inputs are 50-dimensional.",
                ],
            ),
            Preset::SinusoidPhases => (
                "Three sinusoids a third of a period apart (φ = 0, 2π/3, 4π/3) fitted through one tanh trunk.",
                &[
                    "Partially opposed targets: the pairwise cosines hover around zero, and some pair is in conflict on most steps (conflict ratio).",
                    "The matrix shows which pairs oppose: with phases a third of a period apart no pair agrees for long.",
                    "The top panel plots each task’s fitted curve over its points.",
                ],
            ),
            Preset::ParetoSynthetic => (
                "Pareto-MTL’s analytic two-objective problem: x ∈ ℝ²⁰ is trained directly, no network.",
                &[
                    "On the concave Pareto front the two gradients become anti-parallel (cos → −1).",
                    "Loss space: each method lands on a different point of the front.",
                    "MGDA stops at the first Pareto point it meets; Mean can cross to one end.",
                ],
            ),
            Preset::TaskExperts => (
                "xor-conflict’s opposed task pair through 4 experts (2 → 8 → 2 each) with a gate per task, top-1, and no dense layer: every shared parameter is a gate or an expert.",
                &[
                    "MoE panel: the task × expert heatmap and the routing map show which experts each task’s gate picks; once the tasks pick different experts their gradients live on different parameters.",
                    "Measured (README, Mean, 500 steps, seeds 0–4): the conflicting part min(cos, 0) on the shared parameters averages −0.003 … −0.013 here against −0.117 … −0.294 for the dense twin of equal size.",
                    "The mean cosine does not move consistently: here it sits near 0 (−0.003 … +0.075), the dense trunk’s swings both ways (−0.127 … +0.126). Routing removes the conflict, not the average.",
                    "The same MoE with one shared gate (router = softmax or switch) conflicts as much as the dense trunk: the easing comes from routing by task. Compare with the dense twin preset.",
                ],
            ),
            Preset::TaskExpertsDense => (
                "The dense twin of “Task-routed experts”: the same data through a 2 → 12 → 12 trunk (192 shared parameters against the experts’ 184).",
                &[
                    "Cosine history: every shared parameter serves both tasks, so the opposed labels pull the trunk apart — the negative part is 9–90× larger than with task-routed experts (README, seeds 0–4).",
                    "Switch back to the MoE preset to see the per-expert cosines next to this one.",
                ],
            ),
            Preset::CagradToy => (
                "CAGrad’s two-objective toy: a point x ∈ ℝ² on two losses with narrow valleys (toy.py, 3 starts). Runs on WebGPU.",
                &[
                    "Mean crawls along a valley where one gradient dominates.",
                    "MGDA and PCGrad reach the Pareto segment wherever they meet it; CAGrad heads for the star.",
                ],
            ),
            Preset::CagradToyScaled => (
                "The same toy with L₁ × 0.1 (Nash-MTL, FAMO; 5 starts). Runs on WebGPU.",
                &[
                    "The Pareto set is unchanged but the average optimum moves: scale-sensitive methods favour L₂.",
                ],
            ),
            Preset::SamFlattens => (
                "Circle vs Gauss trained three ways: plain Adam, SAM (ρ = 0.05) and ASAM (ρ = 0.5). SAM takes each step with the gradient at w + ε, ε = ρ·d/‖d‖ along the method’s own aggregated direction d, so it works with every aggregator. Runs on the CPU (two backward passes a step).",
                &[
                    "Loss landscape → Sharpness over training: λmax, the largest Hessian eigenvalue of the total loss. SAM’s curve ends below Adam’s — measured at step 500 over seeds 0–4, 9.1–10.8 against 10.7–15.8, every seed.",
                    "ASAM scales the neighbourhood by |w|: it ends flattest (λmax 3–4.4) but fits least — its train loss is 2–5× Adam’s at step 500. Flatter is not automatically better.",
                    "Training dynamics → SAM cosine: cos between the plain and the SAM update, each step — GAQAT’s conflict between the task gradient and the sharpness gradient. It starts at 1 and dips where the run meets curvature (lowest 0.73 over seeds 0–4, ASAM’s 0.48): there the sharpness term pulls against the plain gradient.",
                ],
            ),
            Preset::SpamSpike => (
                "Three phase-shifted sinusoids learnt one after another, 150 steps each: the switch to a new task is a gradient spike. Adam beside SPAM (spike-aware Adam: moment reset every ΔT steps, clip of entries with g² > θ·v, a warm-up after each reset) with the paper’s ΔT = 500 and with ΔT = 150, a reset at each switch. Runs on the CPU.",
                &[
                    "Training dynamics → spike score max|g|/√v̂ (log scale; the dashed line is √θ = √5000 ≈ 71): Adam’s jumps above it right after each switch (steps 150 and 300, every seed 0–4). The loss curve marks those steps with triangles.",
                    "SPAM (ΔT = 500) clips the spiking entries to √(θ·v) from the switch on. It also freezes the parameters whose gradient was exactly 0 before the switch — the new task’s head: where v = 0 the clip bound is 0 (the official rule; an LLM never has exact zeros). They move again after the reset at step 500.",
                    "SPAM with ΔT = 150 resets its moments at step 149, one step before each switch, and warms up again: no spike is scored (the score waits 20 steps after a reset, as SPAM’s clip does).",
                    "The task-1 curve still rises after the switch in every run: SPAM tames the step, not the forgetting (see “Sequential: the stability gap”).",
                ],
            ),
            Preset::AlternatingVsJoint => (
                "Circle vs Gauss trained jointly (Mean of both gradients every step), one task per step in turn (round robin, IMP’s alternating gradient descent), and one task drawn at random per step. A one-task step is that task’s gradient itself: there is nothing to aggregate.",
                &[
                    "Loss curves: at equal steps the joint run is ahead on both tasks (test loss at step 500, seeds 0–4: circle 0.065–0.090 joint, 0.105–0.140 alternating, 0.120–0.155 random).",
                    "But a joint step costs a backward pass per task: at equal backward passes compare the alternating run at step 2N with the joint run at step N.",
                    "The alternating run’s losses zig-zag: each step helps one task and often hurts the other. The cosine history is the conflict it steps through one side at a time.",
                ],
            ),
            Preset::SequentialGap => (
                "Three phase-shifted sinusoids learnt one after another (task 1 for 150 steps, then task 2, then task 3) with the test loss evaluated after every step, as the stability-gap paper does; joint training beside it.",
                &[
                    "Loss curves: dashed lines mark the switches. Task 1’s test loss falls to about 0.01, then jumps when task 2 starts — to 0.4–1.7 within 150 steps over seeds 0–4 — the marker shows its worst point.",
                    "In the stability-gap paper the drop partly recovers because the earlier task is replayed; here nothing replays task 1, so most of it is forgotten (recovery depends on how much the tasks share).",
                    "The top panel shows the fitted curves: task 1’s curve bends towards task 2’s once the trunk serves task 2.",
                    "The joint run (Mean) keeps all three near their final loss: no switch, no gap.",
                ],
            ),
            Preset::MergeOrJoint => (
                "Circle vs Gauss trained two ways from the same initial weights θ₀: jointly (Mean, UPGrad), and as one single-task parent per task (the constant aggregator at weights 1,0 and 0,1), whose shared trunks are then merged — task arithmetic θ₀ + λ(τ₁ + τ₂) with λ = 0.4, TIES (trim to the top 20 %, elect signs, disjoint mean; λ = 1) and the projective merge (DOGE, λ = 0.07). Each task keeps its own parent’s head.",
                &[
                    "Model merging panel (under the landscape): the plane of merged models — trunk θ₀ + a·τ₁ + b·τ₂, each task’s parent head. The parents’ trajectories run from θ₀ (0, 0) to their corners; task arithmetic is the point (λ, λ) on the dashed diagonal; TIES and the projective merge are projected onto the plane (most of their trunk step is off it).",
                    "Loss space: the merged points against the joint runs. Measured at step 500 over seeds 0–4, every seed: both joint runs are below every merge on both tasks — circle 0.04–0.08 against 0.71–3.7, gauss 0.008–0.027 against 0.054–2.3 (train losses).",
                    "Every merge’s circle loss is above the untrained θ₀’s (0.69–0.79): from a random init the two parents’ trunks learn unrelated features, so adding their task vectors undoes what each learnt. Merging pays off from a shared pre-trained start, which this toy does not have.",
                    "The table gives each merge’s loss barrier to each parent (Entezari: the largest rise above the straight line between them on that task’s loss): up to 0.35 towards the circle parent for task arithmetic, near 0 towards the gauss parent.",
                    "The merges are computed when you press “Compute merges” or pause (the projective merge runs 400 Adam steps), not every frame.",
                ],
            ),
        }
    }
}
