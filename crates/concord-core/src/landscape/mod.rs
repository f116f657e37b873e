//! Loss landscapes and geometry (formulas: `shared/reference/landscapes.md`).
//!
//! - `directions` / `pca`: the plane θ + α·δ + β·η (filter-normalised random, task gradients,
//!   trajectory PCA, start→end);
//! - `slice` / `mlp_slice`: per-task and total losses on a grid (generic, and batched for the MLP);
//! - `projection`: trajectories in plane coordinates;
//! - `interpolation`: 1-D linear paths and both published barrier heights;
//! - `hvp` / `sharpness` / `tracking`: λ_max by power iteration, the Hutchinson trace, over training;
//! - `pareto`: the non-dominated front and the 2-D hypervolume;
//! - `toy_surface`: the CAGrad toys' exact surfaces in the same shape;
//! - `isolines`: level lines of any sampled grid (the `contour` crate's marching squares).
//!
//! Every result is a plain serde struct, so a panel, a CSV writer or a test can read it.

mod directions;
mod grid;
mod hvp;
mod interpolation;
mod isolines;
mod mlp_slice;
mod objective;
mod pareto;
mod pca;
mod projection;
mod sharpness;
mod slice;
#[cfg(test)]
mod tests;
mod toy_surface;
mod tracking;
pub(crate) mod vector;

pub use directions::{
    filter_normalise, gaussian, plane, random_direction, DirectionKind, Plane, PlaneInputs, ORTHOGONALISE_ABOVE,
};
pub use grid::{linspace, Grid, Surface, DEFAULT_POINTS, DEFAULT_RANGE, MAX_POINTS};
pub use hvp::{hvp, HVP_EPS};
pub use interpolation::{barriers, interpolate, Interpolation};
pub use isolines::{isolines, Segment};
pub use mlp_slice::{loss_value, mlp_slice, mlp_slice_with, Precision, SliceFloat};
pub use objective::{MlpObjective, MoeObjective, Objective, ProblemObjective};
pub use pareto::{dominates, hypervolume_2d, non_dominated, pareto_view, ParetoView};
pub use pca::pca_directions;
pub use projection::{project, ProjectedPath};
pub use sharpness::{hutchinson_trace, sharpness, top_eigenvalue, CurvatureConfig, Sharpness, TopEigen, TraceEstimate};
pub use slice::{slice_surface, thread_count};
pub use toy_surface::{toy_surface, ToySurface, FRONT_POINTS};
pub use tracking::{run_tracked, SharpnessPoint, TrackedRun, TrackingConfig};
