//! Adaptive projective merging: DOGE (Wei et al., "Model Merging as Adaptive Projective Gradient
//! Descent", arXiv 2501.01230). The official repo was not retrievable; the rule follows Anke
//! Tang's FusionBench `fusion_bench/method/doge_ta/doge_ta.py` (config `doge_ta.yaml`: subspace 6,
//! K 30, lamda 0.07), as dynamics.md §5 records it; steps 1–5 were checked against that file
//! (tanganke/fusion_bench at 1066030): the loss, one Adam state per layer, the projector from the
//! SVD of the stacked left singular vectors, the global top-K mask of (τ_i + Δ) and the per-layer
//! λ_i are theirs. Per trunk weight matrix (out × in), N tasks:
//! 1. **Adaptive step**: λ_i = lamda / ‖τ_i‖_F (per layer). A task with ‖τ_i‖ = 0 on a layer gets
//!    λ_i = 0 there (the guard dynamics.md asks for; **ours**).
//! 2. **Shared subspace**: r = ⌊min(out,in)/N⌋; stack each task's top-r left singular vectors
//!    into Ū, take U from the SVD of Ū, k = ⌊min(out,in)/subspace⌋ and P = U_{:,:k}U_{:,:k}ᵀ.
//!    Concord's layers are tiny (k would be 0, P = 0): by default k = max(1, ⌊min/subspace⌋)
//!    ([`ProjectiveConfig::min_k`] = 1, **ours**); `min_k = 0` is the published rule. r = 0
//!    (N > min(out,in)) gives P = 0.
//! 3. **Objective**: one Δ shared by all tasks, from 0, minimises
//!    L(Δ) = Σ_j Σ_o ⟨τ_j[o,:], τ_j[o,:] − M[o,:]⟩², M = Σ_i λ_i(τ_i + Δ).
//! 4. **Projection**: `steps` Adam steps (lr `lr`, torch defaults otherwise), each on
//!    g ← (I − P)g. The gradient Adam sees is orthogonal to the shared subspace; Adam's
//!    per-coordinate scaling then lets Δ itself leave the orthogonal complement a little (as in
//!    FusionBench's code, which does the same; dynamics.md's "Δ moves only orthogonally" is
//!    exact only for plain gradient descent).
//! 5. **Merge**: τ′_i = (τ_i + Δ) ⊙ topK%(τ_i), the mask global over all trunk weight matrices
//!    with TIES's off-by-one ([`super::ties::keep_mask`]), and θ = θ₀ + Σ_i λ_i τ′_i.
//!
//! FusionBench leaves every tensor but the weight matrices at θ₀; Concord merges each trunk
//! layer's bias by task arithmetic with that layer's λ_i: b = b₀ + Σ_i λ_i τ_i,b (**ours**).

use super::ties::keep_mask;
use crate::model::LayerSlice;
use crate::train::TrainOptimizer;
use nalgebra::DMatrix;

/// FusionBench's `doge_ta.yaml` values, except `min_k` (**ours**, see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProjectiveConfig {
    /// `lamda`: each task's merged layer has ‖λ_i τ_i‖_F = lamda.
    pub lamda: f64,
    /// k = ⌊min(out,in)/subspace⌋.
    pub subspace: usize,
    /// The fraction K of each task vector's weights that the final mask keeps (K 30 → 0.3).
    pub keep: f64,
    /// Adam steps on Δ per layer.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The least k (0: the published rule; 1: Concord's default for tiny layers).
    pub min_k: usize,
}

/// FusionBench's lamda, Concord's default λ for `--how projective`.
pub const DEFAULT_LAMBDA: f64 = 0.07;

impl Default for ProjectiveConfig {
    fn default() -> Self {
        ProjectiveConfig { lamda: DEFAULT_LAMBDA, subspace: 6, keep: 0.3, steps: 400, lr: 1e-4, min_k: 1 }
    }
}

/// Per-task step sizes λ_i = lamda/‖τ_i‖_F (0 for a zero τ_i).
pub fn step_sizes(taus: &[DMatrix<f64>], lamda: f64) -> Vec<f64> {
    taus.iter()
        .map(|t| {
            let n = t.norm();
            if n > 0.0 {
                lamda / n
            } else {
                0.0
            }
        })
        .collect()
}

/// The left singular vectors of `a` (as columns), ordered by decreasing singular value.
fn left_singular(a: &DMatrix<f64>) -> DMatrix<f64> {
    let svd = a.clone().svd(true, false);
    let u = svd.u.expect("u was asked for");
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&i, &j| svd.singular_values[j].total_cmp(&svd.singular_values[i]));
    DMatrix::from_fn(u.nrows(), order.len(), |r, c| u[(r, order[c])])
}

