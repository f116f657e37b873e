//! The fast path of the MLP's training step (`Precision::F32`): what [`Mlp::gradients`] computes
//! — the per-task losses, the m × d_shared task Jacobian J and the heads' own gradients — in f32,
//! every product a GEMM (matrixmultiply: AVX2/FMA natively, SIMD128 in the browser), with the
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
//!
//! Accuracy: products in f32 (as PyTorch's f32 training); losses and the Gramian in f64.

use super::activation::Activation;
use super::layout::{LayerSlice, Layout};
use super::loss::{LossKind, Target};
use super::mlp::Mlp;
use crate::aggregators::JacobianF32;
use crate::multiversion::multiversion;
use crate::pause::pause;
use nalgebra::DMatrix;

/// A data set in f32, one sample per row (row-major), from which batches are gathered.
#[derive(Clone, Debug)]
pub struct FastData {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
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
        FastData { rows: x.nrows(), cols: x.ncols(), x: rows_f32(x), targets }
    }
}

/// The buffers and results of the fast step for one model. Reused from step to step.
#[derive(Clone, Debug)]
pub struct FastMlp {
    activation: Activation,
    losses_kind: Vec<LossKind>,
    layout: Layout,
    params: Vec<f32>,
    /// Rows in the current batch.
    batch: usize,
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
    /// The last forward pass's per-task losses.
    forward_losses: Vec<f64>,
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
/// (gradnorm-scales' task scales differ by 10⁴), and UPGrad's weights drifted from the
/// reference's by 2.5·10⁻⁴ over 200 steps; the f64 dot costs a few µs a step.
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

/// The mean loss of one head's outputs (batch × k) and dL/d(output) (divided by the batch),
/// the same formulas as `loss::loss_and_grad`, each sample's terms in f64.
fn loss_and_grad_f32(kind: LossKind, out: &[f32], target: &FastTarget, batch: usize, grad: &mut [f32]) -> f64 {
    let inv_b = 1.0 / batch as f64;
    let mut total = 0.0;
    match (kind, target) {
        (LossKind::Mse, FastTarget::Values { k, y }) => {
            let scale = inv_b / *k as f64;
            for ((g, &o), &t) in grad.iter_mut().zip(out).zip(y.iter()) {
                let e = o as f64 - t as f64;
                total += e * e;
                *g = (2.0 * e * scale) as f32;
            }
            total *= scale;
        }
        (LossKind::Bce, FastTarget::Values { k, y }) => {
            let scale = inv_b / *k as f64;
            for ((g, &o), &t) in grad.iter_mut().zip(out).zip(y.iter()) {
                let (o, t) = (o as f64, t as f64);
                total += o.max(0.0) + (-o.abs()).exp().ln_1p() - t * o;
                *g = ((super::activation::sigmoid(o) - t) * scale) as f32;
            }
            total *= scale;
        }
        (LossKind::SoftmaxCe, FastTarget::Classes(labels)) => {
            let k = out.len() / batch.max(1);
            for (r, (row, g)) in out.chunks_exact(k).zip(grad.chunks_exact_mut(k)).enumerate() {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                let label = labels[r] as usize;
                total += (lse - row[label] as f64) * inv_b;
                for (c, (gc, &v)) in g.iter_mut().zip(row).enumerate() {
                    let p = (v as f64 - lse).exp();
                    *gc = ((p - if c == label { 1.0 } else { 0.0 }) * inv_b) as f32;
                }
            }
        }
        _ => unreachable!("targets are checked when the trainer builds its data"),
    }
    total
}

impl FastMlp {
    pub fn new(mlp: &Mlp) -> Self {
        let layout = mlp.layout().clone();
        let m = layout.heads.len();
        let trunk_layers = layout.trunk.len();
        FastMlp {
            activation: mlp.config().activation,
            losses_kind: mlp.config().heads.iter().map(|h| h.loss).collect(),
            params: vec![0.0; layout.total_len],
            batch: 0,
            x: Vec::new(),
            targets: Vec::new(),
            z: vec![Vec::new(); trunk_layers],
            a: vec![Vec::new(); trunk_layers],
            out: vec![Vec::new(); m],
            d_out: vec![Vec::new(); m],
            stack: Vec::new(),
            stack_next: Vec::new(),
            dphi: Vec::new(),
            forward_losses: vec![0.0; m],
            losses: vec![0.0; m],
            jacobian: JacobianF32::zeros(m, layout.shared_len),
            head_grads: vec![0.0; layout.total_len - layout.shared_len],
            gram: DMatrix::zeros(m, m),
            layer_grams: vec![DMatrix::zeros(m, m); trunk_layers],
            layout,
        }
    }

