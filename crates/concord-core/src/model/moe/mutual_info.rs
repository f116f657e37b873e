//! Mod-Squad's task–expert mutual-information loss:
//! L_MI = −Σ_t Σ_e P(t,e)·log(P(t,e)/(P(t)·P(e)) + 1e-4), with P(t,e) the router probability
//! mass of task t's tokens on expert e over all tokens, P(t) = Σ_e P(t,e), P(e) = Σ_t P(t,e).
//! Minimising it (maximising MI) drives task-specialised experts. Returned unweighted.

use nalgebra::DMatrix;

const DELTA: f64 = 1e-4;

/// P(t,e) from each task's T × E router probabilities (every token belongs to every task here:
/// the multi-task batch carries all labels, and task t's tokens are routed by task t's gate).
pub fn joint(task_probs: &[&DMatrix<f64>]) -> DMatrix<f64> {
    let m = task_probs.len();
    let e = task_probs[0].ncols();
    let total: f64 = task_probs.iter().map(|p| p.nrows() as f64).sum();
    DMatrix::from_fn(m, e, |t, i| task_probs[t].column(i).sum() / total)
}

fn marginals(p: &DMatrix<f64>) -> (Vec<f64>, Vec<f64>) {
    let pt = p.row_iter().map(|r| r.sum()).collect();
    let pe = p.column_iter().map(|c| c.sum()).collect();
    (pt, pe)
}

pub fn value(p: &DMatrix<f64>) -> f64 {
    let (pt, pe) = marginals(p);
    let mut l = 0.0;
    for t in 0..p.nrows() {
        for e in 0..p.ncols() {
            l -= p[(t, e)] * (p[(t, e)] / (pt[t] * pe[e]) + DELTA).ln();
        }
    }
    l
}

/// MI(T; E) in nats (no δ), for display.
pub fn mutual_information(p: &DMatrix<f64>) -> f64 {
    let (pt, pe) = marginals(p);
    let mut mi = 0.0;
    for t in 0..p.nrows() {
        for e in 0..p.ncols() {
            if p[(t, e)] > 0.0 {
                mi += p[(t, e)] * (p[(t, e)] / (pt[t] * pe[e])).ln();
            }
        }
    }
    mi
}

/// dL/dP(a,b), with r = P/(P(t)P(e)): −log(r_ab+δ) − r_ab/(r_ab+δ)
/// + Σ_e P_ae·r_ae/((r_ae+δ)·P_a) + Σ_t P_tb·r_tb/((r_tb+δ)·P_b).
pub fn d_joint(p: &DMatrix<f64>) -> DMatrix<f64> {
    let (pt, pe) = marginals(p);
    let (m, n) = p.shape();
    let r = DMatrix::from_fn(m, n, |t, e| p[(t, e)] / (pt[t] * pe[e]));
    let q = DMatrix::from_fn(m, n, |t, e| p[(t, e)] * r[(t, e)] / (r[(t, e)] + DELTA));
    let row_terms: Vec<f64> = (0..m).map(|t| q.row(t).sum() / pt[t]).collect();
    let col_terms: Vec<f64> = (0..n).map(|e| q.column(e).sum() / pe[e]).collect();
    DMatrix::from_fn(m, n, |a, b| {
        -(r[(a, b)] + DELTA).ln() - r[(a, b)] / (r[(a, b)] + DELTA) + row_terms[a] + col_terms[b]
    })
}

/// dL/d(probs of task t) given dL/dP: every token of task t adds its probs / total.
pub fn d_task_probs(d_p: &DMatrix<f64>, task: usize, tokens: usize, total: f64) -> DMatrix<f64> {
    DMatrix::from_fn(tokens, d_p.ncols(), |_, e| d_p[(task, e)] / total)
}
