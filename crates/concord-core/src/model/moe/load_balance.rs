//! Switch load-balancing loss (Fedus et al. eqs. 4–6): N·Σ_i f_i·P_i, with f_i the fraction of
//! tokens whose argmax p is i (ties → lower index; not differentiable) and P_i the mean router
//! probability (differentiable). Uniform routing gives 1 (so α·loss = α). Returned unweighted.

use super::routing::argmax;
use nalgebra::DMatrix;

/// f_i: fraction of tokens whose top-1 expert (by p) is i.
pub fn top1_fractions(probs: &DMatrix<f64>) -> Vec<f64> {
    let (t, e) = probs.shape();
    let mut f = vec![0.0; e];
    for row in probs.row_iter() {
        let v: Vec<f64> = row.iter().copied().collect();
        f[argmax(&v)] += 1.0 / t as f64;
    }
    f
}

/// P_i: mean router probability of expert i.
pub fn mean_probs(probs: &DMatrix<f64>) -> Vec<f64> {
    let t = probs.nrows() as f64;
    probs.column_iter().map(|c| c.sum() / t).collect()
}

pub fn value(probs: &DMatrix<f64>) -> f64 {
    let n = probs.ncols() as f64;
    let f = top1_fractions(probs);
    let p = mean_probs(probs);
    n * f.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>()
}

/// dL/dp: N·f_i/T for every token (f is held constant).
pub fn d_probs(probs: &DMatrix<f64>) -> DMatrix<f64> {
    let (t, e) = probs.shape();
    let f = top1_fractions(probs);
    DMatrix::from_fn(t, e, |_, i| e as f64 * f[i] / t as f64)
}