    /// The parameters the next passes use (rounded to f32).
    pub fn load_params(&mut self, params: &[f64]) {
        for (p, &v) in self.params.iter_mut().zip(params) {
            *p = v as f32;
        }
    }

    /// Head t's own gradient (its block of the flat layout) from the last [`FastMlp::gradients`].
    pub fn head_block(&self, t: usize) -> &[f32] {
        let r = self.layout.heads[t].range();
        let shared = self.layout.shared_len;
        &self.head_grads[r.start - shared..r.end - shared]
    }

    /// Take the batch `rows` of `data` (all of it for `None`).
    fn load(&mut self, data: &FastData, rows: Option<&[usize]>) {
        let cols = data.cols;
        self.batch = rows.map_or(data.rows, <[usize]>::len);
        fit(&mut self.x, self.batch * cols);
        match rows {
            None => self.x.copy_from_slice(&data.x),
            Some(rows) => {
                for (dst, &r) in self.x.chunks_exact_mut(cols.max(1)).zip(rows) {
                    dst.copy_from_slice(&data.x[r * cols..(r + 1) * cols]);
                }
            }
        }
        if self.targets.len() != data.targets.len() {
            self.targets = data.targets.iter().map(FastTarget::empty_like).collect();
        }
        for (dst, src) in self.targets.iter_mut().zip(&data.targets) {
            match (dst, src) {
                (FastTarget::Values { k: dk, y: dy }, FastTarget::Values { k, y }) => {
                    *dk = *k;
                    dy.clear();
                    match rows {
                        None => dy.extend_from_slice(y),
                        Some(rows) => rows.iter().for_each(|&r| dy.extend_from_slice(&y[r * k..(r + 1) * k])),
                    }
                }
                (FastTarget::Classes(dc), FastTarget::Classes(c)) => {
                    dc.clear();
                    match rows {
                        None => dc.extend_from_slice(c),
                        Some(rows) => dc.extend(rows.iter().map(|&r| c[r])),
                    }
                }
                (dst, src) => *dst = src.clone(),
            }
        }
    }

    /// The forward pass of the loaded batch (pausing after each trunk layer) and each head's
    /// loss and output gradient.
    async fn forward(&mut self) {
        let b = self.batch;
        for l in 0..self.layout.trunk.len() {
            let s = &self.layout.trunk[l];
            let (before, rest) = self.a.split_at_mut(l);
            let input: &[f32] = if l == 0 { &self.x } else { &before[l - 1] };
            let z = &mut self.z[l];
            linear(&self.params, s, input, b, z);
            fit(&mut rest[0], b * s.fan_out);
            apply(self.activation, z, &mut rest[0]);
            pause().await;
        }
        let h: &[f32] = self.a.last().unwrap_or(&self.x);
        for (t, s) in self.layout.heads.iter().enumerate() {
            linear(&self.params, s, h, b, &mut self.out[t]);
            fit(&mut self.d_out[t], b * s.fan_out);
            self.forward_losses[t] =
                loss_and_grad_f32(self.losses_kind[t], &self.out[t], &self.targets[t], b, &mut self.d_out[t]);
        }
    }

    /// Per-task mean losses of the loaded parameters on the batch `rows` of `data` (all of it
    /// for `None`). Leaves the results of [`FastMlp::gradients`] as they were.
    pub async fn losses(&mut self, data: &FastData, rows: Option<&[usize]>) -> Vec<f64> {
        self.load(data, rows);
        self.forward().await;
        self.forward_losses.clone()
    }

