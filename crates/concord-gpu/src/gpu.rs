//! The device: adapter selection (native: from the environment; browser: WebGPU only), the
//! error plumbing that turns wgpu's uncaptured errors and device loss into [`GpuError`]s, the
//! lazily built compute pipelines, and the async readback shared by every kernel.

use std::sync::{Arc, Mutex, OnceLock};

use crate::shaders;

/// Everything that can go wrong on the GPU path. None of these panic; the caller decides
/// whether to fall back to the CPU (concord-core).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The browser has no WebGPU (`navigator.gpu` missing, or `requestAdapter()` gave nothing).
    #[error("WebGPU is not available: {0}")]
    NoWebGpu(String),
    /// No adapter matched (native), or the browser returned none.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// Device creation failed, the device was lost, or a command raised a validation error.
    #[error("GPU device error: {0}")]
    Device(String),
    /// Mapping a result buffer back to the CPU failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// The request is outside what the kernels or the device support (sizes, methods).
    #[error("unsupported on the GPU: {0}")]
    Unsupported(String),
}

/// The first error wgpu reported outside an await point (validation, out of memory, device lost).
#[derive(Clone, Default)]
pub(crate) struct ErrorSink(Arc<Mutex<Option<String>>>);

impl ErrorSink {
    fn record(&self, msg: String) {
        if let Ok(mut slot) = self.0.lock() {
            if slot.is_none() {
                *slot = Some(msg);
            }
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// Compute pipelines, built on first use.
#[derive(Default)]
pub(crate) struct Pipelines {
    pub gram_partials: OnceLock<wgpu::ComputePipeline>,
    pub gram_reduce: OnceLock<wgpu::ComputePipeline>,
    pub combine: OnceLock<wgpu::ComputePipeline>,
    pub weighting: OnceLock<wgpu::ComputePipeline>,
    pub toy_step: OnceLock<wgpu::ComputePipeline>,
    pub toy_step_workgroup: OnceLock<wgpu::ComputePipeline>,
    pub moe: crate::kernels::moe::MoePipelines,
    pub copy: OnceLock<wgpu::ComputePipeline>,
    pub metrics: OnceLock<wgpu::ComputePipeline>,
    modules: Mutex<Vec<(&'static str, wgpu::ShaderModule)>>,
    /// Every (file, entry) pipeline built so far: each trainer, toy and test on this device asks
    /// for the same few dozen, and compiling one is the slow part of a first step (SwiftShader
    /// and lavapipe compile each to machine code).
    built: Mutex<Vec<((&'static str, &'static str), wgpu::ComputePipeline)>>,
}

/// A WebGPU/Vulkan device ready for Concord's kernels.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    label: String,
    errors: ErrorSink,
    pub(crate) pipelines: Pipelines,
}

impl Gpu {
    /// Open a device.
    ///
    /// Natively the instance comes from the environment (`WGPU_BACKEND`, …); `WGPU_ADAPTER_NAME`
    /// picks the adapter whose name contains it (case-insensitive), otherwise the default
    /// adapter is requested (`WGPU_POWER_PREF` honoured). In the browser only WebGPU is used —
    /// never WebGL, which has no compute shaders; a missing `navigator.gpu` or adapter is
    /// [`GpuError::NoWebGpu`].
    pub async fn new() -> Result<Gpu, GpuError> {
        let adapter = request_adapter().await?;
        let info = adapter.get_info();
        let adapter_limits = adapter.limits();
        // WebGPU-compatible defaults (16 KiB workgroup memory, 256 invocations, 4 storage
        // buffers per stage), but let large Jacobians use whatever the adapter allows.
        let mut limits = wgpu::Limits::downlevel_defaults();
        limits.max_storage_buffer_binding_size = adapter_limits.max_storage_buffer_binding_size;
        limits.max_buffer_size = adapter_limits.max_buffer_size;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("concord-gpu"),
                required_features: wgpu::Features::empty(),
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(format!("request_device on '{}': {e}", info.name)))?;

        let errors = ErrorSink::default();
        {
            let sink = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.record(e.to_string())));
            let sink = errors.clone();
            device.set_device_lost_callback(move |reason, msg| sink.record(format!("device lost ({reason:?}): {msg}")));
        }
        let label = adapter_label_for(&info, &device);
        Ok(Gpu { device, queue, info, label, errors, pipelines: Pipelines::default() })
    }

