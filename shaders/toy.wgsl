// toy.wgsl — CAGrad's two-objective toy (toy.py; concord-core problems/cagrad_toy.rs): losses
// and the 2 × 2 Jacobian with the same subgradient conventions as the CPU:
//   * a gate clamp(tanh(±x₂/2), min = 0) passes gradient where its input is ≥ 0, bound included
//     (tanh(x₂/2) ≥ 0 ⇔ x₂ ≥ 0 and tanh(−x₂/2) ≥ 0 ⇔ x₂ ≤ 0, so both pass at x₂ = 0);
//   * d log(max(|u|, LOWER))/du = 0 when |u| < LOWER or u = 0, else sign(u)/|u| = 1/u;
//   * `scale` multiplies L₁ only (1: toy.py; 0.1: Nash-MTL/FAMO).
// tanh and sech² are computed from exp(−2|z|), which is accurate in f32 for every z and never
// overflows (a builtin tanh may return NaN for large |z| on some backends).

const TOY_LOWER: f32 = 0.000005;

struct ToyJacobian {
    g1: vec2<f32>,
    g2: vec2<f32>,
}

fn toy_tanh(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, z < 0.0);
}

fn toy_sech2(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    return 4.0 * e / ((1.0 + e) * (1.0 + e));
}

fn toy_log_term(u: f32) -> f32 {
    return log(max(abs(u), TOY_LOWER)) + 6.0;
}

fn toy_dlog(u: f32) -> f32 {
    if abs(u) < TOY_LOWER || u == 0.0 {
        return 0.0;
    }
    return 1.0 / u;
}

fn toy_sq(x: vec2<f32>, centre: f32) -> f32 {
    let a = -x.x + centre;
    let b = -x.y - 8.0;
    return (a * a + 0.1 * b * b) / 10.0 - 20.0;
}

// gate · term, where a closed gate (exactly 0) contributes exactly 0 even when the term is
// beyond f32 range: far out on the log side (|x₁| ≳ 6e19) the quadratic branch's term is +inf
// in f32, and 0 · inf = NaN would stop a run that is finite (the CPU's f64 carries the term).
fn toy_gated(gate: f32, term: f32) -> f32 {
    return select(gate * term, 0.0, gate == 0.0);
}

fn toy_losses(x: vec2<f32>, scale: f32) -> vec2<f32> {
    let th = toy_tanh(x.y);
    let u1 = 0.5 * (-x.x - 7.0) + th;
    let u2 = 0.5 * (-x.x + 3.0) - th + 2.0;
    let gate0 = max(toy_tanh(0.5 * x.y), 0.0);
    let gate1 = max(toy_tanh(-0.5 * x.y), 0.0);
    let l1 = toy_gated(gate0, toy_log_term(u1)) + toy_gated(gate1, toy_sq(x, 7.0));
    let l2 = toy_gated(gate0, toy_log_term(u2)) + toy_gated(gate1, toy_sq(x, -7.0));
    return vec2<f32>(scale * l1, l2);
}

fn toy_jacobian(x: vec2<f32>, scale: f32) -> ToyJacobian {
    let x1 = x.x;
    let x2 = x.y;
    // u₁ = −(x₁+7)/2 − tanh(−x₂) = −(x₁+7)/2 + tanh(x₂);  u₂ = (3−x₁)/2 + tanh(−x₂) + 2.
    let th = toy_tanh(x2);
    let u1 = 0.5 * (-x1 - 7.0) + th;
    let u2 = 0.5 * (-x1 + 3.0) - th + 2.0;
    let f1 = toy_log_term(u1);
    let f2 = toy_log_term(u2);
    let fsq1 = toy_sq(x, 7.0);
    let fsq2 = toy_sq(x, -7.0);
    let gate0 = max(toy_tanh(0.5 * x2), 0.0);
    let gate1 = max(toy_tanh(-0.5 * x2), 0.0);
    let sg = toy_sech2(0.5 * x2);
    let dgate0 = select(0.0, 0.5 * sg, x2 >= 0.0);
    let dgate1 = select(0.0, -0.5 * sg, x2 <= 0.0);
    let s2 = toy_sech2(x2);
    // ∂u₁/∂x = (−1/2, sech²x₂), ∂u₂/∂x = (−1/2, −sech²x₂).
    let dl1 = toy_dlog(u1);
    let dl2 = toy_dlog(u2);
    let df1 = vec2<f32>(-0.5 * dl1, s2 * dl1);
    let df2 = vec2<f32>(-0.5 * dl2, -s2 * dl2);
    let dsq1 = vec2<f32>((x1 - 7.0) / 5.0, (x2 + 8.0) / 50.0);
    let dsq2 = vec2<f32>((x1 + 7.0) / 5.0, (x2 + 8.0) / 50.0);
    let g1 = vec2<f32>(
        toy_gated(gate0, df1.x) + toy_gated(gate1, dsq1.x),
        toy_gated(gate0, df1.y) + toy_gated(gate1, dsq1.y) + toy_gated(dgate0, f1) + toy_gated(dgate1, fsq1),
    );
    let g2 = vec2<f32>(
        toy_gated(gate0, df2.x) + toy_gated(gate1, dsq2.x),
        toy_gated(gate0, df2.y) + toy_gated(gate1, dsq2.y) + toy_gated(dgate0, f2) + toy_gated(dgate1, fsq2),
    );
    return ToyJacobian(scale * g1, g2);
}
