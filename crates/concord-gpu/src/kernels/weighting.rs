//! w = f(G) on the GPU (`shaders/weighting.wgsl` and the `weights_*.wgsl` fragments), and
//! `aggregate_with`, which chains gram → weighting → combine without leaving the GPU.
//!
//! A weighting is named by concord-core's typed [`AggregatorSpec`] ([`GpuWeighting::from_spec`]);
//! its kernel id comes from the one method table (`kernels::methods`).

use bytemuck::{Pod, Zeroable};
use concord_core::aggregators::AggregatorSpec;

use super::methods::{self, id};
use super::{check_shape, combine, gram, MAX_TASKS};
use crate::{Gpu, GpuError};

/// One GPU weighting with all its parameters, as the kernel takes them. Build it with
/// [`GpuWeighting::from_spec`].
#[derive(Clone, Debug, PartialEq)]
pub struct GpuWeighting {
    /// The registry name (`mean`, `upgrad`, …).
    pub name: &'static str,
    /// METHOD_* id (`kernels::methods::METHODS`).
    pub code: u32,
    /// CAGrad's c; MoDo's gamma; SDMGrad's lr; GradVac's beta.
    pub c: f32,
    /// MGDA: epsilon; UPGrad/DualProj: norm_eps; MoDo: rho; SDMGrad: momentum; GradVac: eps.
    pub eps_a: f32,
    /// CAGrad: norm_eps; UPGrad/DualProj: reg_eps; SDMGrad: lambda.
    pub eps_b: f32,
    /// MGDA's max_iters; Krum's n_byzantine; SDMGrad's n_iter.
    pub max_iters: u32,
    /// Aligned-MTL's scale mode: 0 min, 1 median, 2 rmse; Krum's n_selected.
    pub mode: u32,
    /// Preference vector (UPGrad, DualProj, Aligned-MTL, ConFIG) or Constant's weights; m entries.
    pub vec: Vec<f32>,
    /// PCGrad's, GradVac's and Random's seed (concord-core's u64 seed truncated to its low 32 bits, as
    /// `PcGrad::new` does).
    pub seed: u32,
}

/// Why a registry aggregator has no GPU weighting (README's *CPU only* list quotes these).
pub fn unsupported_reason(name: &str) -> &'static str {
    match name {
        "graddrop" | "trimmed-mean" => {
            "it works per coordinate of J, not from the Gramian: the GPU trainer and the fused toy kernel run it from J"
        }
        // The GPU trainer runs these with weights (MoCo, DB-MTL: the update) from the CPU
        // (`host_weighting`); the fused toy kernel, which never leaves the GPU between steps,
        // cannot.
        "nash-mtl" => "no WGSL kernel (a cone solver per step): the GPU trainer takes its weights from the CPU, the fused toy kernel cannot",
        "fairgrad" => "no WGSL kernel (Levenberg–Marquardt root finding): the GPU trainer takes its weights from the CPU, the fused toy kernel cannot",
        "excess-mtl" => "no WGSL kernel (per-coordinate state: squared-gradient sums of J, not only the Gramian): the GPU trainer takes its weights from the CPU, the fused toy kernel cannot",
        "pcd" => "no WGSL kernel (stateful, an active-set QP per step): the GPU trainer takes its weights from the CPU, the fused toy kernel cannot",
        "cr-mogm" => "no WGSL kernel (an EMA around another method's weights): the GPU trainer takes its weights from the CPU, the fused toy kernel cannot",
        "moco" | "db-mtl" => "no WGSL kernel (it reads the task losses with J, LibMTL, and tracks J across steps): the GPU trainer takes its update from the CPU, the fused toy kernel cannot",
        _ => "no GPU kernel",
    }
}

