// Convolution with a measured PSF through FFTs, as denoisekit_core's convolve.rs (the
// `Convolver`): the image mirrored into a padded block (`pad`), plain forward FFTs along
// each transformed axis (spectral.wgsl with `complex` set), the product with the PSF's
// transfer function (`multiply`), forward FFTs again, and the image's part taken back
// (`crop`). The product is conjugated so that the second forward FFT is the inverse one
// up to a conjugate (which the real part does not see) and a factor, the product of the
// transformed lengths, which `scale` undoes:
//   K u   = Re FFT(conj(FFT(pad(u)) · otf)) · scale
//   Kᵀ r  = fold(Re FFT(conj(FFT(embed(r))) · otf) · scale)     (conj(C · conj(otf)))
// The adjoint embeds the image in zeros instead of mirroring it, and `fold` adds every
// padded position back onto the sample it mirrors (the exact transpose of "mirror,
// convolve, crop"), then divides by `Kᵀ 1` (`norm`) as the CPU does. A symmetric PSF's
// operator is its own transpose: the host then runs `K` for both.
//
// Without z coupling every plane is its own block (`planes` = the depth, only x and y
// transformed); an axis along which the PSF is one sample wide is not padded or
// transformed, and the transfer function is constant along it (`ox`, `oy`, `oz` are 1).
//
// Bindings (group 0):
//   0  src     array<f32>  read        the real image (`pad`), the complex block (`crop`,
//                                      `fold`); unused by `multiply`
//   1  dst     array<f32>  read_write  the complex block (`pad`, `multiply`, in place),
//                                      the real result (`crop`, `fold`)
//   2  index   array<u32>  read        per axis, the image sample each padded position
//                                      mirrors (from `src_*`), and the fold's targets:
//                                      n + 1 absolute starts (from `tgt_*`) into lists of
//                                      padded positions
//   3  values  array<f32>  read        the transfer function (complex, `oz x oy x ox`)
//                                      for `multiply`; `Kᵀ 1` for `fold` when `has_norm`
//   4  p       Params      uniform

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    // The padded block: planes (the padded depth when coupled, else the depth), rows,
    // columns.
    lx: u32,
    ly: u32,
    planes: u32,
    pad_x: u32,
    pad_y: u32,
    pad_z: u32,
    coupled: u32,
    // `pad`: 1 to embed in zeros (the adjoint's input) instead of mirroring.
    embed: u32,
    // `multiply`: 1 for the adjoint's conjugate transfer.
    adjoint: u32,
    ox: u32,
    oy: u32,
    oz: u32,
    src_x: u32,
    src_y: u32,
    src_z: u32,
    tgt_x: u32,
    tgt_y: u32,
    tgt_z: u32,
    has_norm: u32,
    scale: f32,
    unseen: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn block_at(z: u32, y: u32, x: u32) -> u32 {
    return (z * p.ly + y) * p.lx + x;
}

@compute @workgroup_size(16, 16, 1)
fn pad(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.lx || id.y >= p.ly || id.z >= p.planes) {
        return;
    }
    var v = 0.0;
    if (p.embed == 1u) {
        var z = id.z;
        var inside = id.y >= p.pad_y && id.y < p.pad_y + p.height && id.x >= p.pad_x
            && id.x < p.pad_x + p.width;
        if (p.coupled == 1u) {
            inside = inside && id.z >= p.pad_z && id.z < p.pad_z + p.depth;
            z = id.z - p.pad_z;
        }
        if (inside) {
            v = src[(z * p.height + id.y - p.pad_y) * p.width + id.x - p.pad_x];
        }
    } else {
        var z = id.z;
        if (p.coupled == 1u) {
            z = index[p.src_z + id.z];
        }
        v = src[(z * p.height + index[p.src_y + id.y]) * p.width + index[p.src_x + id.x]];
    }
    let i = block_at(id.z, id.y, id.x);
    dst[2u * i] = v;
    dst[2u * i + 1u] = 0.0;
}

@compute @workgroup_size(16, 16, 1)
fn multiply(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.lx || id.y >= p.ly || id.z >= p.planes) {
        return;
    }
    let i = block_at(id.z, id.y, id.x);
    // Along an axis the transfer does not vary on, its one sample serves every position.
    let o = ((id.z % p.oz) * p.oy + id.y % p.oy) * p.ox + id.x % p.ox;
    let c = vec2<f32>(dst[2u * i], dst[2u * i + 1u]);
    let k = vec2<f32>(values[2u * o], values[2u * o + 1u]);
    var r = vec2<f32>(0.0, 0.0);
    if (p.adjoint == 1u) {
        // conj(c) · k
        r = vec2<f32>(c.x * k.x + c.y * k.y, c.x * k.y - c.y * k.x);
    } else {
        // conj(c · k)
        r = vec2<f32>(c.x * k.x - c.y * k.y, -(c.x * k.y + c.y * k.x));
    }
    dst[2u * i] = r.x;
    dst[2u * i + 1u] = r.y;
}

@compute @workgroup_size(16, 16, 1)
fn crop(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    var z = id.z;
    if (p.coupled == 1u) {
        z = id.z + p.pad_z;
    }
    let i = block_at(z, id.y + p.pad_y, id.x + p.pad_x);
    dst[(id.z * p.height + id.y) * p.width + id.x] = src[2u * i] * p.scale;
}

@compute @workgroup_size(16, 16, 1)
fn fold(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    // Without coupling, the plane's own block: the one target `id.z`.
    var z_lo = id.z;
    var z_hi = id.z + 1u;
    if (p.coupled == 1u) {
        z_lo = index[p.tgt_z + id.z];
        z_hi = index[p.tgt_z + id.z + 1u];
    }
    var acc = 0.0;
    for (var kz = z_lo; kz < z_hi; kz++) {
        var z = kz;
        if (p.coupled == 1u) {
            z = index[kz];
        }
        for (var ky = index[p.tgt_y + id.y]; ky < index[p.tgt_y + id.y + 1u]; ky++) {
            let y = index[ky];
            for (var kx = index[p.tgt_x + id.x]; kx < index[p.tgt_x + id.x + 1u]; kx++) {
                acc += src[2u * block_at(z, y, index[kx])];
            }
        }
    }
    acc *= p.scale;
    let o = (id.z * p.height + id.y) * p.width + id.x;
    if (p.has_norm == 1u) {
        // A sample no output sees keeps its estimate, as on the CPU.
        let n = values[o];
        if (n > p.unseen) {
            acc = acc / n;
        } else {
            acc = 1.0;
        }
    }
    dst[o] = acc;
}
