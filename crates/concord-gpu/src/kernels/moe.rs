//! The MoE routing core on the GPU (`shaders/moe_*.wgsl`): gate logits + softmax, top-k
//! selection, capacity assignment (a prefix count over tokens per expert), expert-choice
//! selection, the aux-loss statistics (f_i, P_i, load, importance, z-loss), and dispatch /
//! combine. Mirrors concord-core's `model::moe` routers, with the same tie-breaking (lower index
//! wins; first choices take slots before second choices, each in token order).
//!
//! Sizes are bounded so no invocation runs more than lavapipe's 65 535 loop iterations
//! (see the crate docs): E ≤ 64, D ≤ 64, (K + 2)·T ≤ 65 000 and T ≤ 65 000.

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::routing::capacity;
use concord_core::model::moe::RouterKind;
use std::sync::OnceLock;

use crate::{Gpu, GpuError};

const WORKGROUP: u32 = 64;
const MAX_GROUPS: u32 = 65535;
pub const MAX_EXPERTS: usize = 64;
pub const MAX_GATE_INPUT: usize = 64;
/// Loop budget per invocation, under lavapipe's 65 535.
const LOOP_BUDGET: usize = 65_000;
/// "No value" in the u32 outputs (unprocessed token, empty slot).
pub const NONE: u32 = u32::MAX;

/// The routing pipelines, built on first use.
#[derive(Default)]
pub(crate) struct MoePipelines {
    gate: OnceLock<wgpu::ComputePipeline>,
    select: OnceLock<wgpu::ComputePipeline>,
    capacity: OnceLock<wgpu::ComputePipeline>,
    expert_choice: OnceLock<wgpu::ComputePipeline>,
    stats: OnceLock<wgpu::ComputePipeline>,
    dispatch: OnceLock<wgpu::ComputePipeline>,
    combine: OnceLock<wgpu::ComputePipeline>,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MoeParams {
    t: u32,
    d: u32,
    e: u32,
    k: u32,
    h: u32,
    cbuf: u32,
    capacity: u32,
    renorm: u32,
}

impl MoeParams {
    /// The routing core's sizes for `router` on `t` tokens of width `d` over `e` experts, for
    /// `route` and the training pass (which runs the same selection kernels): the params, the
    /// choices per token and the slots per expert buffer. The caller has checked k and capacity.
    pub(crate) fn for_router(t: usize, d: usize, e: usize, router: GpuRouter) -> (Self, usize, usize) {
        let (k, renorm, cap, cbuf) = match router {
            GpuRouter::TopK { k, renormalise, capacity } => {
                (k, renormalise, capacity.map_or(NONE, |c| c as u32), capacity.unwrap_or(t).min(t))
            }
            GpuRouter::ExpertChoice { k } => (1, false, k as u32, k),
        };
        let p = MoeParams {
            t: t as u32,
            d: d as u32,
            e: e as u32,
            k: k as u32,
            h: 1,
            cbuf: cbuf as u32,
            capacity: cap,
            renorm: u32::from(renorm),
        };
        (p, k, cbuf)
    }
}

/// Whether the routing core's per-invocation loops stay under lavapipe's budget for `t` tokens
/// with `k` choices each.
pub(crate) fn within_loop_budget(t: usize, k: usize) -> bool {
    (k + 2) * t <= LOOP_BUDGET && t <= LOOP_BUDGET
}

/// A router as the GPU runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GpuRouter {
    /// Each token keeps its k most probable experts (weights p, or p / Σ kept p), then each
    /// expert keeps the first `capacity` assignments (None: all).
    TopK { k: usize, renormalise: bool, capacity: Option<usize> },
    /// Each expert takes its k most probable tokens.
    ExpertChoice { k: usize },
}

