//! `denoisekit demo` (every method on a bundled image, as a labelled montage) and
//! `denoisekit bench` (timings on one input, for the peer comparison scripts).

use crate::*;

/// The demo's default image, in the binary: a shipped CLI has no source tree beside it.
const BUNDLED: (&str, &[u8]) = (
    "fluo_nuclei_dsb2018_512x512_u16.tif",
    include_bytes!("../../../data/fluo_nuclei_dsb2018_512x512_u16.tif"),
);

pub(crate) fn median_ms(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub(crate) fn demo(
    input: Option<PathBuf>,
    noise: f64,
    out: &Path,
    backend: Backend,
) -> CliResult<()> {
    let (name, (clean, _)) = match &input {
        Some(path) => (
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            tiffio::read(path)?,
        ),
        None => (BUNDLED.0, tiffio::read_bytes(BUNDLED.1, BUNDLED.0)?),
    };
    let (lo, hi) = min_max(&clean.view());
    let range = (hi - lo) as f64;
    let sigma = noise * range;
    let noisy = denoisekit_core::phantom::add_gaussian_noise(&clean, sigma, 2024);
    tiffio::write(&out.join("clean.tif"), &clean, Bits::F32)?;
    tiffio::write(&out.join("noisy.tif"), &noisy, Bits::F32)?;
    let est = estimate_sigma(&noisy.view())?;
    println!(
        "DenoiseKit {} demo: {} ({}), Gaussian noise sigma = {:.2} (estimated {:.2})\n",
        denoisekit_core::VERSION,
        name,
        denoisekit_core::Shape::of(&clean.view()),
        sigma,
        est
    );
    println!("| method | parameters | device | time (ms) | PSNR (dB) | SSIM |");
    println!("|---|---|---|---:|---:|---:|");
    let score = |v: &Volume| -> CliResult<(f64, f64)> {
        Ok((
            psnr(&clean.view(), &v.view(), range)?,
            ssim(&clean.view(), &v.view(), range)?,
        ))
    };
    let (p0, s0) = score(&noisy)?;
    println!("| (noisy input) | | | | {p0:.2} | {s0:.3} |");
    let mut panels = vec![
        Panel {
            image: clean.clone(),
            label: ["clean".into(), "the reference".into(), String::new()],
        },
        Panel {
            image: noisy.clone(),
            label: [
                "noisy".into(),
                format!("psnr {p0:.2} db"),
                format!("sigma {sigma:.0}"),
            ],
        },
    ];
    // Denoisers only: the demo adds noise to an unblurred image, which gives a
    // deconvolution or a background remover nothing meaningful to score.
    for m in registry().iter().filter(|m| m.kind == MethodKind::Denoise) {
        let values = ParamValues::new();
        let mut times = Vec::new();
        let mut result = None;
        for _ in 0..3 {
            let t = Instant::now();
            let r = denoisekit_gpu::run(m.id, noisy.view(), &values, backend, &Control::new())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            result = Some(r);
        }
        let Some(done) = result else { continue };
        let (p, s) = score(&done.volume)?;
        let ms = median_ms(times);
        println!(
            "| {} | {} | {} | {ms:.1} | {p:.2} | {s:.3} |",
            m.id,
            short_options(&done.params),
            done.device,
        );
        tiffio::write(&out.join(format!("{}.tif", m.id)), &done.volume, Bits::F32)?;
        panels.push(Panel {
            image: done.volume,
            label: [
                m.id.into(),
                format!("psnr {p:.2} db"),
                format!(
                    "{} ms {}",
                    fmt_ms(ms),
                    if matches!(done.device, denoisekit_gpu::Ran::Gpu(_)) {
                        "gpu"
                    } else {
                        "cpu"
                    }
                ),
            ],
        });
    }
    let png = out.join("montage.png");
    write_montage(&png, &panels, lo, hi)?;
    println!(
        "\nWrote {} (the clean and noisy inputs, then each denoiser with its PSNR and time) \
         and one TIFF per method.",
        png.display(),
    );
    Ok(())
}

/// A time to three significant digits, at most one decimal.
fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

/// One tile of the demo's picture: an image and the three lines under it.
pub(crate) struct Panel {
    image: Volume,
    label: [String; 3],
}

/// Tiles per row of the demo's picture.
const COLUMNS: usize = 5;
/// A tile's longest side; larger images are averaged down by a whole factor.
const TILE: usize = 256;
/// Font pixels per label pixel.
const FONT_SCALE: usize = 2;

/// The middle plane of each panel in a grid, as 8-bit grey scaled to [lo, hi], each with
/// its three label lines underneath: a picture a person reads at a glance.
pub(crate) fn write_montage(path: &Path, panels: &[Panel], lo: f32, hi: f32) -> CliResult<()> {
    let (d, h, w) = panels[0].image.dim();
    let f = w.max(h).div_ceil(TILE).max(1);
    let (tw, th) = (w / f, h / f);
    let gap = 8;
    let label_h = 3 * font::line_height(FONT_SCALE);
    let cols = COLUMNS.min(panels.len());
    let rows = panels.len().div_ceil(cols);
    let (cell_w, cell_h) = (
        tw.max(21 * font::advance(FONT_SCALE)) + gap,
        th + label_h + gap,
    );
    let (width, height) = (cols * cell_w + gap, rows * cell_h + gap);
    let mut img = vec![255u8; width * height];
    for (i, p) in panels.iter().enumerate() {
        let (x0, y0) = (gap + (i % cols) * cell_w, gap + (i / cols) * cell_h);
        for y in 0..th {
            for x in 0..tw {
                // The mean of each f x f block: a downscaled tile without aliasing.
                let mut sum = 0.0f32;
                for dy in 0..f {
                    for dx in 0..f {
                        sum += p.image[(d / 2, y * f + dy, x * f + dx)];
                    }
                }
                let v = (sum / (f * f) as f32 - lo) / (hi - lo).max(f32::MIN_POSITIVE);
                img[(y0 + y) * width + x0 + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        for (k, line) in p.label.iter().enumerate() {
            let y = y0 + th + 4 + k * font::line_height(FONT_SCALE);
            font::draw(
                &mut img,
                width,
                (x0, y),
                line,
                FONT_SCALE,
                if k == 0 { 0 } else { 70 },
            );
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&img)?;
    Ok(())
}

pub(crate) fn bench(
    input: &Path,
    methods: &[String],
    params: &[String],
    repeats: usize,
    backend: Backend,
    save: Option<&Path>,
) -> CliResult<()> {
    crate::volumes::refuse_pooled(input, "bench")?;
    let (img, _) = tiffio::read(input)?;
    let given = parse_params(params)?;
    let selected: Vec<&MethodDescriptor> = if methods.is_empty() {
        registry().to_vec()
    } else {
        methods
            .iter()
            .map(|m| denoisekit_core::find(m))
            .collect::<Result<_, _>>()?
    };
    // A key no timed method has is a typo: timing the defaults instead would mislead.
    for k in given
        .pairs()
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(given.images().iter().map(|(k, _)| k.as_str()))
    {
        if !selected.iter().any(|m| m.takes(k)) {
            let ids: Vec<&str> = selected.iter().map(|m| m.id).collect();
            return Err(format!(
                "`{k}` is a parameter of none of the timed methods ({})",
                ids.join(", ")
            )
            .into());
        }
    }
    println!(
        "input {} ({}), {} rayon threads, 1 warm-up + median of {repeats}",
        input.display(),
        denoisekit_core::Shape::of(&img.view()),
        rayon::current_num_threads()
    );
    println!("| method | parameters | device | median (ms) | min (ms) | Mpixel/s |");
    println!("|---|---|---|---:|---:|---:|");
    for m in selected {
        // Apply only the given keys this method has, so one command can time several methods.
        let mut values = ParamValues::new();
        for (k, v) in given.pairs() {
            if m.all_params().any(|p| p.key == k) {
                values.insert(k.clone(), v);
            }
        }
        for (k, image) in given.images() {
            if m.images.iter().any(|i| i.key == k) {
                values.insert_image(k.clone(), image.clone());
            }
        }
        let first = denoisekit_gpu::run(m.id, img.view(), &values, backend, &Control::new())?;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let r = denoisekit_gpu::run(m.id, img.view(), &values, backend, &Control::new())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            drop(r);
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let med = median_ms(times);
        println!(
            "| {} | {} | {} | {med:.2} | {min:.2} | {:.1} |",
            m.id,
            short_options(&first.params),
            first.device,
            img.len() as f64 / med / 1e3
        );
        if let Some(dir) = save {
            tiffio::write(&dir.join(format!("{}.tif", m.id)), &first.volume, Bits::F32)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_image_is_in_the_binary() {
        let (v, _) = super::tiffio::read_bytes(super::BUNDLED.1, super::BUNDLED.0).unwrap();
        assert_eq!(v.dim(), (1, 512, 512));
        // No build-machine path for a shipped binary to look for.
        assert!(!super::BUNDLED.0.contains('/'));
    }
}
