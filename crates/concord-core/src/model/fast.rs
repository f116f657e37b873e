//! The fast path of the MLP's training step (`Precision::F32`): what [`Mlp::gradients`] computes
//! — the per-task losses, the m × d_shared task Jacobian J and the heads' own gradients — in f32,
//! every product a GEMM (matrixmultiply: AVX-512 or AVX2/FMA natively, SIMD128 in the browser), with the
//! Gramian G = JJᵀ built on the way. Its batch-sized buffers and J are reused from step to step
//! (the trainer still allocates the d-long update and a few m-long vectors per step). [`Mlp`]
//! (f64) stays the reference; the tests bound the difference.
//!
//! Why it is faster than the reference, besides f32's doubled SIMD width:
//! - **One backward pass for all m tasks.** The backward pass is linear in dL/dh and φ'(z) is the
//!   same for every task, so the tasks' output gradients are stacked into one (m·B) × width
//!   matrix and each trunk layer propagates all of them with one GEMM. Only the weight
//!   gradients stay per task (task t's block of J is D_tᵀ·a, one GEMM each), written straight
//!   into row t of the f32 Jacobian.
//! - **The Gramian layer by layer.** G = Σ_l J_l J_lᵀ (the idea behind torchjd's autogram): each
//!   layer's block of J is multiplied out right after it is written, while it is in cache, and
//!   the per-layer Gramians are the per-layer metrics at no extra cost.
//! - **A vectorisable tanh.** libm's `tanhf` is one scalar call per element; [`tanh_f32`] is
//!   branch-free arithmetic the compiler turns into SIMD.
//! - **No padded tiles.** A product with fewer than 4 rows or columns (a 1-output head, the
//!   first layer of a 2-D input) is a loop of dots or rank-one updates: matrixmultiply's
//!   16 × 16 AVX-512 tile would do 16× its work and pack its whole input for it.
//! - **Two threads on big batches.** From [`SPLIT_FROM`] multiply-adds a pass is cut into two
//!   halves of the batch whose J, head gradients and losses are added (G is then built from the
//!   sum); the cut depends on the shapes only, so a run gives the same numbers on any machine's
//!   thread count, and the browser runs the same halves one after the other.
//!
//! Accuracy: products in f32 (as PyTorch's f32 training); losses and the Gramian in f64; ReLU's
//! pre-activations within f32's error of 0 are recomputed in f64 (their sign switches gradients).

use super::activation::Activation;
use super::layout::{LayerSlice, Layout};
use super::loss::{LossKind, Target};
use super::mlp::Mlp;
use crate::aggregators::JacobianF32;
use crate::multiversion::multiversion;
#[cfg(not(target_arch = "wasm32"))]
use crate::pause::finish;
use crate::pause::pause;
use nalgebra::DMatrix;
use std::ops::Range;

/// A data set in f32, one sample per row (row-major), from which batches are gathered.
#[derive(Clone, Debug)]
pub struct FastData {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    /// x in f64, for the ReLU pre-activations recomputed near 0 ([`Pass::settle_relu_ties`]).
    x64: Vec<f64>,
    targets: Vec<FastTarget>,
}

#[derive(Clone, Debug)]
enum FastTarget {
    /// k values per sample, row-major.
    Values {
        k: usize,
        y: Vec<f32>,
    },
    Classes(Vec<u32>),
}

impl FastTarget {
    fn empty_like(&self) -> Self {
        match self {
            FastTarget::Values { k, .. } => FastTarget::Values { k: *k, y: Vec::new() },
            FastTarget::Classes(_) => FastTarget::Classes(Vec::new()),
        }
    }
}

/// Row-major f32 copy of a column-major f64 matrix.
fn rows_f32(m: &DMatrix<f64>) -> Vec<f32> {
    let (r, c) = m.shape();
    (0..r * c).map(|i| m[(i / c, i % c)] as f32).collect()
}

impl FastData {
    /// The inputs and targets of a set (as the reference trainer holds them), in f32.
    pub fn new(x: &DMatrix<f64>, targets: &[Target]) -> Self {
        let targets = targets
            .iter()
            .map(|t| match t {
                Target::Values(v) => FastTarget::Values { k: v.ncols(), y: rows_f32(v) },
                Target::Classes(c) => FastTarget::Classes(c.iter().map(|&l| l as u32).collect()),
            })
            .collect();
        let x64 = (0..x.len()).map(|i| x[(i / x.ncols(), i % x.ncols())]).collect();
        FastData { rows: x.nrows(), cols: x.ncols(), x: rows_f32(x), x64, targets }
    }
}

/// Which rows of a data set a pass takes: a range (a full-batch run, or one half of it) or
/// picked rows (a mini-batch, or one half of it).
#[derive(Clone, Copy, Debug)]
enum Rows<'a> {
    Range(usize, usize),
    Pick(&'a [usize]),
}

impl<'a> Rows<'a> {
    fn new(data: &FastData, rows: Option<&'a [usize]>) -> Self {
        rows.map_or(Rows::Range(0, data.rows), Rows::Pick)
    }

    fn len(&self) -> usize {
        match self {
            Rows::Range(start, end) => end - start,
            Rows::Pick(rows) => rows.len(),
        }
    }

