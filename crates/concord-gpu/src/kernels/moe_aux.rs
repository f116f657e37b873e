//! The MoE aux losses' gradient on the GPU, mirroring the aux part of
//! `concord_core::model::moe::Moe::gradients`: `aux::aux_losses`' dL_aux/dh (and noisy top-k's
//! dL_aux/dh_noise) per gate group (`shaders/moe_aux.wgsl`: the Switch load-balancing loss, the
//! router z-loss, Mod-Squad's mutual-information loss, CV²(importance) through each router's
//! selection and CV²(load), Φ-smoothed for noisy top-k while training, else the hard counts,
//! which have no gradient), then
//! `gate_backward` (W_g's and W_noise's gradient, summed over the groups that share a gate) and
//! `pre_backward` (dL/da through the pre-layers). The result is one vector over the shared
//! parameters that the trainer adds to the update after the aggregator, as the CPU trainer's
//! `combine` does: the aux losses are regularisers of the router, not tasks.

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{AuxWeights, Moe, RouterKind};
use concord_core::model::Target;
use nalgebra::DMatrix;

use super::mlp::{grid, BackpropParams, Dispatch, MlpPipelines};
use super::mlp_graph::{matrix_f32, LayerDims};
use super::moe_dselect::regulariser_dispatches;
use super::moe_train::{gate_back_input_dispatch, routing_noise_f32, MoeForward, MoeShape, MoeTrainPipelines};
use crate::{Gpu, GpuError};

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// Whether `moe` has an aux loss the GPU adds (the CPU adds a zero gradient otherwise).
pub fn has_gpu_aux(moe: &Moe) -> bool {
    let aux = &moe.config().aux;
    // Only noisy top-k's load is smooth: the hard counts' CV² has no gradient.
    let smooth_load = aux.load != 0.0 && moe.config().router.is_noisy();
    aux.load_balance != 0.0 || aux.z_loss != 0.0 || aux.mutual_info != 0.0 || aux.importance != 0.0 || smooth_load
}

/// `shaders/moe_aux.wgsl`'s MoeAuxParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MoeAuxParams {
    rows: u32,
    experts: u32,
    groups_x: u32,
    len: u32,
    off: u32,
    group: u32,
    groups: u32,
    tasks: u32,
    load_balance: f32,
    z_loss: f32,
    mutual_info: f32,
    importance: f32,
    load: f32,
    selection: u32,
    k: u32,
    eps_off: u32,
}

pub(crate) struct MoeAuxPipelines {
    fractions: wgpu::ComputePipeline,
    mutual_info: wgpu::ComputePipeline,
    logits: wgpu::ComputePipeline,
    smooth_load: wgpu::ComputePipeline,
    cv: wgpu::ComputePipeline,
    cv_back_dense: wgpu::ComputePipeline,
    cv_noisy_importance: wgpu::ComputePipeline,
    cv_noisy_load: wgpu::ComputePipeline,
    cv_noisy_h: wgpu::ComputePipeline,
    cv_noisy_noise: wgpu::ComputePipeline,
    add: wgpu::ComputePipeline,
    zero: wgpu::ComputePipeline,
}

impl MoeAuxPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        let make = |entry| gpu.create_pipeline("moe_aux.wgsl", entry);
        MoeAuxPipelines {
            fractions: make("moe_aux_fractions"),
            mutual_info: make("moe_aux_mi"),
            logits: make("moe_aux_logits"),
            smooth_load: make("moe_aux_smooth_load"),
            cv: make("moe_aux_cv"),
            cv_back_dense: make("moe_aux_cv_back_dense"),
            cv_noisy_importance: make("moe_aux_cv_noisy_importance"),
            cv_noisy_load: make("moe_aux_cv_noisy_load"),
            cv_noisy_h: make("moe_aux_cv_noisy_h"),
            cv_noisy_noise: make("moe_aux_cv_noisy_noise"),
            add: make("moe_aux_add"),
            zero: make("moe_aux_zero"),
        }
    }
}

