// toy_trajectory.wgsl — CAGrad-toy runs advanced many steps per dispatch, state kept in a
// storage buffer between dispatches.
// requires: weights_common.wgsl weights_dispatch.wgsl toy.wgsl optim.wgsl
//
// Two entry points, the same step:
//   * toy_step: one invocation per run, for the single-invocation weightings (compute_weights).
//     G = JJᵀ is given by its factor J itself (factor mode: quadratic forms as ‖Jᵀv‖²).
//   * toy_step_workgroup: one workgroup per run, for the workgroup weightings
//     (compute_weights_workgroup on G = JJᵀ, formed in f32). Every invocation computes the same
//     Jacobian and optimizer step (identical code on identical inputs); invocation 0 stores.
// Each step: toy Jacobian J (2 × 2) → w (the very functions weighting.wgsl runs) → d = Jᵀw →
// optimizer step (Adam / SGD; `decay` = lr·λ adds AdamW's decoupled decay). A step is not taken
// when, in the CPU trainer's order (concord-core train::Trainer::step), a loss at x, the
// Jacobian, the update d or the new position is not finite: the run keeps its last finite x,
// `status` says which check failed (RUN_STOPPED_*; the losses go to `stop_losses`), and later
// dispatches leave it alone. `t` counts the steps taken.
// Each step is committed only after a sentinel loop proves the invocation's loops (all the
// workgroup's, in toy_step_workgroup) were not cut short by the adapter (llvmpipe stops all
// loops of an invocation after 65 535 iterations in total; see weights_common.wgsl). A cut step
// is discarded, the dispatch ends for that run and `cut_short` counts it, so a cut never yields
// a wrong state, only fewer steps (t shows them). The host keeps dispatches short on CPU
// adapters so that this does not happen.
// Recorded steps (t % record_every == 0, and t = last_step) from first_step on write a history
// slot of 11 floats: bitcast(t + 1) (0 = empty), L₁, L₂ at x before the step, w₁, w₂, G₁₁, G₁₂,
// G₂₂ (of the plain J), λ₁, λ₂, ‖d‖²; slot = ⌈t / r⌉ − ⌈first_step / r⌉, run r's slots from
// r·capacity. A per-coordinate aggregator has no weights: its slot holds the plain J's Jd in
// place of w (the host builds the metrics from G, Jd and ‖d‖², as the GPU trainer does).
// Loss weighting: J's rows are scaled by the loss weights λ (RunParams.lw, [1, 1] without one)
// before the aggregator, as concord-core's `Trainer::combine` does. λ comes from
// loss_weighting.wgsl's `loss_weights`, dispatched by the host between single-step dispatches on
// the losses and plain G that `toy_eval` writes (bindings 5 and 6), and copied into RunParams.lw
// (the workgroup entry point already has 4 storage bindings, WebGPU's floor), so the
// weightings' state stays in their own buffer.
// Weightings with memory (MoDo's λ, SDMGrad's w, GradVac's cosine targets: weights_memory.wgsl,
// binding 4 of toy_step_workgroup) keep it in the run's own buffer across steps and dispatches,
// as GpuTrainer does; a cut step puts back the entries it may have changed (m = 2 uses five).
// Per-coordinate aggregators (RunParams.coordinate: TrimmedMean, GradDrop; d straight from J as
// coordinate_*.wgsl computes it, for J's two columns) run in toy_step. GradDrop's draws U come
// from the CPU aggregator's stream, drawn on the host per submission (binding 7: two per step,
// step t's at 2(t − first_step)), so both runs keep the same coordinates.
// Layouts must match src/kernels/toy.rs (checked by tests/method_table.rs).

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
    decay: f32,
    // MGDA: epsilon; UPGrad/DualProj: norm_eps.   CAGrad: norm_eps; UPGrad/DualProj: reg_eps.
    eps_a: f32,
    eps_b: f32,
    max_iters: u32,
    mode: u32,
    // Preference vector or Constant's weights (workgroup methods).
    vec: array<f32, 32>,
    // The loss weights λ that scale J's rows ([1, 1] without a loss weighting).
    lw: vec2<f32>,
    // TOY_COORD_*: a per-coordinate aggregator instead of the weighting `method`.
    coordinate: u32,
    pad: u32,
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
    // The losses at x when a step stopped on RUN_STOPPED_LOSS (for the host's message).
    stop_losses: vec2<f32>,
}

struct ToyUniform {
    n_runs: u32,
    steps: u32,
    scale: f32,
    sentinel_trips: u32,
    record_every: u32,
    last_step: u32,
    first_step: u32,
    capacity: u32,
}