/// P = U_{:,:k}U_{:,:k}ᵀ (out × out) of the tasks' shared subspace (step 2).
pub fn shared_projector(taus: &[DMatrix<f64>], subspace: usize, min_k: usize) -> DMatrix<f64> {
    let (out, inp) = taus.first().map_or((0, 0), |t| t.shape());
    let n = taus.len();
    let small = out.min(inp);
    let r = small.checked_div(n).unwrap_or(0);
    let k = (small / subspace.max(1)).max(min_k);
    if r == 0 || k == 0 {
        return DMatrix::zeros(out, out);
    }
    let mut stacked = DMatrix::zeros(out, n * r);
    for (i, t) in taus.iter().enumerate() {
        let u = left_singular(t);
        stacked.columns_mut(i * r, r).copy_from(&u.columns(0, r));
    }
    let u = left_singular(&stacked);
    let k = k.min(u.ncols());
    let uk = u.columns(0, k);
    uk * uk.transpose()
}

/// L(Δ) and ∂L/∂Δ (step 3). With c_jo = ⟨τ_j[o,:], τ_j[o,:] − M[o,:]⟩ and s = Σ_i λ_i:
/// ∂L/∂Δ[o,:] = −2s·Σ_j c_jo τ_j[o,:].
pub fn objective(taus: &[DMatrix<f64>], lambdas: &[f64], delta: &DMatrix<f64>) -> (f64, DMatrix<f64>) {
    let (out, inp) = delta.shape();
    let s: f64 = lambdas.iter().sum();
    let mut m = delta * s;
    for (t, l) in taus.iter().zip(lambdas) {
        m += t * *l;
    }
    let mut loss = 0.0;
    let mut grad = DMatrix::zeros(out, inp);
    for t in taus {
        for o in 0..out {
            let c: f64 = (0..inp).map(|c| t[(o, c)] * (t[(o, c)] - m[(o, c)])).sum();
            loss += c * c;
            for col in 0..inp {
                grad[(o, col)] -= 2.0 * s * c * t[(o, col)];
            }
        }
    }
    (loss, grad)
}

/// Δ after `config.steps` projected Adam steps on one layer (steps 3 and 4).
pub fn layer_delta(taus: &[DMatrix<f64>], lambdas: &[f64], config: &ProjectiveConfig) -> DMatrix<f64> {
    let (out, inp) = taus[0].shape();
    let p = shared_projector(taus, config.subspace, config.min_k);
    let free = DMatrix::<f64>::identity(out, out) - p;
    let mut delta = DMatrix::zeros(out, inp);
    let mut adam = TrainOptimizer::adam(config.lr).build(out * inp);
    for _ in 0..config.steps {
        let (_, g) = objective(taus, lambdas, &delta);
        let g = &free * g;
        adam.step(delta.as_mut_slice(), g.as_slice());
    }
    delta
}

