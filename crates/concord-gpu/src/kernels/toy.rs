//! Host code of `shaders/toy_trajectory.wgsl`: CAGrad-toy runs advanced many steps per dispatch,
//! state kept in a storage buffer between dispatches, recorded steps written to a history
//! buffer per submission. [`crate::GpuToy`] drives one run through it; the CPU twin is
//! concord-core's `Trainer` on `DataSource::Toy`.

use bytemuck::{Pod, Zeroable};
use concord_core::{ProblemKind, TrainOptimizer};

use super::loss_weighting::GpuLossWeighting;
use super::mlp::Dispatch;
use super::weighting::GpuWeighting;
use super::MAX_TASKS;
use crate::{Gpu, GpuError};

/// Steps per dispatch on a GPU: long enough to amortise the dispatch, short enough that one
/// dispatch stays far from a browser's GPU watchdog.
pub const STEPS_PER_DISPATCH: u32 = 1000;
/// Steps per dispatch on a CPU adapter (lavapipe/llvmpipe, SwiftShader). llvmpipe stops all
/// loops of an invocation after 65 535 loop iterations in total; a step costs up to a few
/// hundred (a solver's iterations × its small loops), so 16 steps stay well inside that.
/// Dispatches are cheap there; the kernel's sentinel catches any step that is still cut.
pub const STEPS_PER_DISPATCH_CPU: u32 = 16;
/// Floats per history slot (see toy_trajectory.wgsl).
pub(crate) const SLOT: usize = 11;

/// `RunParams::coordinate`: toy_trajectory.wgsl's TOY_COORD_* (0: the weighting `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToyCoordinate {
    TrimmedMean = 1,
    GradDrop = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub(crate) struct RunParams {
    method: u32,
    optimizer: u32,
    seed: u32,
    c: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
    /// lr·weight_decay (AdamW's decoupled decay), 0 otherwise.
    decay: f32,
    eps_a: f32,
    eps_b: f32,
    max_iters: u32,
    mode: u32,
    vec: [f32; MAX_TASKS],
    /// The loss weights λ J's rows are scaled by: [1, 1], or the loss weighting's output,
    /// copied here before each step.
    lw: [f32; 2],
    /// A per-coordinate aggregator (`ToyCoordinate`) in place of the weighting, 0 for none.
    coordinate: u32,
    pad: u32,
}