const RUN_ACTIVE: u32 = 0u;
const RUN_STOPPED_NONFINITE: u32 = 1u; // the new position
const RUN_STOPPED_LOSS: u32 = 2u;
const RUN_STOPPED_GRADIENT: u32 = 3u;
const RUN_STOPPED_UPDATE: u32 = 4u;
const TOY_SLOT: u32 = 11u;
// RunParams.coordinate.
const TOY_COORD_NONE: u32 = 0u;
const TOY_COORD_TRIMMED_MEAN: u32 = 1u;
const TOY_COORD_GRADDROP: u32 = 2u;
// toy_step_workgroup's verdict for a step whose loops were cut (distinct from every RUN_* code).
const TOY_WG_CUT: u32 = 255u;

@group(0) @binding(0) var<storage, read_write> states: array<RunState>;
@group(0) @binding(1) var<storage, read> runs: array<RunParams>;
@group(0) @binding(2) var<uniform> tu: ToyUniform;
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
// toy_eval's output: run r's losses at x (2 floats from 2r) and plain G (4 floats from 4r).
@group(0) @binding(5) var<storage, read_write> toy_eval_losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> toy_eval_gram: array<f32>;
// GradDrop's draws for this submission (toy_step only; one dummy float for the other methods).
@group(0) @binding(7) var<storage, read> toy_draws: array<f32>;

// toy_step_workgroup: the run's status / a step's verdict, and how many invocations finished
// the step with their loops intact.
var<workgroup> toy_wg_flag: u32;
var<workgroup> toy_wg_alive: atomic<u32>;

