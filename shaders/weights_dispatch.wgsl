// weights_dispatch.wgsl — method id → weighting function. The ids are `Method` in concord-gpu's
// src/kernels/weighting.rs (METHOD_* there must equal these).
// requires: weights_mean_sum.wgsl weights_pcgrad.wgsl weights_mgda.wgsl weights_cagrad.wgsl

const METHOD_MEAN: u32 = 0u;
const METHOD_SUM: u32 = 1u;
const METHOD_PCGRAD: u32 = 2u;
const METHOD_MGDA: u32 = 3u;
const METHOD_CAGRAD: u32 = 4u;

// Weights for the Gramian set with wt_begin/wt_set into wt_w (read with wt_weight).
// `c` is CAGrad's parameter; `seed` and `call` drive PCGrad's visiting order. An unknown id gives w = 0.
fn compute_weights(method: u32, c: f32, seed: u32, call: u32) {
    switch method {
        case 0u: { weights_mean(); }
        case 1u: { weights_sum(); }
        case 2u: { weights_pcgrad(seed, call); }
        case 3u: { weights_mgda(); }
        case 4u: { weights_cagrad(c); }
        default: {
            wt_w = WtVec();
        }
    }
}