/// LibMTL's options of GPU methods that the kernels lack, with their plain values (MGDA's
/// gradient normalisation, CAGrad's rescale): the GPU trainer runs them as a hybrid
/// (`host_weighting`), the kernels refuse them.
pub(crate) const CPU_ONLY_OPTIONS: [(&str, &str); 2] = [("gn", "none"), ("rescale", "0")];

/// `no GPU kernel for 'nash-mtl' (…); the GPU has: mean, sum, …`.
pub(crate) fn no_kernel_message(name: &str) -> String {
    format!("no GPU kernel for '{name}' ({}); the GPU has: {}", unsupported_reason(name), methods::names().join(", "))
}

impl GpuWeighting {
    fn plain(name: &'static str, m: usize, seed: u32) -> Self {
        GpuWeighting {
            name,
            code: id(name),
            c: 0.0,
            eps_a: 1e-3,
            eps_b: 1e-4,
            max_iters: 100,
            mode: 0,
            vec: vec![1.0 / m.max(1) as f32; m],
            seed,
        }
    }

    /// The GPU weighting of a typed aggregator for m tasks (1 ≤ m ≤ [`MAX_TASKS`]); the values
    /// are read from the spec as parsed (its m-dependent checks are concord-core's
    /// `check_tasks`, same messages). An aggregator without a GPU kernel gives `Unsupported`
    /// naming the methods the GPU has.
    pub fn from_spec(spec: &AggregatorSpec, m: usize, seed: u64) -> Result<Self, GpuError> {
        let name = spec.name();
        if methods::find(name).is_none() {
            return Err(GpuError::Unsupported(no_kernel_message(name)));
        }
        // LibMTL's options of CPU methods (MGDA's gradient normalisation, CAGrad's rescale) have
        // no kernel: refused with a reason rather than silently dropped.
        for (key, plain) in CPU_ONLY_OPTIONS {
            if let Some(v) = spec.word(key).filter(|v| *v != plain) {
                return Err(GpuError::Unsupported(format!(
                    "no GPU kernel for '{name}' with {key}={v} (LibMTL's option: the GPU trainer takes those weights from the CPU, the fused toy kernel cannot); \
                     the GPU has {name} with {key}={plain}"
                )));
            }
        }
        if m == 0 || m > MAX_TASKS {
            return Err(GpuError::Unsupported(format!(
                "{name}: m = {m} tasks; the GPU weighting takes 1 ≤ m ≤ {MAX_TASKS}"
            )));
        }
        spec.check_tasks(m).map_err(GpuError::Unsupported)?;
        let float = |key: &str| spec.float(key).unwrap_or(0.0) as f32;
        let list = |key: &str| spec.list(key).map(|v| v.iter().map(|&x| x as f32).collect::<Vec<f32>>());
        let mut w = Self::plain(name, m, seed as u32);
        match name {
            "mgda" => {
                w.eps_a = float("epsilon");
                w.max_iters = spec.int("max_iters").unwrap_or(100).min(u32::MAX as usize) as u32;
            }
            "cagrad" => {
                w.c = float("c");
                w.eps_b = float("norm_eps");
            }
            "constant" => w.vec = list("weights").unwrap_or_default(),
            "upgrad" | "dualproj" => {
                w.eps_a = float("norm_eps");
                w.eps_b = float("reg_eps");
            }
            "aligned-mtl" => {
                w.mode = match spec.word("scale_mode") {
                    Some("median") => 1,
                    Some("rmse") => 2,
                    _ => 0,
                }
            }
            "config" => w.vec = vec![1.0; m],
            "krum" => {
                w.max_iters = spec.int("n_byzantine").unwrap_or(0) as u32;
                w.mode = spec.int("n_selected").unwrap_or(1) as u32;
            }
            "modo" => {
                w.c = float("gamma");
                w.eps_a = float("rho");
            }
            "sdmgrad" => {
                w.c = float("lr");
                w.eps_a = float("momentum");
                w.eps_b = float("lambda");
                w.max_iters = spec.int("n_iter").unwrap_or(20).min(u32::MAX as usize) as u32;
            }
            "gradvac" => {
                w.c = float("beta");
                w.eps_a = float("eps");
            }
            _ => {}
        }
        if matches!(name, "upgrad" | "dualproj" | "aligned-mtl" | "config" | "sdmgrad") {
            if let Some(p) = list("pref_vector") {
                w.vec = p;
            }
        }
        Ok(w)
    }