    /// The first ⌈n/2⌉ rows and the rest.
    fn halves(self) -> (Self, Self) {
        let mid = self.len().div_ceil(2);
        match self {
            Rows::Range(start, end) => (Rows::Range(start, start + mid), Rows::Range(start + mid, end)),
            Rows::Pick(rows) => (Rows::Pick(&rows[..mid]), Rows::Pick(&rows[mid..])),
        }
    }

    fn for_each(&self, mut f: impl FnMut(usize)) {
        match *self {
            Rows::Range(start, end) => (start..end).for_each(f),
            Rows::Pick(rows) => rows.iter().for_each(|&r| f(r)),
        }
    }
}

/// What every pass reads: the model's shape and its parameters in f32.
#[derive(Clone, Debug)]
struct Net32 {
    activation: Activation,
    losses_kind: Vec<LossKind>,
    layout: Layout,
    params: Vec<f32>,
    /// What rounding to f32 dropped from each parameter (ReLU models only): params + params_lo
    /// is the f64 parameters to 2⁻⁴⁸, for [`Pass::settle_relu_ties`] (an f64 copy cost 1 % of
    /// a gradnorm-scales step; the split costs what the plain rounding did).
    params_lo: Vec<f32>,
}

impl Net32 {
    /// Multiply-adds of a forward pass per row.
    fn forward_work(&self) -> usize {
        self.layout.trunk.iter().chain(&self.layout.heads).map(|s| s.fan_in * s.fan_out).sum()
    }

    /// Multiply-adds of a gradient pass per row: the forward pass, then per trunk layer the
    /// stacked propagation and the m weight gradients; per head its gradient and its block of
    /// the stack.
    fn gradient_work(&self) -> usize {
        let m = self.layout.heads.len();
        let trunk: usize = self.layout.trunk.iter().map(|s| s.fan_in * s.fan_out).sum();
        let heads: usize = self.layout.heads.iter().map(|s| s.fan_in * s.fan_out).sum();
        trunk * (1 + 2 * m) + 3 * heads
    }
}

/// One pass's buffers (a whole batch, or one half of it). Reused from step to step.
#[derive(Clone, Debug)]
struct Pass {
    /// This pass's rows: their indices in the data set.
    rows: Vec<usize>,
    x: Vec<f32>,
    targets: Vec<FastTarget>,
    /// Per trunk layer: pre-activations z and activations a = φ(z), batch × width.
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    /// Per head: outputs, then dL/d(output).
    out: Vec<Vec<f32>>,
    d_out: Vec<Vec<f32>>,
    /// The stacked backward pass: (m·batch) × width, and the next layer's.
    stack: Vec<f32>,
    stack_next: Vec<f32>,
    /// φ'(z) of one layer (batch × width), shared by every task's block.
    dphi: Vec<f32>,
    /// A skinny product's transpose.
    scratch: Vec<f32>,
    /// Per task, this pass's rows' loss terms divided by the whole batch's size (the mean loss
    /// when the pass is the whole batch).
    losses: Vec<f64>,
}

/// The second half of a batch cut in two: its pass and the J and head gradients of its rows.
#[derive(Clone, Debug)]
struct Half {
    pass: Pass,
    jacobian: JacobianF32,
    head_grads: Vec<f32>,
}

/// From this many multiply-adds a pass over a batch is cut into two halves, run on two threads
/// natively (rayon) and one after the other in the browser, so the sums are the same however
/// many threads there are. Measured on 2 cores (BENCHMARKS.md): the wide trunk (9.9·10⁶ per
/// step) runs 1.6× as fast cut in two; gradnorm-scales (4.0·10⁶) ran ~7 % slower (halves of 50
/// rows, and the threads' wake-up), sinusoid-phases (3.8·10⁵) 20–25 % slower.
pub const SPLIT_FROM: usize = 6_000_000;

/// The buffers and results of the fast step for one model. Reused from step to step.
#[derive(Clone, Debug)]
pub struct FastMlp {
    net: Net32,
    first: Pass,
    second: Box<Half>,
    /// Multiply-adds from which a pass is cut in two ([`SPLIT_FROM`]; tests move it).
    pub(crate) split_from: usize,
    /// Results of [`FastMlp::gradients`]: per-task mean losses, J (m × d_shared), the heads'
    /// own gradients (the flat layout after the trunk), G = JJᵀ and one Gramian per trunk layer.
    pub losses: Vec<f64>,
    pub jacobian: JacobianF32,
    pub head_grads: Vec<f32>,
    pub gram: DMatrix<f64>,
    pub layer_grams: Vec<DMatrix<f64>>,
}

/// One operand of a GEMM: its values and its row and column strides.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

fn op(data: &[f32], rs: usize, cs: usize) -> Operand<'_> {
    Operand { data, rs, cs }
}

