//! w = f(G) on the GPU (`shaders/weighting.wgsl` and the `weights_*.wgsl` fragments), and
//! `aggregate`, which chains gram → weighting → combine without leaving the GPU.

use bytemuck::{Pod, Zeroable};
use concord_core::Method;

use super::{check_shape, combine, gram, MAX_TASKS};
use crate::{Gpu, GpuError};

/// Method ids of `weights_dispatch.wgsl` (METHOD_* there).
pub const METHOD_MEAN: u32 = 0;
pub const METHOD_SUM: u32 = 1;
pub const METHOD_PCGRAD: u32 = 2;
pub const METHOD_MGDA: u32 = 3;
pub const METHOD_CAGRAD: u32 = 4;

/// (kernel method id, CAGrad's c) for a concord-core method, or `Unsupported` for a method
/// that has no WGSL weighting yet.
pub fn method_code(method: &Method) -> Result<(u32, f32), GpuError> {
    #[allow(unreachable_patterns)]
    match *method {
        Method::Mean => Ok((METHOD_MEAN, 0.0)),
        Method::Sum => Ok((METHOD_SUM, 0.0)),
        Method::PcGrad => Ok((METHOD_PCGRAD, 0.0)),
        Method::Mgda => Ok((METHOD_MGDA, 0.0)),
        Method::CaGrad { c } => {
            if !(c.is_finite() && c >= 0.0) {
                return Err(GpuError::Unsupported(format!("cagrad needs c ≥ 0, got {c}")));
            }
            Ok((METHOD_CAGRAD, c as f32))
        }
        ref other => Err(GpuError::Unsupported(format!("no GPU weighting for method '{}'", other.name()))),
    }
}

/// Which weighting to run: (method id, c), PCGrad's seed and call index.
pub(crate) struct WeightCall {
    pub code: (u32, f32),
    pub seed: u32,
    pub call: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct WeightParams {
    m: u32,
    method: u32,
    seed: u32,
    call: u32,
    c: f32,
    /// Always 2: the trip count of the completion sentinel (see weighting.wgsl).
    sentinel_trips: u32,
    /// 0: the input is G (m × m). k > 0: the input is a factor R (m × k) with G = RRᵀ.
    factor_cols: u32,
    _pad: u32,
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
    call: &WeightCall,
) -> wgpu::Buffer {
    let params = WeightParams {
        m: m as u32,
        method: call.code.0,
        seed: call.seed,
        call: call.call,
        c: call.code.1,
        sentinel_trips: 2,
        factor_cols: factor_cols as u32,
        _pad: 0,
    };
    let uniform = gpu.uniform_init("weighting params", bytemuck::bytes_of(&params));
    let out = gpu.buffer(
        "weights",
        ((m + 1) * 4) as u64,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let pipeline = gpu.pipeline(&gpu.pipelines.weighting, "weighting.wgsl", "weighting");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("weighting"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: gram_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
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

/// Weights w = f(G) for a row-major m × m Gramian `g` (m ≤ 16), with torchjd semantics as in
/// concord-core. `seed` and `call` drive PCGrad's visiting order (call = how many weighting
/// calls the same PCGrad instance has made before this one).
///
/// f32 caveat: quadratic forms wᵀGw are resolved to ≈ 6e-8·‖G‖, so where ‖Jᵀw‖ is tiny
/// compared with the gradients (near Pareto stationarity) decisions such as CAGrad's
/// ‖g_w‖ ≥ 1e-4·√tr G can differ from the f64 reference. [`aggregate`] with n ≤ 16 and the toy
/// kernel avoid this by working from J.
pub async fn weights(
    gpu: &Gpu,
    method: &Method,
    g: &[f32],
    m: usize,
    seed: u32,
    call: u32,
) -> Result<Vec<f32>, GpuError> {
    if m == 0 || m > MAX_TASKS || g.len() != m * m {
        return Err(GpuError::Unsupported(format!(
            "weights: G has {} entries for m = {m} (need m·m, 1 ≤ m ≤ {MAX_TASKS})",
            g.len()
        )));
    }
    let code = method_code(method)?;
    gpu.check()?;
    let gram_buf = gpu.storage_init("G", bytemuck::cast_slice(g), wgpu::BufferUsages::empty());
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("weights") });
    let out = encode(gpu, &mut encoder, &gram_buf, m, 0, &WeightCall { code, seed, call });
    let mut parts = gpu.submit_and_read(encoder, &[(&out, ((m + 1) * 4) as u64)]).await?;
    let mut w = parts.remove(0);
    check_complete(gpu, &w, m)?;
    w.truncate(m);
    Ok(w)
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
/// For n ≤ 16 the weighting reads J itself as the factor of G = JJᵀ (no Gram pass), which keeps
/// the quadratic forms near Pareto stationarity (‖Jᵀw‖² ≪ ‖G‖) exact to f32 rounding; for larger
/// n it works from G, where wᵀGw is resolved only to ≈ 6e-8·‖G‖ (see [`weights`]).
pub async fn aggregate(
    gpu: &Gpu,
    method: &Method,
    j: &[f32],
    m: usize,
    n: usize,
    seed: u32,
    call: u32,
) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    check_shape(m, n, j.len(), "aggregate")?;
    let code = method_code(method)?;
    if n == 0 {
        return Ok((Vec::new(), vec![0.0; m]));
    }
    gpu.check()?;
    gpu.check_binding_size("aggregate: J", (j.len() * 4) as u64)?;
    let jac = gpu.storage_init("J", bytemuck::cast_slice(j), wgpu::BufferUsages::empty());
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("aggregate") });
    let wc = WeightCall { code, seed, call };
    let w = if n <= MAX_TASKS {
        encode(gpu, &mut encoder, &jac, m, n, &wc)
    } else {
        let gram_buf = gram::encode(gpu, &mut encoder, &jac, m, n);
        encode(gpu, &mut encoder, &gram_buf, m, 0, &wc)
    };
    let d = combine::encode(gpu, &mut encoder, &jac, &w, m, n);
    let mut parts =
        gpu.submit_and_read(encoder, &[(&d, (n * 4) as u64), (&w, ((m + 1) * 4) as u64)]).await?;
    let mut w_out = parts.pop().unwrap_or_default();
    check_complete(gpu, &w_out, m)?;
    w_out.truncate(m);
    let d_out = parts.pop().unwrap_or_default();
    Ok((d_out, w_out))
}
