// moe_dispatch.wgsl — dispatch and combine.
// moe_dispatch: one invocation per (expert, slot, channel): buf[e, s, :] = x[token_of_slot[e, s], :]
//   (0 for an empty slot), the expert's input buffer.
// moe_combine: one invocation per (token, channel): h = a + Σ_e combine[t, e]·out[e, slot[t, e], :]
//   over the experts that processed the token; a dropped or unrouted token keeps h = a (the
//   residual). `values` = a (T × H) followed by the experts' outputs (E × cbuf × H).
// Loop iterations per invocation: 0 (dispatch), E (combine).
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> dbuf: array<f32>;
@group(0) @binding(4) var<storage, read> values: array<f32>;
@group(0) @binding(5) var<storage, read> croute: array<f32>;
@group(0) @binding(6) var<storage, read_write> hout: array<f32>;

@compute @workgroup_size(64)
fn moe_dispatch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if idx >= mp.e * mp.cbuf * mp.h {
        return;
    }
    let e = idx / (mp.cbuf * mp.h);
    let s = (idx / mp.h) % mp.cbuf;
    let c = idx % mp.h;
    let token = slots[mp.t * mp.e + e * mp.cbuf + s];
    var v = 0.0;
    if token != NONE {
        v = dx[token * mp.h + c];
    }
    dbuf[idx] = v;
}

@compute @workgroup_size(64)
fn moe_combine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if idx >= mp.t * mp.h {
        return;
    }
    let t = idx / mp.h;
    let c = idx % mp.h;
    var acc = values[idx];
    let base = mp.t * mp.h;
    for (var e = 0u; e < mp.e; e++) {
        let s = slots[t * mp.e + e];
        if s != NONE {
            acc += croute[t * mp.e + e] * values[base + (e * mp.cbuf + s) * mp.h + c];
        }
    }
    hout[idx] = acc;
}