    /// Runs on a whole workgroup (`compute_weights_workgroup`), not inside `compute_weights`.
    pub fn is_workgroup(&self) -> bool {
        self.code >= methods::FIRST_WORKGROUP
    }

    /// Keeps state between calls in a [`WeightingState`]'s memory (MoDo, SDMGrad, GradVac).
    pub fn has_memory(&self) -> bool {
        methods::WITH_MEMORY.contains(&self.name)
    }
}

/// Which weighting to run, and the call index (how many calls the same stateful instance —
/// PCGrad's order, Random's stream — has made before this one): `call`, or, with `state`, the
/// counter in that GPU buffer, which the kernel then advances. `memory`: the buffer a stateful
/// weighting (MoDo, SDMGrad, GradVac) keeps its state in between calls ([`WeightingState`]'s);
/// without it (or with `state`'s) a fresh one.
pub(crate) struct WeightCall<'a> {
    pub weighting: &'a GpuWeighting,
    pub call: u32,
    pub state: Option<&'a WeightingState>,
    pub memory: Option<&'a wgpu::Buffer>,
}

/// Floats of the weighting memory (weights_memory.wgsl's MEM_FLOATS: 4 + 32 × 32).
pub const MEMORY_FLOATS: usize = 4 + MAX_TASKS * MAX_TASKS;

/// A zeroed weighting memory (a fresh state: every stateful weighting starts from its
/// initial values).
pub(crate) fn memory_buffer(gpu: &Gpu) -> wgpu::Buffer {
    gpu.storage_init("weighting memory", &[0u8; MEMORY_FLOATS * 4], wgpu::BufferUsages::COPY_SRC)
}

/// The state of a stateful GPU weighting: its call counter (PCGrad, Random, GradVac), in a GPU
/// buffer that every weighting dispatch given this state reads and advances by one, and the
/// memory of MoDo's λ, SDMGrad's w and GradVac's targets, so a sequence of steps needs no host
/// round trip. Stateless methods ignore both.
pub struct WeightingState {
    buffer: wgpu::Buffer,
    memory: wgpu::Buffer,
}

impl WeightingState {
    /// A counter starting at `call` (0 for a fresh instance) and a fresh memory.
    pub fn new(gpu: &Gpu, call: u32) -> Self {
        let buffer =
            gpu.storage_init("weighting state", bytemuck::cast_slice(&[call, 0, 0, 0]), wgpu::BufferUsages::COPY_SRC);
        WeightingState { buffer, memory: memory_buffer(gpu) }
    }

    /// The memory buffer (binding 4 of weighting.wgsl).
    pub(crate) fn memory(&self) -> &wgpu::Buffer {
        &self.memory
    }

    /// The current call counter (a readback).
    pub async fn call(&self, gpu: &Gpu) -> Result<u32, GpuError> {
        let encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("state") });
        let parts = gpu.submit_and_read(encoder, &[(&self.buffer, 4)]).await?;
        Ok(parts[0][0].to_bits())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct WeightParams {
    m: u32,
    method: u32,
    seed: u32,
    call: u32,
    c: f32,
    /// Always 2: the trip count of the completion sentinel (see weighting.wgsl).
    sentinel_trips: u32,
    /// 0: the input is G (m × m). k > 0: the input is a factor R (m × k) with G = RRᵀ.
    factor_cols: u32,
    mode: u32,
    eps_a: f32,
    eps_b: f32,
    max_iters: u32,
    /// 1: the call index comes from (and is advanced in) the state buffer.
    call_from_state: u32,
    vec: [f32; MAX_TASKS],
}