/// One training step's aux gradient: the dispatches that fill its buffer (shared_len floats,
/// kept alive by their bind groups) from the step's forward pass, and the one that adds it to
/// the update after the aggregator.
pub(crate) struct MoeAuxStep {
    pub dispatches: Vec<Dispatch>,
    pub add_to_update: Dispatch,
}

/// How `moe_aux_cv_back` takes dL/dG to the logits, as `selection::backward` per router.
fn selection_code(router: &RouterKind) -> u32 {
    match router {
        // G = p. (PLE and DSelect-k never train here: `gpu_moe_unsupported`.)
        RouterKind::Softmax
        | RouterKind::Mmoe
        | RouterKind::Cgc { .. }
        | RouterKind::Ple { .. }
        | RouterKind::DselectK { .. } => 0,
        // G = p where the expert takes the token.
        RouterKind::Switch { .. } | RouterKind::ExpertChoice { .. } | RouterKind::Task { .. } => 1,
        RouterKind::Top2 { .. } => 2,
        RouterKind::NoisyTopK { .. } => 3,
    }
}

fn params(rows: usize, experts: usize, items: usize) -> (MoeAuxParams, (u32, u32)) {
    let g = grid(items);
    let p = MoeAuxParams {
        rows: rows as u32,
        experts: experts as u32,
        groups_x: g.0,
        len: items as u32,
        off: 0,
        group: 0,
        groups: 0,
        tasks: 0,
        load_balance: 0.0,
        z_loss: 0.0,
        mutual_info: 0.0,
        importance: 0.0,
        load: 0.0,
        selection: 0,
        k: 0,
        eps_off: 0,
    };
    (p, g)
}

/// dst[off .. off + len] += src[.. len].
pub(super) fn add(
    gpu: &Gpu,
    aux: &MoeAuxPipelines,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    off: usize,
    len: usize,
) -> Dispatch {
    let (mut p, groups) = params(0, 0, len);
    p.off = off as u32;
    Dispatch::with_bindings(gpu, &aux.add, &[(5, src), (6, dst)], &[(0, bytemuck::bytes_of(&p))], groups)
}

pub(super) fn zero(gpu: &Gpu, aux: &MoeAuxPipelines, dst: &wgpu::Buffer, len: usize) -> Dispatch {
    let (p, groups) = params(0, 0, len);
    Dispatch::with_bindings(gpu, &aux.zero, &[(6, dst)], &[(0, bytemuck::bytes_of(&p))], groups)
}

