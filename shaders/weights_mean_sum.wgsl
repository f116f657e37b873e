// weights_mean_sum.wgsl — Mean (w = 1/m) and Sum (w = 1); torchjd `MeanWeighting`, `SumWeighting`.
// requires: weights_common.wgsl

fn weights_mean() {
    wt_w = wt_fill(1.0 / f32(wt_m));
}

fn weights_sum() {
    wt_w = wt_fill(1.0);
}
