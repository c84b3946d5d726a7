//! GPU host for `nl_means` (kernel: `nl_means.wgsl`): one dispatch per tile of planes
//! through [`super::per_pixel_tiled`] (halo: patch plus search radius in z); patch
//! distances by box sums over shifts, their row sums shared in workgroup memory.

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::nl_means::{NlMeansParams, plan};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("nl_means.wgsl");

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
        _pad: u32,
        inv_n: f32,
        thr: f32,
        inv_h2: f32,
        _pad2: f32,
    }
}

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
        _pad: 0,
        inv_n: plan.inv_n,
        thr: plan.thr,
        inv_h2: plan.inv_h2,
        _pad2: 0.0,
    };
    let uniforms = |depth: u32| bytemuck::bytes_of(&Uniforms { depth, ..u }).to_vec();
    super::per_pixel_tiled(
        ctx,
        "nl_means",
        WGSL,
        input,
        plan.patch_radius_z + plan.search_radius_z,
        &uniforms,
        max_tile_bytes,
    )
}

#[cfg(test)]
mod tests {
    /// The kernel's workgroup memory holds row sums for patches up to its
    /// `MAX_PATCH_RADIUS`: it must cover every radius the descriptor accepts.
    #[test]
    fn workgroup_memory_covers_every_patch_radius() {
        let line = super::WGSL
            .lines()
            .find(|l| l.starts_with("const MAX_PATCH_RADIUS: u32 = "))
            .expect("nl_means.wgsl declares MAX_PATCH_RADIUS");
        let kernel: i64 = line
            .trim_start_matches("const MAX_PATCH_RADIUS: u32 = ")
            .trim_end_matches("u;")
            .parse()
            .expect("a u32 literal");
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