/// The last index a rows × cols view with these strides reads, plus one.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// C (m × n) = A (m × k) · B (k × n) + beta·C, through matrixmultiply's sgemm. The views are
/// checked against their slices first, so the unsafe call cannot read or write outside them.
#[allow(clippy::too_many_arguments)]
fn gemm(m: usize, k: usize, n: usize, a: Operand, b: Operand, beta: f32, c: &mut [f32], rsc: usize, csc: usize) {
    assert!(span(m, k, a.rs, a.cs) <= a.data.len(), "GEMM: A's view exceeds its slice");
    assert!(span(k, n, b.rs, b.cs) <= b.data.len(), "GEMM: B's view exceeds its slice");
    assert!(span(m, n, rsc, csc) <= c.len(), "GEMM: C's view exceeds its slice");
    if m == 0 || n == 0 {
        return;
    }
    let s = |v: usize| v as isize;
    // SAFETY: the three views lie inside their slices (checked above); C is borrowed mutably,
    // so it overlaps neither A nor B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            s(a.rs),
            s(a.cs),
            b.data.as_ptr(),
            s(b.rs),
            s(b.cs),
            beta,
            c.as_mut_ptr(),
            s(rsc),
            s(csc),
        );
    }
}

/// eʸ for y ∈ [0, 20]: y = k·ln 2 + r with |r| ≤ ln 2 / 2, eʳ by its Taylor polynomial to r⁷
/// (relative error below 10⁻⁸ before rounding), 2ᵏ from the exponent bits. Integer work only on
/// bit patterns (`as i32` saturates, which keeps the loop from vectorising).
#[inline(always)]
fn exp_small_f32(y: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that k·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2²³ rounds to the nearest integer k and leaves k in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let shifted = y * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

/// tanh in f32 without a libm call, so loops over it vectorise: an odd Taylor polynomial for
/// |x| < 0.3 (no cancellation near 0), 1 − 2/(e^{2|x|} + 1) above; |x| is clamped at 10, where
/// tanh is 1 in f32. Error: a few f32 ulps (tested against f64).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs().min(10.0);
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    let large = (1.0 - 2.0 / (exp_small_f32(2.0 * ax) + 1.0)).copysign(x);
    if ax < 0.3 {
        small
    } else {
        large
    }
}

const GELU_C: f32 = 0.797_884_6; // √(2/π)
const GELU_A: f32 = 0.044_715;

multiversion! {
/// a = φ(z).
fn apply(act: Activation, z: &[f32], a: &mut [f32]) {
    match act {
        Activation::Relu => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.max(0.0)),
        Activation::Tanh => a.iter_mut().zip(z).for_each(|(a, &z)| *a = tanh_f32(z)),
        // σ(z) = (1 + tanh(z/2)) / 2: no overflow, and the same vectorisable tanh.
        Activation::Sigmoid => a.iter_mut().zip(z).for_each(|(a, &z)| *a = 0.5 + 0.5 * tanh_f32(0.5 * z)),
        Activation::Gelu => {
            a.iter_mut().zip(z).for_each(|(a, &z)| *a = 0.5 * z * (1.0 + tanh_f32(GELU_C * (z + GELU_A * z * z * z))))
        }
        Activation::Linear => a.copy_from_slice(z),
    }
}
}

/// φ'(z), from z and a = φ(z) (tanh and σ from a: no second transcendental).
#[inline(always)]
fn derivative(act: Activation, z: &[f32], a: &[f32], out: &mut [f32]) {
    let it = out.iter_mut().zip(z.iter().zip(a));
    match act {
        Activation::Relu => it.for_each(|(o, (&z, _))| *o = if z > 0.0 { 1.0 } else { 0.0 }),
        Activation::Tanh => it.for_each(|(o, (_, &a))| *o = 1.0 - a * a),
        Activation::Sigmoid => it.for_each(|(o, (_, &a))| *o = a * (1.0 - a)),
        Activation::Gelu => it.for_each(|(o, (&z, _))| {
            let t = tanh_f32(GELU_C * (z + GELU_A * z * z * z));
            *o = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * z * z);
        }),
        Activation::Linear => it.for_each(|(o, _)| *o = 1.0),
    }
}

multiversion! {
/// Each task's block of `stack` (the blocks are as long as `z`) times φ'(z), through `dphi`.
fn times_derivative(act: Activation, z: &[f32], a: &[f32], dphi: &mut [f32], stack: &mut [f32]) {
    derivative(act, z, a, dphi);
    for block in stack.chunks_exact_mut(z.len().max(1)) {
        block.iter_mut().zip(dphi.iter()).for_each(|(d, &p)| *d *= p);
    }
}
}

/// Σ aᵢbᵢ in f64 (8 lanes, vectorised): the f32 values are exact in f64, so G is the exact
/// Gramian of the f32 Jacobian. Products in f32 lost up to ~10⁻⁵ of a cross term that cancels
/// (gradnorm-scales' task scales differ by 10⁴); the f64 dot costs a few µs a step.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (ha, ta) = a.split_at(a.len() / 8 * 8);
    let (hb, tb) = b.split_at(ha.len());
    for (xa, xb) in ha.chunks_exact(8).zip(hb.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += xa[i] as f64 * xb[i] as f64;
        }
    }
    lanes.iter().sum::<f64>() + ta.iter().zip(tb).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>()
}

/// The column sums of a rows × cols row-major block, summed in f64, into `out` (cols ≤ 256, the
/// widest layer or head, so the sums live on the stack).
fn column_sums_into(block: &[f32], cols: usize, out: &mut [f32]) {
    const _: () = assert!(crate::model::MAX_WIDTH <= 256 && crate::model::MAX_OUTPUT_DIM <= 256);
    let mut sums = [0.0f64; 256];
    let sums = &mut sums[..cols];
    for row in block.chunks_exact(cols) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    for (o, &s) in out.iter_mut().zip(sums.iter()) {
        *o = s as f32;
    }
}

