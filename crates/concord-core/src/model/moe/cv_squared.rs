//! CV²(v) = Var(v)/(Mean(v)² + 1e-10) with the population variance (tensor2tensor), used on the
//! importance Imp_i = Σ_x G(x)_i and on the load (Shazeer et al.). Returned unweighted.

use nalgebra::DMatrix;

const EPS: f64 = 1e-10;

pub fn value(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    var / (mean * mean + EPS)
}

/// dCV²/dv_i = (2(v_i − μ)/n)/D − Var·(2μ/n)/D², D = μ² + ε.
pub fn gradient(v: &[f64]) -> Vec<f64> {
    if v.len() < 2 {
        return vec![0.0; v.len()];
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let d = mean * mean + EPS;
    v.iter().map(|x| 2.0 * (x - mean) / n / d - var * 2.0 * mean / n / (d * d)).collect()
}

/// Importance Σ_x G(x)_i of a T × E combine matrix.
pub fn importance(combine: &DMatrix<f64>) -> Vec<f64> {
    combine.column_iter().map(|c| c.sum()).collect()
}

/// Hard load: tokens each expert processes (not differentiable).
pub fn hard_load(dispatch: &DMatrix<f64>) -> Vec<f64> {
    dispatch.column_iter().map(|c| c.sum()).collect()
}