fn is_finite_f32(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Its second iteration only runs if the invocation's loop budget is not exhausted.
fn toy_sentinel() -> bool {
    var alive = false;
    for (var s = 0u; s < tu.sentinel_trips; s++) {
        if s == 1u {
            alive = true;
        }
    }
    return alive;
}

fn toy_record(r: u32, t: u32, x: vec2<f32>, jac: ToyJacobian, w: vec2<f32>, lw: vec2<f32>, dd: f32) {
    let every = tu.record_every;
    if !(t % every == 0u || t == tu.last_step) || t < tu.first_step {
        return;
    }
    let slot = (t + every - 1u) / every - (tu.first_step + every - 1u) / every;
    if slot >= tu.capacity {
        return;
    }
    let base = (r * tu.capacity + slot) * TOY_SLOT;
    let l = toy_losses(x, tu.scale);
    history[base] = bitcast<f32>(t + 1u);
    history[base + 1u] = l.x;
    history[base + 2u] = l.y;
    history[base + 3u] = w.x;
    history[base + 4u] = w.y;
    history[base + 5u] = dot(jac.g1, jac.g1);
    history[base + 6u] = dot(jac.g1, jac.g2);
    history[base + 7u] = dot(jac.g2, jac.g2);
    history[base + 8u] = lw.x;
    history[base + 9u] = lw.y;
    history[base + 10u] = dd;
}

// TrimmedMean of one column (a, b): with two tasks the trim is clamped to ⌊(m − 1)/2⌋ = 0
// (`TrimmedMean::effective_trim`), so it is the mean, summed as x/2 in sorted order as
// coordinate_trimmed_mean.wgsl sums it.
fn toy_trimmed_mean_column(a: f32, b: f32) -> f32 {
    return min(a, b) / 2.0 + max(a, b) / 2.0;
}

// GradDrop of one column (a, b) with the draw u: coordinate_graddrop.wgsl for m = 2.
fn toy_graddrop_column(a: f32, b: f32, u: f32) -> f32 {
    let s = max(abs(a), abs(b));
    // (Not `s <= 3.4028235e38`: Chrome's WGSL compiler refuses that literal as not an f32.)
    if s == 0.0 || !is_finite_f32(s) {
        return 0.0;
    }
    let va = a / s;
    let vb = b / s;
    let purity = 0.5 * (1.0 + (va + vb) / (abs(va) + abs(vb)));
    let keep_pos = purity > u;
    let keep_neg = purity < u;
    var d = 0.0;
    if (keep_pos && a > 0.0) || (keep_neg && a < 0.0) {
        d += a;
    }
    if (keep_pos && b > 0.0) || (keep_neg && b < 0.0) {
        d += b;
    }
    return d;
}

// d of a per-coordinate aggregator for the (λ-scaled) J at step t.
fn toy_coordinate_update(coordinate: u32, wj: ToyJacobian, t: u32) -> vec2<f32> {
    if coordinate == TOY_COORD_TRIMMED_MEAN {
        return vec2<f32>(toy_trimmed_mean_column(wj.g1.x, wj.g2.x), toy_trimmed_mean_column(wj.g1.y, wj.g2.y));
    }
    let at = 2u * (t - tu.first_step);
    return vec2<f32>(
        toy_graddrop_column(wj.g1.x, wj.g2.x, toy_draws[at]),
        toy_graddrop_column(wj.g1.y, wj.g2.y, toy_draws[at + 1u]),
    );
}

// The weighting-memory entries a two-task weighting may write (weights_memory.wgsl): the size
// word, MoDo's λ / SDMGrad's w, GradVac's φ̂ rows 0 and 1.
fn toy_memory_index(k: u32) -> u32 {
    switch k {
        case 0u: {
            return 0u;
        }
        case 1u: {
            return MEM_BASE;
        }
        case 2u: {
            return MEM_BASE + 1u;
        }
        case 3u: {
            return MEM_BASE + 32u;
        }
        default: {
            return MEM_BASE + 33u;
        }
    }
}

// The losses and plain G at run r's x, for the loss weighting's next call.
@compute @workgroup_size(64)
fn toy_eval(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= tu.n_runs {
        return;
    }
    let x = states[r].x;
    let l = toy_losses(x, tu.scale);
    let jac = toy_jacobian(x, tu.scale);
    toy_eval_losses[2u * r] = l.x;
    toy_eval_losses[2u * r + 1u] = l.y;
    let g12 = dot(jac.g1, jac.g2);
    toy_eval_gram[4u * r] = dot(jac.g1, jac.g1);
    toy_eval_gram[4u * r + 1u] = g12;
    toy_eval_gram[4u * r + 2u] = g12;
    toy_eval_gram[4u * r + 3u] = dot(jac.g2, jac.g2);
}

fn finite2(v: vec2<f32>) -> bool {
    return is_finite_f32(v.x) && is_finite_f32(v.y);
}

// Why a step must not be taken (RUN_ACTIVE: it may), checked in the CPU trainer's order so that
// both backends stop a diverging run with the same reason.
fn toy_stop_reason(l: vec2<f32>, jac: ToyJacobian, d: vec2<f32>, next: vec2<f32>) -> u32 {
    if !finite2(l) {
        return RUN_STOPPED_LOSS;
    }
    if !(finite2(jac.g1) && finite2(jac.g2)) {
        return RUN_STOPPED_GRADIENT;
    }
    if !finite2(d) {
        return RUN_STOPPED_UPDATE;
    }
    if !finite2(next) {
        return RUN_STOPPED_NONFINITE;
    }
    return RUN_ACTIVE;
}

fn toy_hyper(p: RunParams) -> OptHyper {
    return OptHyper(p.optimizer, p.lr, p.beta1, p.beta2, p.one_minus_beta1, p.one_minus_beta2, p.eps, p.momentum);
}

fn toy_store(r: u32, st_in: RunState, os: OptState, calls: u32, status: u32, cut: u32, stop_losses: vec2<f32>) {
    var st = st_in;
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
    st.stop_losses = stop_losses;
    states[r] = st;
}

@compute @workgroup_size(64)
fn toy_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= tu.n_runs {
        return;
    }
    let st = states[r];
    if st.status != RUN_ACTIVE {
        return;
    }
    let p = runs[r];
    mgda_epsilon = p.eps_a;
    mgda_max_iters = p.max_iters;
    cagrad_norm_eps = p.eps_b;
    let h = toy_hyper(p);
    var os = OptState(st.x, st.x_comp, st.m, st.v, st.q1, st.q2, st.t);
    var calls = st.calls;
    var status = RUN_ACTIVE;
    var cut = 0u;
    var stop_losses = vec2<f32>(0.0, 0.0);
    let lw = p.lw;
    for (var k = 0u; k < tu.steps; k++) {
        let jac = toy_jacobian(os.x, tu.scale);
        // The aggregator's J: rows scaled by λ (× 1 is exact without a weighting).
        let wj = ToyJacobian(lw.x * jac.g1, lw.y * jac.g2);
        var w: vec2<f32>;
        var d: vec2<f32>;
        var dd = 0.0;
        if p.coordinate == TOY_COORD_NONE {
            wt_begin_factor(2u, 2u);
            wt_set_factor(0u, 0u, wj.g1.x);
            wt_set_factor(0u, 1u, wj.g1.y);
            wt_set_factor(1u, 0u, wj.g2.x);
            wt_set_factor(1u, 1u, wj.g2.y);
            compute_weights(p.method, p.c, p.seed, calls);
            w = vec2<f32>(wt_weight(0u), wt_weight(1u));
            d = w.x * wj.g1 + w.y * wj.g2;
        } else {
            d = toy_coordinate_update(p.coordinate, wj, os.t);
            // No weights: the record carries the plain J's Jd and ‖d‖² (the CPU's metrics
            // describe the plain J with this d).
            w = vec2<f32>(dot(jac.g1, d), dot(jac.g2, d));
            dd = dot(d, d);
        }
        var next_os = os;
        let step = optim_delta(h, &next_os, d) + p.decay * os.x;
        let next = optim_apply(next_os.x, next_os.x_comp, step);
        if !toy_sentinel() {
            cut = 1u;
            break;
        }
        calls += 1u;
        let l = toy_losses(os.x, tu.scale);
        status = toy_stop_reason(l, jac, d, next[0]);
        if status != RUN_ACTIVE {
            stop_losses = l;
            break;
        }
        toy_record(r, os.t, os.x, jac, w, lw, dd);
        next_os.x = next[0];
        next_os.x_comp = next[1];
        os = next_os;
    }
    // A loop ended by an exhausted budget (not by a sentinel inside) is a cut too.
    if !toy_sentinel() {
        cut = 1u;
    }
    toy_store(r, st, os, calls, status, cut, stop_losses);
}

