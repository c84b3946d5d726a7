//! The JNI boundary of DenoiseKit: the native methods of `org.denoisekit.NativeBridge`.
//!
//! The Java side wraps each `name0` native in a public `name` that loads the library
//! first. Each entry is the same few lines: run the safe body from [`bridge`] inside
//! `with_env` (which catches panics) and resolve errors into a
//! `DenoiseKitException(kind, message)` with [`throw::ThrowDenoiseKitException`]. No
//! method or parameter is named here: everything comes from the core registry.

pub mod bridge;
pub mod throw;

use jni::EnvUnowned;
use jni::objects::{JClass, JFloatArray, JIntArray, JObjectArray, JString};
use jni::sys::{jboolean, jdouble, jint, jlong};
use throw::ThrowDenoiseKitException as Throw;

/// `private static native String version0()`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_version0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> JString<'l> {
    env.with_env(|env| Ok(env.new_string(denoisekit_core::VERSION)?))
        .resolve::<Throw>()
}

/// `private static native String describe0()`: the method registry as JSON.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_describe0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> JString<'l> {
    env.with_env(|env| bridge::describe(env)).resolve::<Throw>()
}

/// Declares a JNI job entry: a native whose first eight arguments are one job (`String
/// method, float[] pixels, int[] dims, String[] keys, String[] values, String[] imageKeys,
/// float[][] imagePixels, int[][] imageDims`), assembled into a [`bridge::JobArgs`] for
/// `body`, followed by the entry's own arguments. The image arrays (all null, or of one
/// length) supply the method's image inputs, such as a PSF.
macro_rules! job_entry {
    (
        $(#[$meta:meta])*
        fn $name:ident($($extra:ident: $ty:ty),*) -> $ret:ident;
        |$env:ident, $args:ident| $body:expr
    ) => {
        $(#[$meta])*
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub extern "system" fn $name<'l>(
            mut env: EnvUnowned<'l>,
            _c: JClass<'l>,
            method: JString<'l>,
            pixels: JFloatArray<'l>,
            dims: JIntArray<'l>,
            keys: JObjectArray<'l, JString<'l>>,
            values: JObjectArray<'l, JString<'l>>,
            image_keys: JObjectArray<'l, JString<'l>>,
            image_pixels: JObjectArray<'l, JFloatArray<'l>>,
            image_dims: JObjectArray<'l, JIntArray<'l>>,
            $($extra: $ty),*
        ) -> $ret<'l> {
            env.with_env(|$env| {
                let images = bridge::Images {
                    keys: &image_keys,
                    pixels: &image_pixels,
                    dims: &image_dims,
                };
                let $args = bridge::JobArgs::new(&method, &pixels, &dims, &keys, &values, images);
                $body
            })
            .resolve::<Throw>()
        }
    };
}

job_entry! {
    /// `private static native float[] denoise0(<job>, String backend, String[] info, long
    /// job)`; `job` is an id for [`Java_org_denoisekit_NativeBridge_cancel0`] and
    /// [`Java_org_denoisekit_NativeBridge_progress0`], or 0.
    fn Java_org_denoisekit_NativeBridge_denoise0(
        backend: JString<'l>,
        info: JObjectArray<'l, JString<'l>>,
        job: jlong
    ) -> JFloatArray;
    |env, args| bridge::denoise(env, &args, &backend, &info, job)
}

job_entry! {
    /// `private static native String resolve0(<job>)`: every parameter with defaults filled in.
    fn Java_org_denoisekit_NativeBridge_resolve0() -> JString;
    |env, args| bridge::resolve(env, &args)
}

job_entry! {
    /// `private static native String tune0(<job>, long job)`: the options after
    /// self-supervised tuning (`job` as for `denoise0`).
    fn Java_org_denoisekit_NativeBridge_tune0(job: jlong) -> JString;
    |env, args| bridge::tune(env, &args, job)
}

/// `private static native String rank0(float[] pixels, int[] dims, String methods, long job)`:
/// the denoisers tuned and ranked by one self-supervised loss, best first.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_rank0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    pixels: JFloatArray<'l>,
    dims: JIntArray<'l>,
    methods: JString<'l>,
    job: jlong,
) -> JString<'l> {
    env.with_env(|env| bridge::rank(env, &pixels, &dims, &methods, job))
        .resolve::<Throw>()
}