/// Where `RunParams::lw` starts (the copy target of the loss weights).
const LW_OFFSET: u64 = std::mem::offset_of!(RunParams, lw) as u64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq)]
pub(crate) struct RunState {
    pub x: [f32; 2],
    pub x_comp: [f32; 2],
    m: [f32; 2],
    v: [f32; 2],
    q1: f32,
    q2: f32,
    pub t: u32,
    calls: u32,
    pub status: u32,
    pub cut_short: u32,
    /// The losses at x when the run stopped on a non-finite loss (`RUN_STOPPED_LOSS`).
    pub stop_losses: [f32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ToyUniform {
    n_runs: u32,
    steps: u32,
    scale: f32,
    /// Always 2: the trip count of the per-step sentinel (see toy_trajectory.wgsl).
    sentinel_trips: u32,
    record_every: u32,
    last_step: u32,
    first_step: u32,
    capacity: u32,
}

/// Host sizes of the structs shared with toy_trajectory.wgsl (checked against naga's layout).
pub(crate) const LAYOUTS: [(&str, usize); 3] = [
    ("RunParams", std::mem::size_of::<RunParams>()),
    ("RunState", std::mem::size_of::<RunState>()),
    ("ToyUniform", std::mem::size_of::<ToyUniform>()),
];

const STATE_BYTES: u64 = std::mem::size_of::<RunState>() as u64;

impl RunParams {
    /// The parameters of a run of the GPU weighting `weighting`, or (`Err`) of the
    /// per-coordinate aggregator it stands for.
    pub(crate) fn new(
        weighting: Result<&GpuWeighting, ToyCoordinate>,
        optimizer: &TrainOptimizer,
    ) -> Result<Self, GpuError> {
        let mut p = RunParams {
            method: 0,
            optimizer: 0,
            seed: 0,
            c: 0.0,
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            one_minus_beta1: 0.0,
            one_minus_beta2: 0.0,
            eps: 0.0,
            momentum: 0.0,
            decay: 0.0,
            eps_a: 0.0,
            eps_b: 0.0,
            max_iters: 0,
            mode: 0,
            vec: [0.0; MAX_TASKS],
            lw: [1.0; 2],
            coordinate: 0,
            pad: 0,
        };
        match weighting {
            Ok(weighting) => {
                for (dst, src) in p.vec.iter_mut().zip(&weighting.vec) {
                    *dst = *src;
                }
                p.method = weighting.code;
                p.seed = weighting.seed;
                p.c = weighting.c;
                p.eps_a = weighting.eps_a;
                p.eps_b = weighting.eps_b;
                p.max_iters = weighting.max_iters;
                p.mode = weighting.mode;
            }
            Err(coordinate) => p.coordinate = coordinate as u32,
        }
        let (lr, beta1, beta2, eps, wd) = match *optimizer {
            TrainOptimizer::Sgd { lr, momentum } => {
                p.optimizer = 1;
                p.lr = lr as f32;
                p.momentum = momentum as f32;
                return Ok(p);
            }
            TrainOptimizer::Adam { lr, beta1, beta2, eps } => (lr, beta1, beta2, eps, 0.0),
            TrainOptimizer::AdamW { lr, beta1, beta2, eps, weight_decay } => (lr, beta1, beta2, eps, weight_decay),
            TrainOptimizer::Spam(_) => {
                return Err(GpuError::Unsupported(
                    "the SPAM optimizer has no GPU kernel yet; use the CPU backend".into(),
                ))
            }
        };
        p.lr = lr as f32;
        p.beta1 = beta1 as f32;
        p.beta2 = beta2 as f32;
        p.one_minus_beta1 = (1.0 - beta1) as f32;
        p.one_minus_beta2 = (1.0 - beta2) as f32;
        p.eps = eps as f32;
        p.decay = (lr * wd) as f32;
        Ok(p)
    }
}

impl RunState {
    /// A fresh run at `start` whose next step is step `t`.
    pub(crate) fn at(start: [f64; 2], t: u32) -> Self {
        let hi = [start[0] as f32, start[1] as f32];
        // Kahan compensation c with true x = hi − c, so the f64 start is carried exactly-ish.
        let comp = [(f64::from(hi[0]) - start[0]) as f32, (f64::from(hi[1]) - start[1]) as f32];
        RunState {
            x: hi,
            x_comp: comp,
            m: [0.0; 2],
            v: [0.0; 2],
            q1: 0.0,
            q2: 0.0,
            t,
            calls: 0,
            status: 0,
            cut_short: 0,
            stop_losses: [0.0; 2],
        }
    }

    /// Why the run stopped, in the CPU trainer's words (`None`: it did not). The codes are
    /// toy_trajectory.wgsl's RUN_STOPPED_*; the checks run in the CPU trainer's order.
    pub(crate) fn stop_reason(&self) -> Option<String> {
        Some(match self.status {
            0 => return None,
            2 => {
                let l: Vec<f64> = self.stop_losses.iter().map(|&v| f64::from(v)).collect();
                format!("a task loss is not finite ({l:?})")
            }
            3 => "a gradient is not finite".into(),
            4 => "the aggregator's update is not finite".into(),
            _ => "the optimizer step produced non-finite parameters".into(),
        })
    }

    /// x as the f64 point it stands for (x − compensation).
    pub(crate) fn point(&self) -> [f64; 2] {
        [f64::from(self.x[0]) - f64::from(self.x_comp[0]), f64::from(self.x[1]) - f64::from(self.x_comp[1])]
    }
}

/// A submission's history, to be mapped at the next read-back.
pub(crate) struct PendingHistory {
    pub staging: wgpu::Buffer,
    pub floats: usize,
}

/// One toy run's buffers and pipeline.
pub(crate) struct ToyKernel {
    scale: f32,
    workgroup: bool,
    params_buf: wgpu::Buffer,
    states_buf: wgpu::Buffer,
    /// Binding 4 of the workgroup pipeline (weights_memory.wgsl): the run's weighting memory
    /// (MoDo's λ, SDMGrad's w, GradVac's targets), kept across steps and submissions.
    memory: wgpu::Buffer,
    /// `toy_eval`'s losses and plain G at x (bindings 5 and 6), the loss weighting's inputs.
    eval_losses: wgpu::Buffer,
    eval_gram: wgpu::Buffer,
    /// `toy_eval`'s pipeline (made with a loss weighting).
    eval_pipe: Option<wgpu::ComputePipeline>,
    pub chunk: u32,
}

impl ToyKernel {
    pub(crate) fn new(gpu: &Gpu, problem: ProblemKind, params: &RunParams, state: &RunState, workgroup: bool) -> Self {
        let params_buf = gpu.storage_init("toy run params", bytemuck::bytes_of(params), wgpu::BufferUsages::COPY_DST);
        let states_buf = gpu.storage_init(
            "toy run state",
            bytemuck::bytes_of(state),
            wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        );
        let chunk = if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
            STEPS_PER_DISPATCH_CPU
        } else {
            STEPS_PER_DISPATCH
        };
        let memory = super::weighting::memory_buffer(gpu);
        let rw = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let eval_losses = gpu.storage_init("toy eval losses", bytemuck::cast_slice(&[0f32; 2]), rw);
        let eval_gram = gpu.storage_init("toy eval gram", bytemuck::cast_slice(&[0f32; 4]), rw);
        ToyKernel {
            scale: problem.toy().scale as f32,
            workgroup,
            params_buf,
            states_buf,
            memory,
            eval_losses,
            eval_gram,
            eval_pipe: None,
            chunk,
        }
    }

    /// Ready `toy_eval` for a run with a loss weighting.
    pub(crate) fn use_loss_weights(&mut self, gpu: &Gpu) {
        self.eval_pipe = Some(gpu.create_pipeline("toy_trajectory.wgsl", "toy_eval"));
    }

    pub(crate) fn write_params(&self, gpu: &Gpu, params: &RunParams) {
        gpu.queue.write_buffer(&self.params_buf, 0, bytemuck::bytes_of(params));
    }

    pub(crate) fn write_state(&self, gpu: &Gpu, state: &RunState) {
        gpu.queue.write_buffer(&self.states_buf, 0, bytemuck::bytes_of(state));
    }

    /// A fresh weighting memory (the stateful weightings start over, as a new run's do).
    pub(crate) fn reset_memory(&mut self, gpu: &Gpu) {
        self.memory = super::weighting::memory_buffer(gpu);
    }

    fn pipeline<'a>(&self, gpu: &'a Gpu) -> &'a wgpu::ComputePipeline {
        if self.workgroup {
            gpu.pipeline(&gpu.pipelines.toy_step_workgroup, "toy_trajectory.wgsl", "toy_step_workgroup")
        } else {
            gpu.pipeline(&gpu.pipelines.toy_step, "toy_trajectory.wgsl", "toy_step")
        }
    }

    /// Encode and submit `steps` ≥ 1 steps from step `first` (dispatches of at most `chunk`
    /// steps), recording steps t with t % record_every == 0 or t = last; nothing is read back.
    /// With a loss weighting `lw` (whose output buffer was given to `use_loss_weights`), every
    /// step is its own dispatch, preceded by `toy_eval`, the weighting's call at the CPU
    /// trainer's epoch (one step is one epoch, counted from `epoch`) and the copy of λ into the
    /// run's params, and followed, for FAMO, by `toy_eval` at the new x and its `after_step`.
    /// `draws`: GradDrop's U for these steps (two per step, in order), empty otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &self,
        gpu: &Gpu,
        first: u32,
        steps: u32,
        record_every: u32,
        last: u32,
        mut lw: Option<(&mut GpuLossWeighting, u64)>,
        draws: &[f32],
    ) -> PendingHistory {
        let recorded = (first..first + steps).filter(|t| t % record_every == 0 || *t == last).count() as u32;
        let floats = recorded as usize * SLOT;
        let hist = gpu.buffer(
            "toy history",
            (floats.max(1) * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let uni = |n: u32| ToyUniform {
            n_runs: 1,
            steps: n,
            scale: self.scale,
            sentinel_trips: 2,
            record_every,
            last_step: last,
            first_step: first,
            capacity: recorded,
        };
        let pipeline = self.pipeline(gpu);
        let layout = pipeline.get_bind_group_layout(0);
        // A zero-length binding is invalid: the methods without draws get one float.
        let draws_buf = gpu.storage_init(
            "toy graddrop draws",
            bytemuck::cast_slice(if draws.is_empty() { &[0.0f32] } else { draws }),
            wgpu::BufferUsages::empty(),
        );
        let bind = |n: u32| {
            let uniform = gpu.uniform_init("toy steps", bytemuck::bytes_of(&uni(n)));
            let mut entries = vec![
                wgpu::BindGroupEntry { binding: 0, resource: self.states_buf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: self.params_buf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: hist.as_entire_binding() },
            ];
            if self.workgroup {
                entries.push(wgpu::BindGroupEntry { binding: 4, resource: self.memory.as_entire_binding() });
            } else {
                entries.push(wgpu::BindGroupEntry { binding: 7, resource: draws_buf.as_entire_binding() });
            }
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("toy_step"),
                layout: &layout,
                entries: &entries,
            })
        };
        let (full, rest) = (steps / self.chunk, steps % self.chunk);
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("toy steps") });
        let pass_desc = wgpu::ComputePassDescriptor { label: Some("toy_step"), timestamp_writes: None };
        if let (Some((lw, epoch)), Some(eval_pipe)) = (lw.as_mut(), &self.eval_pipe) {
            let eval = Dispatch::with_bindings(
                gpu,
                eval_pipe,
                &[(0, &self.states_buf), (5, &self.eval_losses), (6, &self.eval_gram)],
                &[(2, bytemuck::bytes_of(&uni(1)))],
                (1, 1),
            );
            let one = bind(1);
            for k in 0..steps {
                {
                    let mut pass = encoder.begin_compute_pass(&pass_desc);
                    eval.record(&mut pass);
                    lw.weights(gpu, &self.eval_losses, &self.eval_gram, *epoch + u64::from(k)).record(&mut pass);
                }
                encoder.copy_buffer_to_buffer(&lw.out, 0, &self.params_buf, LW_OFFSET, 8);
                let mut pass = encoder.begin_compute_pass(&pass_desc);
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &one, &[]);
                pass.dispatch_workgroups(1, 1, 1);
                // FAMO: the losses after the step (the toy's "same batch" is x itself).
                if let Some(after) = lw.after_step(gpu, &self.eval_losses) {
                    eval.record(&mut pass);
                    after.record(&mut pass);
                }
            }
        } else {
            let mut pass = encoder.begin_compute_pass(&pass_desc);
            pass.set_pipeline(pipeline);
            if full > 0 {
                pass.set_bind_group(0, &bind(self.chunk), &[]);
                for _ in 0..full {
                    pass.dispatch_workgroups(1, 1, 1);
                }
            }
            if rest > 0 {
                pass.set_bind_group(0, &bind(rest), &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
        let staging = gpu.buffer(
            "toy history staging",
            (floats.max(1) * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        if floats > 0 {
            encoder.copy_buffer_to_buffer(&hist, 0, &staging, 0, (floats * 4) as u64);
        }
        gpu.queue.submit(Some(encoder.finish()));
        PendingHistory { staging, floats }
    }

    /// The run's state (one readback).
    pub(crate) async fn state(&self, gpu: &Gpu) -> Result<RunState, GpuError> {
        let encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("toy state") });
        let parts = gpu.submit_and_read(encoder, &[(&self.states_buf, STATE_BYTES)]).await?;
        let raw: &[RunState] = bytemuck::cast_slice(&parts[0]);
        raw.first().copied().ok_or_else(|| GpuError::Readback("empty toy state".into()))
    }
}
