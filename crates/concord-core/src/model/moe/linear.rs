//! A linear layer read straight from the flat parameter vector (W row-major fan_out × fan_in,
//! then b; a gate has no bias: its bias range is empty), forward and backward for a batch.

use crate::model::LayerSlice;
use nalgebra::DMatrix;

/// Wᵀ (fan_in × fan_out) as a column-major view of W's row-major block.
pub fn weight_t(params: &[f64], s: &LayerSlice) -> DMatrix<f64> {
    DMatrix::from_column_slice(s.fan_in, s.fan_out, &params[s.weight.clone()])
}

/// a·Wᵀ + b for every row of a.
pub fn forward(params: &[f64], s: &LayerSlice, a: &DMatrix<f64>) -> DMatrix<f64> {
    let mut z = a * weight_t(params, s);
    if !s.bias.is_empty() {
        let b = &params[s.bias.clone()];
        for mut row in z.row_iter_mut() {
            for (v, bias) in row.iter_mut().zip(b) {
                *v += bias;
            }
        }
    }
    z
}

/// Adds dW (= aᵀ·dz, which lands row-major in the flat layout) and db to `grad`; returns dL/da.
pub fn backward(
    params: &[f64],
    s: &LayerSlice,
    a: &DMatrix<f64>,
    d_z: &DMatrix<f64>,
    grad: &mut [f64],
) -> DMatrix<f64> {
    let d_wt = a.tr_mul(d_z);
    for (g, d) in grad[s.weight.clone()].iter_mut().zip(d_wt.as_slice()) {
        *g += d;
    }
    for (j, g) in grad[s.bias.clone()].iter_mut().enumerate() {
        *g += d_z.column(j).sum();
    }
    d_z * weight_t(params, s).transpose()
}