/// The dispatches that write ∇ of the weighted aux loss over the shared parameters into `out`
/// (zeros outside the gates and pre-layers), from `fwd`'s routing.
#[allow(clippy::too_many_arguments)]
fn aux_dispatches(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    moe_pipes: &MoeTrainPipelines,
    aux_pipes: &MoeAuxPipelines,
    shape: &MoeShape,
    weights: &AuxWeights,
    fwd: &MoeForward,
    (x, params_buf): (&wgpu::Buffer, &wgpu::Buffer),
    out: &wgpu::Buffer,
) -> Vec<Dispatch> {
    let rows = fwd.graph.rows;
    let n = shape.experts.len();
    let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
    let a = fwd.graph.act.last().unwrap_or(x);
    let n_pre = shape.base.trunk.len();
    let groups = shape.groups as f64;
    let weight_grad =
        |dz: &wgpu::Buffer, input: &wgpu::Buffer, dst: &wgpu::Buffer, l: &LayerDims, off: usize, bias: bool| {
            let (p, (gx, gy)) = l.weight_grad_params(rows, off, bias);
            Dispatch::new(gpu, &pipes.weight_grad, &[dz, input, dst], bytemuck::bytes_of(&p), (gx, gy))
        };
    let mut dispatches = vec![zero(gpu, aux_pipes, out, shape.base.shared_len)];
    let d_pre: Vec<wgpu::Buffer> = shape.base.trunk.iter().map(|l| buf("aux pre dz", rows * l.fan_out)).collect();
    if n_pre > 0 {
        dispatches.push(zero(gpu, aux_pipes, &d_pre[n_pre - 1], rows * shape.width));
    }
    let d_probs = buf("aux dL/dp per group and expert", shape.groups * n);
    let col_sums = buf("Σ p per group and expert", shape.groups * n);
    let group_of: Vec<u32> = shape.group_of.iter().map(|&g| g as u32).collect();
    let group_of = gpu.storage_init("gate group per task", bytemuck::cast_slice(&group_of), RW);
    let d_logits = buf("aux dL/dh", rows * n);
    let d_noise = buf("aux dL/dh_noise", rows * n);
    let gate_grad = buf("one group's aux W_g gradient", shape.gin * n);
    // The CV² losses, each only when its weight is > 0 (as `aux_losses`); the load only where it
    // is Φ-smoothed: noisy top-k with routing noise and k < E (`noisy_topk::smooth_load`).
    let (eps, noise_given) = fwd.noise();
    let smooth_k = match shape.router {
        RouterKind::NoisyTopK { k } if noise_given && k < n => Some(k),
        _ => None,
    };
    let importance = if weights.importance > 0.0 { weights.importance / groups } else { 0.0 };
    let load = if weights.load > 0.0 && smooth_k.is_some() { weights.load / groups } else { 0.0 };
    let cv_losses = importance != 0.0 || load != 0.0;
    // ∇CV² (2E), then Φ, dL/dH, dL/dσ and the load's direct dL/dh per token (4 × rows × E).
    let cv_scratch = buf("aux CV² scratch", 2 * n + 4 * rows * n);
    let unused = buf("unused routing buffer", 1);
    let group_params = |g: usize| {
        let (mut p, token_groups) = params(rows, n, rows);
        p.group = g as u32;
        p.groups = shape.groups as u32;
        p.tasks = shape.group_of.len() as u32;
        p.load_balance = (weights.load_balance / groups) as f32;
        p.z_loss = (weights.z_loss / groups) as f32;
        p.mutual_info = weights.mutual_info as f32;
        p.importance = importance as f32;
        p.load = load as f32;
        p.selection = selection_code(&shape.router);
        p.k = smooth_k.unwrap_or(0) as u32;
        p.eps_off = (g * rows * n) as u32;
        (p, token_groups)
    };
    // Every group's f_i and Σ p first: the MI loss is one quantity over all tasks.
    for g in 0..shape.groups {
        let (p, _) = group_params(g);
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &aux_pipes.fractions,
            &[(1, &fwd.probs[g]), (3, &d_probs), (7, &col_sums)],
            &[(0, bytemuck::bytes_of(&p))],
            (1, 1),
        ));
    }
    let (p, _) = group_params(0);
    dispatches.push(Dispatch::with_bindings(
        gpu,
        &aux_pipes.mutual_info,
        &[(3, &d_probs), (7, &col_sums), (8, &group_of)],
        &[(0, bytemuck::bytes_of(&p))],
        (1, 1),
    ));
    for g in 0..shape.groups {
        let (p, token_groups) = group_params(g);
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &aux_pipes.logits,
            &[(1, &fwd.probs[g]), (2, &fwd.logits[g]), (3, &d_probs), (4, &d_logits)],
            &[(0, bytemuck::bytes_of(&p))],
            token_groups,
        ));
        if cv_losses {
            let (combine, route) = fwd.selection(g);
            let raw = route.map_or(&unused, |(_, raw)| raw);
            let uniform = bytemuck::bytes_of(&p);
            let per_token = |pipe: &wgpu::ComputePipeline, bindings: &[(u32, &wgpu::Buffer)]| {
                Dispatch::with_bindings(gpu, pipe, bindings, &[(0, uniform)], token_groups)
            };
            if load != 0.0 {
                dispatches.push(per_token(
                    &aux_pipes.smooth_load,
                    &[(2, &fwd.logits[g]), (11, eps), (12, raw), (14, &cv_scratch)],
                ));
            }
            dispatches.push(Dispatch::with_bindings(
                gpu,
                &aux_pipes.cv,
                &[(9, combine), (14, &cv_scratch)],
                &[(0, uniform)],
                (1, 1),
            ));
            if matches!(shape.router, RouterKind::NoisyTopK { .. }) {
                dispatches.push(per_token(&aux_pipes.cv_noisy_importance, &[(9, combine), (14, &cv_scratch)]));
                if load != 0.0 {
                    dispatches.push(per_token(
                        &aux_pipes.cv_noisy_load,
                        &[(2, &fwd.logits[g]), (11, eps), (12, raw), (14, &cv_scratch)],
                    ));
                }
                dispatches.push(per_token(&aux_pipes.cv_noisy_h, &[(4, &d_logits), (14, &cv_scratch)]));
                dispatches.push(per_token(
                    &aux_pipes.cv_noisy_noise,
                    &[(11, eps), (12, raw), (13, &d_noise), (14, &cv_scratch)],
                ));
            } else if importance != 0.0 {
                dispatches.push(per_token(
                    &aux_pipes.cv_back_dense,
                    &[(1, &fwd.probs[g]), (4, &d_logits), (9, combine), (14, &cv_scratch)],
                ));
            }
        }
        let gate_off = shape.gates[shape.gate_of(g)];
        // W_noise gets a gradient from the CV² losses only (the others read the clean logits).
        let noise_off = shape.noise[shape.gate_of(g)].filter(|_| cv_losses);
        let gate = LayerDims { fan_in: shape.gin, fan_out: n, w_off: 0, b_off: shape.gin * n };
        let gin = fwd.gate_input(g).unwrap_or(a);
        let paths = [(&d_logits, Some(gate_off)), (&d_noise, noise_off)];
        for (d, off) in paths.into_iter().filter_map(|(d, off)| off.map(|o| (d, o))) {
            dispatches.push(weight_grad(d, gin, &gate_grad, &gate, 0, false));
            dispatches.push(add(gpu, aux_pipes, &gate_grad, out, off, shape.gin * n));
            if n_pre > 0 {
                let z = &fwd.graph.pre[n_pre - 1];
                dispatches.push(gate_back_input_dispatch(
                    gpu,
                    moe_pipes,
                    shape,
                    rows,
                    off,
                    (d, params_buf, z, &d_pre[n_pre - 1]),
                ));
            }
        }
    }
    for l in (0..n_pre).rev() {
        let layer = &shape.base.trunk[l];
        let input = if l == 0 { x } else { &fwd.graph.act[l - 1] };
        dispatches.push(weight_grad(&d_pre[l], input, out, layer, layer.w_off, true));
        if l > 0 {
            let (gx, gy) = grid(rows * layer.fan_in);
            let p = BackpropParams {
                rows: rows as u32,
                fan_in: layer.fan_in as u32,
                fan_out: layer.fan_out as u32,
                w_off: layer.w_off as u32,
                act: shape.base.act,
                groups_x: gx,
                _pad: [0; 2],
            };
            dispatches.push(Dispatch::new(
                gpu,
                &pipes.backprop,
                &[&d_pre[l], params_buf, &fwd.graph.pre[l - 1], &d_pre[l - 1]],
                bytemuck::bytes_of(&p),
                (gx, gy),
            ));
        }
    }
    dispatches
}