/// `private static native String residualCheck0(float[] noisy, float[] denoised, int[] dims)`:
/// a warning when the residual holds image structure, else "".
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_residualCheck0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    noisy: JFloatArray<'l>,
    denoised: JFloatArray<'l>,
    dims: JIntArray<'l>,
) -> JString<'l> {
    env.with_env(|env| bridge::residual_check(env, &noisy, &denoised, &dims))
        .resolve::<Throw>()
}

/// `private static native double estimateNoise0(float[] pixels, int[] dims)`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_estimateNoise0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    pixels: JFloatArray<'l>,
    dims: JIntArray<'l>,
) -> jdouble {
    env.with_env(|env| bridge::estimate_noise(env, &pixels, &dims))
        .resolve::<Throw>()
}

/// `private static native String estimatePoissonGaussian0(float[] pixels, int[] dims)`:
/// the noise-model options of a `var = a·mean + b` fit.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_estimatePoissonGaussian0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    pixels: JFloatArray<'l>,
    dims: JIntArray<'l>,
) -> JString<'l> {
    env.with_env(|env| bridge::estimate_poisson_gaussian(env, &pixels, &dims))
        .resolve::<Throw>()
}

/// `private static native String noiseCorrelation0(float[] pixels, int[] dims)`: whether
/// the noise is correlated between neighbouring pixels, in a few words.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_noiseCorrelation0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    pixels: JFloatArray<'l>,
    dims: JIntArray<'l>,
) -> JString<'l> {
    env.with_env(|env| bridge::noise_correlation(env, &pixels, &dims))
        .resolve::<Throw>()
}

/// `private static native String strengthUnitsWarning0(String method, String[] givenKeys,
/// String[] givenValues, String[] keys, String[] values)`: see
/// [`bridge::strength_units_warning`].
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_strengthUnitsWarning0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    method: JString<'l>,
    given_keys: JObjectArray<'l, JString<'l>>,
    given_values: JObjectArray<'l, JString<'l>>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
) -> JString<'l> {
    env.with_env(|env| {
        bridge::strength_units_warning(env, &method, (&given_keys, &given_values), (&keys, &values))
    })
    .resolve::<Throw>()
}

/// `private static native int selfTest0(int what)`: see [`bridge::self_test`].
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_selfTest0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    what: jint,
) -> jint {
    env.with_env(|_env| bridge::self_test(what))
        .resolve::<Throw>()
}

/// `private static native boolean cancel0(long job)`: stops a running `denoise0` job at
/// its next checkpoint (it then throws kind `Cancelled`); false if no such job runs.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_cancel0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    job: jlong,
) -> jboolean {
    env.with_env(|_env| bridge::cancel(job)).resolve::<Throw>()
}

/// `private static native double progress0(long job)`: the fraction of a running job done,
/// or -1 when none runs under that id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_progress0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    job: jlong,
) -> jdouble {
    env.with_env(|_env| bridge::progress(job))
        .resolve::<Throw>()
}

/// `private static native String note0(long job)`: what a running job says about how it
/// is going (a training loss), or "".
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_note0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    job: jlong,
) -> JString<'l> {
    env.with_env(|env| Ok(env.new_string(bridge::note(job)?)?))
        .resolve::<Throw>()
}

/// `private static native float[] interim0(long job)`: the latest intermediate result of
/// a running job not yet taken (a training network's current output), or null.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_interim0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    job: jlong,
) -> JFloatArray<'l> {
    env.with_env(|env| bridge::interim(env, job))
        .resolve::<Throw>()
}

/// `private static native String backends0()`: the backend names, comma-separated, the
/// default first (front ends list them instead of typing their own).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_backends0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> JString<'l> {
    env.with_env(|env| Ok(env.new_string(denoisekit_core::Backend::NAMES.join(","))?))
        .resolve::<Throw>()
}

/// `private static native int[] support0(String method, String[] keys, String[] values)`:
/// `{x, y, z}` halo that makes a region's result equal the full result there.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_support0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    method: JString<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
) -> JIntArray<'l> {
    env.with_env(|env| bridge::support(env, &method, &keys, &values))
        .resolve::<Throw>()
}

/// `private static native boolean gpuCompiled0()`: whether this build has the GPU backend
/// (the macOS builds, linked without Apple's Metal framework, do not).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_denoisekit_NativeBridge_gpuCompiled0<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> jboolean {
    env.with_env(|_env| bridge::gpu_compiled())
        .resolve::<Throw>()
}
