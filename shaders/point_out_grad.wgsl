// point_out_grad.wgsl — the per-point conflict map's start: dφ_t/do for every row of one head's
// output o (rows × k), NOT divided by the batch size, as concord-core's
// model/point_conflict.rs `output_grad`:
//   mode 0 (own-prediction): the per-sample loss against the head's own hard prediction — BCE
//     (σ(o) − 1[o ≥ 0]) / k, softmax CE p − e_c (c = argmax, first index of the largest);
//     a regression head takes its output's gradient (ones);
//   mode 1 (output): ones (a 1-output head's logit or value, a k-output MSE/BCE head's sum of
//     outputs); softmax CE e_c − p (∂ log p_c);
//   mode 2 (loss): the per-sample loss at the row's targets (the target table of mlp_loss.wgsl):
//     MSE 2(o − y)/k, BCE (σ(o) − y)/k, softmax CE p − e_y.
// The differences σ(o) − 1 and p_c − 1 are formed without cancellation (−σ(−o), and minus the
// other classes' share), so a confident point keeps its gradient's relative precision in f32.
// One invocation per row; its loops run over k ≤ 256 (three passes for softmax).
// requires: mlp_index.wgsl mlp_activation.wgsl

struct PointOutParams {
    rows: u32,
    k: u32,
    // mlp_loss.wgsl's codes: 0 MSE, 1 BCE, 2 softmax CE.
    kind: u32,
    // 0 own-prediction, 1 output, 2 loss.
    mode: u32,
    y_stride: u32,
    y_col: u32,
    groups_x: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> po_out: array<f32>;
@group(0) @binding(1) var<storage, read> po_y: array<f32>;
@group(0) @binding(2) var<storage, read_write> po_grad: array<f32>;
@group(0) @binding(3) var<uniform> pop: PointOutParams;

@compute @workgroup_size(256)
fn point_out_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, pop.groups_x);
    if r >= pop.rows {
        return;
    }
    let k = pop.k;
    let o0 = r * k;
    let y0 = r * pop.y_stride + pop.y_col;
    if pop.kind == 2u {
        // Softmax: e_j = exp(o_j − max); the label c is the argmax (own, output) or the target.
        var best = 0u;
        for (var j = 1u; j < k; j++) {
            if po_out[o0 + j] > po_out[o0 + best] {
                best = j;
            }
        }
        let mx = po_out[o0 + best];
        var c = best;
        if pop.mode == 2u {
            c = u32(po_y[y0]);
        }
        var s = 0.0;
        var rest = 0.0;
        for (var j = 0u; j < k; j++) {
            let e = exp(po_out[o0 + j] - mx);
            s += e;
            if j != c {
                rest += e;
            }
        }
        // ∂(−log p_c)/∂o_j = p_j − 1[j = c], with p_c − 1 = −rest / s; the output mode's
        // ∂ log p_c is its negative.
        let sign = select(1.0, -1.0, pop.mode == 1u);
        for (var j = 0u; j < k; j++) {
            var g = exp(po_out[o0 + j] - mx) / s;
            if j == c {
                g = -rest / s;
            }
            po_grad[o0 + j] = sign * g;
        }
        return;
    }
    let inv_k = 1.0 / f32(k);
    for (var j = 0u; j < k; j++) {
        let o = po_out[o0 + j];
        var g = 1.0;
        if pop.kind == 1u && pop.mode != 1u {
            // BCE: σ(o) − y = y·(σ(o) − 1) + (1 − y)·σ(o) = −y·σ(−o) + (1 − y)·σ(o).
            var y = select(0.0, 1.0, o >= 0.0);
            if pop.mode == 2u {
                y = po_y[y0 + j];
            }
            g = ((1.0 - y) * act_sigmoid(o) - y * act_sigmoid(-o)) * inv_k;
        } else if pop.kind == 0u && pop.mode == 2u {
            g = 2.0 * (o - po_y[y0 + j]) * inv_k;
        }
        po_grad[o0 + j] = g;
    }
}
