//! The page's presets: five multi-task runs of concord-core (`train::Preset`) and the two CAGrad
//! toys. A preset picks the data family and supplies the default of every other URL key, so a
//! link can name only what differs. Each has a short card: what conflict to look for.

use concord_core::train::Preset as CorePreset;
use concord_core::ProblemKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    XorConflict,
    CircleVsGauss,
    GradnormScales,
    SinusoidPhases,
    ParetoSynthetic,
    TaskExperts,
    TaskExpertsDense,
    CagradToy,
    CagradToyScaled,
}

/// The names, in the order of the preset select (also the URL's enum names).
pub const PRESET_NAMES: &[&str] = &[
    "xor-conflict",
    "circle-vs-gauss",
    "gradnorm-scales",
    "sinusoid-phases",
    "pareto-synthetic",
    "task-experts",
    "task-experts-dense",
    "cagrad-toy",
    "cagrad-toy-scaled",
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
    pub const ALL: [Preset; 9] = [
        Preset::XorConflict,
        Preset::CircleVsGauss,
        Preset::GradnormScales,
        Preset::SinusoidPhases,
        Preset::ParetoSynthetic,
        Preset::TaskExperts,
        Preset::TaskExpertsDense,
        Preset::CagradToy,
        Preset::CagradToyScaled,
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
            Preset::GradnormScales => "GradNorm: loss scales ×10⁴",
            Preset::SinusoidPhases => "Three phase-shifted sinusoids",
            Preset::ParetoSynthetic => "Pareto-MTL synthetic (ℝ²⁰)",
            Preset::TaskExperts => "Task-routed experts (MoE)",
            Preset::TaskExpertsDense => "Task-routed experts: dense twin",
            Preset::CagradToy => "CAGrad toy (toy.py)",
            Preset::CagradToyScaled => "CAGrad toy, L₁ × 0.1",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Preset::XorConflict | Preset::CircleVsGauss | Preset::TaskExperts | Preset::TaskExpertsDense => Family::TaskSet,
            Preset::GradnormScales => Family::GradNorm,
            Preset::SinusoidPhases => Family::Sinusoid,
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

    /// concord-core's preset of the same name (the toys have none).
    pub fn core(self) -> Option<CorePreset> {
        CorePreset::parse(self.name()).ok()
    }

    /// This preset's default for a URL key, where it differs from the table's (which holds
    /// xor-conflict's). Values are exactly concord-core's preset configs.
    pub fn default_for(self, key: &str) -> Option<&'static str> {
        use Preset::*;
        Some(match (self, key) {
            (CircleVsGauss, "tasks") => "circle,gauss",
            (CircleVsGauss, "inputs") => "union",
            (CircleVsGauss, "conflict") => "1",
            (CircleVsGauss, "hidden") => "6,6",
            (CircleVsGauss, "tiedHeads") => "false",
            (GradnormScales, "hidden") => "64,64",
            (GradnormScales, "activation") => "relu",
            (GradnormScales, "losses") => "mse,mse",
            (GradnormScales, "lr") => "0.001",
            (GradnormScales, "batch") => "100",
            (GradnormScales, "tiedHeads") => "false",
            // The weightings' own learning rate raised from LibMTL's 1e-4: at 1e-4 their weights
            // hardly move within the few hundred steps a visitor watches.
            (GradnormScales, "arena") => "mean,mean+gradnorm:lr=0.01,mean+uw:lr=0.01,imtl-g",
            (SinusoidPhases, "hidden") => "32,32",
            (SinusoidPhases, "losses") => "mse,mse,mse",
            (SinusoidPhases, "trainRatio") => "75",
            (SinusoidPhases, "points") => "400",
            (SinusoidPhases, "tiedHeads") => "false",
            (SinusoidPhases, "arena") => "mean,pcgrad,upgrad,cagrad",
            (ParetoSynthetic, "tiedHeads") => "false",
            // xor-conflict's data; concord-core's `task_experts_spec` (4 experts, a gate per
            // task, top-1) with no dense pre-layer, and its dense twin's 12-12 trunk.
            (TaskExperts, "model") => "moe",
            (TaskExperts, "hidden") => "",
            (TaskExpertsDense, "hidden") => "12,12",
            // Two methods: the comparison is MoE vs dense, not between methods.
            (TaskExperts | TaskExpertsDense, "arena") => "mean,pcgrad",
            (CagradToy | CagradToyScaled, "lr") => "0.001",
            (CagradToy | CagradToyScaled, "spf") => "200",
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
        }
    }

}