    /// Losses, J, the heads' gradients and the Gramians of the loaded parameters on the batch
    /// `rows` of `data` (all of it for `None`), into `self.losses`, `self.jacobian`,
    /// `self.head_grads`, `self.gram` and `self.layer_grams`. Pauses after each layer of the
    /// forward and of the (stacked) backward pass.
    pub async fn gradients(&mut self, data: &FastData, rows: Option<&[usize]>) {
        self.load(data, rows);
        self.forward().await;
        self.losses.copy_from_slice(&self.forward_losses);
        let b = self.batch;
        let m = self.layout.heads.len();
        let shared = self.layout.shared_len;
        let h: &[f32] = self.a.last().unwrap_or(&self.x);
        let hw = self.layout.trunk_out();
        // Heads: dWᵀ... written as W's layout (k × hw) = d_outᵀ · h; bias = column sums.
        for (t, s) in self.layout.heads.iter().enumerate() {
            let k = s.fan_out;
            let (w, bias) =
                (s.weight.start - shared..s.weight.end - shared, s.bias.start - shared..s.bias.end - shared);
            gemm(k, b, hw, op(&self.d_out[t], 1, k), op(h, hw, 1), 0.0, &mut self.head_grads[w], hw, 1);
            column_sums_into(&self.d_out[t], k, &mut self.head_grads[bias]);
        }
        self.gram.fill(0.0);
        if shared == 0 {
            return;
        }
        // The stack: block t (b × hw) = dL_t/dh = d_out_t · W_t.
        fit(&mut self.stack, m * b * hw);
        for (t, s) in self.layout.heads.iter().enumerate() {
            let k = s.fan_out;
            let block = &mut self.stack[t * b * hw..(t + 1) * b * hw];
            gemm(b, k, hw, op(&self.d_out[t], k, 1), op(&self.params[s.weight.clone()], hw, 1), 0.0, block, hw, 1);
        }
        for l in (0..self.layout.trunk.len()).rev() {
            let s = &self.layout.trunk[l];
            let (fin, fout) = (s.fan_in, s.fan_out);
            let input: &[f32] = if l == 0 { &self.x } else { &self.a[l - 1] };
            // dL/dz = dL/da ⊙ φ'(z), the same φ' for every task's block.
            fit(&mut self.dphi, b * fout);
            times_derivative(self.activation, &self.z[l], &self.a[l], &mut self.dphi, &mut self.stack);
            // Task t's block of J: W's gradient (fout × fin) = D_tᵀ · a, and the bias's. (The
            // tasks are independent, but on threads (rayon, 2 cores) the wide trunk ran at 0.97×
            // and gradnorm-scales at 1.0× of one thread: each GEMM is too short to pay.)
            for (t, row) in self.jacobian.rows_mut().enumerate() {
                let d_t = &self.stack[t * b * fout..(t + 1) * b * fout];
                gemm(fout, b, fin, op(d_t, 1, fout), op(input, fin, 1), 0.0, &mut row[s.weight.clone()], fin, 1);
                column_sums_into(d_t, fout, &mut row[s.bias.clone()]);
            }
            // This layer's Gramian while its block of J is in cache.
            let range = s.range();
            let g = &mut self.layer_grams[l];
            for i in 0..m {
                for j in 0..=i {
                    let v = dot(&self.jacobian.row(i)[range.clone()], &self.jacobian.row(j)[range.clone()]);
                    g[(i, j)] = v;
                    g[(j, i)] = v;
                }
            }
            self.gram += &*g;
            if l > 0 {
                // dL/da of the layer below, for every task at once: (m·b × fout) · W (fout × fin).
                fit(&mut self.stack_next, m * b * fin);
                gemm(
                    m * b,
                    fout,
                    fin,
                    op(&self.stack, fout, 1),
                    op(&self.params[s.weight.clone()], fin, 1),
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
}

/// z = a·Wᵀ + b for the `rows` rows of `input` (row-major), into `z` (rows × fan_out).
fn linear(params: &[f32], s: &LayerSlice, input: &[f32], rows: usize, z: &mut Vec<f32>) {
    let (fin, fout) = (s.fan_in, s.fan_out);
    fit(z, rows * fout);
    let bias = &params[s.bias.clone()];
    for row in z.chunks_exact_mut(fout.max(1)) {
        row.copy_from_slice(bias);
    }
    // Wᵀ (fin × fout) read from W's row-major (fout × fin) storage: row stride 1, column stride fin.
    gemm(rows, fin, fout, op(input, fin, 1), op(&params[s.weight.clone()], 1, fin), 1.0, z, fout, 1);
}

#[cfg(test)]
mod tests;