/// Resize without shrinking capacity (no allocation once grown).
fn fit(buf: &mut Vec<f32>, len: usize) {
    buf.resize(len, 0.0);
}

/// Below this many rows or columns of a product, most of a 16 × 16 sgemm tile is padding (a
/// 1-output head used 1/16 of its kernel work, and packed its whole input for it): such
/// products are loops of f32 dots or rank-one updates along the long side instead.
const SKINNY: usize = 4;

/// Σ aᵢbᵢ in f32, 16 lanes (vectorised; the lanes are summed in a fixed order).
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (ha, ta) = a.split_at(a.len() / 16 * 16);
    let (hb, tb) = b.split_at(ha.len());
    for (xa, xb) in ha.chunks_exact(16).zip(hb.chunks_exact(16)) {
        for i in 0..16 {
            lanes[i] += xa[i] * xb[i];
        }
    }
    lanes.iter().sum::<f32>() + ta.iter().zip(tb).map(|(&x, &y)| x * y).sum::<f32>()
}

multiversion! {
/// out (rows × fout) += input (rows × fin) · Wᵀ with W fout × fin, for fout < SKINNY: one dot
/// per value.
fn linear_skinny(input: &[f32], w: &[f32], fin: usize, fout: usize, out: &mut [f32]) {
    for (x, o) in input.chunks_exact(fin).zip(out.chunks_exact_mut(fout)) {
        for (c, v) in o.iter_mut().enumerate() {
            *v += dot_f32(x, &w[c * fin..(c + 1) * fin]);
        }
    }
}
}

multiversion! {
/// out (m × n) = Aᵀ·B with A p × m and B p × n (all row-major), for m or n < SKINNY: rank-one
/// updates along the long side (through `scratch`, n × m, when n is the short one).
fn at_b_skinny(a: &[f32], m: usize, b: &[f32], n: usize, out: &mut [f32], scratch: &mut [f32]) {
    if m <= n {
        out.fill(0.0);
        for (ar, br) in a.chunks_exact(m).zip(b.chunks_exact(n)) {
            for (row, &s) in out.chunks_exact_mut(n).zip(ar) {
                row.iter_mut().zip(br).for_each(|(o, &v)| *o += s * v);
            }
        }
    } else {
        scratch.fill(0.0);
        for (ar, br) in a.chunks_exact(m).zip(b.chunks_exact(n)) {
            for (row, &s) in scratch.chunks_exact_mut(m).zip(br) {
                row.iter_mut().zip(ar).for_each(|(o, &v)| *o += s * v);
            }
        }
        for (c, row) in out.chunks_exact_mut(n).enumerate() {
            for (i, o) in row.iter_mut().enumerate() {
                *o = scratch[i * m + c];
            }
        }
    }
}
}

/// out (m × n) = Aᵀ·B with A p × m and B p × n, all row-major (the weight gradients Dᵀ·a).
fn at_b(p: usize, a: &[f32], m: usize, b: &[f32], n: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
    if m >= SKINNY && n >= SKINNY {
        gemm(m, p, n, op(a, 1, m), op(b, n, 1), 0.0, out, n, 1);
    } else if m > 0 && n > 0 {
        assert!(a.len() >= p * m && b.len() >= p * n && out.len() == m * n, "AᵀB: shapes");
        fit(scratch, m * n);
        at_b_skinny(&a[..p * m], m, &b[..p * n], n, out, scratch);
    }
}

/// z = a·Wᵀ + b for the `rows` rows of `input` (row-major), into `z` (rows × fan_out).
fn linear(params: &[f32], s: &LayerSlice, input: &[f32], rows: usize, z: &mut Vec<f32>) {
    let (fin, fout) = (s.fan_in, s.fan_out);
    fit(z, rows * fout);
    let bias = &params[s.bias.clone()];
    for row in z.chunks_exact_mut(fout.max(1)) {
        row.copy_from_slice(bias);
    }
    let w = &params[s.weight.clone()];
    if fout < SKINNY && fin > 0 {
        linear_skinny(&input[..rows * fin], w, fin, fout, z);
    } else {
        // Wᵀ (fin × fout) read from W's row-major (fout × fin) storage: row stride 1, column stride fin.
        gemm(rows, fin, fout, op(input, fin, 1), op(w, 1, fin), 1.0, z, fout, 1);
    }
}

/// The Gramian of one layer's columns of J (f64 sums of the f32 values), into `g`.
fn layer_gram(jacobian: &JacobianF32, range: Range<usize>, g: &mut DMatrix<f64>) {
    let m = jacobian.nrows();
    for i in 0..m {
        for j in 0..=i {
            let v = dot(&jacobian.row(i)[range.clone()], &jacobian.row(j)[range.clone()]);
            g[(i, j)] = v;
            g[(j, i)] = v;
        }
    }
}

multiversion! {
fn add_into(acc: &mut [f32], v: &[f32]) {
    acc.iter_mut().zip(v).for_each(|(a, &b)| *a += b);
}
}

