//! Run-time CPU feature dispatch for the pixel loops.
//!
//! Release builds target baseline x86-64 (SSE2, 4 floats per instruction) so that the
//! library loads on any machine. `simd_dispatch!` compiles a kernel twice, once more
//! with AVX2 (8 floats per instruction), and picks the AVX2 copy when the CPU has it.
//! Both copies come from one body, so they compute the same arithmetic in the same
//! order: no fused multiply-add is enabled, and results are bit-identical across CPUs.
//! `simd_dispatch_lanes!` adds an AVX-512 copy (16 floats) for kernels blocked by their
//! register width, whose bodies sum in the same order at every width.

/// Whether the running CPU supports AVX2 (cached by the standard library).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the running CPU supports AVX-512F (cached by the standard library).
#[inline]
pub fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name(args)` that calls `$body::<LANES>(args)`, an `#[inline(always)]`
/// function generic over the lanes of its widest vectors: 16 floats compiled with
/// AVX-512F, 8 with AVX2, 8 on baseline, dispatched at run time. For kernels that keep
/// whole registers of sums, where the lane count sets the blocking; the body must sum
/// in the same order at every width, so that results stay bit-identical across CPUs.
#[macro_export]
#[doc(hidden)]
macro_rules! simd_dispatch_lanes {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $body:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?;) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body::<16>($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body::<8>($($arg),*)
                }
                if $crate::simd::has_avx512f() {
                    // SAFETY: AVX-512F support was detected at run time on this CPU.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: AVX2 support was detected at run time on this CPU.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body::<8>($($arg),*)
        }
    };
}

/// Defines `fn $name(args)` whose body is compiled for baseline and for AVX2, dispatched
/// at run time. The body must not rely on generic parameters.
#[macro_export]
#[doc(hidden)]
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2() {
                // SAFETY: AVX2 support was detected at run time on this CPU just above.
                return unsafe { avx2($($arg),*) };
            }
            generic($($arg),*)
        }
    };
}

/// Largest scratch buffer (in floats, 16 MiB) a thread keeps between calls.
const MAX_KEPT_SCRATCH: usize = 4 << 20;

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with a per-thread buffer of at least `len` floats, reused across calls so that
/// kernels do not allocate (and zero) their working rows on every band of every call.
/// The buffer's contents are unspecified on entry.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    // Taking the buffer out (rather than borrowing it) keeps a nested call safe: it
    // simply gets a fresh buffer.
    let mut buf = SCRATCH.with(|c| c.take());
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    // Keep ordinary working sets for the next call; give an exceptional one back.
    if buf.len() <= MAX_KEPT_SCRATCH {
        SCRATCH.with(|c| c.set(buf));
    }
    r
}

/// Frees this thread's kept [`with_scratch`] buffer: for measuring what a call allocates
/// from a known start, whichever thread ran earlier work.
pub fn release_scratch() {
    drop(SCRATCH.with(std::cell::Cell::take));
}

/// Sum with eight independent partial sums, so that the loop vectorises (a plain `+=`
/// chain is a serial dependency the compiler may not reorder). Inline into kernels.
#[inline(always)]
pub fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Σ (a − b)², vectorised like [`lane_sum`].
#[inline(always)]
pub fn sum_sq_diff(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>()
        + ra.iter()
            .zip(rb)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
}

/// `y += a · x`, element-wise over the shorter of the two (vectorises as a plain loop).
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}