impl MoeAuxStep {
    /// The aux gradient of the training step whose forward pass is `fwd`, and its addition to
    /// `update`'s shared part. `None` when `moe` has no aux loss the GPU adds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        pipes: &MlpPipelines,
        moe_pipes: &MoeTrainPipelines,
        moe: &Moe,
        shape: &MoeShape,
        fwd: &MoeForward,
        (x, params): (&wgpu::Buffer, &wgpu::Buffer),
        update: &wgpu::Buffer,
    ) -> Option<Self> {
        if let Some(ds) = &shape.dselect {
            // DSelect-k's regularisers are its aux gradient, over every parameter.
            if !ds.has_regulariser(shape.experts.len()) {
                return None;
            }
            let aux_pipes = MoeAuxPipelines::new(gpu);
            let len = shape.base.total_len;
            let grad = gpu.buffer("dselect regulariser gradient", (len * 4) as u64, RW);
            let dispatches = regulariser_dispatches(gpu, pipes, &aux_pipes, shape, ds, fwd, (x, params), &grad);
            let add_to_update = add(gpu, &aux_pipes, &grad, update, 0, len);
            return Some(MoeAuxStep { dispatches, add_to_update });
        }
        if !has_gpu_aux(moe) {
            return None;
        }
        let aux_pipes = MoeAuxPipelines::new(gpu);
        let grad = gpu.buffer("moe aux gradient", (shape.base.shared_len * 4) as u64, RW);
        let dispatches =
            aux_dispatches(gpu, pipes, moe_pipes, &aux_pipes, shape, &moe.config().aux, fwd, (x, params), &grad);
        let add_to_update = add(gpu, &aux_pipes, &grad, update, 0, shape.base.shared_len);
        Some(MoeAuxStep { dispatches, add_to_update })
    }
}

