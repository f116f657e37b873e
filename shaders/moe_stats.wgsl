// moe_stats.wgsl — the aux-loss statistics, one invocation per expert:
//   f_e = fraction of tokens whose top-1 (rank-0 choice, ties → lower index) is e,
//   P_e = mean router probability, load_e = tokens processed, importance_e = Σ combine,
// and (invocation 0) the z-loss mean(lse²).
// stats = f E | P E | load E | importance E | z 1. Loop iterations per invocation: ≤ 2T.
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> gate_out: array<f32>;
@group(0) @binding(2) var<storage, read> choice: array<u32>;
@group(0) @binding(3) var<storage, read> route_f: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn moe_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if e >= mp.e {
        return;
    }
    let te = mp.t * mp.e;
    var f = 0.0;
    var p = 0.0;
    var load = 0.0;
    var imp = 0.0;
    for (var t = 0u; t < mp.t; t++) {
        if choice[t * mp.k] == e {
            f += 1.0;
        }
        p += gate_out[te + t * mp.e + e];
        load += route_f[te + t * mp.e + e];
        imp += route_f[t * mp.e + e];
    }
    let n = f32(mp.t);
    stats[e] = f / n;
    stats[mp.e + e] = p / n;
    stats[2u * mp.e + e] = load;
    stats[3u * mp.e + e] = imp;
    if e == 0u {
        var z = 0.0;
        for (var t = 0u; t < mp.t; t++) {
            let l = gate_out[2u * te + t];
            z += l * l;
        }
        stats[4u * mp.e] = z / n;
    }
}