/// The merged trunk task vector Σ_i λ_i τ′_i (add it to θ₀'s trunk). `taus` are the tasks'
/// trunk vectors (length `layers`' last bias end); `layers` is `Layout::trunk`.
pub fn projective(layers: &[LayerSlice], taus: &[Vec<f64>], config: &ProjectiveConfig) -> Result<Vec<f64>, String> {
    if !(config.lamda.is_finite() && config.lamda > 0.0) {
        return Err(format!("the projective merge's lambda must be a positive number, got {}", config.lamda));
    }
    if !(config.keep > 0.0 && config.keep <= 1.0) {
        return Err(format!("the keep fraction must lie in (0, 1], got {}", config.keep));
    }
    let d = layers.last().map_or(0, |l| l.bias.end);
    if taus.is_empty() || taus.iter().any(|t| t.len() != d) {
        return Err(format!("the projective merge needs task vectors of the trunk's length {d}"));
    }
    // Step 5's mask: over the weights of all trunk layers at once.
    let masks: Vec<Vec<bool>> = taus
        .iter()
        .map(|t| {
            let weights: Vec<f64> = layers.iter().flat_map(|l| t[l.weight.clone()].iter().copied()).collect();
            keep_mask(&weights, config.keep)
        })
        .collect();
    let mut merged = vec![0.0; d];
    let mut offset = 0;
    for l in layers {
        let mats: Vec<DMatrix<f64>> =
            taus.iter().map(|t| DMatrix::from_row_slice(l.fan_out, l.fan_in, &t[l.weight.clone()])).collect();
        let lambdas = step_sizes(&mats, config.lamda);
        let delta = layer_delta(&mats, &lambdas, config);
        for (i, (mat, lam)) in mats.iter().zip(&lambdas).enumerate() {
            for o in 0..l.fan_out {
                for c in 0..l.fan_in {
                    let flat = o * l.fan_in + c;
                    if masks[i][offset + flat] {
                        merged[l.weight.start + flat] += lam * (mat[(o, c)] + delta[(o, c)]);
                    }
                }
            }
            for b in l.bias.clone() {
                merged[b] += lam * taus[i][b];
            }
        }
        offset += l.weight.len();
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_by_two() -> Vec<DMatrix<f64>> {
        vec![DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]), DMatrix::from_row_slice(2, 2, &[0.0, 0.0, 0.0, 1.0])]
    }

    /// dynamics.md §5 "Test this": τ₁ = [[1,0],[0,0]], τ₂ = [[0,0],[0,1]], lamda = 0.5 give λ = 0.5
    /// each; at Δ = 0, L = 0.5 and ∇L = −I; with the published k rule P = 0 and one Adam step gives
    /// Δ = diag(1e-4, 1e-4) (Adam's first step is lr·g/(|g| + ε), so 1e-4/(1 + 1e-8) on the
    /// diagonal and 0 off it).
    #[test]
    fn doge_two_by_two_matches_the_reference_case() {
        let taus = two_by_two();
        let lambdas = step_sizes(&taus, 0.5);
        assert_eq!(lambdas, vec![0.5, 0.5]);
        let (loss, grad) = objective(&taus, &lambdas, &DMatrix::zeros(2, 2));
        assert!((loss - 0.5).abs() < 1e-15, "L = {loss}");
        assert!((&grad + DMatrix::<f64>::identity(2, 2)).abs().max() < 1e-15, "∇L = {grad}");
        assert_eq!(shared_projector(&taus, 6, 0).abs().max(), 0.0);
        let config = ProjectiveConfig { lamda: 0.5, steps: 1, min_k: 0, ..Default::default() };
        let delta = layer_delta(&taus, &lambdas, &config);
        let expect = DMatrix::from_row_slice(2, 2, &[1e-4, 0.0, 0.0, 1e-4]);
        assert!((&delta - &expect).abs().max() < 1e-11, "Δ = {delta}");
    }

    /// The objective's gradient against central finite differences on a random 3 × 4 layer.
    #[test]
    fn objective_gradient_matches_finite_differences() {
        let taus: Vec<DMatrix<f64>> =
            (0..3).map(|s| DMatrix::from_fn(3, 4, |r, c| ((r * 7 + c * 3 + s * 5) as f64 * 0.37).sin())).collect();
        let lambdas = step_sizes(&taus, 0.3);
        let delta = DMatrix::from_fn(3, 4, |r, c| 0.1 * ((r + 2 * c) as f64).cos());
        let (_, grad) = objective(&taus, &lambdas, &delta);
        let h = 1e-6;
        for i in 0..12 {
            let (mut up, mut down) = (delta.clone(), delta.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&taus, &lambdas, &up).0 - objective(&taus, &lambdas, &down).0) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-6 * (1.0 + fd.abs()), "entry {i}: fd {fd} vs {}", grad[i]);
        }
    }

    /// With k ≥ 1 the projector is a rank-k orthogonal projector, the projected gradient has no
    /// component in its range, and the objective falls. Δ itself is *not* orthogonal to the
    /// subspace: Adam rescales each coordinate, which does not commute with I − P (so "Δ moves
    /// only orthogonally" holds for the gradient fed to Adam, not for Δ).
    #[test]
    fn the_step_direction_is_projected_and_the_objective_falls() {
        let taus: Vec<DMatrix<f64>> =
            (0..2).map(|s| DMatrix::from_fn(6, 8, |r, c| ((r * 5 + c * 11 + s * 3) as f64 * 0.61).sin())).collect();
        let p = shared_projector(&taus, 6, 1);
        assert!((&p * &p - &p).abs().max() < 1e-12 && (p.trace() - 1.0).abs() < 1e-12, "P = {p}");
        let lambdas = step_sizes(&taus, 0.07);
        let (_, g) = objective(&taus, &lambdas, &DMatrix::zeros(6, 8));
        let projected = (DMatrix::<f64>::identity(6, 6) - &p) * &g;
        assert!((&p * &projected).abs().max() < 1e-12);
        let config = ProjectiveConfig { steps: 200, lr: 1e-2, ..Default::default() };
        let delta = layer_delta(&taus, &lambdas, &config);
        let before = objective(&taus, &lambdas, &DMatrix::zeros(6, 8)).0;
        let after = objective(&taus, &lambdas, &delta).0;
        assert!(after < before, "L {before} → {after}");
    }

    /// The whole merge on one 2 × 2 layer with K = 1 (every entry kept) and zero Adam steps is
    /// Σ λ_i τ_i with λ_i = lamda/‖τ_i‖ on weights and biases: by hand 0.5·(τ₁ + τ₂/2) for
    /// ‖τ₁‖ = 1, ‖τ₂‖ = 2.
    #[test]
    fn merge_without_steps_is_adaptive_task_arithmetic() {
        let layer = LayerSlice { name: "trunk.0".into(), fan_in: 2, fan_out: 2, weight: 0..4, bias: 4..6 };
        let taus = vec![vec![1.0, 0.0, 0.0, 0.0, 0.2, 0.0], vec![0.0, 0.0, 0.0, 2.0, 0.0, 1.0]];
        let config = ProjectiveConfig { lamda: 0.5, steps: 0, keep: 1.0, ..Default::default() };
        let merged = projective(std::slice::from_ref(&layer), &taus, &config).unwrap();
        let expect = [0.5, 0.0, 0.0, 0.5, 0.1, 0.25];
        assert!(merged.iter().zip(expect).all(|(a, b)| (a - b).abs() < 1e-15), "{merged:?}");
    }
}