/// The sum of each head's loss terms over a pass's rows (`out` is rows × k) divided by the
/// whole batch's size `total`, and dL/d(output) likewise: the same formulas as
/// `loss::loss_and_grad`, each sample's terms in f64.
fn loss_and_grad_f32(
    kind: LossKind,
    out: &[f32],
    target: &FastTarget,
    rows: usize,
    total: usize,
    grad: &mut [f32],
) -> f64 {
    let inv_b = 1.0 / total as f64;
    let mut sum = 0.0;
    match (kind, target) {
        (LossKind::Mse, FastTarget::Values { k, y }) => {
            let scale = inv_b / *k as f64;
            for ((g, &o), &t) in grad.iter_mut().zip(out).zip(y.iter()) {
                let e = o as f64 - t as f64;
                sum += e * e;
                *g = (2.0 * e * scale) as f32;
            }
            sum *= scale;
        }
        (LossKind::Bce, FastTarget::Values { k, y }) => {
            let scale = inv_b / *k as f64;
            for ((g, &o), &t) in grad.iter_mut().zip(out).zip(y.iter()) {
                let (o, t) = (o as f64, t as f64);
                sum += o.max(0.0) + (-o.abs()).exp().ln_1p() - t * o;
                *g = ((super::activation::sigmoid(o) - t) * scale) as f32;
            }
            sum *= scale;
        }
        (LossKind::SoftmaxCe, FastTarget::Classes(labels)) => {
            let k = out.len() / rows.max(1);
            for (r, (row, g)) in out.chunks_exact(k).zip(grad.chunks_exact_mut(k)).enumerate() {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                let label = labels[r] as usize;
                sum += (lse - row[label] as f64) * inv_b;
                for (c, (gc, &v)) in g.iter_mut().zip(row).enumerate() {
                    let p = (v as f64 - lse).exp();
                    *gc = ((p - if c == label { 1.0 } else { 0.0 }) * inv_b) as f32;
                }
            }
        }
        _ => unreachable!("targets are checked when the trainer builds its data"),
    }
    sum
}

impl Pass {
    fn new(net: &Net32) -> Self {
        let (m, trunk) = (net.layout.heads.len(), net.layout.trunk.len());
        Pass {
            rows: Vec::new(),
            x: Vec::new(),
            targets: Vec::new(),
            z: vec![Vec::new(); trunk],
            a: vec![Vec::new(); trunk],
            out: vec![Vec::new(); m],
            d_out: vec![Vec::new(); m],
            stack: Vec::new(),
            stack_next: Vec::new(),
            dphi: Vec::new(),
            scratch: Vec::new(),
            losses: vec![0.0; m],
        }
    }

    /// Take the rows `rows` of `data`.
    fn load(&mut self, data: &FastData, rows: Rows) {
        let cols = data.cols;
        self.x.clear();
        self.rows.clear();
        rows.for_each(|r| {
            self.rows.push(r);
            self.x.extend_from_slice(&data.x[r * cols..(r + 1) * cols]);
        });
        if self.targets.len() != data.targets.len() {
            self.targets = data.targets.iter().map(FastTarget::empty_like).collect();
        }
        for (dst, src) in self.targets.iter_mut().zip(&data.targets) {
            match (dst, src) {
                (FastTarget::Values { k: dk, y: dy }, FastTarget::Values { k, y }) => {
                    *dk = *k;
                    dy.clear();
                    rows.for_each(|r| dy.extend_from_slice(&y[r * k..(r + 1) * k]));
                }
                (FastTarget::Classes(dc), FastTarget::Classes(c)) => {
                    dc.clear();
                    rows.for_each(|r| dc.push(c[r]));
                }
                (dst, src) => *dst = src.clone(),
            }
        }
    }

    /// The forward pass of the loaded rows (pausing after each trunk layer) and each head's
    /// share of its loss and its output gradient, both over `total` rows.
    async fn forward(&mut self, net: &Net32, data: &FastData, total: usize) {
        let b = self.rows.len();
        for l in 0..net.layout.trunk.len() {
            let s = &net.layout.trunk[l];
            let input: &[f32] = if l == 0 { &self.x } else { &self.a[l - 1] };
            linear(&net.params, s, input, b, &mut self.z[l]);
            if net.activation == Activation::Relu {
                self.settle_relu_ties(l, net, data);
            }
            fit(&mut self.a[l], b * s.fan_out);
            apply(net.activation, &self.z[l], &mut self.a[l]);
            pause().await;
        }
        let h: &[f32] = self.a.last().unwrap_or(&self.x);
        for (t, s) in net.layout.heads.iter().enumerate() {
            linear(&net.params, s, h, b, &mut self.out[t]);
            fit(&mut self.d_out[t], b * s.fan_out);
            self.losses[t] =
                loss_and_grad_f32(net.losses_kind[t], &self.out[t], &self.targets[t], b, total, &mut self.d_out[t]);
        }
    }

