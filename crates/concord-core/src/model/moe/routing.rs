//! What every router produces, and the pieces they share: row softmax and its backward, the
//! top-k rule, and capacity.
//!
//! Tie-breaking (identical in the WGSL routing core): among equal values the **lower index wins**
//! — the lower expert index when a token picks experts, the lower token index when an expert
//! picks tokens. Capacity slots go to tokens in batch order (slot = exclusive prefix count).

use nalgebra::DMatrix;

/// One gate group's routing of a batch of T tokens over E experts.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// T × E clean gate logits h = gate_in·W_gᵀ.
    pub logits: DMatrix<f64>,
    /// T × E softmax of the clean logits (P_i, z-loss, MI and f_i read these).
    pub probs: DMatrix<f64>,
    /// T × E combine weights: token t's output is a + Σ_e combine[t,e]·E_e(a). Zero where the
    /// expert does not take the token.
    pub combine: DMatrix<f64>,
    /// T × E: 1 where expert e processes token t (selected and within capacity).
    pub dispatch: DMatrix<f64>,
    /// Expert capacity, for the capacity routers.
    pub capacity: Option<usize>,
    /// Token→expert assignments dropped because the expert was full.
    pub dropped: usize,
    /// Noisy top-k internals (present only when noise was drawn).
    pub noise: Option<NoiseCache>,
}

/// What noisy top-k needs to backprop through the noise and the Φ-smoothed load.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseCache {
    /// T × E raw noise logits gate_in·W_noiseᵀ.
    pub raw: DMatrix<f64>,
    /// T × E standard normal draws ε.
    pub eps: DMatrix<f64>,
    /// T × E noise std σ = softplus(raw) + noise_epsilon.
    pub std: DMatrix<f64>,
    /// T × E noisy logits H = h + ε·σ.
    pub noisy: DMatrix<f64>,
}

impl Routing {
    pub fn tokens(&self) -> usize {
        self.logits.nrows()
    }

    pub fn experts(&self) -> usize {
        self.logits.ncols()
    }

    /// The expert with the largest combine weight per token (ties → lower index), `None` for a
    /// token no expert took.
    pub fn winners(&self) -> Vec<Option<usize>> {
        (0..self.tokens())
            .map(|t| {
                let row: Vec<f64> = self.combine.row(t).iter().copied().collect();
                let best = argmax(&row);
                (row[best] > 0.0).then_some(best)
            })
            .collect()
    }
}

/// Row-wise softmax, shifted by the row max so large logits do not overflow.
pub fn softmax_rows(logits: &DMatrix<f64>) -> DMatrix<f64> {
    let mut p = logits.clone();
    for mut row in p.row_iter_mut() {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.apply(|v| *v = (*v - max).exp());
        let s = row.sum();
        row /= s;
    }
    p
}

/// log Σ_j exp(h_j) of each row.
pub fn logsumexp_rows(logits: &DMatrix<f64>) -> Vec<f64> {
    logits
        .row_iter()
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
        })
        .collect()
}

/// dL/dh from dL/dp through p = softmax(h), row by row: p ⊙ (dp − ⟨p, dp⟩).
pub fn softmax_backward(probs: &DMatrix<f64>, d_probs: &DMatrix<f64>) -> DMatrix<f64> {
    let mut out = DMatrix::zeros(probs.nrows(), probs.ncols());
    for r in 0..probs.nrows() {
        let dot: f64 = (0..probs.ncols()).map(|c| probs[(r, c)] * d_probs[(r, c)]).sum();
        for c in 0..probs.ncols() {
            out[(r, c)] = probs[(r, c)] * (d_probs[(r, c)] - dot);
        }
    }
    out
}

/// Index of the largest value; ties → the lower index.
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Indices of the k largest values, largest first; ties → the lower index first.
pub fn top_k(values: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    // Stable sort on descending value keeps equal values in index order.
    idx.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(std::cmp::Ordering::Equal));
    idx.truncate(k);
    idx
}

/// Expert capacity ⌊cf·slots/E⌋ clamped to 1…T, where `slots` is k·T (k choices per token).
/// This is mesh's int(cf·G/N) without its minimum of 4, which would hide overflow at the
/// playground's batch sizes.
pub fn capacity(capacity_factor: f64, slots: usize, experts: usize, tokens: usize) -> usize {
    let c = (capacity_factor * slots as f64 / experts as f64).floor() as usize;
    c.clamp(1, tokens.max(1))
}
