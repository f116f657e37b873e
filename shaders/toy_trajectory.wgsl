// toy_trajectory.wgsl — many CAGrad-toy runs advanced together, one invocation per run.
// requires: weights_common.wgsl weights_dispatch.wgsl toy.wgsl optim.wgsl
//
// Each invocation loads its run's state, then `steps` times: toy Jacobian J (2 × 2) → G = JJᵀ
// (passed as its factor J, see weights_common.wgsl) →
// w = compute_weights(method, …) (the very functions weighting.wgsl runs) → d = Jᵀw →
// optimizer step; and stores the state back, so successive dispatches continue the run.
// A step whose new position is not finite is not taken: the run keeps its last finite x and
// `status` becomes 1 (stopped); later dispatches leave it alone. `t` counts the steps taken.
// Each step is committed only after a sentinel loop proves the invocation's loops were not cut
// short by the adapter (llvmpipe stops all loops of an invocation after 65 535 iterations in
// total; see weights_common.wgsl). A cut step is discarded, the dispatch ends for that run and
// `cut_short` counts it, so a cut never yields a wrong state, only fewer steps (t shows them).
// The host keeps dispatches short on CPU adapters so that this does not happen.
// Layouts must match src/kernels/toy.rs (RunParams 48 bytes, RunState 64 bytes).

struct RunParams {
    method: u32,
    optimizer: u32,
    seed: u32,
    c: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
    _pad: u32,
}

struct RunState {
    x: vec2<f32>,
    x_comp: vec2<f32>,
    m: vec2<f32>,
    v: vec2<f32>,
    q1: f32,
    q2: f32,
    t: u32,
    calls: u32,
    status: u32,
    cut_short: u32,
    _pad1: u32,
    _pad2: u32,
}

struct ToyUniform {
    n_runs: u32,
    steps: u32,
    scale: f32,
    sentinel_trips: u32,
}

const RUN_ACTIVE: u32 = 0u;
const RUN_STOPPED_NONFINITE: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> states: array<RunState>;
@group(0) @binding(1) var<storage, read> runs: array<RunParams>;
@group(0) @binding(2) var<uniform> tu: ToyUniform;

fn is_finite_f32(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(64)
fn toy_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= tu.n_runs {
        return;
    }
    var st = states[r];
    if st.status != RUN_ACTIVE {
        return;
    }
    let p = runs[r];
    let h = OptHyper(p.optimizer, p.lr, p.beta1, p.beta2, p.one_minus_beta1, p.one_minus_beta2, p.eps, p.momentum);
    var os = OptState(st.x, st.x_comp, st.m, st.v, st.q1, st.q2, st.t);
    var calls = st.calls;
    var status = RUN_ACTIVE;
    var cut = 0u;
    for (var k = 0u; k < tu.steps; k++) {
        let jac = toy_jacobian(os.x, tu.scale);
        // G = JJᵀ given by its factor J itself (factor mode: quadratic forms as ‖Jᵀv‖²).
        wt_begin_factor(2u, 2u);
        wt_set_factor(0u, 0u, jac.g1.x);
        wt_set_factor(0u, 1u, jac.g1.y);
        wt_set_factor(1u, 0u, jac.g2.x);
        wt_set_factor(1u, 1u, jac.g2.y);
        compute_weights(p.method, p.c, p.seed, calls);
        let d = wt_weight(0u) * jac.g1 + wt_weight(1u) * jac.g2;
        var next_os = os;
        let step = optim_delta(h, &next_os, d);
        let next = optim_apply(next_os.x, next_os.x_comp, step);
        // Sentinel: its second iteration only runs if the loop budget is not exhausted.
        var alive = false;
        for (var s = 0u; s < tu.sentinel_trips; s++) {
            if s == 1u {
                alive = true;
            }
        }
        if !alive {
            cut = 1u;
            break;
        }
        calls += 1u;
        if !(is_finite_f32(next[0].x) && is_finite_f32(next[0].y)) {
            status = RUN_STOPPED_NONFINITE;
            break;
        }
        next_os.x = next[0];
        next_os.x_comp = next[1];
        os = next_os;
    }
    st.x = os.x;
    st.x_comp = os.x_comp;
    st.m = os.m;
    st.v = os.v;
    st.q1 = os.q1;
    st.q2 = os.q2;
    st.t = os.t;
    st.calls = calls;
    st.status = status;
    st.cut_short += cut;
    states[r] = st;
}
