// moe_capacity.wgsl — capacity assignment, one invocation per expert: an exclusive prefix count
// over the expert's assignments in priority order (all first choices in token order, then all
// second choices, …) gives each its slot; slot < capacity keeps it, the rest are dropped (their
// token passes through the residual). Writes combine / dispatch / slot for the expert's column,
// its token_of_slot row and its dropped count.
// Loop iterations per invocation: T + cbuf + K·T (the host keeps this under lavapipe's 65 535).
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> choice: array<u32>;
@group(0) @binding(2) var<storage, read> choice_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> route_f: array<f32>;
@group(0) @binding(4) var<storage, read_write> route_u: array<u32>;

@compute @workgroup_size(64)
fn moe_capacity(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if e >= mp.e {
        return;
    }
    let te = mp.t * mp.e;
    for (var t = 0u; t < mp.t; t++) {
        route_f[t * mp.e + e] = 0.0;
        route_f[te + t * mp.e + e] = 0.0;
        route_u[t * mp.e + e] = NONE;
    }
    for (var s = 0u; s < mp.cbuf; s++) {
        route_u[te + e * mp.cbuf + s] = NONE;
    }
    var count = 0u;
    var dropped = 0u;
    for (var r = 0u; r < mp.k; r++) {
        for (var t = 0u; t < mp.t; t++) {
            if choice[t * mp.k + r] == e {
                if count < mp.capacity {
                    route_f[t * mp.e + e] = choice_w[t * mp.k + r];
                    route_f[te + t * mp.e + e] = 1.0;
                    route_u[t * mp.e + e] = count;
                    route_u[te + e * mp.cbuf + count] = t;
                } else {
                    dropped++;
                }
                count++;
            }
        }
    }
    route_f[2u * te + e] = f32(dropped);
}
