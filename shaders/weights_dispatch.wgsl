// weights_dispatch.wgsl — method id → weighting function. The ids are `Method` in concord-gpu's
// src/kernels/weighting.rs (METHOD_* there must equal these).
// requires: weights_mean_sum.wgsl weights_pcgrad.wgsl weights_mgda.wgsl weights_cagrad.wgsl
// requires: weights_constant.wgsl weights_upgrad.wgsl weights_dualproj.wgsl weights_imtl_g.wgsl
// requires: weights_aligned_mtl.wgsl weights_config.wgsl weights_random.wgsl

const METHOD_MEAN: u32 = 0u;
const METHOD_SUM: u32 = 1u;
const METHOD_PCGRAD: u32 = 2u;
const METHOD_MGDA: u32 = 3u;
const METHOD_CAGRAD: u32 = 4u;
// Workgroup methods (compute_weights_workgroup below).
const METHOD_CONSTANT: u32 = 5u;
const METHOD_UPGRAD: u32 = 6u;
const METHOD_DUALPROJ: u32 = 7u;
const METHOD_IMTL_G: u32 = 8u;
const METHOD_ALIGNED_MTL: u32 = 9u;
const METHOD_CONFIG: u32 = 10u;
const METHOD_RANDOM: u32 = 11u;

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

// Ids 0–4 run in one invocation (compute_weights, also inside the fused toy kernel); ids ≥ 5
// need the whole workgroup of weights_workgroup.wgsl.
fn is_workgroup_method(method: u32) -> bool {
    return method >= METHOD_CONSTANT;
}

// Weights into wg_w for the Gramian in wg_g (see weights_workgroup.wgsl); every invocation of
// the workgroup calls it with the same (uniform) arguments. `eps_a`, `eps_b` are norm_eps and
// reg_eps (UPGrad, DualProj); `mode` is Aligned-MTL's scale mode (0 min, 1 median, 2 rmse);
// `seed`, `call` drive Random's stream. An unknown id gives w = 0.
fn compute_weights_workgroup(method: u32, eps_a: f32, eps_b: f32, mode: u32, seed: u32, call: u32) {
    switch method {
        case 5u: { weights_constant(); }
        case 6u: { weights_upgrad(eps_a, eps_b); }
        case 7u: { weights_dualproj(eps_a, eps_b); }
        case 8u: { weights_imtl_g(); }
        case 9u: { weights_aligned_mtl(mode); }
        case 10u: { weights_config(); }
        case 11u: { weights_random(seed, call); }
        default: {
            if wg_lid == 0u {
                wg_w = array<f32, 32>();
            }
        }
    }
}