    /// A human label for the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) · Vulkan", or in
    /// the browser the WebGPU adapter's vendor / architecture.
    pub fn adapter_label(&self) -> String {
        self.label.clone()
    }

    /// The adapter's wgpu description.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Err if wgpu has reported an error (validation, out of memory, device lost) so far.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.errors.get() {
            Some(msg) => Err(GpuError::Device(msg)),
            None => Ok(()),
        }
    }

    /// The assembled module `name` (a file in `shaders/`), compiled once.
    pub(crate) fn module(&self, name: &'static str) -> wgpu::ShaderModule {
        let mut modules = self.pipelines.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, m)) = modules.iter().find(|(n, _)| *n == name) {
            return m.clone();
        }
        let source = shaders::assemble(name).unwrap_or_else(|e| panic!("{e}"));
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        modules.push((name, module.clone()));
        module
    }

    /// The compute pipeline for `entry` in module `file`, cached in `slot`.
    pub(crate) fn pipeline<'a>(
        &self,
        slot: &'a OnceLock<wgpu::ComputePipeline>,
        file: &'static str,
        entry: &'static str,
    ) -> &'a wgpu::ComputePipeline {
        slot.get_or_init(|| self.create_pipeline(file, entry))
    }

    /// The compute pipeline for `entry` in module `file` (layout inferred from the shader), built
    /// once per device and shared: bind groups made from its inferred layouts fit every holder.
    pub(crate) fn create_pipeline(&self, file: &'static str, entry: &'static str) -> wgpu::ComputePipeline {
        let mut built = self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = built.iter().find(|(key, _)| *key == (file, entry)) {
            return p.clone();
        }
        let module = self.module(file);
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        built.push(((file, entry), pipeline.clone()));
        pipeline
    }

    /// A storage buffer holding `data`.
    pub(crate) fn storage_init(&self, label: &str, data: &[u8], extra: wgpu::BufferUsages) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: data,
            usage: wgpu::BufferUsages::STORAGE | extra,
        })
    }

    /// An uninitialised (zeroed) buffer of `size` bytes (at least 16).
    pub(crate) fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(16).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `data`.
    pub(crate) fn uniform_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: data,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Fails with `Unsupported` if one storage binding of `bytes` exceeds the device limits.
    pub(crate) fn check_binding_size(&self, what: &str, bytes: u64) -> Result<(), GpuError> {
        let limits = self.device.limits();
        let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        if bytes > max {
            return Err(GpuError::Unsupported(format!(
                "{what} needs a {bytes}-byte storage buffer; this device allows {max}"
            )));
        }
        Ok(())
    }

    /// Copy the first `bytes` of each `(buffer, bytes)` into one staging buffer, submit
    /// `encoder` and read everything back with a single map. Never blocks in the browser:
    /// the map callback resolves a oneshot that is awaited; natively `device.poll` waits.
    pub(crate) async fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        parts: &[(&wgpu::Buffer, u64)],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let total: u64 = parts.iter().map(|(_, b)| *b).sum();
        let staging =
            self.buffer("concord staging", total, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let mut offset = 0;
        for (buf, bytes) in parts {
            if *bytes > 0 {
                encoder.copy_buffer_to_buffer(buf, 0, &staging, offset, *bytes);
            }
            offset += bytes;
        }
        self.queue.submit(Some(encoder.finish()));
        self.check()?;
        let flat = self.read_mapped(&staging, total).await?;
        let mut out = Vec::with_capacity(parts.len());
        let mut at = 0usize;
        for (_, bytes) in parts {
            let len = (*bytes / 4) as usize;
            out.push(flat[at..at + len].to_vec());
            at += len;
        }
        Ok(out)
    }

    /// Map `staging` (MAP_READ) and copy out its first `bytes` as f32.
    pub(crate) async fn read_mapped(&self, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>, GpuError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        // Map the whole (16-byte padded) staging buffer; use the first `bytes`.
        let slice = staging.slice(..);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Device(format!("poll: {e}")))?;
        #[cfg(target_arch = "wasm32")]
        let _ = self.device.poll(wgpu::PollType::Poll);
        let mapped = rx.await.map_err(|_| GpuError::Readback("the map callback was dropped (device lost?)".into()))?;
        mapped.map_err(|e| {
            let why = self.errors.get().map(|m| format!(" ({m})")).unwrap_or_default();
            GpuError::Readback(format!("{e}{why}"))
        })?;
        let data = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Readback(format!("{e:?}")))?;
            bytemuck::cast_slice::<u8, f32>(&view[..bytes as usize]).to_vec()
        };
        staging.unmap();
        self.check()?;
        Ok(data)
    }
}

