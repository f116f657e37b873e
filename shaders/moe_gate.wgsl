// moe_gate.wgsl — gate logits h = x·Wᵀ (W is E × D, row-major as in the flat parameter vector),
// the row softmax (shifted by the row max) and logsumexp, one invocation per token.
// Loop iterations per invocation: E·D + 2E (≤ 4 224 for E, D ≤ 64).
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gw: array<f32>;
@group(0) @binding(3) var<storage, read_write> gate_out: array<f32>;

@compute @workgroup_size(64)
fn moe_gate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= mp.t {
        return;
    }
    let te = mp.t * mp.e;
    var mx = -3.0e38;
    for (var e = 0u; e < mp.e; e++) {
        var z = 0.0;
        for (var i = 0u; i < mp.d; i++) {
            z += gx[t * mp.d + i] * gw[e * mp.d + i];
        }
        gate_out[t * mp.e + e] = z;
        mx = max(mx, z);
    }
    var s = 0.0;
    for (var e = 0u; e < mp.e; e++) {
        let q = exp(gate_out[t * mp.e + e] - mx);
        gate_out[te + t * mp.e + e] = q;
        s += q;
    }
    for (var e = 0u; e < mp.e; e++) {
        gate_out[te + t * mp.e + e] = gate_out[te + t * mp.e + e] / s;
    }
    gate_out[2u * te + t] = mx + log(s);
}