    /// ReLU's derivative jumps at z = 0, so a pre-activation that f32 rounding puts on the other
    /// side of 0 than the f64 reference does switches that sample's gradient through the unit on
    /// or off (gradnorm-scales / UPGrad: one z at 9·10⁻⁹ of Σ|terms| did, which moved UPGrad's
    /// weights 0.5 % in that step and the 200-step losses 2.5·10⁻⁴ from the reference; even the
    /// exact sum of the f32-rounded inputs had the wrong sign). The entries of layer `l`'s z
    /// within [`RELU_TIE`]·(Σᵢ|xᵢwᵢ| + |b|) of 0 (f32's error is 10⁻⁸–10⁻⁷ of that) are
    /// recomputed in f64 from the f64 data and parameters, so their sign is the reference's. A
    /// bound per unit picks the entries to look at (a few per step).
    fn settle_relu_ties(&mut self, l: usize, net: &Net32, data: &FastData) {
        let s = &net.layout.trunk[l];
        let (fin, fout) = (s.fan_in, s.fan_out);
        let input: &[f32] = if l == 0 { &self.x } else { &self.a[l - 1] };
        let (w, bias) = (&net.params[s.weight.clone()], &net.params[s.bias.clone()]);
        // Σᵢ|xᵢwᵢ| + |b| ≤ fin·max|x|·max|w| + |b| for every entry of unit o (w: W's row o).
        let mut bound = [0.0f32; crate::model::MAX_WIDTH];
        let bound = &mut bound[..fout];
        row_max_abs(w, fin.max(1), bound);
        let x_max = fin as f32 * max_abs(input);
        for (t, &b) in bound.iter_mut().zip(bias) {
            *t = RELU_TIE * (x_max * *t + b.abs());
        }
        if !bound.iter().all(|t| t.is_finite()) {
            return; // f32 overflowed: the step fails on its losses
        }
        let (hi, lo) = (&net.params, &net.params_lo);
        let p64 = |i: usize| hi[i] as f64 + lo[i] as f64;
        let z = &mut self.z[l];
        let mut h = Vec::new();
        let mut r = 0;
        loop {
            first_near_zero(z, bound, &mut r);
            let Some(row) = z.get_mut(r * fout..(r + 1) * fout) else { break };
            let x = &input[r * fin..(r + 1) * fin];
            h.clear();
            for (o, z) in row.iter_mut().enumerate().filter(|(o, z)| z.abs() <= bound[*o]) {
                let w_o = &w[o * fin..(o + 1) * fin];
                let size = bias[o].abs() + x.iter().zip(w_o).map(|(x, w)| (x * w).abs()).sum::<f32>();
                if z.abs() > RELU_TIE * size {
                    continue;
                }
                if h.is_empty() {
                    let d = self.rows[r];
                    sample_input64(&net.layout, p64, &data.x64[d * data.cols..(d + 1) * data.cols], l, &mut h);
                }
                let w_o = s.weight.start + o * fin;
                *z = (p64(s.bias.start + o) + h.iter().enumerate().map(|(i, h)| p64(w_o + i) * h).sum::<f64>()) as f32;
            }
            r += 1;
        }
    }

    /// After [`Pass::forward`]: this pass's rows' J (m × d_shared) into `jacobian`, the heads'
    /// gradients into `head_grads`, and, given `grams`, G and the layer Gramians built layer
    /// by layer while each block of J is in cache. Pauses after each layer.
    async fn backward(
        &mut self,
        net: &Net32,
        jacobian: &mut JacobianF32,
        head_grads: &mut [f32],
        mut grams: Option<(&mut DMatrix<f64>, &mut [DMatrix<f64>])>,
    ) {
        let b = self.rows.len();
        let m = net.layout.heads.len();
        let shared = net.layout.shared_len;
        let h: &[f32] = self.a.last().unwrap_or(&self.x);
        let hw = net.layout.trunk_out();
        // Heads: dW (W's layout, k × hw) = d_outᵀ · h; bias = column sums.
        for (t, s) in net.layout.heads.iter().enumerate() {
            let k = s.fan_out;
            let (w, bias) =
                (s.weight.start - shared..s.weight.end - shared, s.bias.start - shared..s.bias.end - shared);
            at_b(b, &self.d_out[t], k, h, hw, &mut head_grads[w], &mut self.scratch);
            column_sums_into(&self.d_out[t], k, &mut head_grads[bias]);
        }
        if let Some((gram, _)) = grams.as_mut() {
            gram.fill(0.0);
        }
        if shared == 0 {
            return;
        }
        // The stack: block t (b × hw) = dL_t/dh = d_out_t · W_t.
        fit(&mut self.stack, m * b * hw);
        for (t, s) in net.layout.heads.iter().enumerate() {
            let k = s.fan_out;
            let block = &mut self.stack[t * b * hw..(t + 1) * b * hw];
            gemm(b, k, hw, op(&self.d_out[t], k, 1), op(&net.params[s.weight.clone()], hw, 1), 0.0, block, hw, 1);
        }
        for l in (0..net.layout.trunk.len()).rev() {
            let s = &net.layout.trunk[l];
            let (fin, fout) = (s.fan_in, s.fan_out);
            let input: &[f32] = if l == 0 { &self.x } else { &self.a[l - 1] };
            // dL/dz = dL/da ⊙ φ'(z), the same φ' for every task's block.
            fit(&mut self.dphi, b * fout);
            times_derivative(net.activation, &self.z[l], &self.a[l], &mut self.dphi, &mut self.stack);
            // Task t's block of J: W's gradient (fout × fin) = D_tᵀ · a, and the bias's.
            for (t, row) in jacobian.rows_mut().enumerate() {
                let d_t = &self.stack[t * b * fout..(t + 1) * b * fout];
                at_b(b, d_t, fout, input, fin, &mut row[s.weight.clone()], &mut self.scratch);
                column_sums_into(d_t, fout, &mut row[s.bias.clone()]);
            }
            // This layer's Gramian while its block of J is in cache.
            if let Some((gram, layer_grams)) = grams.as_mut() {
                layer_gram(jacobian, s.range(), &mut layer_grams[l]);
                **gram += &layer_grams[l];
            }
            if l > 0 {
                // dL/da of the layer below, for every task at once: (m·b × fout) · W (fout × fin).
                fit(&mut self.stack_next, m * b * fin);
                gemm(
                    m * b,
                    fout,
                    fin,
                    op(&self.stack, fout, 1),
                    op(&net.params[s.weight.clone()], fin, 1),
                    0.0,
                    &mut self.stack_next,
                    fin,
                    1,
                );
                std::mem::swap(&mut self.stack, &mut self.stack_next);
            }
            pause().await;
        }
    }

