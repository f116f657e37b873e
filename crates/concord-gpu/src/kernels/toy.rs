//! Many CAGrad-toy runs advanced together on the GPU (`shaders/toy_trajectory.wgsl`): one
//! invocation per run, `steps` optimizer steps per dispatch, state kept in a storage buffer
//! between dispatches. The CPU twin is `concord_core::run::ToyRun`.

use bytemuck::{Pod, Zeroable};
use concord_core::{Method, OptimizerKind, ProblemKind};

use super::weighting::method_code;
use crate::{Gpu, GpuError};

/// Steps per dispatch on a GPU: long enough to amortise the dispatch, short enough that one
/// dispatch stays far from a browser's GPU watchdog.
pub const STEPS_PER_DISPATCH: u32 = 1000;
/// Steps per dispatch on a CPU adapter (lavapipe/llvmpipe, SwiftShader). llvmpipe stops all
/// loops of an invocation after 65 535 loop iterations in total; a step costs up to a few
/// hundred (CAGrad's solver iterations × its small loops), so 16 steps stay well inside that.
/// Dispatches are cheap there; the kernel's sentinel catches any step that is still cut.
pub const STEPS_PER_DISPATCH_CPU: u32 = 16;
const WORKGROUP: u32 = 64;

/// One toy run: start point, method, optimizer (with its learning rate) and the seed of
/// methods that draw random numbers (PCGrad's visiting order).
#[derive(Clone, Debug, PartialEq)]
pub struct ToyRunSpec {
    pub start: [f64; 2],
    pub method: Method,
    pub optimizer: OptimizerKind,
    pub seed: u32,
}