@compute @workgroup_size(64)
fn toy_step_workgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wid.x;
    if r >= tu.n_runs {
        return;
    }
    wg_lid = lid;
    let p = runs[r];
    for (var i = 0u; i < WT_MAX_M; i++) {
        wg_param_vec[i] = p.vec[i];
    }
    let st = states[r];
    if lid == 0u {
        toy_wg_flag = st.status;
        atomicStore(&toy_wg_alive, 0u);
    }
    if workgroupUniformLoad(&toy_wg_flag) != RUN_ACTIVE {
        return;
    }
    let h = toy_hyper(p);
    var os = OptState(st.x, st.x_comp, st.m, st.v, st.q1, st.q2, st.t);
    var calls = st.calls;
    var status = RUN_ACTIVE;
    var cut = 0u;
    var stop_losses = vec2<f32>(0.0, 0.0);
    let lw = p.lw;
    for (var k = 0u; k < tu.steps; k++) {
        let jac = toy_jacobian(os.x, tu.scale);
        let wj = ToyJacobian(lw.x * jac.g1, lw.y * jac.g2);
        if lid == 0u {
            wg_size = 2u;
            let g12 = dot(wj.g1, wj.g2);
            wg_g[0] = dot(wj.g1, wj.g1);
            wg_g[1] = g12;
            wg_g[WG_STRIDE] = g12;
            wg_g[WG_STRIDE + 1u] = dot(wj.g2, wj.g2);
        }
        // The memory before this step's call, to put back if the step is cut (it is retaken).
        var memory_before: array<f32, 5>;
        if lid == 0u {
            for (var k = 0u; k < 5u; k++) {
                memory_before[k] = wt_memory[toy_memory_index(k)];
            }
        }
        workgroupBarrier();
        compute_weights_workgroup(p.method, p.c, p.eps_a, p.eps_b, p.mode, p.max_iters, p.seed, calls);
        // The next step's call reads what this one wrote (GradVac: from other invocations).
        storageBarrier();
        workgroupBarrier();
        let w = vec2<f32>(wg_w[0], wg_w[1]);
        let d = w.x * wj.g1 + w.y * wj.g2;
        var next_os = os;
        let step = optim_delta(h, &next_os, d) + p.decay * os.x;
        let next = optim_apply(next_os.x, next_os.x_comp, step);
        if toy_sentinel() {
            atomicAdd(&toy_wg_alive, 1u);
        }
        workgroupBarrier();
        if lid == 0u {
            // 0: commit; TOY_WG_CUT: some invocation's loops were cut; else a RUN_STOPPED_* reason.
            var verdict = 0u;
            if atomicLoad(&toy_wg_alive) != WG_SIZE {
                verdict = TOY_WG_CUT;
            } else {
                verdict = toy_stop_reason(toy_losses(os.x, tu.scale), jac, d, next[0]);
            }
            atomicStore(&toy_wg_alive, 0u);
            toy_wg_flag = verdict;
        }
        let verdict = workgroupUniformLoad(&toy_wg_flag);
        if verdict == TOY_WG_CUT {
            if lid == 0u {
                for (var k = 0u; k < 5u; k++) {
                    wt_memory[toy_memory_index(k)] = memory_before[k];
                }
            }
            cut = 1u;
            break;
        }
        calls += 1u;
        if verdict != RUN_ACTIVE {
            status = verdict;
            stop_losses = toy_losses(os.x, tu.scale);
            break;
        }
        if lid == 0u {
            toy_record(r, os.t, os.x, jac, w, lw, 0.0);
        }
        next_os.x = next[0];
        next_os.x_comp = next[1];
        os = next_os;
    }
    if lid == 0u {
        if !toy_sentinel() {
            cut = 1u;
        }
        toy_store(r, st, os, calls, status, cut, stop_losses);
    }
}
