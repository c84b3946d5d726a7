//! `denoisekit run` on a stack larger than the memory budget: streamed page by page in
//! windows with z halos, byte-identical to the whole-stack result, or refused with the
//! sizes named; never an abort.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CLI: &str = env!("CARGO_BIN_EXE_denoisekit");

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("denoisekit-streaming-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cli(args: &[&str], limit: Option<&str>) -> Output {
    let mut c = Command::new(CLI);
    c.args(args).env("RUST_LOG", "warn");
    match limit {
        Some(l) => c.env("DENOISEKIT_MEMORY_LIMIT", l),
        None => c.env_remove("DENOISEKIT_MEMORY_LIMIT"),
    };
    c.output().expect("run denoisekit")
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

fn phantom(path: &Path) {
    let p = path.to_str().unwrap();
    ok(&cli(
        &[
            "phantom", p, "--shape", "24", "192", "160", "--scale", "1000", "--bits", "16",
        ],
        None,
    ));
}

#[test]
fn streamed_stacks_equal_whole_stack_results_byte_for_byte() {
    let d = dir();
    let input = d.join("stack.tif");
    phantom(&input);
    let i = input.to_str().unwrap();
    // Explicit noise parameters: a streamed run estimates defaults on the middle planes.
    for (method, params) in [
        ("gaussian", vec!["sigma=1.5", "sigma_z=1"]),
        ("nl_means", vec!["h=60", "sigma=75", "search_radius_z=1"]),
        ("bm3d", vec!["sigma=50"]),
        // The halo wraps around the stack's ends: the first window reads the last planes.
        ("median", vec!["radius=1", "radius_z=2", "border=periodic"]),
        ("median", vec!["radius=1", "radius_z=1"]),
    ] {
        let whole = d.join(format!("{method}-whole.tif"));
        let streamed = d.join(format!("{method}-streamed.tif"));
        let mut args = vec![
            "run",
            method,
            i,
            whole.to_str().unwrap(),
            "--backend",
            "cpu",
        ];
        args.extend(&params);
        ok(&cli(&args, None));
        args[3] = streamed.to_str().unwrap();
        let log = ok(&cli(&args, Some("22M")));
        assert!(log.contains("streaming in windows of"), "{method}: {log}");
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&streamed).unwrap(),
            "{method} {params:?}: streamed output differs"
        );
    }
    // In place (`run a.tif a.tif`): the pages still to be read are the input's, and the
    // file is replaced only when the output is whole.
    let copy = d.join("in-place.tif");
    std::fs::copy(&input, &copy).unwrap();
    let c = copy.to_str().unwrap();
    let args = [
        "run",
        "median",
        c,
        c,
        "--backend",
        "cpu",
        "radius=1",
        "radius_z=1",
    ];
    ok(&cli(&args, Some("22M")));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(d.join("median-whole.tif")).unwrap(),
        "median in place differs"
    );
}

#[test]
fn a_run_that_fails_part_way_leaves_an_existing_output_as_it_was() {
    let d = dir();
    let input = d.join("nan.tif");
    // Float planes, the last one NaN: found only when the last window is read.
    let mut w = denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::F32, 0).unwrap();
    for z in 0..24 {
        let v = if z == 23 { f32::NAN } else { z as f32 };
        w.write_page(160, 192, &vec![v; 160 * 192]).unwrap();
    }
    w.finish().unwrap();
    let out = d.join("kept.tif");
    std::fs::write(&out, b"the user's earlier result").unwrap();
    let o = cli(
        &[
            "run",
            "gaussian",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        Some("22M"),
    );
    assert!(!o.status.success());
    // The window's pixel position, said of the stack.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NaN") && err.contains("to 23 of the stack; z counted from plane"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"the user's earlier result");
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.ends_with(".part").then_some(n)
        })
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