/// What `ToyBatch::states` reports per run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyRunState {
    pub position: [f32; 2],
    /// Optimizer steps taken by this run (stops growing once the run stopped).
    pub steps: u32,
    /// The run hit a non-finite position and stopped at its last finite point.
    pub stopped: bool,
    /// Dispatches in which the adapter's loop limit cut this run short (the cut step is
    /// discarded, so `steps` is behind by that much). 0 unless the adapter has such a limit.
    pub cut_short: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct RunParams {
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
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct RunState {
    x: [f32; 2],
    x_comp: [f32; 2],
    m: [f32; 2],
    v: [f32; 2],
    q1: f32,
    q2: f32,
    t: u32,
    calls: u32,
    status: u32,
    cut_short: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ToyUniform {
    n_runs: u32,
    steps: u32,
    scale: f32,
    /// Always 2: the trip count of the per-step sentinel (see toy_trajectory.wgsl).
    sentinel_trips: u32,
}

const STATE_BYTES: u64 = std::mem::size_of::<RunState>() as u64;

/// Many toy runs, advanced together on the GPU.
pub struct ToyBatch {
    problem: ProblemKind,
    n_runs: u32,
    params: Vec<RunParams>,
    params_buf: wgpu::Buffer,
    states_buf: wgpu::Buffer,
    /// Uniform with `steps = STEPS_PER_DISPATCH` (full chunks) and one for the remainder.
    uniform_full: wgpu::Buffer,
    uniform_rest: wgpu::Buffer,
    bind_full: wgpu::BindGroup,
    bind_rest: wgpu::BindGroup,
    chunk: u32,
    steps_done: u64,
}

fn run_params(spec: &ToyRunSpec) -> Result<RunParams, GpuError> {
    let (method, c) = method_code(&spec.method)?;
    let mut p = RunParams {
        method,
        optimizer: 0,
        seed: spec.seed,
        c,
        lr: 0.0,
        beta1: 0.0,
        beta2: 0.0,
        one_minus_beta1: 0.0,
        one_minus_beta2: 0.0,
        eps: 0.0,
        momentum: 0.0,
        _pad: 0,
    };
    #[allow(unreachable_patterns)]
    match spec.optimizer {
        OptimizerKind::Adam { lr, beta1, beta2, eps } => {
            p.optimizer = 0;
            p.lr = lr as f32;
            p.beta1 = beta1 as f32;
            p.beta2 = beta2 as f32;
            p.one_minus_beta1 = (1.0 - beta1) as f32;
            p.one_minus_beta2 = (1.0 - beta2) as f32;
            p.eps = eps as f32;
        }
        OptimizerKind::Sgd { lr, momentum } => {
            p.optimizer = 1;
            p.lr = lr as f32;
            p.momentum = momentum as f32;
        }
        ref other => {
            return Err(GpuError::Unsupported(format!("no GPU optimizer '{}'", other.name())));
        }
    }
    Ok(p)
}

fn initial_state(start: [f64; 2]) -> RunState {
    let hi = [start[0] as f32, start[1] as f32];
    // Kahan compensation c with true x = hi − c, so the f64 start is carried exactly-ish.
    let comp = [(f64::from(hi[0]) - start[0]) as f32, (f64::from(hi[1]) - start[1]) as f32];
    RunState { x: hi, x_comp: comp, m: [0.0; 2], v: [0.0; 2], q1: 0.0, q2: 0.0, t: 0, calls: 0, status: 0, cut_short: 0, _pad: [0; 2] }
}

impl ToyBatch {
    /// Upload the runs. Fails with `Unsupported` for a method or optimizer without a GPU twin.
    pub fn new(gpu: &Gpu, problem: ProblemKind, runs: &[ToyRunSpec]) -> Result<ToyBatch, GpuError> {
        gpu.check()?;
        let params = runs.iter().map(run_params).collect::<Result<Vec<_>, _>>()?;
        let states: Vec<RunState> = runs.iter().map(|r| initial_state(r.start)).collect();
        let n_runs = u32::try_from(runs.len())
            .map_err(|_| GpuError::Unsupported(format!("{} toy runs", runs.len())))?;
        gpu.check_binding_size("toy states", STATE_BYTES * u64::from(n_runs))?;
        // Empty batches still get (unused) non-empty buffers.
        let pad_params = [run_params(&ToyRunSpec {
            start: [0.0; 2],
            method: Method::Mean,
            optimizer: OptimizerKind::adam(1e-3),
            seed: 0,
        })?];
        let pad_state = [initial_state([0.0; 2])];
        let params_bytes: &[u8] = if params.is_empty() { bytemuck::cast_slice(&pad_params) } else { bytemuck::cast_slice(&params) };
        let states_bytes: &[u8] = if states.is_empty() { bytemuck::cast_slice(&pad_state) } else { bytemuck::cast_slice(&states) };
        let params_buf = gpu.storage_init("toy run params", params_bytes, wgpu::BufferUsages::COPY_DST);
        let states_buf = gpu.storage_init(
            "toy run states",
            states_bytes,
            wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        );
        let scale = problem.toy().scale as f32;
        let uni = |steps| ToyUniform { n_runs, steps, scale, sentinel_trips: 2 };
        let chunk = if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
            STEPS_PER_DISPATCH_CPU
        } else {
            STEPS_PER_DISPATCH
        };
        let uniform_full = gpu.uniform_init("toy steps (full)", bytemuck::bytes_of(&uni(chunk)));
        let uniform_rest = gpu.uniform_init("toy steps (rest)", bytemuck::bytes_of(&uni(0)));
        let pipeline = gpu.pipeline(&gpu.pipelines.toy_step, "toy_trajectory.wgsl", "toy_step");
        let layout = pipeline.get_bind_group_layout(0);
        let bind = |uniform: &wgpu::Buffer| {
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("toy_step"),
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: states_buf.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: params_buf.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
                ],
            })
        };
        let bind_full = bind(&uniform_full);
        let bind_rest = bind(&uniform_rest);
        Ok(ToyBatch {
            problem,
            n_runs,
            params,
            params_buf,
            states_buf,
            uniform_full,
            uniform_rest,
            bind_full,
            bind_rest,
            chunk,
            steps_done: 0,
        })
    }

    pub fn problem(&self) -> ProblemKind {
        self.problem
    }

    pub fn len(&self) -> usize {
        self.n_runs as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n_runs == 0
    }

    /// Encode `steps` steps of every run into one submission (dispatches of at most
    /// `STEPS_PER_DISPATCH` steps each, `STEPS_PER_DISPATCH_CPU` on a CPU adapter). Nothing is read back; errors surface at the next
    /// readback (or `Gpu::check`).
    pub fn advance(&mut self, gpu: &Gpu, steps: u32) {
        if steps == 0 {
            return;
        }
        self.steps_done += u64::from(steps);
        if self.n_runs == 0 {
            return;
        }
        let full = steps / self.chunk;
        let rest = steps % self.chunk;
        if rest > 0 {
            let scale = self.problem.toy().scale as f32;
            let uni = ToyUniform { n_runs: self.n_runs, steps: rest, scale, sentinel_trips: 2 };
            gpu.queue.write_buffer(&self.uniform_rest, 0, bytemuck::bytes_of(&uni));
        }
        let pipeline = gpu.pipeline(&gpu.pipelines.toy_step, "toy_trajectory.wgsl", "toy_step");
        let groups = self.n_runs.div_ceil(WORKGROUP);
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("toy advance") });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("toy_step"), timestamp_writes: None });
            pass.set_pipeline(pipeline);
            for _ in 0..full {
                pass.set_bind_group(0, &self.bind_full, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
            if rest > 0 {
                pass.set_bind_group(0, &self.bind_rest, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
        }
        gpu.queue.submit(Some(encoder.finish()));
    }

    /// Steps per dispatch (default: `STEPS_PER_DISPATCH`, or `STEPS_PER_DISPATCH_CPU` on a CPU
    /// adapter). For tests and benchmarks; at least 1.
    #[doc(hidden)]
    pub fn set_steps_per_dispatch(&mut self, gpu: &Gpu, steps: u32) {
        self.chunk = steps.max(1);
        let scale = self.problem.toy().scale as f32;
        let uni = ToyUniform { n_runs: self.n_runs, steps: self.chunk, scale, sentinel_trips: 2 };
        gpu.queue.write_buffer(&self.uniform_full, 0, bytemuck::bytes_of(&uni));
    }

    /// Read every run's state back (async; one map).
    pub async fn states(&self, gpu: &Gpu) -> Result<Vec<ToyRunState>, GpuError> {
        if self.n_runs == 0 {
            return Ok(Vec::new());
        }
        let bytes = STATE_BYTES * u64::from(self.n_runs);
        let encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("toy readback") });
        let mut parts = gpu.submit_and_read(encoder, &[(&self.states_buf, bytes)]).await?;
        let raw: &[RunState] = bytemuck::cast_slice(&parts[0]);
        let out = raw
            .iter()
            .map(|s| ToyRunState { position: s.x, steps: s.t, stopped: s.status != 0, cut_short: s.cut_short })
            .collect();
        parts.clear();
        Ok(out)
    }

    /// Every run's current position (async readback).
    pub async fn positions(&self, gpu: &Gpu) -> Result<Vec<[f32; 2]>, GpuError> {
        Ok(self.states(gpu).await?.into_iter().map(|s| s.position).collect())
    }

    /// Steps requested so far through `advance` (a stopped run has taken fewer; see `states`).
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// Set every run's learning rate; Adam's moments and step counts are kept.
    pub fn set_lr(&mut self, gpu: &Gpu, lr: f64) {
        for p in &mut self.params {
            p.lr = lr as f32;
        }
        if !self.params.is_empty() {
            gpu.queue.write_buffer(&self.params_buf, 0, bytemuck::cast_slice(&self.params));
        }
    }
}