    /// Load, forward and backward (no Gramians): one half of a batch cut in two.
    async fn half_gradients(
        &mut self,
        net: &Net32,
        data: &FastData,
        rows: Rows<'_>,
        total: usize,
        jacobian: &mut JacobianF32,
        head_grads: &mut [f32],
    ) {
        self.load(data, rows);
        self.forward(net, data, total).await;
        self.backward(net, jacobian, head_grads, None).await;
    }

    /// Load and forward: one half of a batch cut in two, losses only.
    async fn half_losses(&mut self, net: &Net32, data: &FastData, rows: Rows<'_>, total: usize) {
        self.load(data, rows);
        self.forward(net, data, total).await;
    }
}

/// Two pieces of work, on two threads where there are threads.
#[cfg(not(target_arch = "wasm32"))]
fn both(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    // `b` on a pool thread, `a` on this one (`rayon::join` called from outside the pool would
    // send both to the pool and block this thread: three threads and two wake-ups per step).
    rayon::in_place_scope(|s| {
        s.spawn(|_| b());
        a();
    });
}

impl FastMlp {
    pub fn new(mlp: &Mlp) -> Self {
        let layout = mlp.layout().clone();
        let m = layout.heads.len();
        let trunk_layers = layout.trunk.len();
        let heads_len = layout.total_len - layout.shared_len;
        let net = Net32 {
            activation: mlp.config().activation,
            losses_kind: mlp.config().heads.iter().map(|h| h.loss).collect(),
            params: vec![0.0; layout.total_len],
            params_lo: vec![0.0; layout.total_len],
            layout,
        };
        let shared = net.layout.shared_len;
        FastMlp {
            first: Pass::new(&net),
            second: Box::new(Half {
                pass: Pass::new(&net),
                jacobian: JacobianF32::zeros(m, shared),
                head_grads: vec![0.0; heads_len],
            }),
            split_from: SPLIT_FROM,
            losses: vec![0.0; m],
            jacobian: JacobianF32::zeros(m, shared),
            head_grads: vec![0.0; heads_len],
            gram: DMatrix::zeros(m, m),
            layer_grams: vec![DMatrix::zeros(m, m); trunk_layers],
            net,
        }
    }

    /// The parameters the next passes use (rounded to f32).
    pub fn load_params(&mut self, params: &[f64]) {
        if self.net.activation == Activation::Relu {
            split_f64(params, &mut self.net.params, &mut self.net.params_lo);
        } else {
            round_f32(params, &mut self.net.params);
        }
    }

    /// Head t's own gradient (its block of the flat layout) from the last [`FastMlp::gradients`].
    pub fn head_block(&self, t: usize) -> &[f32] {
        let r = self.net.layout.heads[t].range();
        let shared = self.net.layout.shared_len;
        &self.head_grads[r.start - shared..r.end - shared]
    }

    /// Multiply-adds of a gradient pass per row of the batch.
    pub fn gradient_work(&self) -> usize {
        self.net.gradient_work()
    }

    /// Whether a pass of `work` multiply-adds over `rows` rows is cut in two.
    fn splits(&self, rows: usize, work: usize) -> bool {
        rows >= 2 && work >= self.split_from
    }

    /// Per-task mean losses of the loaded parameters on the batch `rows` of `data` (all of it
    /// for `None`). Leaves the results of [`FastMlp::gradients`] as they were.
    pub async fn losses(&mut self, data: &FastData, rows: Option<&[usize]>) -> Vec<f64> {
        let rows = Rows::new(data, rows);
        let n = rows.len();
        if !self.splits(n, n * self.net.forward_work()) {
            self.first.load(data, rows);
            self.first.forward(&self.net, data, n).await;
            return self.first.losses.clone();
        }
        let (r0, r1) = rows.halves();
        let (net, first, second) = (&self.net, &mut self.first, &mut self.second.pass);
        #[cfg(not(target_arch = "wasm32"))]
        {
            // The halves run through on their threads; the pass pauses once, after them.
            both(|| finish(first.half_losses(net, data, r0, n)), || finish(second.half_losses(net, data, r1, n)));
            pause().await;
        }
        #[cfg(target_arch = "wasm32")]
        {
            first.half_losses(net, data, r0, n).await;
            second.half_losses(net, data, r1, n).await;
        }
        first.losses.iter().zip(&second.losses).map(|(a, b)| a + b).collect()
    }

