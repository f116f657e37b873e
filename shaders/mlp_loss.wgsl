// mlp_loss.wgsl — one task's mean loss over the batch and dL/do (B × k, already divided by B),
// as concord-core model/loss.rs: MSE and BCE-with-logits average over batch and outputs,
// softmax cross-entropy over the batch (class index stored as an f32 in the target table).
// One workgroup: invocation l walks rows l, l + 256, …; the loss is tree-reduced in workgroup
// memory and written to losses[task].
// Targets: a row-major table with `y_stride` columns shared by all tasks; this task's start at
// column y_col (k columns for MSE/BCE, 1 for softmax CE).

const LOSS_MSE: u32 = 0u;
const LOSS_BCE: u32 = 1u;
const LOSS_SOFTMAX_CE: u32 = 2u;

struct LossParams {
    rows: u32,
    k: u32,
    kind: u32,
    y_stride: u32,
    y_col: u32,
    task: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> l_out: array<f32>;
@group(0) @binding(1) var<storage, read> l_y: array<f32>;
@group(0) @binding(2) var<storage, read_write> l_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> l_losses: array<f32>;
@group(0) @binding(4) var<uniform> lp: LossParams;

var<workgroup> l_red: array<f32, 256>;

// log(1 + eˣ) without overflow.
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

@compute @workgroup_size(256)
fn task_loss(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let k = lp.k;
    let inv_b = 1.0 / f32(lp.rows);
    var total = 0.0;
    for (var r = lid; r < lp.rows; r += 256u) {
        let o0 = r * k;
        let y0 = r * lp.y_stride + lp.y_col;
        if lp.kind == LOSS_SOFTMAX_CE {
            var mx = l_out[o0];
            for (var c = 1u; c < k; c++) {
                mx = max(mx, l_out[o0 + c]);
            }
            var s = 0.0;
            for (var c = 0u; c < k; c++) {
                s += exp(l_out[o0 + c] - mx);
            }
            let lse = mx + log(s);
            let label = u32(l_y[y0]);
            total += (lse - l_out[o0 + label]) * inv_b;
            for (var c = 0u; c < k; c++) {
                let p = exp(l_out[o0 + c] - lse);
                l_grad[o0 + c] = (p - select(0.0, 1.0, c == label)) * inv_b;
            }
        } else {
            let scale = inv_b / f32(k);
            for (var c = 0u; c < k; c++) {
                let o = l_out[o0 + c];
                let t = l_y[y0 + c];
                if lp.kind == LOSS_MSE {
                    let e = o - t;
                    total += e * e * scale;
                    l_grad[o0 + c] = 2.0 * e * scale;
                } else {
                    total += (softplus(o) - t * o) * scale;
                    var s: f32;
                    if o >= 0.0 {
                        s = 1.0 / (1.0 + exp(-o));
                    } else {
                        let ex = exp(o);
                        s = ex / (1.0 + ex);
                    }
                    l_grad[o0 + c] = (s - t) * scale;
                }
            }
        }
    }
    l_red[lid] = total;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lid < s {
            l_red[lid] += l_red[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        l_losses[lp.task] = l_red[0];
    }
}