/// ∇ of the weighted aux loss of `moe` at `params` on the batch `x` over the shared parameters
/// (over every parameter for DSelect-k, whose regularisers reach its task-owned gates), on the
/// GPU, with noisy top-k's routing noise of `noise_seed`: the twin of
/// `Moe::gradients(…).aux_grad`.
pub async fn moe_aux_gradient(
    gpu: &Gpu,
    moe: &Moe,
    params: &[f64],
    x: &DMatrix<f64>,
    targets: &[Target],
    noise_seed: Option<u64>,
) -> Result<Vec<f32>, GpuError> {
    moe.losses(params, x, targets).map_err(GpuError::Unsupported)?;
    if let Some(why) = super::moe_train::gpu_moe_unsupported(moe) {
        return Err(GpuError::Unsupported(why));
    }
    let shape = MoeShape::new(moe);
    let rows = x.nrows();
    shape.base.check_rows(rows)?;
    shape.check_rows(rows)?;
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let moe_pipes = MoeTrainPipelines::new(gpu);
    let aux_pipes = MoeAuxPipelines::new(gpu);
    let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
    let params_buf = gpu.storage_init("params", bytemuck::cast_slice(&p32), RW);
    let x_buf = gpu.storage_init("x", bytemuck::cast_slice(&matrix_f32(x)), RW);
    let y_buf = gpu.storage_init("y", bytemuck::cast_slice(&shape.base.target_table(targets, rows)), RW);
    let noise = noise_seed.filter(|_| shape.noisy()).map(|seed| {
        gpu.storage_init("routing noise", bytemuck::cast_slice(&routing_noise_f32(moe, &shape, seed, rows)), RW)
    });
    let fwd = MoeForward::new(gpu, &pipes, &moe_pipes, &shape, rows, &x_buf, &y_buf, &params_buf, noise.as_ref());
    let len = if shape.dselect.is_some() { shape.base.total_len } else { shape.base.shared_len };
    let grad = gpu.buffer("moe aux gradient", (len * 4) as u64, RW);
    let aux = match &shape.dselect {
        Some(ds) => regulariser_dispatches(gpu, &pipes, &aux_pipes, &shape, ds, &fwd, (&x_buf, &params_buf), &grad),
        None => aux_dispatches(
            gpu,
            &pipes,
            &moe_pipes,
            &aux_pipes,
            &shape,
            &moe.config().aux,
            &fwd,
            (&x_buf, &params_buf),
            &grad,
        ),
    };
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("moe aux gradient") });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("moe aux"), timestamp_writes: None });
        for d in fwd.graph.dispatches.iter().chain(&aux) {
            d.record(&mut pass);
        }
    }
    let mut back = gpu.submit_and_read(encoder, &[(&grad, (len * 4) as u64)]).await?;
    Ok(back.pop().unwrap_or_default())
}
