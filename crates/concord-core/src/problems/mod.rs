//! Analytic multi-objective toy problems with exact per-task gradients.

mod cagrad_toy;
mod pareto_mtl;

pub use cagrad_toy::{CagradToy, LOWER};
pub use pareto_mtl::ParetoMtlSynthetic;

use serde::{Deserialize, Serialize};

/// A problem with `num_tasks` objectives over a point in `dim` dimensions.
pub trait Problem {
    fn num_tasks(&self) -> usize;
    fn dim(&self) -> usize;
    /// Per-task losses at `x`.
    fn losses(&self, x: &[f64]) -> Vec<f64>;
    /// Per-task gradients at `x`: row i is ∇L_i (the m × dim Jacobian, row-major).
    fn jacobian(&self, x: &[f64]) -> Vec<Vec<f64>>;
}

/// The named problems that the CLI and the UI can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// CAGrad's `toy.py` losses, as published.
    CagradToy,
    /// The Nash-MTL / FAMO variant: L₁ multiplied by 0.1.
    CagradToyScaled,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 2] = [ProblemKind::CagradToy, ProblemKind::CagradToyScaled];

    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::CagradToy => "cagrad-toy",
            ProblemKind::CagradToyScaled => "cagrad-toy-scaled",
        }
    }

    pub fn toy(self) -> CagradToy {
        match self {
            ProblemKind::CagradToy => CagradToy::new(1.0),
            ProblemKind::CagradToyScaled => CagradToy::new(0.1),
        }
    }

    /// The starts the papers used for this variant.
    pub fn published_starts(self) -> &'static [[f64; 2]] {
        match self {
            ProblemKind::CagradToy => &[[-8.5, 7.5], [-8.5, -5.0], [9.0, 9.0]],
            ProblemKind::CagradToyScaled => &[[-8.5, 7.5], [0.0, 0.0], [9.0, 9.0], [-7.5, -0.5], [9.0, -1.0]],
        }
    }
}

impl std::str::FromStr for ProblemKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProblemKind::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown problem '{s}' (expected one of: cagrad-toy, cagrad-toy-scaled)"))
    }
}