#[cfg(not(target_arch = "wasm32"))]
async fn request_adapter() -> Result<wgpu::Adapter, GpuError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lc = wanted.to_lowercase();
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let names: Vec<String> =
            adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend)).collect();
        return adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc)).ok_or_else(|| {
            GpuError::NoAdapter(format!(
                "WGPU_ADAPTER_NAME={wanted} matches none of the adapters found: [{}]",
                names.join(", ")
            ))
        });
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            GpuError::NoAdapter(format!(
                "{e}. On Linux without a GPU install Mesa's lavapipe \
                 (`apt-get install mesa-vulkan-drivers`); WGPU_BACKEND / WGPU_ADAPTER_NAME select one"
            ))
        })
}

#[cfg(target_arch = "wasm32")]
async fn request_adapter() -> Result<wgpu::Adapter, GpuError> {
    if !wgpu::util::is_browser_webgpu_supported().await {
        return Err(GpuError::NoWebGpu(
            "this browser has no navigator.gpu, or its requestAdapter() returned no adapter \
             (WebGPU disabled or unsupported on this system)"
                .into(),
        ));
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    let instance = wgpu::Instance::new(desc);
    instance
        .request_adapter(&wgpu::RequestAdapterOptions::default())
        .await
        .map_err(|e| GpuError::NoWebGpu(format!("requestAdapter() failed: {e}")))
}

fn backend_name(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "Vulkan",
        wgpu::Backend::Metal => "Metal",
        wgpu::Backend::Dx12 => "DirectX 12",
        wgpu::Backend::Gl => "OpenGL",
        wgpu::Backend::BrowserWebGpu => "WebGPU",
        _ => "other",
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn adapter_label_for(info: &wgpu::AdapterInfo, _device: &wgpu::Device) -> String {
    format!("{} · {}", info.name, backend_name(info.backend))
}

#[cfg(target_arch = "wasm32")]
fn adapter_label_for(info: &wgpu::AdapterInfo, device: &wgpu::Device) -> String {
    // GPUDevice.adapterInfo (vendor, architecture) is read reflectively: older browsers lack it,
    // and a missing property must not throw.
    use wasm_bindgen::JsValue;
    let get = |obj: &JsValue, key: &str| js_sys::Reflect::get(obj, &JsValue::from_str(key)).ok();
    let mut parts: Vec<String> = Vec::new();
    if let Some(dev) = device.as_webgpu() {
        let dev: &JsValue = dev.as_ref();
        if let Some(ai) = get(dev, "adapterInfo").filter(|v| v.is_object()) {
            for key in ["vendor", "architecture", "description"] {
                if let Some(s) = get(&ai, key).and_then(|v| v.as_string()).filter(|s| !s.is_empty()) {
                    parts.push(s);
                }
            }
        }
    }
    if parts.is_empty() && !info.name.is_empty() {
        parts.push(info.name.clone());
    }
    if parts.is_empty() {
        parts.push("WebGPU adapter".into());
    }
    if info.device_type == wgpu::DeviceType::Cpu {
        parts.push("(fallback)".into());
    }
    format!("{} · {}", parts.join(" "), backend_name(info.backend))
}