impl GpuRouter {
    /// The GPU form of a core router for a batch of `tokens` over `experts` (noisy top-k
    /// without noise, i.e. as evaluated; MMoE / task gates are one call per gate).
    pub fn from_core(router: &RouterKind, tokens: usize, experts: usize) -> Self {
        match *router {
            // CGC/PLE/DSelect-k never reach the routing core (their task gates are dense, or
            // refused: PLE); as a lone gate they would be dense.
            RouterKind::Softmax
            | RouterKind::Mmoe
            | RouterKind::Cgc { .. }
            | RouterKind::Ple { .. }
            | RouterKind::DselectK { .. } => GpuRouter::TopK { k: experts, renormalise: false, capacity: None },
            RouterKind::NoisyTopK { k } => GpuRouter::TopK { k, renormalise: true, capacity: None },
            RouterKind::Task { k, .. } => GpuRouter::TopK { k, renormalise: false, capacity: None },
            RouterKind::Switch { capacity_factor } => GpuRouter::TopK {
                k: 1,
                renormalise: false,
                capacity: Some(capacity(capacity_factor, tokens, experts, tokens)),
            },
            RouterKind::Top2 { capacity_factor } => GpuRouter::TopK {
                k: 2,
                renormalise: true,
                capacity: Some(capacity(capacity_factor, 2 * tokens, experts, tokens)),
            },
            RouterKind::ExpertChoice { capacity_factor } => {
                GpuRouter::ExpertChoice { k: capacity(capacity_factor, tokens, experts, tokens) }
            }
        }
    }
}

/// Everything one routing call reads back (row-major T × E unless noted).
#[derive(Clone, Debug, PartialEq)]
pub struct GpuRouting {
    pub tokens: usize,
    pub experts: usize,
    /// Slots per expert buffer (the capacity, or T without one).
    pub buffer_slots: usize,
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    /// logsumexp of each token's logits (T).
    pub lse: Vec<f32>,
    pub combine: Vec<f32>,
    pub dispatch: Vec<f32>,
    /// Per expert: assignments dropped for capacity.
    pub dropped: Vec<u32>,
    /// Token t's slot in expert e's buffer, or NONE.
    pub slot: Vec<u32>,
    /// E × buffer_slots: the token in each slot, or NONE.
    pub token_of_slot: Vec<u32>,
    /// f_i, P_i, tokens processed and Σ combine per expert.
    pub top1_fraction: Vec<f32>,
    pub mean_prob: Vec<f32>,
    pub load: Vec<f32>,
    pub importance: Vec<f32>,
    /// mean(lse²).
    pub z_loss: f32,
}

