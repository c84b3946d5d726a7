//! The bodies of DenoiseKit's fuzz targets.
//!
//! `fuzz/fuzz_targets/*.rs` hand libFuzzer's bytes to these functions (run with
//! `cargo +nightly fuzz run <target>` in `fuzz/`), and `tests/smoke.rs` replays the
//! committed corpora plus seeded mutations of them through the same functions on stable
//! Rust in every test run. Each function panics only when DenoiseKit misbehaves: a panic
//! inside the library, an error without a message, an error of the wrong kind, an
//! accepted value outside its declared range, options that do not replay, or an output
//! of the wrong shape or with non-finite pixels from finite input.

use denoisekit_core::{
    Control, DenoiseError, MethodDescriptor, ParamKind, ParamValues, Unit, Volume, memory, registry,
};
use std::sync::Once;

/// Keeps the budget small, so a file that claims a huge page is refused, not allocated
/// (libFuzzer stops at 2 GiB of memory).
fn small_budget() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| memory::set_limit(Some(256 << 20)));
}

/// Any bytes as a TIFF file: either a volume whose values fit the reported sample type,
/// or an error that names the file.
pub fn tiff(data: &[u8]) {
    small_budget();
    match denoisekit_tiff::read_bytes(data, "fuzz.tif") {
        Ok((v, bits)) => {
            let (d, h, w) = v.dim();
            assert!(
                d >= 1 && h >= 1 && w >= 1,
                "an empty volume {d}x{h}x{w} was accepted"
            );
            if bits != denoisekit_tiff::Bits::F32 {
                assert!(
                    v.iter().all(|&x| bits.quantise(x) == x),
                    "integer data out of its type's range"
                );
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.tif: ") && msg.len() > 12, "{msg:?}");
        }
    }
}

/// Reads bytes one at a time; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[usize::from(self.u8()) % items.len()]
    }
}

/// The first byte picks a method; the rest is an option string as a macro passes it
/// (`key=value` words). Accepted values must lie in their declared ranges and replay to
/// the same values, both directly and through the option string.
pub fn params(data: &[u8]) {
    let mut b = Bytes(data);
    let m = *b.pick(registry());
    let text = String::from_utf8_lossy(b.0);
    let given = ParamValues::from_options(&text);
    match m.resolve(&given, || Ok(0.25)) {
        Ok(r) => {
            for spec in m.all_params() {
                let (_, v) = r
                    .iter()
                    .find(|(k, _)| *k == spec.key)
                    .expect("every parameter is resolved");
                spec.check(&v)
                    .unwrap_or_else(|e| panic!("accepted {v}: {e}"));
            }
            let no_estimate = || -> denoisekit_core::Result<f64> {
                panic!("a fully resolved job estimated the noise again")
            };
            let again = m.resolve(&r.to_params(), no_estimate).expect("replay");
            assert!(again.iter().eq(r.iter()), "values changed on replay");
            let replay = m
                .resolve(&ParamValues::from_options(&r.to_options()), no_estimate)
                .expect("replay through the option string");
            assert!(
                replay.iter().eq(r.iter()),
                "values changed through the option string"
            );
        }
        Err(e) => check_param_error(m, &e),
    }
}

fn check_param_error(m: &MethodDescriptor, e: &DenoiseError) {
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(
        matches!(
            e,
            DenoiseError::UnknownParam { .. }
                | DenoiseError::InvalidParamValue { .. }
                | DenoiseError::ParamOutOfRange { .. }
        ),
        "{}: a parameter problem reported as {}: {msg}",
        m.id,
        e.kind()
    );
}

/// Pixel values that stress arithmetic: the bytes choose among ordinary values at several
/// scales and the special ones.
fn pixel(b: &mut Bytes<'_>, specials: bool) -> f32 {
    let x = f32::from(b.u16()) / 65535.0;
    // Without specials, the non-finite classes fall through to ordinary values: one NaN
    // anywhere ends a run at the input check, which would leave the methods unexercised.
    let class = b.u8() % 16;
    match if specials || class > 2 { class } else { 15 } {
        0 => f32::NAN,
        1 => f32::INFINITY,
        2 => f32::NEG_INFINITY,
        3 => 1e-40, // subnormal
        4 => f32::MAX,
        5 => -f32::MAX,
        6 => -0.0,
        7 => x * 1e30,
        8 => -x * 1e6,
        9 => x * 1e-30,
        10 => (x * 255.0).round(),
        11 | 12 => (x * 65535.0).round(),
        _ => x,
    }
}

