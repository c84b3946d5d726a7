//! The wgpu device, created once per process and shared by every job.
//!
//! wgpu's default error handler panics, which would take the JVM down with it: the
//! context installs `on_uncaptured_error` (log, never panic) and every fallible step
//! runs inside an error scope whose error becomes a [`GpuError`]. Compiled pipelines are
//! cached by kernel name, so a preview that re-runs a method pays for compilation once.

use crate::error::GpuError;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wgpu::util::DeviceExt;

/// Shader source shared by every kernel (border rules), prepended at compilation.
pub const COMMON_WGSL: &str = include_str!("methods/common.wgsl");

/// A compiled compute kernel family: one module, one layout, a pipeline per entry point.
#[derive(Debug)]
pub struct Kernel {
    /// The explicit bind-group layout shared by the entry points.
    pub layout: wgpu::BindGroupLayout,
    /// Pipelines by entry-point name.
    pub pipelines: HashMap<&'static str, wgpu::ComputePipeline>,
}

/// The binding types a kernel declares, in binding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// `var<storage, read>`.
    ReadOnly,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`.
    Uniform,
    /// `var<uniform>` read from a buffer of records, one chosen per dispatch by its offset
    /// ([`GpuContext::bind_records`], [`dispatch_at`]): per-dispatch parameters without a
    /// buffer and bind group each.
    Records,
}

/// An adapter and device ready for compute.
#[derive(Debug)]
pub struct GpuContext {
    /// The adapter's description (name, backend, device type).
    pub info: wgpu::AdapterInfo,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Limits granted to the device.
    pub limits: wgpu::Limits,
    kernels: Mutex<HashMap<&'static str, Arc<Kernel>>>,
    pool: Mutex<Vec<wgpu::Buffer>>,
    created: std::sync::atomic::AtomicU64,
    lost: Arc<AtomicBool>,
}

/// Idle buffers kept for reuse at most this many bytes in all: enough for every buffer of
/// a 2048 x 2048 preview of any method (Richardson-Lucy with TV holds 8 image-sized
/// buffers), small next to a GPU's memory.
const POOL_BYTES: u64 = 512 << 20;

/// Host copies at least this large are split across the cores, in chunks of this size.
const PARALLEL_COPY_BYTES: usize = 1 << 20;

/// Copies `src` into the write-only mapping `dst` (of the same length) in parallel chunks.
fn copy_in_parallel(dst: wgpu::WriteOnly<'_, [u8]>, src: &[u8]) {
    // Whole chunks are sized, so sendable to other threads; the unsized rest is not.
    let (chunks, mut rest) = dst.into_chunks::<PARALLEL_COPY_BYTES>();
    let chunks: Vec<wgpu::WriteOnly<'_, [u8; PARALLEL_COPY_BYTES]>> = chunks.into_iter().collect();
    let (head, tail) = src.split_at(chunks.len() * PARALLEL_COPY_BYTES);
    chunks
        .into_par_iter()
        .zip(head.par_chunks(PARALLEL_COPY_BYTES))
        .for_each(|(d, s)| wgpu::WriteOnly::<'_, [u8]>::from(d).copy_from_slice(s));
    rest.copy_from_slice(tail);
}

/// A storage or staging buffer borrowed from the context's pool; it goes back to the pool
/// when dropped, so that a preview re-run on an image of the same size allocates nothing.
#[derive(Debug)]
pub struct Pooled<'a> {
    ctx: &'a GpuContext,
    buffer: Option<wgpu::Buffer>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        // Invariant: `buffer` is only taken in `drop`.
        self.buffer.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Pooled<'_> {
    /// Destroys the buffer instead of returning it to the pool: after a failed map it may
    /// still be mapped, or have a map pending, and would fail every later job that took it.
    fn discard(mut self) {
        if let Some(b) = self.buffer.take() {
            b.destroy();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut pool)) = (self.buffer.take(), self.ctx.pool.lock()) {
            pool.push(b);
            // Oldest first out, until the idle buffers fit the cap.
            let mut total: u64 = pool.iter().map(wgpu::Buffer::size).sum();
            while total > POOL_BYTES && !pool.is_empty() {
                total -= pool.remove(0).size();
            }
        }
    }
}

static SHARED: OnceLock<Result<GpuContext, GpuError>> = OnceLock::new();
/// The process that created [`SHARED`]. A process forked from it (Python's
/// `multiprocessing` on Linux) inherits the device but not the driver's threads: a
/// dispatch there waited for ever.
static CREATED_IN: OnceLock<u32> = OnceLock::new();

/// For tests, the crate's and its test binaries': the shared context, or `None` (the test
/// then skips) when there is no adapter; with `DENOISEKIT_REQUIRE_GPU` set (CI sets it) a
/// missing adapter fails the test instead.
#[doc(hidden)]
pub fn test_context() -> Option<&'static GpuContext> {
    match shared() {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os("DENOISEKIT_REQUIRE_GPU").is_some() => {
            panic!("DENOISEKIT_REQUIRE_GPU is set but no GPU is usable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}

/// The process-wide context, created on first use. `Err` (logged once) when there is no
/// usable adapter, or after the device was lost; callers then run on the CPU.
pub fn shared() -> Result<&'static GpuContext, GpuError> {
    if CREATED_IN.get().is_some_and(|&p| p != std::process::id()) {
        return Err(GpuError::Device(
            "this process was forked from one that had opened the GPU, and a forked \
             process cannot use it: start worker processes with the spawn method (Python: \
             multiprocessing.set_start_method('spawn')), or use the GPU only in the workers"
                .into(),
        ));
    }
    let ctx = SHARED
        .get_or_init(|| {
            let r = GpuContext::new();
            match &r {
                Ok(c) => {
                    CREATED_IN.get_or_init(std::process::id);
                    log::info!("DenoiseKit GPU: {}", c.describe());
                }
                Err(e) => log::info!("DenoiseKit: no usable GPU ({e}); running on the CPU"),
            }
            r
        })
        .as_ref()
        .map_err(Clone::clone)?;
    if ctx.lost.load(Ordering::Relaxed) {
        return Err(GpuError::Device(
            "the GPU device was lost (driver reset or removal); restart to use it again".into(),
        ));
    }
    Ok(ctx)
}

impl GpuContext {
    /// Requests the highest-performance adapter among Vulkan, Metal and DX12 (or the
    /// backends in `WGPU_BACKEND`) and a device with the adapter's own buffer limits.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] or [`GpuError::Device`].
    pub fn new() -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends =
            (wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12).with_env();
        desc.flags = wgpu::InstanceFlags::from_env_or_default();
        // Instance::new panics when no backend is compiled for the platform; the features
        // above always compile at least one on Linux, macOS and Windows, but a panic
        // elsewhere must not escape.
        let instance =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wgpu::Instance::new(desc)))
                .map_err(|_| GpuError::NoAdapter("no wgpu backend for this platform".into()))?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let a = adapter.limits();
        let required = wgpu::Limits {
            max_storage_buffer_binding_size: a.max_storage_buffer_binding_size,
            max_buffer_size: a.max_buffer_size,
            ..wgpu::Limits::downlevel_defaults()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("denoisekit"),
            required_features: wgpu::Features::empty(),
            required_limits: required.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            log::error!("DenoiseKit GPU error outside a scope: {e}");
        }));
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            flag.store(true, Ordering::Relaxed);
            log::error!(
                "DenoiseKit GPU device lost ({reason:?}): {msg}; using the CPU from now on"
            );
        });
        Ok(Self {
            info,
            device,
            queue,
            limits: required,
            kernels: Mutex::new(HashMap::new()),
            pool: Mutex::new(Vec::new()),
            created: std::sync::atomic::AtomicU64::new(0),
            lost,
        })
    }

    /// Whether the adapter is a software rasteriser (e.g. Mesa's lavapipe), which
    /// `Backend::Auto` does not prefer over the native CPU path.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// "NVIDIA H100 (Vulkan, discrete GPU)".
    pub fn describe(&self) -> String {
        let kind = match self.info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "software renderer",
            wgpu::DeviceType::Other => "other",
        };
        format!("{} ({:?}, {kind})", self.info.name, self.info.backend)
    }

    /// The kernel `name`, compiled from `wgsl` on first use and cached.
    ///
    /// # Errors
    /// [`GpuError::Validation`] if the shader or a pipeline does not compile.
    pub fn kernel(
        &self,
        name: &'static str,
        wgsl: &str,
        bindings: &[Binding],
        entry_points: &[&'static str],
    ) -> Result<Arc<Kernel>, GpuError> {
        let mut cache = self.kernels.lock().map_err(|_| GpuError::Poisoned)?;
        if let Some(k) = cache.get(name) {
            return Ok(k.clone());
        }
        let k = Arc::new(self.scoped(|| {
            let source = [COMMON_WGSL, wgsl].concat();
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            let entries: Vec<_> = bindings
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    count: None,
                    ty: wgpu::BindingType::Buffer {
                        ty: match b {
                            Binding::ReadOnly => {
                                wgpu::BufferBindingType::Storage { read_only: true }
                            }
                            Binding::ReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                            Binding::Uniform | Binding::Records => wgpu::BufferBindingType::Uniform,
                        },
                        has_dynamic_offset: *b == Binding::Records,
                        min_binding_size: None,
                    },
                })
                .collect();
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(name),
                    entries: &entries,
                });
            let pl = self
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(name),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
            let pipelines = entry_points
                .iter()
                .map(|ep| {
                    let p = self
                        .device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(ep),
                            layout: Some(&pl),
                            module: &module,
                            entry_point: Some(ep),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                    (*ep, p)
                })
                .collect();
            Kernel { layout, pipelines }
        })?);
        cache.insert(name, k.clone());
        Ok(k)
    }

    /// Runs `f` inside validation and out-of-memory error scopes.
    ///
    /// # Errors
    /// The first error either scope caught.
    pub fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(GpuError::OutOfMemory(e.to_string()));
        }
        if let Some(e) = v {
            return Err(GpuError::Validation(e.to_string()));
        }
        Ok(out)
    }

    /// A uniform buffer holding `bytes`.
    pub fn uniform(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A bind group for `kernel` with `buffers` at bindings 0, 1, 2, … in order.
    pub fn bind(&self, kernel: &Kernel, label: &str, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<_> = buffers.iter().map(|b| b.as_entire_binding()).collect();
        self.bind_resources(kernel, label, entries)
    }

    /// A bind group like [`bind`](Self::bind) followed by `records`, a
    /// [`Binding::Records`] buffer bound `record` bytes at a time.
    pub fn bind_records(
        &self,
        kernel: &Kernel,
        label: &str,
        buffers: &[&wgpu::Buffer],
        (records, record): (&wgpu::Buffer, u64),
    ) -> wgpu::BindGroup {
        let mut entries: Vec<_> = buffers.iter().map(|b| b.as_entire_binding()).collect();
        entries.push(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: records,
            offset: 0,
            size: std::num::NonZeroU64::new(record),
        }));
        self.bind_resources(kernel, label, entries)
    }

    fn bind_resources(
        &self,
        kernel: &Kernel,
        label: &str,
        resources: Vec<wgpu::BindingResource<'_>>,
    ) -> wgpu::BindGroup {
        let entries: Vec<_> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// The stride of records of `size` bytes in a [`Binding::Records`] buffer: the
    /// device's alignment of uniform offsets.
    pub fn record_stride(&self, size: usize) -> u64 {
        (size as u64).next_multiple_of(u64::from(self.limits.min_uniform_buffer_offset_alignment))
    }

    /// A buffer of `size` bytes with `usage`, from the pool when one of that size and
    /// usage is idle. Its contents are whatever the last user left.
    fn take(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Pooled<'_> {
        let reused = self.pool.lock().ok().and_then(|mut pool| {
            let i = pool
                .iter()
                .position(|b| b.size() == size && b.usage() == usage)?;
            Some(pool.swap_remove(i))
        });
        let buffer = reused.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        });
        Pooled {
            ctx: self,
            buffer: Some(buffer),
        }
    }

    /// The most bytes one storage buffer may hold on this device: its binding and buffer
    /// limits, and `max` when given (tests lower it to force tiling).
    pub fn buffer_limit(&self, max: Option<u64>) -> u64 {
        max.unwrap_or(u64::MAX)
            .min(self.limits.max_storage_buffer_binding_size)
            .min(self.limits.max_buffer_size)
    }

    /// Storage and staging buffers created so far (not counting reuses from the pool).
    pub fn buffers_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// A storage buffer holding `data` (pooled; the copy is queued before any later
    /// submission).
    pub fn upload(&self, label: &str, data: &[f32]) -> Pooled<'_> {
        let b = self.storage(label, data.len());
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.len() < PARALLEL_COPY_BYTES || !self.upload_staged(&b, bytes) {
            self.queue.write_buffer(&b, 0, bytes);
        }
        b
    }

    /// Copies `bytes` into `dst` through a pooled staging buffer filled by every core, and
    /// says whether it did. `queue.write_buffer` would allocate a fresh staging buffer and
    /// fill it on one core: for a 2048 x 2048 image those two steps were much of a fast
    /// method's time. The attempt runs in error scopes of its own, so that a failure here
    /// reaches the caller only through the queue's copy that replaces it.
    fn upload_staged(&self, dst: &wgpu::Buffer, bytes: &[u8]) -> bool {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let size = bytes.len() as u64;
        let staging = self.take(
            "upload staging",
            size,
            wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
        );
        let slice = staging.slice(..);
        let filled = self.map(slice, wgpu::MapMode::Write, None).and_then(|()| {
            let mut view = slice
                .get_mapped_range_mut()
                .map_err(|e| GpuError::Map(e.to_string()))?;
            copy_in_parallel(view.slice(..), bytes);
            Ok(())
        });
        let failed_scopes =
            pollster::block_on(val.pop()).is_some() | pollster::block_on(oom.pop()).is_some();
        if filled.is_err() || failed_scopes {
            staging.discard();
            return false;
        }
        staging.unmap();
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&staging, 0, dst, 0, size);
        self.queue.submit([enc.finish()]);
        true
    }

    /// Maps `slice` for `mode`, waiting for the GPU: until submission `idx` is done, or,
    /// when none is given, until the buffer is free (at once for an idle staging buffer;
    /// only if it is still in use, until all submitted work is done).
    fn map(
        &self,
        slice: wgpu::BufferSlice<'_>,
        mode: wgpu::MapMode,
        idx: Option<wgpu::SubmissionIndex>,
    ) -> Result<(), GpuError> {
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(mode, move |r| {
            let _ = tx.send(r);
        });
        let wait = |submission_index| {
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index,
                    timeout: None,
                })
                .map(|_| ())
                .map_err(|e| GpuError::Map(e.to_string()))
        };
        let done = match idx {
            Some(i) => {
                wait(Some(i))?;
                rx.recv()
            }
            None => {
                // Without blocking on other jobs' work (a preview beside a batch job).
                self.device
                    .poll(wgpu::PollType::Poll)
                    .map_err(|e| GpuError::Map(e.to_string()))?;
                match rx.try_recv() {
                    Ok(r) => Ok(r),
                    Err(_) => {
                        wait(None)?;
                        rx.recv()
                    }
                }
            }
        };
        done.map_err(|e| GpuError::Map(e.to_string()))?
            .map_err(|e| GpuError::Map(e.to_string()))
    }

    /// A storage buffer of `len` floats (pooled: its contents are undefined) that can be
    /// copied to and from.
    pub fn storage(&self, label: &str, len: usize) -> Pooled<'_> {
        self.take(
            label,
            (len.max(1) * 4) as u64,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Copies `len` floats of `buf` back to the host, waiting for the GPU.
    ///
    /// # Errors
    /// [`GpuError::Map`] if the buffer cannot be mapped or the device is lost.
    pub fn read_back(&self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        self.read_back_at(buf, 0, len)
    }

    /// Copies the `len` floats of `buf` that start `offset` floats in back to the host,
    /// waiting for the GPU. `offset + len` must not pass the buffer's end (wgpu refuses
    /// the copy).
    ///
    /// # Errors
    /// [`GpuError::Map`] if the buffer cannot be mapped or the device is lost.
    pub fn read_back_at(
        &self,
        buf: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let size = (len * 4) as u64;
        debug_assert!(
            (offset * 4) as u64 + size <= buf.size(),
            "read past the buffer"
        );
        let staging = self.take(
            "staging",
            size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, (offset * 4) as u64, &staging, 0, size);
        let idx = self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let copied = self
            .map(slice, wgpu::MapMode::Read, Some(idx))
            .and_then(|()| {
                let view = slice
                    .get_mapped_range()
                    .map_err(|e| GpuError::Map(e.to_string()))?;
                let src = bytemuck::cast_slice::<u8, f32>(&view);
                // Zeroed memory comes from the OS untouched, so its pages are first written,
                // and faulted in, by the parallel copy rather than by one core.
                let mut out = vec![0.0f32; len];
                let chunk = PARALLEL_COPY_BYTES / 4;
                out.par_chunks_mut(chunk)
                    .zip(src.par_chunks(chunk))
                    .for_each(|(d, s)| d.copy_from_slice(s));
                Ok(out)
            });
        match copied {
            Ok(out) => {
                staging.unmap();
                Ok(out)
            }
            Err(e) => {
                staging.discard();
                Err(e)
            }
        }
    }
}

/// Records one dispatch of `kernel`'s entry point `entry` with `bind_group`.
pub fn dispatch(
    enc: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    entry: &str,
    bind_group: &wgpu::BindGroup,
    workgroups: (u32, u32, u32),
) {
    dispatch_at(enc, kernel, entry, (bind_group, None), workgroups);
}

/// [`dispatch`] with the bind group's [`Binding::Records`] buffer read at byte `offset`
/// (a multiple of [`GpuContext::record_stride`]), when given.
pub fn dispatch_at(
    enc: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    entry: &str,
    (bind_group, offset): (&wgpu::BindGroup, Option<u32>),
    workgroups: (u32, u32, u32),
) {
    let mut pass = enc.begin_compute_pass(&Default::default());
    // Invariant: callers name entry points compiled with the kernel.
    pass.set_pipeline(&kernel.pipelines[entry]);
    pass.set_bind_group(0, bind_group, offset.as_slice());
    let x = if fault::due() { u32::MAX } else { workgroups.0 };
    pass.dispatch_workgroups(x, workgroups.1, workgroups.2);
}

/// Hooks that make the device fail on purpose, for tests that prove a failure in the
/// middle of a job is reported, or re-run on the CPU, and never returns a partial image
/// (`tests/gpu_faults.rs`). Not for production use.
#[doc(hidden)]
pub mod fault {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    static DISPATCHES: AtomicU64 = AtomicU64::new(0);
    static FAIL_AT: AtomicU64 = AtomicU64::new(u64::MAX);
    static SOFTWARE_AS_HARDWARE: AtomicBool = AtomicBool::new(false);

    /// Dispatches recorded so far in this process.
    pub fn dispatches() -> u64 {
        DISPATCHES.load(Ordering::SeqCst)
    }

    /// Makes the dispatch after the next `n` invalid (a workgroup count beyond every
    /// device's limit), so that wgpu reports a validation error as a driver fault would.
    pub fn fail_after(n: u64) {
        FAIL_AT.store(dispatches() + n, Ordering::SeqCst);
    }

    /// Cancels a pending [`fail_after`].
    pub fn clear() {
        FAIL_AT.store(u64::MAX, Ordering::SeqCst);
    }

    /// Lets `Backend::Auto` use a software adapter, so that its fallback path can be
    /// tested on lavapipe.
    pub fn treat_software_as_hardware(on: bool) {
        SOFTWARE_AS_HARDWARE.store(on, Ordering::SeqCst);
    }

    pub(crate) fn software_as_hardware() -> bool {
        SOFTWARE_AS_HARDWARE.load(Ordering::Relaxed)
    }

    pub(crate) fn due() -> bool {
        let k = DISPATCHES.fetch_add(1, Ordering::SeqCst);
        k == FAIL_AT.load(Ordering::SeqCst)
    }
}

/// Workgroups needed to cover `n` items with groups of `size`.
pub fn groups(n: usize, size: u32) -> u32 {
    (n as u64).div_ceil(size as u64).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::groups;

    #[test]
    fn group_counts_round_up() {
        assert_eq!(groups(0, 16), 0);
        assert_eq!(groups(1, 16), 1);
        assert_eq!(groups(16, 16), 1);
        assert_eq!(groups(17, 16), 2);
        assert_eq!(groups(1000, 16), 63);
    }

    /// The staged upload itself succeeds (its failure would pass unseen: the queue's copy
    /// replaces it), and what it copies arrives.
    #[test]
    fn large_uploads_take_the_staged_path() {
        let Some(ctx) = super::test_context() else {
            return;
        };
        let data: Vec<f32> = (0..(1 << 19) + 7).map(|i| i as f32).collect();
        let back = ctx
            .scoped(|| {
                let b = ctx.storage("staged", data.len());
                assert!(ctx.upload_staged(&b, bytemuck::cast_slice(&data)));
                ctx.read_back(&b, data.len())
            })
            .unwrap()
            .unwrap();
        assert!(back == data);
    }
}