fn groups(n: usize) -> Result<u32, GpuError> {
    let g = (n as u32).div_ceil(WORKGROUP).max(1);
    if g > MAX_GROUPS {
        return Err(GpuError::Unsupported(format!("moe: {n} invocations exceed one dispatch")));
    }
    Ok(g)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn pass(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    label: &str,
    entries: &[(u32, &wgpu::Buffer)],
    grid: (u32, u32),
) {
    let entries: Vec<wgpu::BindGroupEntry> = entries
        .iter()
        .map(|(b, buf)| wgpu::BindGroupEntry { binding: *b, resource: buf.as_entire_binding() })
        .collect();
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut p = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
    p.set_pipeline(pipeline);
    p.set_bind_group(0, &bg, &[]);
    p.dispatch_workgroups(grid.0, grid.1, 1);
}

/// Route `t` tokens (`x`: T × D row-major) through a gate `w` (E × D row-major, as in the core's
/// flat parameters): logits, softmax, selection, capacity, statistics. One submission, one readback.
pub async fn route(
    gpu: &Gpu,
    x: &[f32],
    t: usize,
    d: usize,
    w: &[f32],
    e: usize,
    router: GpuRouter,
) -> Result<GpuRouting, GpuError> {
    if t == 0 || d == 0 || e == 0 || x.len() != t * d || w.len() != e * d {
        return Err(GpuError::Unsupported(format!(
            "moe route: x has {} values for T·D = {t}·{d}, W {} for E·D = {e}·{d}",
            x.len(),
            w.len()
        )));
    }
    if e > MAX_EXPERTS || d > MAX_GATE_INPUT {
        return Err(GpuError::Unsupported(format!(
            "moe route: E = {e}, D = {d}; the kernels take E ≤ {MAX_EXPERTS}, D ≤ {MAX_GATE_INPUT}"
        )));
    }
    if x.iter().chain(w).any(|v| !v.is_finite()) {
        return Err(GpuError::Unsupported("moe route: a gate input or weight is not finite".into()));
    }
    match router {
        GpuRouter::TopK { k, capacity, .. } => {
            if !(1..=e).contains(&k) {
                return Err(GpuError::Unsupported(format!("moe route: k = {k} with {e} experts")));
            }
            if let Some(c) = capacity.filter(|c| *c == 0) {
                return Err(GpuError::Unsupported(format!("moe route: capacity {c}")));
            }
        }
        GpuRouter::ExpertChoice { k } => {
            if !(1..=t).contains(&k) {
                return Err(GpuError::Unsupported(format!("moe route: expert choice k = {k} with {t} tokens")));
            }
        }
    }
    let (params, k, cbuf) = MoeParams::for_router(t, d, e, router);
    if !within_loop_budget(t, k) {
        return Err(GpuError::Unsupported(format!(
            "moe route: T = {t} with k = {k} exceeds the per-invocation loop budget ({LOOP_BUDGET})"
        )));
    }
    gpu.check()?;
    let uniform = gpu.uniform_init("moe params", bytemuck::bytes_of(&params));
    let st = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let te = t * e;
    let xb = gpu.storage_init("moe x", bytemuck::cast_slice(x), wgpu::BufferUsages::empty());
    let wb = gpu.storage_init("moe w", bytemuck::cast_slice(w), wgpu::BufferUsages::empty());
    let gate_out = gpu.buffer("moe gate_out", ((2 * te + t) * 4) as u64, st);
    let choice = gpu.buffer("moe choice", ((t * k) * 4) as u64, st);
    let choice_w = gpu.buffer("moe choice_w", ((t * k) * 4) as u64, st);
    let route_f = gpu.buffer("moe route_f", ((2 * te + e) * 4) as u64, st);
    let route_u = gpu.buffer("moe route_u", ((te + e * cbuf) * 4) as u64, st);
    let stats = gpu.buffer("moe stats", ((4 * e + 1) * 4) as u64, st);
    let pl = &gpu.pipelines.moe;
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("moe route") });
    let tg = groups(t)?;
    pass(
        gpu,
        &mut enc,
        gpu.pipeline(&pl.gate, "moe_gate.wgsl", "moe_gate"),
        "moe_gate",
        &[(0, &uniform), (1, &xb), (2, &wb), (3, &gate_out)],
        (tg, 1),
    );
    pass(
        gpu,
        &mut enc,
        gpu.pipeline(&pl.select, "moe_select.wgsl", "moe_select"),
        "moe_select",
        &[(0, &uniform), (1, &gate_out), (2, &choice), (3, &choice_w)],
        (tg, 1),
    );
    match router {
        GpuRouter::TopK { .. } => pass(
            gpu,
            &mut enc,
            gpu.pipeline(&pl.capacity, "moe_capacity.wgsl", "moe_capacity"),
            "moe_capacity",
            &[(0, &uniform), (1, &choice), (2, &choice_w), (3, &route_f), (4, &route_u)],
            (groups(e)?, 1),
        ),
        GpuRouter::ExpertChoice { .. } => {
            // Slots nobody fills stay NONE: token_of_slot is written only for ranks < k, and
            // ranks are a permutation of 0..T, so every slot is written exactly once.
            pass(
                gpu,
                &mut enc,
                gpu.pipeline(&pl.expert_choice, "moe_expert_choice.wgsl", "moe_expert_choice"),
                "moe_expert_choice",
                &[(0, &uniform), (1, &gate_out), (3, &route_f), (4, &route_u)],
                (tg, e as u32),
            )
        }
    }
    pass(
        gpu,
        &mut enc,
        gpu.pipeline(&pl.stats, "moe_stats.wgsl", "moe_stats"),
        "moe_stats",
        &[(0, &uniform), (1, &gate_out), (2, &choice), (3, &route_f), (4, &stats)],
        (groups(e)?, 1),
    );
    let parts = gpu
        .submit_and_read(
            enc,
            &[
                (&gate_out, ((2 * te + t) * 4) as u64),
                (&route_f, ((2 * te + e) * 4) as u64),
                (&route_u, ((te + e * cbuf) * 4) as u64),
                (&stats, ((4 * e + 1) * 4) as u64),
            ],
        )
        .await?;
    let (g, f, u, s) = (&parts[0], &parts[1], bits(&parts[2]), &parts[3]);
    Ok(GpuRouting {
        tokens: t,
        experts: e,
        buffer_slots: cbuf,
        logits: g[..te].to_vec(),
        probs: g[te..2 * te].to_vec(),
        lse: g[2 * te..].to_vec(),
        combine: f[..te].to_vec(),
        dispatch: f[te..2 * te].to_vec(),
        dropped: f[2 * te..].iter().map(|v| *v as u32).collect(),
        slot: u[..te].to_vec(),
        token_of_slot: u[te..].to_vec(),
        top1_fraction: s[..e].to_vec(),
        mean_prob: s[e..2 * e].to_vec(),
        load: s[2 * e..3 * e].to_vec(),
        importance: s[3 * e..4 * e].to_vec(),
        z_loss: s[4 * e],
    })
}

