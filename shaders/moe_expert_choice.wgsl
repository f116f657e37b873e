// moe_expert_choice.wgsl — expert-choice routing, one invocation per (token, expert): the
// token's rank in the expert's column of probabilities (larger first, ties → lower token index);
// rank < k (mp.capacity) takes the token with weight p into slot = rank. A token can get no
// expert or several; nothing is dropped.
// Loop iterations per invocation: T (the host keeps T under lavapipe's 65 535).
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> gate_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> route_f: array<f32>;
@group(0) @binding(4) var<storage, read_write> route_u: array<u32>;

fn ec_prob(t: u32, e: u32) -> f32 {
    return gate_out[mp.t * mp.e + t * mp.e + e];
}

@compute @workgroup_size(64)
fn moe_expert_choice(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let e = gid.y;
    if t >= mp.t || e >= mp.e {
        return;
    }
    let te = mp.t * mp.e;
    let p = ec_prob(t, e);
    var rank = 0u;
    for (var u = 0u; u < mp.t; u++) {
        let q = ec_prob(u, e);
        if q > p || (q == p && u < t) {
            rank++;
        }
    }
    if rank < mp.capacity {
        route_f[t * mp.e + e] = p;
        route_f[te + t * mp.e + e] = 1.0;
        route_u[t * mp.e + e] = rank;
        route_u[te + e * mp.cbuf + rank] = t;
    } else {
        route_f[t * mp.e + e] = 0.0;
        route_f[te + t * mp.e + e] = 0.0;
        route_u[t * mp.e + e] = NONE;
    }
    if t == 0u {
        route_f[2u * te + e] = 0.0;
    }
}
