//! Streaming: a stack larger than the memory budget read, denoised and written in windows
//! of planes (with the method's z halo), so it never sits in memory whole.

use crate::*;

/// `Some` when the whole job (the stack and the method's working memory) would pass the
/// memory budget and the method can run in windows of planes: then the stack is streamed.
pub(crate) fn streaming_plan(
    method: &str,
    input: &Path,
    layout: &tiffio::Layout,
    values: &ParamValues,
    hyperstack: bool,
) -> CliResult<Option<(Shape, Resolved, Plan)>> {
    let m = denoisekit_core::find(method)?;
    let (depth, height, width) = (layout.pages, layout.height, layout.width);
    let shape = Shape::new(depth, height, width);
    // Sizes depend on radii and the noise model, never on the noise level: any stands in.
    let sizing = m.resolve(values, || Ok(1.0))?;
    let stack = (shape.len().unwrap_or(usize::MAX) as u64).saturating_mul(4);
    let whole = stack.saturating_add(memory::need(m, shape, &sizing)?);
    let limit = memory::limit()?;
    if whole <= limit {
        return Ok(None);
    }
    // Parameters are resolved once, on the central block that Dask and OME-Zarr runs
    // measure too, so every window uses the same.
    let [z, y, x] = denoisekit_core::noise_sample((depth, height, width));
    let sample = read_planes(input, z)?
        .slice(ndarray::s![.., y, x])
        .to_owned();
    let (_, r) = if depth > 1 && sample.dim().0 == 1 {
        // A one-plane sample would be judged as a 2D image.
        return Err(memory::too_large(m, shape, &sizing, whole, limit, None).into());
    } else {
        denoisekit_core::prepare(method, &sample.view(), values)?
    };
    // So is the noise model judged: a window mostly of background would fail it alone.
    denoisekit_core::judge_noise_model(sample.view(), &r)?;
    if let Some(w) = denoisekit_core::strength_units_warning(method, values, &r)? {
        eprintln!("warning: {w}");
    }
    let plane = (height * width * 4) as u64;
    match tiling::plan(m, shape, &r, limit, plane)? {
        Some(plan) => Ok(Some((shape, r, plan))),
        None => {
            // A hyperstack is never streamed (its volumes would run together): only the
            // whole job's need runs it.
            let least = match hyperstack {
                true => None,
                false => tiling::one_plane_need(m, shape, &r, plane)?,
            };
            Err(memory::too_large(m, shape, &r, whole, limit, least).into())
        }
    }
}

/// Planes `range` of a stack, reading only as far as needed.
pub(crate) fn read_planes(path: &Path, range: std::ops::Range<usize>) -> CliResult<Volume> {
    let mut r = tiffio::PageReader::open(path)?;
    for _ in 0..range.start {
        r.skip_page()?;
    }
    let (w, h) = r.dims();
    let mut data = Vec::with_capacity(range.len() * w * h);
    for _ in range.clone() {
        data.extend(r.next_page()?.ok_or("the stack ended early")?);
    }
    Ok(volume_from_vec(range.len(), h, w, data)?)
}

/// Denoises a stack too large for the memory budget page by page: windows of planes with
/// their z halo are read, denoised on the CPU and written in order, so memory holds one
/// window, not the file.
pub(crate) fn stream(
    method: &str,
    input: &Path,
    output: &Path,
    float: bool,
    (shape, r, plan): (Shape, Resolved, Plan),
) -> CliResult<()> {
    let t = Instant::now();
    let m = denoisekit_core::find(method)?;
    let mut reader = tiffio::PageReader::open(input)?;
    let first = reader.next_page()?.ok_or("the stack has no pages")?;
    // Pages wider than 32-bit floats are judged over the whole file before the work: a
    // refusal once every window was denoised would throw the run away. One more read,
    // for these types only.
    if reader.is_wide() {
        tiffio::check_detail(input)?;
    }
    eprintln!(
        "{method}: {shape} does not fit in the memory limit of {}: streaming in windows of {} \
         planes (z halo {}) on the CPU",
        memory::fmt_bytes(memory::limit()?),
        plan.window,
        plan.halo
    );
    let bits = if float {
        Bits::F32
    } else {
        reader.bits().unwrap_or(Bits::F32)
    };
    let mut writer =
        tiffio::PageWriter::create(output, bits, shape.len().unwrap_or(usize::MAX) as u64)?;
    writer.calibrate(reader.calibration());
    let (w, h) = (shape.width, shape.height);
    // Planes `start..start + ring.len()` of the stack; windows move forward.
    let mut ring = std::collections::VecDeque::from([first]);
    let mut start = 0;
    let (ctl, bar) = crate::progress::Progress::start(&format!("{method} (streamed)"));
    tiling::run_windows(
        m,
        &r,
        shape.depth,
        plan,
        |range| -> CliResult<Volume> {
            // A halo wrapped around the stack's ends (a periodic border) reads the last
            // planes for the first window and the first planes for the last one: from the
            // file, leaving the forward-moving ring as it is.
            if range.start < start || range.start > start + ring.len() {
                return read_planes(input, range);
            }
            while start < range.start {
                ring.pop_front();
                start += 1;
            }
            while start + ring.len() < range.end {
                match reader.next_page()? {
                    Some(px) => ring.push_back(px),
                    None => {
                        return Err(DenoiseError::InvalidInput {
                            reason: "the stack ended early".into(),
                        }
                        .into());
                    }
                }
            }
            let mut data = Vec::with_capacity(range.len() * w * h);
            for px in ring.range(..range.len()) {
                data.extend_from_slice(px);
            }
            Ok(volume_from_vec(range.len(), h, w, data)?)
        },
        |_, planes| -> CliResult<()> {
            for plane in planes.outer_iter() {
                let px = plane.as_standard_layout();
                let px = px.as_slice().expect("standard layout");
                writer.write_page(w, h, px)?;
            }
            Ok(())
        },
        &ctl,
    )?;
    // The check above judged a file wide by its first page; a later page of a wider type
    // (pages of 32-bit floats, then 64-bit ones) is caught here, before the rename.
    if let Some(e) = reader.detail_loss() {
        return Err(e.into());
    }
    // Closed before the rename: on a FAT or SMB volume Windows cannot replace a file that
    // is open, and the output may replace the input.
    drop(reader);
    crate::warn_saturated(&writer, bits, shape.len().unwrap_or(usize::MAX));
    writer.finish()?;
    drop(bar);
    eprintln!(
        "{method} {} on cpu (streamed): {:.1} ms -> {}",
        r.to_options(),
        t.elapsed().as_secs_f64() * 1e3,
        output.display()
    );
    Ok(())
}