fn slots_buffer(gpu: &Gpu, r: &GpuRouting) -> wgpu::Buffer {
    let mut u = r.slot.clone();
    u.extend_from_slice(&r.token_of_slot);
    gpu.storage_init("moe slots", bytemuck::cast_slice(&u), wgpu::BufferUsages::empty())
}

fn io_params(r: &GpuRouting, h: usize) -> MoeParams {
    MoeParams {
        t: r.tokens as u32,
        d: 1,
        e: r.experts as u32,
        k: 1,
        h: h as u32,
        cbuf: r.buffer_slots as u32,
        capacity: NONE,
        renorm: 0,
    }
}

/// The experts' input buffers, E × buffer_slots × H: slot s of expert e holds its token's row of
/// `x` (T × H), 0 for an empty slot.
pub async fn dispatch(gpu: &Gpu, r: &GpuRouting, x: &[f32], h: usize) -> Result<Vec<f32>, GpuError> {
    if h == 0 || x.len() != r.tokens * h {
        return Err(GpuError::Unsupported(format!(
            "moe dispatch: x has {} values for T·H = {}·{h}",
            x.len(),
            r.tokens
        )));
    }
    let n = r.experts * r.buffer_slots * h;
    gpu.check()?;
    let uniform = gpu.uniform_init("moe io params", bytemuck::bytes_of(&io_params(r, h)));
    let xb = gpu.storage_init("moe dx", bytemuck::cast_slice(x), wgpu::BufferUsages::empty());
    let slots = slots_buffer(gpu, r);
    let out = gpu.buffer("moe dispatch", (n * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("moe dispatch") });
    let p = gpu.pipeline(&gpu.pipelines.moe.dispatch, "moe_dispatch.wgsl", "moe_dispatch");
    pass(gpu, &mut enc, p, "moe_dispatch", &[(0, &uniform), (1, &xb), (2, &slots), (3, &out)], (groups(n)?, 1));
    Ok(gpu.submit_and_read(enc, &[(&out, (n * 4) as u64)]).await?.remove(0))
}

/// h = a + Σ_e combine[t, e]·expert_out[e, slot[t, e], :] (T × H); `expert_out` is
/// E × buffer_slots × H, as `dispatch` lays the inputs out. Unprocessed tokens keep h = a.
pub async fn combine(gpu: &Gpu, r: &GpuRouting, a: &[f32], expert_out: &[f32], h: usize) -> Result<Vec<f32>, GpuError> {
    if h == 0 || a.len() != r.tokens * h || expert_out.len() != r.experts * r.buffer_slots * h {
        return Err(GpuError::Unsupported(format!(
            "moe combine: a has {} values for T·H = {}·{h}, the expert outputs {} for E·slots·H",
            a.len(),
            r.tokens,
            expert_out.len()
        )));
    }
    let n = r.tokens * h;
    gpu.check()?;
    let uniform = gpu.uniform_init("moe io params", bytemuck::bytes_of(&io_params(r, h)));
    let mut values = a.to_vec();
    values.extend_from_slice(expert_out);
    let vb = gpu.storage_init("moe values", bytemuck::cast_slice(&values), wgpu::BufferUsages::empty());
    let cb = gpu.storage_init("moe combine weights", bytemuck::cast_slice(&r.combine), wgpu::BufferUsages::empty());
    let slots = slots_buffer(gpu, r);
    let out = gpu.buffer("moe h", (n * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("moe combine") });
    let p = gpu.pipeline(&gpu.pipelines.moe.combine, "moe_dispatch.wgsl", "moe_combine");
    pass(
        gpu,
        &mut enc,
        p,
        "moe_combine",
        &[(0, &uniform), (2, &slots), (4, &vb), (5, &cb), (6, &out)],
        (groups(n)?, 1),
    );
    Ok(gpu.submit_and_read(enc, &[(&out, (n * 4) as u64)]).await?.remove(0))
}
