// weights_dispatch.wgsl — method id → weighting function. The METHOD_* ids come from the table
// in concord-gpu's src/kernels/methods.rs (gpu_methods.wgsl is generated from it at assembly);
// tests/method_table.rs checks that each method has exactly one case below, in the right switch.
// requires: gpu_methods.wgsl
// requires: weights_mean_sum.wgsl weights_pcgrad.wgsl weights_mgda.wgsl weights_cagrad.wgsl
// requires: weights_constant.wgsl weights_upgrad.wgsl weights_dualproj.wgsl weights_imtl_g.wgsl
// requires: weights_aligned_mtl.wgsl weights_config.wgsl weights_random.wgsl
// requires: weights_krum.wgsl weights_modo.wgsl weights_sdmgrad.wgsl weights_gradvac.wgsl

// Weights for the Gramian set with wt_begin/wt_set into wt_w (read with wt_weight).
// `c` is CAGrad's parameter; `seed` and `call` drive PCGrad's visiting order. An unknown id gives w = 0.
fn compute_weights(method: u32, c: f32, seed: u32, call: u32) {
    switch method {
        case METHOD_MEAN: { weights_mean(); }
        case METHOD_SUM: { weights_sum(); }
        case METHOD_PCGRAD: { weights_pcgrad(seed, call); }
        case METHOD_MGDA: { weights_mgda(); }
        case METHOD_CAGRAD: { weights_cagrad(c); }
        default: {
            wt_w = WtVec();
        }
    }
}

// Ids below METHOD_FIRST_WORKGROUP run in one invocation (compute_weights, also inside the fused
// toy kernel's toy_step); the others need the whole workgroup of weights_workgroup.wgsl.
fn is_workgroup_method(method: u32) -> bool {
    return method >= METHOD_FIRST_WORKGROUP;
}

// Weights into wg_w for the Gramian in wg_g (see weights_workgroup.wgsl); every invocation of
// the workgroup calls it with the same (uniform) arguments. `eps_a`, `eps_b` are norm_eps and
// reg_eps (UPGrad, DualProj); `mode` is Aligned-MTL's scale mode (0 min, 1 median, 2 rmse);
// `seed`, `call` drive Random's stream and GradVac's order. The stateful methods (MoDo, SDMGrad,
// GradVac) keep their state in weights_memory.wgsl. Krum: n_byzantine = `count`,
// n_selected = `mode`. MoDo: γ = `c`, ρ = `eps_a`. SDMGrad: lr = `c`, momentum = `eps_a`,
// λ = `eps_b`, n_iter = `count`. GradVac: β = `c`, eps = `eps_a`. An unknown id gives w = 0.
fn compute_weights_workgroup(method: u32, c: f32, eps_a: f32, eps_b: f32, mode: u32, count: u32, seed: u32, call: u32) {
    switch method {
        case METHOD_CONSTANT: { weights_constant(); }
        case METHOD_UPGRAD: { weights_upgrad(eps_a, eps_b); }
        case METHOD_DUALPROJ: { weights_dualproj(eps_a, eps_b); }
        case METHOD_IMTL_G: { weights_imtl_g(); }
        case METHOD_ALIGNED_MTL: { weights_aligned_mtl(mode); }
        case METHOD_CONFIG: { weights_config(); }
        case METHOD_RANDOM: { weights_random(seed, call); }
        case METHOD_KRUM: { weights_krum(count, mode); }
        case METHOD_MODO: { weights_modo(c, eps_a); }
        case METHOD_SDMGRAD: { weights_sdmgrad(c, eps_a, count, eps_b); }
        case METHOD_GRADVAC: { weights_gradvac(c, eps_a, seed, call); }
        default: {
            if wg_lid == 0u {
                wg_w = array<f32, 32>();
            }
        }
    }
}