/// Encode w = f(G) for the m × m Gramian in `gram_buf` (or, with `factor_cols` = k > 0, for
/// G = RRᵀ with the m × k factor R in `gram_buf`). Returns the weights buffer
/// (STORAGE | COPY_SRC): m weights, then the completion flag (1.0 = the solve was not cut
/// short; see [`check_complete`]).
pub(crate) fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    gram_buf: &wgpu::Buffer,
    m: usize,
    factor_cols: usize,
    call: &WeightCall<'_>,
) -> wgpu::Buffer {
    let wt = call.weighting;
    let mut vec = [0.0f32; MAX_TASKS];
    for (dst, src) in vec.iter_mut().zip(&wt.vec) {
        *dst = *src;
    }
    let params = WeightParams {
        m: m as u32,
        method: wt.code,
        seed: wt.seed,
        call: call.call,
        c: wt.c,
        sentinel_trips: 2,
        factor_cols: factor_cols as u32,
        mode: wt.mode,
        eps_a: wt.eps_a,
        eps_b: wt.eps_b,
        max_iters: wt.max_iters,
        call_from_state: u32::from(call.state.is_some()),
        vec,
    };
    let dummy_state;
    let state = match call.state {
        Some(s) => &s.buffer,
        None => {
            dummy_state = gpu.buffer("weighting state (unused)", 16, wgpu::BufferUsages::STORAGE);
            &dummy_state
        }
    };
    let fresh_memory;
    let memory = match (call.memory, call.state) {
        (Some(mem), _) => mem,
        (None, Some(s)) => &s.memory,
        (None, None) => {
            fresh_memory = memory_buffer(gpu);
            &fresh_memory
        }
    };
    let uniform = gpu.uniform_init("weighting params", bytemuck::bytes_of(&params));
    let out = gpu.buffer("weights", ((m + 1) * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let pipeline = gpu.pipeline(&gpu.pipelines.weighting, "weighting.wgsl", "weighting");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("weighting"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: gram_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: state.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 4, resource: memory.as_entire_binding() },
        ],
    });
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("weighting"), timestamp_writes: None });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bg, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    drop(pass);
    out
}

/// Weights w = f(G) for a row-major m × m Gramian `g` (1 ≤ m ≤ 32) with any GPU weighting
/// ([`GpuWeighting::from_spec`]), torchjd semantics as in concord-core; `call` is the stateful
/// call index (how many calls the same PCGrad / Random instance has made before this one).
///
/// f32 caveat: quadratic forms wᵀGw are resolved to ≈ 6e-8·‖G‖, so where ‖Jᵀw‖ is tiny
/// compared with the gradients (near Pareto stationarity) decisions such as CAGrad's
/// ‖g_w‖ ≥ 1e-4·√tr G can differ from the f64 reference. [`aggregate_with`] with n ≤ 32 and the
/// toy kernel avoid this by working from J.
pub async fn weights_with(
    gpu: &Gpu,
    weighting: &GpuWeighting,
    g: &[f32],
    m: usize,
    call: u32,
) -> Result<Vec<f32>, GpuError> {
    weights_impl(gpu, weighting, g, m, call, None).await
}

/// [`weights_with`] with the call counter kept on the GPU in `state` (read, then advanced by one).
pub async fn weights_with_state(
    gpu: &Gpu,
    weighting: &GpuWeighting,
    g: &[f32],
    m: usize,
    state: &WeightingState,
) -> Result<Vec<f32>, GpuError> {
    weights_impl(gpu, weighting, g, m, 0, Some(state)).await
}