/// A parameter's value as text: unset, its bounds, beyond them, inside them, or junk.
fn value(b: &mut Bytes<'_>, kind: &ParamKind) -> Option<String> {
    let r = f64::from(b.u16()) / 65535.0;
    match (b.u8() % 12, kind) {
        (0..=3, _) => None,
        // A fuzzer must not write files wherever its junk names point.
        (_, ParamKind::File { writes: true }) => None,
        (_, ParamKind::File { .. }) => Some(
            b.pick(&["no_such_weights.json", "", "nan", "[ ]", "/"])
                .to_string(),
        ),
        // Rectangles inside, across and far beyond the small images, and malformed ones.
        (_, ParamKind::Region) => Some(match b.u8() % 6 {
            0 => b
                .pick(&["", "0,0,1,1", "1,2,3", "0,0,0,4", "a,b,c,d", "[2,2,9999,1]"])
                .to_string(),
            _ => format!(
                "{},{},{},{}",
                b.u8() % 12,
                b.u8() % 12,
                1 + b.u8() % 12,
                1 + b.u8() % 12
            ),
        }),
        (4, _) => Some(
            b.pick(&["nan", "inf", "-inf", "", "1e999", "-0", "0x10", "½"])
                .to_string(),
        ),
        (_, ParamKind::Choice { options, .. }) => Some(match b.u8() % 8 {
            0 => "no_such_choice".into(),
            1 => options[0].to_ascii_uppercase(),
            _ => b.pick(options).to_string(),
        }),
        (5, ParamKind::Float { min, .. }) => Some(format!("{}", min - 1.0)),
        (6, ParamKind::Float { max, .. }) => Some(format!("{}", max * 2.0 + 1.0)),
        (7, ParamKind::Float { min, .. }) => Some(format!("{min}")),
        (_, ParamKind::Float { min, max, .. }) => {
            // Open ranges: stay within a few decades of the lower bound.
            let hi = if max.is_finite() {
                *max
            } else {
                min.abs().max(1.0) * 1e3
            };
            Some(format!("{}", min + (hi - min) * r))
        }
        (5, ParamKind::Int { min, .. }) => Some(format!("{}", min - 1)),
        (6, ParamKind::Int { max, .. }) => Some(format!("{}", max.saturating_add(1))),
        (7, ParamKind::Int { max, .. }) => Some(format!("{max}")),
        (_, ParamKind::Int { min, max, .. }) => {
            // Iteration counts and radii are kept small enough for a fuzzer's pace.
            let hi = (*max).min(min + 40);
            Some(format!("{}", min + ((hi - min) as f64 * r).round() as i64))
        }
    }
}

/// A method on a small image of any shape (including empty and 1-pixel), pixels from
/// `pixel`, parameters from `value`. Success must give a finite image of the same
/// shape from finite input; failure must be an input or parameter error with a message.
pub fn run(data: &[u8]) {
    small_budget();
    let (m, values, input) = decode_job(data);
    let shape = input.dim();
    let before = input.clone();
    let result = denoisekit_core::run(m.id, input.view(), &values, &Control::new());

    // Bit for bit: NaN is not equal to itself.
    assert!(
        input
            .iter()
            .map(|v| v.to_bits())
            .eq(before.iter().map(|v| v.to_bits())),
        "{} modified its input",
        m.id
    );
    match result {
        Ok(out) => {
            assert_eq!(out.dim(), shape, "{}", m.id);
            assert!(
                out.iter().all(|v| v.is_finite()),
                "{} {}: non-finite output from a finite {shape:?} image",
                m.id,
                values.to_options()
            );
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            match &e {
                DenoiseError::InvalidInput { .. }
                | DenoiseError::UnsupportedDims { .. }
                | DenoiseError::TooLarge { .. } => {}
                other => check_param_error(m, other),
            }
        }
    }
}

/// The job a `run_method` input describes: method, parameters (with any image inputs),
/// image.
pub fn decode_job(data: &[u8]) -> (&'static MethodDescriptor, ParamValues, Volume) {
    let mut b = Bytes(data);
    let m = *b.pick(registry());
    let specials = b.u8() % 4 == 0;
    let shape = (
        usize::from(b.u8() % 5),
        usize::from(b.u8() % 13),
        usize::from(b.u8() % 13),
    );
    let n = shape.0 * shape.1 * shape.2;
    let mut values = ParamValues::new();
    for spec in m.all_params() {
        if let Some(v) = value(&mut b, &spec.kind) {
            // Each new read noise builds the Anscombe expectation table (15 ms, cached for
            // 8 values): a few values keep the fuzzer's pace; `params` covers the rest.
            let v = match (spec.key, v.parse::<f64>()) {
                ("read_noise", Ok(x)) if (0.0..=1e4).contains(&x) => {
                    ["0", "0.5", "3", "40"][(x as usize) % 4].to_string()
                }
                // Time grows with a count of repeated work by design (10 000
                // Richardson-Lucy iterations or training steps take seconds on any image):
                // a fuzzer looks for hangs, not for long jobs, which cancel stops
                // (tests/jvm_roundtrip).
                (_, Ok(x)) if spec.unit == Unit::Count && x > 200.0 => "200".to_string(),
                _ => v,
            };
            values.insert(spec.key, v);
        }
    }
    // Image inputs (a PSF): absent, or a small image of any shape, including empty, with
    // the same pixel classes as the input.
    for input in m.images {
        if b.u8() % 4 != 0 {
            let k = (
                usize::from(b.u8() % 4),
                usize::from(b.u8() % 6),
                usize::from(b.u8() % 6),
            );
            let px: Vec<f32> = (0..k.0 * k.1 * k.2)
                .map(|_| pixel(&mut b, specials))
                .collect();
            values.insert_image(
                input.key,
                Volume::from_shape_vec(k, px).expect("shape matches"),
            );
        }
    }
    let px: Vec<f32> = (0..n).map(|_| pixel(&mut b, specials)).collect();
    (
        m,
        values,
        Volume::from_shape_vec(shape, px).expect("shape matches"),
    )
}