    /// Losses, J, the heads' gradients and the Gramians of the loaded parameters on the batch
    /// `rows` of `data` (all of it for `None`), into `self.losses`, `self.jacobian`,
    /// `self.head_grads`, `self.gram` and `self.layer_grams`. Pauses after each layer of the
    /// forward and of the (stacked) backward pass. A batch of more than [`SPLIT_FROM`]
    /// multiply-adds is cut in two halves whose sums are added (on two threads natively).
    pub async fn gradients(&mut self, data: &FastData, rows: Option<&[usize]>) {
        let rows = Rows::new(data, rows);
        let n = rows.len();
        if !self.splits(n, n * self.net.gradient_work()) {
            let grams = Some((&mut self.gram, self.layer_grams.as_mut_slice()));
            self.first.load(data, rows);
            self.first.forward(&self.net, data, n).await;
            self.first.backward(&self.net, &mut self.jacobian, &mut self.head_grads, grams).await;
            self.losses.copy_from_slice(&self.first.losses);
            return;
        }
        let (r0, r1) = rows.halves();
        let net = &self.net;
        let (first, jacobian, head_grads) = (&mut self.first, &mut self.jacobian, &mut self.head_grads);
        let Half { pass: second, jacobian: second_j, head_grads: second_h } = &mut *self.second;
        #[cfg(not(target_arch = "wasm32"))]
        {
            // The halves run through on their threads; the pass pauses once, after them.
            both(
                || finish(first.half_gradients(net, data, r0, n, jacobian, head_grads)),
                || finish(second.half_gradients(net, data, r1, n, second_j, second_h)),
            );
            pause().await;
        }
        #[cfg(target_arch = "wasm32")]
        {
            first.half_gradients(net, data, r0, n, jacobian, head_grads).await;
            second.half_gradients(net, data, r1, n, second_j, second_h).await;
        }
        for (l, (a, b)) in self.losses.iter_mut().zip(first.losses.iter().zip(&second.losses)) {
            *l = a + b;
        }
        for i in 0..jacobian.nrows() {
            add_into(jacobian.row_mut(i), second_j.row(i));
        }
        add_into(head_grads, second_h);
        self.gram.fill(0.0);
        for (s, g) in net.layout.trunk.iter().zip(self.layer_grams.iter_mut()) {
            layer_gram(jacobian, s.range(), g);
            self.gram += &*g;
        }
    }
}

/// ReLU pre-activations closer to 0 than this fraction of Σᵢ|xᵢwᵢ| + |b| are recomputed in f64:
/// ≥ 10× f32's error there; 10⁻⁵ recomputed ten times as many (~8 a step late in a
/// gradnorm-scales run).
const RELU_TIE: f32 = 1e-6;

/// max |v| (0 when empty; NaN if there is one): the bits of |x| order as unsigned integers, and an
/// integer max vectorises whole (f32::max's NaN rule kept the reduction scalar).
#[inline(always)]
fn max_abs_lanes(v: &[f32]) -> f32 {
    f32::from_bits(v.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff)))
}

multiversion! {
/// v rounded to f32.
fn round_f32(v: &[f64], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(v) {
        *o = v as f32;
    }
}
}

multiversion! {
/// v = hi + lo to 2⁻⁴⁸: hi = v rounded to f32, lo = the rest rounded to f32.
fn split_f64(v: &[f64], hi: &mut [f32], lo: &mut [f32]) {
    for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(v) {
        *h = v as f32;
        *l = (v - *h as f64) as f32;
    }
}
}

multiversion! {
/// max |v| of each `cols`-long row of the row-major `m`, into `out`.
fn row_max_abs(m: &[f32], cols: usize, out: &mut [f32]) {
    for (row, o) in m.chunks_exact(cols).zip(out.iter_mut()) {
        *o = max_abs_lanes(row);
    }
}
}

fn max_abs(v: &[f32]) -> f32 {
    let mut m = [0.0];
    row_max_abs(v, v.len().max(1), &mut m);
    m[0]
}

multiversion! {
/// From row `r` on, the first row of z (rows × bound.len()) with an entry z[·, o] within bound[o]
/// of 0, into `r` (the row count when there is none).
fn first_near_zero(z: &[f32], bound: &[f32], r: &mut usize) {
    let cols = bound.len();
    let rows = z.len() / cols.max(1);
    while *r < rows {
        let row = &z[*r * cols..(*r + 1) * cols];
        if row.iter().zip(bound).fold(false, |any, (&v, &t)| any | (v.abs() <= t)) {
            return;
        }
        *r += 1;
    }
}
}

/// One sample's input to trunk layer `l` of a ReLU MLP in f64 (the reference's arithmetic), from
/// its input row `x` and the f64 parameters (`param(i)`), into `h`.
fn sample_input64(layout: &Layout, param: impl Fn(usize) -> f64, x: &[f64], l: usize, h: &mut Vec<f64>) {
    h.clear();
    h.extend_from_slice(x);
    for s in &layout.trunk[..l] {
        let next: Vec<f64> = (0..s.fan_out)
            .map(|o| {
                let w = s.weight.start + o * s.fan_in;
                (param(s.bias.start + o) + h.iter().enumerate().map(|(i, h)| param(w + i) * h).sum::<f64>()).max(0.0)
            })
            .collect();
        *h = next;
    }
}

#[cfg(test)]
mod tests;