#[test]
fn a_wide_stack_that_32_bit_floats_would_flatten_is_refused_before_streaming() {
    // 64-bit floats at an offset of a million with detail of a tenth, too large for the
    // budget: judged over every page before any window is denoised.
    let d = dir();
    let input = d.join("wide.tif");
    {
        let f = std::fs::File::create(&input).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(f)).unwrap();
        for z in 0..24 {
            let px: Vec<f64> = (0..160 * 192)
                .map(|i| 1e6 + 0.1 * f64::from((i + z) % 7) / 7.0)
                .collect();
            enc.write_image::<tiff::encoder::colortype::Gray64Float>(160, 192, &px)
                .unwrap();
        }
    }
    let out = d.join("flattened.tif");
    let o = cli(
        &[
            "run",
            "gaussian",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        Some("22M"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("its values reach 1.000e6"), "{err}");
    assert!(
        !err.contains("streaming in windows"),
        "refused after the work: {err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_stack_that_cannot_be_streamed_is_refused_with_its_sizes() {
    let d = dir();
    let input = d.join("coupled.tif");
    phantom(&input);
    let out = d.join("never.tif");
    let o = cli(
        &[
            "run",
            "fourier_filter",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "cutoff_z=0.2",
        ],
        Some("22M"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fourier_filter on a 160x192x24 image needs")
            && err.contains("more than the limit of 22.0 MiB")
            && err.contains("DENOISEKIT_MEMORY_LIMIT"),
        "{err}"
    );
    assert!(!out.exists(), "a refused job wrote {}", out.display());
    // A budget that cannot be read is an error naming the variable, not a default.
    let o = cli(&["noise", input.to_str().unwrap()], Some("lots"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("DENOISEKIT_MEMORY_LIMIT") && err.contains("512M"),
        "{err}"
    );
}

#[test]
fn a_hyperstack_runs_channel_by_channel_and_keeps_its_axes() {
    let d = dir();
    let input = d.join("hyper.tif");
    let description =
        "ImageJ=1.54f\nimages=6\nchannels=2\nslices=3\nhyperstack=true\nspacing=0.3\nunit=micron\n";
    let mut w = denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::U16, 0).unwrap();
    // ImageJ's metadata beyond the description: a slice label per image (UTF-16), after
    // its header block, as ImageJ writes them in a little-endian file.
    let mut labels = b"JIJIlbal\x06\0\0\0".to_vec();
    let mut counts = vec![12];
    for k in 0..6u8 {
        labels.extend([b'z', 0, b'0' + k, 0]);
        counts.push(4);
    }
    let calibration = denoisekit_tiff::Calibration {
        imagej: Some(description.into()),
        resolution: Some([(100, 65), (100, 65)]),
        unit: Some(1),
        imagej_metadata: Some((counts, labels)),
        ..Default::default()
    };
    w.calibrate(&calibration);
    // Pages in ImageJ's order, channel fastest: channel 1 near 100, channel 2 near 5000,
    // with a ripple for the noise estimate to measure.
    for page in 0..6 {
        let level = if page % 2 == 0 { 100.0 } else { 5000.0 };
        let px: Vec<f32> = (0..48 * 40)
            .map(|i| level + ((i * 7919 + page * 31) % 23) as f32 - 11.0)
            .collect();
        w.write_page(40, 48, &px).unwrap();
    }
    w.finish().unwrap();
    let out = d.join("hyper-out.tif");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let log = ok(&cli(
        &["run", "gaussian", i, o, "sigma_z=2", "--backend", "cpu"],
        None,
    ));
    assert!(
        log.contains("channel 1: gaussian") && log.contains("channel 2: gaussian"),
        "{log}"
    );
    let (v, _) = denoisekit_tiff::read(&out).unwrap();
    for (page, plane) in v.outer_iter().enumerate() {
        let mean = plane.sum() / plane.len() as f32;
        let level = if page % 2 == 0 { 100.0 } else { 5000.0 };
        // Run as one stack of 6 planes, sigma_z=2 blended the two channels.
        assert!((mean - level).abs() < 2.0, "page {page}: mean {mean}");
    }
    let r = denoisekit_tiff::PageReader::open(&out).unwrap();
    let c = r.calibration();
    // Less the image count, which would make ImageJ read the planes as one block.
    assert_eq!(c.imagej, Some(description.replace("images=6\n", "")));
    assert_eq!(
        (c.resolution, c.unit),
        (Some([(100, 65), (100, 65)]), Some(1))
    );
    assert_eq!(c.imagej_metadata, calibration.imagej_metadata);
    // Commands that measure or time the whole file refuse to pool the channels, one
    // weights file cannot hold two channels' training, and a hyperstack as a PSF or a
    // target would be read with its channels as planes.
    let w = d.join("hyper.json");
    let save = format!("save_weights={}", w.display());
    let (psf, target) = (format!("psf_image={i}"), format!("target={i}"));
    let bench_out = d.join("bench-out");
    for cmd in [
        vec!["noise", i],
        vec!["tune", "gaussian", i],
        vec!["run", "zs_n2n", i, o, "steps=2", &save],
        vec![
            "bench",
            i,
            "--method",
            "gaussian",
            "--save",
            bench_out.to_str().unwrap(),
        ],
        vec!["run", "richardson_lucy", o, o, "psf=image", &psf],
        vec!["run", "zs_n2n", o, o, "training=pairs", &target],
    ] {
        let e = cli(&cmd, None);
        assert!(!e.status.success());
        let err = String::from_utf8_lossy(&e.stderr);
        assert!(err.contains("a hyperstack of 2 volumes"), "{err}");
    }
    // Over the limit, a hyperstack is not offered windows of planes: it is never
    // streamed (its volumes would run together).
    let e = cli(
        &["run", "gaussian", i, o, "--backend", "cpu"],
        Some("16388K"),
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && err.contains("more than the limit"),
        "{err}"
    );
    assert!(!err.contains("windows of planes"), "{err}");
}

#[test]
fn a_bad_pixel_in_any_channel_is_refused_before_the_first_is_run() {
    let d = dir();
    let input = d.join("hyper-nan.tif");
    let mut w = denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::F32, 0).unwrap();
    w.calibrate(&denoisekit_tiff::Calibration {
        imagej: Some("ImageJ=1.54f\nchannels=2\nslices=2\nhyperstack=true\n".into()),
        ..Default::default()
    });
    for page in 0..4 {
        let mut px: Vec<f32> = (0..32 * 32)
            .map(|i| ((i * 7919 + page * 31) % 23) as f32)
            .collect();
        if page == 3 {
            px[5] = f32::NAN;
        }
        w.write_page(32, 32, &px).unwrap();
    }
    w.finish().unwrap();
    let out = d.join("hyper-nan-out.tif");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let e = cli(
        &["run", "gaussian", i, o, "sigma=1", "--backend", "cpu"],
        None,
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && !out.exists());
    assert!(err.contains("channel 2") && err.contains("NaN"), "{err}");
    assert!(
        !err.contains("channel 1: gaussian"),
        "a channel reported done: {err}"
    );
}

#[test]
fn tifffiles_named_axes_split_channels_from_z() {
    // What tifffile.imwrite(..., metadata={'axes': 'CZYX'}) writes (napari and
    // scikit-image too): channel slowest, so pages 0-2 are channel 1 and 3-5 channel 2.
    let d = dir();
    let input = d.join("tifffile-czyx.tif");
    let mut w = denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::U16, 0).unwrap();
    w.calibrate(&denoisekit_tiff::Calibration {
        imagej: Some("{\"axes\": \"CZYX\", \"shape\": [2, 3, 48, 40]}".into()),
        ..Default::default()
    });
    let level = |channel| if channel == 0 { 100.0 } else { 5000.0 };
    for page in 0..6 {
        let px: Vec<f32> = (0..48 * 40)
            .map(|i| level(page / 3) + ((i * 7919 + page * 31) % 23) as f32 - 11.0)
            .collect();
        w.write_page(40, 48, &px).unwrap();
    }
    w.finish().unwrap();
    let out = d.join("tifffile-czyx-out.tif");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let log = ok(&cli(
        &["run", "gaussian", i, o, "sigma_z=2", "--backend", "cpu"],
        None,
    ));
    assert!(log.contains("channel 2: gaussian"), "{log}");
    // Written as an ImageJ hyperstack, in ImageJ's page order (channel fastest): taken
    // as 6 planes of z, sigma_z=2 blended the channels.
    let (v, _) = denoisekit_tiff::read(&out).unwrap();
    for (page, plane) in v.outer_iter().enumerate() {
        let mean = plane.sum() / plane.len() as f32;
        assert!(
            (mean - level(page % 2)).abs() < 2.0,
            "page {page}: mean {mean}"
        );
    }
    let r = denoisekit_tiff::PageReader::open(&out).unwrap();
    let said = r.calibration().imagej.clone().unwrap_or_default();
    assert!(said.contains("channels=2\nslices=3\n"), "{said}");
    let e = cli(&["noise", i], None);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("a hyperstack of 2 volumes"), "{err}");
}

