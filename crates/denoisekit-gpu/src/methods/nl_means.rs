//! GPU host for `nl_means` (kernel: `nl_means.wgsl`): through [`super::per_pixel_tiled`]
//! (tiles of planes with patch plus search radius in z as halo, boxes of output of
//! bounded work); patch
//! distances by box sums over shifts, their row sums shared in workgroup memory.

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::nl_means::{NlMeansParams, plan};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("nl_means.wgsl");

/// The largest patch plus search radius of the `planar` entry point, whose workgroup
/// memory holds the tile grown by it (`PLANAR_MAX_REACH` in the kernel; a test checks).
const PLANAR_MAX_REACH: usize = 13;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        patch_radius: u32,
        search_radius: u32,
        patch_radius_z: u32,
        search_radius_z: u32,
        x0: u32,
        inv_n: f32,
        thr: f32,
        inv_h2: f32,
        _pad2: f32,
        y0: u32,
        z0: u32,
        _pad3: [u32; 2],
    }
}

placed!(Uniforms);

/// Runs non-local means on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError`] on any device failure, `TooLarge` when one plane with its z halo exceeds
/// the storage-binding limit (or `max_tile_bytes`, which tests use to force tiling).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = NlMeansParams::from_resolved(r)?;
    let (d, h, w) = input.dim();
    let Some(plan) = plan(&p, d) else {
        return Ok(input.to_owned());
    };
    ctl.checkpoint()?;
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        patch_radius: plan.patch_radius as u32,
        search_radius: plan.search_radius as u32,
        patch_radius_z: plan.patch_radius_z as u32,
        search_radius_z: plan.search_radius_z as u32,
        x0: 0,
        inv_n: plan.inv_n,
        thr: plan.thr,
        inv_h2: plan.inv_h2,
        _pad2: 0.0,
        y0: 0,
        z0: 0,
        _pad3: [0; 2],
    };
    let planar = plan.patch_radius_z == 0
        && plan.search_radius_z == 0
        && plan.patch_radius + plan.search_radius <= PLANAR_MAX_REACH;
    let (name, entry) = if planar {
        ("nl_means.planar", "planar")
    } else {
        ("nl_means", "main")
    };
    let shifts = (2 * plan.search_radius + 1).pow(2) * (2 * plan.search_radius_z + 1);
    let patch_rows = (2 * plan.patch_radius + 1) * (2 * plan.patch_radius_z + 1);
    let kernel = super::OnePass {
        name,
        entry,
        wgsl: WGSL,
        reach_z: plan.patch_radius_z + plan.search_radius_z,
        wraps: denoisekit_core::BorderMode::wraps_in(r),
        // Per shift, the patch's row sums (each of the patch's width) and their sum.
        reads_per_voxel: (shifts * 2 * patch_rows) as u64,
        uniforms: u,
    };
    super::per_pixel_tiled(ctx, &kernel, input, ctl, max_tile_bytes)
}

#[cfg(test)]
mod tests {
    /// The value of the kernel's `const NAME: u32 = …u;`.
    fn kernel_const(name: &str) -> i64 {
        let start = format!("const {name}: u32 = ");
        let line = super::WGSL
            .lines()
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("nl_means.wgsl declares {name}"));
        line.trim_start_matches(&start)
            .trim_end_matches("u;")
            .parse()
            .expect("a u32 literal")
    }

    #[test]
    fn the_host_and_the_kernel_agree_on_the_planar_reach() {
        assert_eq!(
            kernel_const("PLANAR_MAX_REACH"),
            super::PLANAR_MAX_REACH as i64
        );
    }

    /// The kernel's workgroup memory holds row sums for patches up to its
    /// `MAX_PATCH_RADIUS`: it must cover every radius the descriptor accepts.
    #[test]
    fn workgroup_memory_covers_every_patch_radius() {
        let kernel = kernel_const("MAX_PATCH_RADIUS");
        let spec = denoisekit_core::methods::nl_means::NlMeansParams::SPECS
            .iter()
            .find(|s| s.key == "patch_radius")
            .expect("nl_means has patch_radius");
        let denoisekit_core::ParamKind::Int { max, .. } = spec.kind else {
            panic!("patch_radius is an integer")
        };
        assert_eq!(
            kernel, max,
            "nl_means.wgsl's MAX_PATCH_RADIUS and the descriptor's bound"
        );
    }
}