async fn weights_impl(
    gpu: &Gpu,
    weighting: &GpuWeighting,
    g: &[f32],
    m: usize,
    call: u32,
    state: Option<&WeightingState>,
) -> Result<Vec<f32>, GpuError> {
    if m == 0 || m > MAX_TASKS || g.len() != m * m {
        return Err(GpuError::Unsupported(format!(
            "weights: G has {} entries for m = {m} (need m·m, 1 ≤ m ≤ {MAX_TASKS})",
            g.len()
        )));
    }
    check_vec(weighting, m)?;
    gpu.check()?;
    let gram_buf = gpu.storage_init("G", bytemuck::cast_slice(g), wgpu::BufferUsages::empty());
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("weights") });
    let out = encode(gpu, &mut encoder, &gram_buf, m, 0, &WeightCall { weighting, call, state, memory: None });
    let mut parts = gpu.submit_and_read(encoder, &[(&out, ((m + 1) * 4) as u64)]).await?;
    let mut w = parts.remove(0);
    check_complete(gpu, &w, m)?;
    w.truncate(m);
    Ok(w)
}

/// A weighting built for one m must not be run with another (its vector has m entries).
fn check_vec(weighting: &GpuWeighting, m: usize) -> Result<(), GpuError> {
    if weighting.vec.len() != m {
        return Err(GpuError::Unsupported(format!(
            "{}: built for m = {} tasks, called with m = {m}",
            weighting.name,
            weighting.vec.len()
        )));
    }
    Ok(())
}

/// The weighting kernel's last value is 1 when its loops ran to the end. Mesa's llvmpipe
/// (lavapipe) silently stops every loop of an invocation after 65 535 iterations in total; a
/// solve cut that way is reported instead of returned.
fn check_complete(gpu: &Gpu, w: &[f32], m: usize) -> Result<(), GpuError> {
    if w.get(m).copied() == Some(1.0) {
        Ok(())
    } else {
        Err(GpuError::Unsupported(format!(
            "the weighting solve was cut short by the adapter's shader loop limit ({})",
            gpu.adapter_label()
        )))
    }
}

/// The whole aggregation on the GPU: G = JJᵀ → w = f(G) → d = Jᵀw, with one submission and
/// one readback. Returns (update d (length n), weights w (length m)).
///
/// For n ≤ 32 the weighting reads J itself as the factor of G = JJᵀ (no Gram pass), which keeps
/// the quadratic forms near Pareto stationarity (‖Jᵀw‖² ≪ ‖G‖) exact to f32 rounding; for larger
/// n it works from G, where wᵀGw is resolved only to ≈ 6e-8·‖G‖ (see [`weights_with`]).
pub async fn aggregate_with(
    gpu: &Gpu,
    weighting: &GpuWeighting,
    j: &[f32],
    m: usize,
    n: usize,
    call: u32,
) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    check_shape(m, n, j.len(), "aggregate")?;
    check_vec(weighting, m)?;
    if n == 0 {
        return Ok((Vec::new(), vec![0.0; m]));
    }
    gpu.check()?;
    gpu.check_binding_size("aggregate: J", (j.len() * 4) as u64)?;
    let jac = gpu.storage_init("J", bytemuck::cast_slice(j), wgpu::BufferUsages::empty());
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("aggregate") });
    let wc = WeightCall { weighting, call, state: None, memory: None };
    let w = if n <= MAX_TASKS {
        encode(gpu, &mut encoder, &jac, m, n, &wc)
    } else {
        let gram_buf = gram::encode(gpu, &mut encoder, &jac, m, n);
        encode(gpu, &mut encoder, &gram_buf, m, 0, &wc)
    };
    let d = combine::encode(gpu, &mut encoder, &jac, &w, m, n);
    let mut parts = gpu.submit_and_read(encoder, &[(&d, (n * 4) as u64), (&w, ((m + 1) * 4) as u64)]).await?;
    let mut w_out = parts.pop().unwrap_or_default();
    check_complete(gpu, &w_out, m)?;
    w_out.truncate(m);
    let d_out = parts.pop().unwrap_or_default();
    Ok((d_out, w_out))
}