#[test]
fn a_description_its_pages_do_not_add_up_to_is_refused() {
    let d = dir();
    // 2 channels x 5 slices said, 9 pages stored: which page is which channel is unknown.
    // An OME file of two series: the first image's 5 planes, 10 pages.
    let ome = "<?xml version=\"1.0\"?><OME><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" \
               DimensionOrder=\"XYZCT\" SizeC=\"1\" SizeT=\"1\" SizeX=\"16\" SizeY=\"12\" \
               SizeZ=\"5\" Type=\"uint16\"></Pixels></Image></OME>";
    for (name, description, pages, said) in [
        (
            "short.tif",
            "ImageJ=1.54f\nimages=10\nchannels=2\nslices=5\nhyperstack=true\n",
            9,
            "2 channel(s) x 5 slice(s) x 1 frame(s) = 10 images, but it has 9 pages",
        ),
        (
            "series.tif",
            ome,
            10,
            "1 channel(s) x 5 slice(s) x 1 frame(s) = 5 images, but it has 10 pages",
        ),
        // tifffile's own description, its first series of 3 planes, then a second of 2.
        (
            "shaped.tif",
            "{\"shape\": [3, 12, 16]}",
            5,
            "1 channel(s) x 3 slice(s) x 1 frame(s) = 3 images, but it has 5 pages",
        ),
    ] {
        let input = d.join(name);
        let mut w =
            denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::U16, 0).unwrap();
        w.calibrate(&denoisekit_tiff::Calibration {
            imagej: Some(description.into()),
            ..Default::default()
        });
        for page in 0..pages {
            let px: Vec<f32> = (0..16 * 12)
                .map(|i| ((i * 13 + page) % 17) as f32)
                .collect();
            w.write_page(16, 12, &px).unwrap();
        }
        w.finish().unwrap();
        let i = input.to_str().unwrap();
        let out = d.join(format!("out-{name}"));
        for cmd in [
            vec!["run", "median", i, out.to_str().unwrap(), "radius_z=1"],
            vec!["noise", i],
        ] {
            let e = cli(&cmd, None);
            assert!(!e.status.success(), "{name}: {cmd:?}");
            let err = String::from_utf8_lossy(&e.stderr);
            assert!(
                err.contains(said) && err.contains("save each volume"),
                "{err}"
            );
        }
        assert!(!out.exists());
    }
}

#[test]
fn an_error_in_a_hyperstack_names_its_channel() {
    let d = dir();
    let input = d.join("hyper-nan.tif");
    let mut w = denoisekit_tiff::PageWriter::create(&input, denoisekit_tiff::Bits::F32, 0).unwrap();
    w.calibrate(&denoisekit_tiff::Calibration {
        imagej: Some("ImageJ=1.54f\nimages=6\nchannels=2\nslices=3\nhyperstack=true\n".into()),
        ..Default::default()
    });
    for page in 0..6 {
        let mut px: Vec<f32> = (0..16 * 12)
            .map(|i| ((i * 13 + page) % 17) as f32)
            .collect();
        if page == 3 {
            // Channel 2, slice 2 (channel fastest).
            px[5] = f32::NAN;
        }
        w.write_page(16, 12, &px).unwrap();
    }
    w.finish().unwrap();
    let out = d.join("hyper-nan-out.tif");
    let e = cli(
        &[
            "run",
            "gaussian",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success());
    assert!(
        err.contains("channel 2: invalid input: pixel (x=5, y=0, z=1)"),
        "{err}"
    );
    assert!(!out.exists());
}
