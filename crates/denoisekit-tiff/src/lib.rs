//! Reading and writing grey-level TIFF images and multi-page stacks, whole or page by page.
//!
//! 8-bit, 16-bit and 32-bit float data (and 16/32-bit signed integers, 32-bit unsigned,
//! 16- and 64-bit floats, converted to f32) are read without rescaling. Every page must have the
//! same size and sample type. Output keeps the input's type by default, rounding and
//! clamping only to that type's own range, or is written as 32-bit float; files that would
//! pass 4 GiB are written as BigTIFF.
//!
//! Files are untrusted input: a page's claimed size is checked against the memory budget
//! ([`denoisekit_core::memory::limit`]) before anything is allocated, IFD cycles and
//! truncated data are errors, and every error names the file and the problem. A stack too
//! large for memory is refused by [`read`] with its size, and can be processed page by page
//! with [`PageReader`] and [`PageWriter`] instead.

use denoisekit_core::memory;
use denoisekit_core::{Volume, volume_from_vec};
use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::{TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard, colortype};

/// Sample type of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    /// 8-bit unsigned.
    U8,
    /// 16-bit unsigned.
    U16,
    /// 32-bit float (also used for any other input type).
    F32,
}

impl Bits {
    /// Rounds and clamps `v` to this type's range (identity for float).
    pub fn quantise(self, v: f32) -> f32 {
        match self.max() {
            Some(top) => v.round().clamp(0.0, top),
            None => v,
        }
    }

    /// The largest value an integer type holds; `None` for floats.
    pub fn max(self) -> Option<f32> {
        match self {
            Bits::U8 => Some(255.0),
            Bits::U16 => Some(65535.0),
            Bits::F32 => None,
        }
    }

    /// The type in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Bits::U8 => "8-bit unsigned integers",
            Bits::U16 => "16-bit unsigned integers",
            Bits::F32 => "32-bit floats (or another type read as them)",
        }
    }

    /// Bytes per sample in a file of this type.
    pub fn bytes(self) -> u64 {
        match self {
            Bits::U8 => 1,
            Bits::U16 => 2,
            Bits::F32 => 4,
        }
    }
}

/// A failure to read or write an image file.
#[derive(Debug, thiserror::Error)]
pub enum TiffIoError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The memory limit could not be read (a bad `DENOISEKIT_MEMORY_LIMIT`).
    #[error("{path} not opened: {reason}")]
    Limit {
        /// The file.
        path: String,
        /// What is wrong with the limit.
        reason: String,
    },
    /// Writing failed (a full disk, a folder that cannot be written).
    #[error("{path}: cannot be written: {reason}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        reason: String,
    },
    /// Not a TIFF, corrupt, or an unsupported layout.
    #[error("{path}: not a readable grey-level TIFF: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The data would not fit in the memory budget.
    #[error(
        "{path}: {what} needs {} in memory, more than the limit of {} (set {} to change \
         it; `denoisekit run` processes stacks page by page)",
        memory::fmt_bytes(*.bytes),
        memory::fmt_bytes(*.limit),
        memory::LIMIT_ENV
    )]
    TooLarge {
        /// The file.
        path: String,
        /// What was to be read: "a 2048x2048x900 stack", "page 3 (65535x65535)".
        what: String,
        /// Bytes it needs as f32.
        bytes: u64,
        /// The budget.
        limit: u64,
    },
}

fn budget(path: &str) -> Result<u64, TiffIoError> {
    memory::limit().map_err(|e| TiffIoError::Limit {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The decoder's error, said plainly where its words would not be (a file that ends
/// early is "failed to fill whole buffer").
fn plain(e: &tiff::TiffError) -> String {
    match e {
        tiff::TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends before its data does (truncated, or a directory pointing past its \
             end)"
                .into()
        }
        tiff::TiffError::LimitsExceeded => format!(
            "a strip, tile or tag is larger than the memory budget allows (set {} to raise \
             it)",
            denoisekit_core::memory::LIMIT_ENV
        ),
        tiff::TiffError::UnsupportedError(u) => {
            use tiff::TiffUnsupportedError as U;
            match u {
                U::UnsupportedColorType(ct) => {
                    format!(
                        "its pages are {}; supported: {SUPPORTED}",
                        describe_colour(*ct)
                    )
                }
                // Palette pages after a grey first page (the adapter replaces them only
                // in files that start with one).
                U::InterpretationWithBits(tiff::tags::PhotometricInterpretation::RGBPalette, _) => {
                    "its pages mix palette (colour-mapped) and grey-level images: save it \
                     again as one type (Fiji: Image > Type > 8-bit, then File > Save As > Tiff)"
                        .to_string()
                }
                // The decoder's words for these say "samples per pixel" or "channel".
                U::UnsupportedSampleDepth(bits) | U::UnsupportedBitsPerChannel(bits) => {
                    format!("its pages have {bits} bits per sample; supported: {SUPPORTED}")
                }
                U::UnsupportedCompressionMethod(m) => {
                    let name = match m {
                        tiff::tags::CompressionMethod::Unknown(code) => format!("code {code}"),
                        known => format!("{known:?}"),
                    };
                    format!(
                        "its compression ({name}) is not supported; supported: none, LZW, \
                         Deflate, PackBits and JPEG (Fiji: File > Save As > Tiff writes \
                         uncompressed)"
                    )
                }
                other => other.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The sample types a page may hold, as an error names them.
const SUPPORTED: &str = "grey levels of 8-, 16- and 32-bit unsigned, 16- and 32-bit signed \
                         integers, 16-, 32- and 64-bit floats";

/// The leading sizes of a series tifffile described as `{"shape": [..., height, width]}`
/// (before the plane's), with their axis letters when the description gives `"axes"`
/// (`"CZYX"`); `None` for any other description.
fn shaped(description: &str) -> Option<(Vec<usize>, Option<Vec<u8>>)> {
    let text = description.trim_start().strip_prefix('{')?;
    // The value after `"key":`, wherever the key stands (tifffile has written "shape"
    // first, and later "axes" first).
    let value = |key: &str| {
        let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
        text[at..]
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
    };
    let list = value("shape")?.strip_prefix('[')?;
    let mut dims: Vec<usize> = list[..list.find(']')?]
        .split(',')
        .map(|d| d.trim().parse().ok())
        .collect::<Option<_>>()?;
    let mut axes = value("axes").and_then(|v| {
        let v = v.strip_prefix('"')?;
        let letters = v[..v.find('"')?].to_ascii_uppercase().into_bytes();
        (letters.len() == dims.len()).then_some(letters)
    });
    // A grey array saved with a trailing axis of length 1 (`img[..., None]`, axes YXS or
    // ZYXC) has plain grey pages: that axis is not part of the plane's sizes.
    while dims.len() > 2 && dims.last() == Some(&1) {
        dims.pop();
        if let Some(a) = axes.as_mut() {
            a.pop();
        }
    }
    let leading = dims.len().checked_sub(2)?;
    let sizes = dims[..leading].to_vec();
    match axes {
        Some(a) if a.ends_with(b"YX") => Some((sizes, Some(a[..leading].to_vec()))),
        // Samples after the plane (RGB) are refused page by page; other orders, or no
        // axes, leave the leading sizes unnamed.
        _ => Some((sizes, None)),
    }
}

/// Axes from tifffile's leading `sizes` and their `letters` (slowest first): T, C and Z as
/// ImageJ's frames, channels and slices, in the file's page order. A generic sequence (I,
/// Q) counts as z where there is no Z. Any other axis longer than 1 is refused by name: it
/// is neither a plane of a volume nor a separate image.
fn tifffile_axes(sizes: &[usize], letters: &[u8]) -> Result<Axes, String> {
    let mut a = Axes::PLAIN;
    let mut fastest_first = Vec::new();
    let has_z = letters.contains(&b'Z');
    for (&n, &l) in sizes.iter().zip(letters).rev() {
        let axis = match l {
            b'T' | b'C' | b'Z' => l,
            b'I' | b'Q' if !has_z && a.slices == 1 => b'Z',
            _ if n == 1 => continue,
            _ => {
                return Err(format!(
                    "tifffile's description names axis '{}' of length {n} (axes {}YX), which \
                     is neither time (T), channel (C) nor z (Z); save the stack with axes \
                     made of T, C, Z, Y and X",
                    l as char,
                    String::from_utf8_lossy(letters)
                ));
            }
        };
        let size = match axis {
            b'C' => &mut a.channels,
            b'Z' => &mut a.slices,
            _ => &mut a.frames,
        };
        *size = size.saturating_mul(n.max(1));
        if !fastest_first.contains(&axis) {
            fastest_first.push(axis);
        }
    }
    for axis in *b"CZT" {
        if !fastest_first.contains(&axis) {
            fastest_first.push(axis);
        }
    }
    a.order = [fastest_first[0], fastest_first[1], fastest_first[2]];
    a.declared = a.channels * a.slices * a.frames > 1;
    Ok(a)
}

/// A page's colour type as a user reads it: "RGB, 8 bits per sample".
fn describe_colour(ct: tiff::ColorType) -> String {
    use tiff::ColorType as C;
    let (name, bits) = match ct {
        C::Gray(b) => ("grey", b),
        C::RGB(b) => ("RGB", b),
        C::Palette(b) => ("palette colour", b),
        C::GrayA(b) => ("grey with alpha", b),
        C::RGBA(b) => ("RGBA", b),
        C::CMYK(b) => ("CMYK", b),
        C::CMYKA(b) => ("CMYK with alpha", b),
        C::YCbCr(b) => ("YCbCr", b),
        C::Lab(b) => ("CIE L*a*b*", b),
        C::Multiband {
            bit_depth,
            num_samples,
        } => {
            return format!("{num_samples} samples per pixel of {bit_depth} bits");
        }
        // The enum may grow.
        #[allow(unreachable_patterns)]
        other => return format!("{other:?}"),
    };
    format!("{name}, {bits} bits per sample")
}

/// What an ImageJ or OME-TIFF description says the pages are: `channels` x `slices` x
/// `frames` images (1 each when the file says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axes {
    /// Channels (ImageJ stores them fastest: page order C, then Z, then T).
    pub channels: usize,
    /// Planes along z.
    pub slices: usize,
    /// Time points.
    pub frames: usize,
    /// Images ImageJ says the file holds (`images=`), whatever its directories.
    pub imagej_images: Option<usize>,
    /// The page order, fastest-varying axis first: `*b"CZT"` for ImageJ, an OME file's
    /// `DimensionOrder` after `XY`.
    pub order: [u8; 3],
    /// Whether a description gave these sizes: an OME image, or ImageJ's with more than
    /// one image. A file whose pages do not add up to them is not what it says.
    pub declared: bool,
}

impl Axes {
    const PLAIN: Self = Self {
        channels: 1,
        slices: 1,
        frames: 1,
        imagej_images: None,
        order: *b"CZT",
        declared: false,
    };

    /// The page holding channel `c`, plane `z` and time point `t` (from 0).
    pub fn page(&self, c: usize, z: usize, t: usize) -> usize {
        let (mut page, mut stride) = (0, 1);
        for axis in self.order {
            let (at, len) = match axis {
                b'C' => (c, self.channels),
                b'Z' => (z, self.slices),
                _ => (t, self.frames),
            };
            page += at * stride;
            stride *= len;
        }
        page
    }

    /// From the first page's ImageDescription.
    ///
    /// # Errors
    /// A tifffile description with an axis that is neither time, channel nor z.
    fn parse(description: &str) -> Result<Self, String> {
        let mut a = Self::PLAIN;
        let num = |v: &str| {
            v.trim()
                .trim_matches('"')
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
        };
        if description.starts_with("ImageJ=") {
            for line in description.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim() {
                    "channels" => a.channels = num(v).unwrap_or(1),
                    "slices" => a.slices = num(v).unwrap_or(1),
                    "frames" => a.frames = num(v).unwrap_or(1),
                    "images" => a.imagej_images = num(v),
                    _ => {}
                }
            }
            a.declared = a.channels * a.slices * a.frames > 1;
        } else if let Some((sizes, letters)) = shaped(description) {
            // tifffile's own description: each series' first page gives its shape, and
            // its axes when the writer named them (tifffile's `metadata={'axes': ...}`,
            // napari, scikit-image). Unnamed leading sizes are taken as planes of z.
            if let Some(letters) = letters {
                return tifffile_axes(&sizes, &letters);
            }
            let planes = sizes.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            a.slices = planes.unwrap_or(1);
            a.declared = a.slices > 1;
        } else if let Some(tag) = pixels_element(description) {
            a.declared = true;
            // The first image's sizes (attributes of its Pixels element).
            a.channels = attribute(&tag, "SizeC").and_then(|v| num(&v)).unwrap_or(1);
            a.slices = attribute(&tag, "SizeZ").and_then(|v| num(&v)).unwrap_or(1);
            a.frames = attribute(&tag, "SizeT").and_then(|v| num(&v)).unwrap_or(1);
            if let Some(v) = attribute(&tag, "DimensionOrder") {
                let v = v.into_bytes();
                let mut sorted = v.clone();
                sorted.sort_unstable();
                if sorted == b"CTXYZ" && v.starts_with(b"XY") {
                    a.order = [v[2], v[3], v[4]];
                }
            }
        }
        Ok(a)
    }
}

/// The first `Pixels` element's opening tag of an OME-XML text (with or without a
/// namespace prefix), its white space made single spaces.
fn pixels_element(xml: &str) -> Option<String> {
    let at = xml.match_indices("Pixels").map(|(i, _)| i).find(|&i| {
        let before = xml[..i].chars().next_back();
        let after = xml[i + "Pixels".len()..].chars().next();
        matches!(before, Some('<' | ':')) && after.is_some_and(char::is_whitespace)
    })?;
    let end = xml[at..].find('>').map_or(xml.len(), |e| at + e);
    Some(
        xml[at..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The value of attribute `name` in an element's tag, in single or double quotes (not of
/// another whose name starts with it: `PhysicalSizeX` is not `PhysicalSizeXUnit`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}");
    tag.match_indices(&key).find_map(|(at, _)| {
        let rest = tag[at + key.len()..]
            .trim_start()
            .strip_prefix('=')?
            .trim_start();
        let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let value = &rest[1..];
        Some(value[..value.find(quote)?].to_string())
    })
}

/// What an output of the same pages carries over from its input's first page: an ImageJ
/// description (axes, z spacing, unit) and the pixel size (XResolution, YResolution and
/// ResolutionUnit), so that Fiji opens the result as it opened the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calibration {
    /// The ImageDescription, when ImageJ wrote it, or one in ImageJ's form for an OME
    /// input (an OME description itself is not carried: it names the original's files and
    /// planes).
    pub imagej: Option<String>,
    /// Pixels per unit along x and along y, as (numerator, denominator).
    pub resolution: Option<[(u32, u32); 2]>,
    /// The TIFF ResolutionUnit (1 none, 2 inch, 3 centimetre).
    pub unit: Option<u16>,
    /// Whether the pages are WhiteIsZero: their values are kept as stored, as ImageJ
    /// keeps them (showing them through an inverting LUT), and the output says so too.
    pub white_is_zero: bool,
    /// The input page each output page is, when the description above is written for
    /// pages in another order than the input's: ImageJ's order (channels fastest, then z,
    /// then time) for an OME input stored otherwise. `None`: the input's order.
    pub order: Option<Vec<usize>>,
    /// ImageJ's metadata beyond its description (tags 50838 and 50839: the byte counts,
    /// then the bytes): slice labels, display ranges, channel LUTs, the Info text. Its
    /// entries are per image in page order, which an output keeps.
    pub imagej_metadata: Option<(Vec<u32>, Vec<u8>)>,
    /// The pages' colour map (TIFF's ColorMap: red, green, then blue, `3 · 2^bits`
    /// entries) when they are palette images, as ImageJ saves an 8-bit image with a
    /// coloured LUT: the values are read as grey levels, as ImageJ reads them, and an
    /// output of the same type shows them through the same LUT.
    pub palette: Option<Vec<u16>>,
}

/// ImageJ's metadata blocks (`counts` bytes each, the first a header) in little-endian
/// order, as the output is written: a big-endian file (ImageJ's default) stores the
/// header's numbers, its texts (UTF-16) and display ranges (f64) in its own order; LUTs,
/// ROIs and overlays are byte arrays (a ROI is big-endian in any file). `None` when the
/// blocks do not add up or the header is not ImageJ's: nothing is carried rather than a
/// block ImageJ would misread.
fn ij_metadata_little_endian(counts: &[u32], mut bytes: Vec<u8>, big: bool) -> Option<Vec<u8>> {
    let total = counts
        .iter()
        .try_fold(0usize, |n, &c| n.checked_add(c as usize))?;
    let header = *counts.first()? as usize;
    let magic: &[u8] = if big { b"IJIJ" } else { b"JIJI" };
    if total != bytes.len() || header < 4 || header % 8 != 4 || &bytes[..4] != magic {
        return None;
    }
    if !big {
        return Some(bytes);
    }
    // (type, blocks) pairs after the magic number, read before the header is swapped.
    let kinds: Vec<([u8; 4], u32)> = bytes[4..header]
        .chunks_exact(8)
        .map(|p| {
            (
                [p[0], p[1], p[2], p[3]],
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            )
        })
        .collect();
    bytes[..header]
        .chunks_exact_mut(4)
        .for_each(<[u8]>::reverse);
    let (mut block, mut at) = (1, header);
    for (kind, n) in kinds {
        let unit = match &kind {
            b"info" | b"labl" | b"prop" => 2,
            b"rang" => 8,
            _ => 1,
        };
        for _ in 0..n {
            let len = *counts.get(block)? as usize;
            bytes
                .get_mut(at..at + len)?
                .chunks_exact_mut(unit)
                .for_each(<[u8]>::reverse);
            (block, at) = (block + 1, at + len);
        }
    }
    Some(bytes)
}

/// ImageJ's private tags: the byte counts of its metadata blocks, and the blocks.
const IJ_METADATA_COUNTS: u16 = 50838;
const IJ_METADATA: u16 = 50839;

impl Calibration {
    /// An OME input's axes and pixel sizes (`pixels`: its Pixels element), or a tifffile
    /// input's named axes (`pixels` empty), carried as ImageJ writes them (an OME
    /// description is not carried: it names the original's files and planes). Without
    /// this, the output of a 2-channel stack is a plain stack of interleaved planes: Fiji
    /// shows it so, and a second run over it smooths across channels.
    fn carry_axes(&mut self, axes: &Axes, pixels: &str) {
        let (c, z, t) = (axes.channels, axes.slices, axes.frames);
        let micrometres = |axis: &str| {
            let size: f64 = attribute(pixels, &format!("PhysicalSize{axis}"))?
                .trim()
                .parse()
                .ok()?;
            let unit = attribute(pixels, &format!("PhysicalSize{axis}Unit"));
            // Multiplied or divided by a power of ten, never by its inverse: 700 nm is
            // 0.7 µm, not 0.7000000000000001.
            let (times, over) = match unit.as_deref().map(str::trim).unwrap_or("µm") {
                "µm" | "um" | "micron" | "microns" => (1.0, 1.0),
                "nm" => (1.0, 1e3),
                "pm" => (1.0, 1e6),
                "Å" => (1.0, 1e4),
                "mm" => (1e3, 1.0),
                "cm" => (1e4, 1.0),
                "m" => (1e6, 1.0),
                // Another unit (a reference frame, a pixel) is not a length to carry.
                _ => return None,
            };
            Some(size * times / over).filter(|v| v.is_finite() && *v > 0.0)
        };
        let mut text = format!("ImageJ=1.54f\nimages={}\n", c * z * t);
        for (name, n) in [("channels", c), ("slices", z), ("frames", t)] {
            if n > 1 {
                text += &format!("{name}={n}\n");
            }
        }
        if [c, z, t].iter().filter(|&&n| n > 1).count() > 1 {
            text += "hyperstack=true\n";
        }
        // The description's unit names the resolution's too: both are written, or
        // neither (the file's own resolution, in its own unit, is then kept).
        let pixel = micrometres("X")
            .zip(micrometres("Y"))
            .and_then(|(x, y)| per_unit(x).zip(per_unit(y)));
        if let Some((x, y)) = pixel {
            text += "unit=micron\n";
            if let Some(dz) = micrometres("Z") {
                text += &format!("spacing={dz}\n");
            }
            // Pixels per micron with no TIFF unit, as ImageJ writes them.
            self.resolution = Some([x, y]);
            self.unit = Some(1);
        }
        text += "loop=false\n";
        self.imagej = Some(text);
        let order: Vec<usize> = (0..t)
            .flat_map(|t| (0..z).flat_map(move |z| (0..c).map(move |c| axes.page(c, z, t))))
            .collect();
        self.order = order
            .iter()
            .enumerate()
            .any(|(k, &p)| k != p)
            .then_some(order);
    }
}

/// `1 / size` as a TIFF rational with the most precision that fits 32 bits (ImageJ writes
/// its resolutions over a denominator of 10^6).
fn per_unit(size: f64) -> Option<(u32, u32)> {
    let v = 1.0 / size;
    (0..=6).rev().find_map(|e| {
        let d = 10u32.pow(e);
        let n = (v * f64::from(d)).round();
        (n >= 1.0 && n <= f64::from(u32::MAX)).then_some((n as u32, d))
    })
}

/// Reads the pages of a TIFF one at a time, checking that each matches the first.
pub struct PageReader<R: Read + Seek> {
    dec: Decoder<PaletteAsGrey<R>>,
    path: String,
    width: u32,
    height: u32,
    /// The first decoded page's type.
    bits: Option<Bits>,
    /// Pages returned so far.
    page: usize,
    /// Whether the decoder stands on a page not yet returned.
    pending: bool,
    /// The memory budget, read once (it comes from the environment or /proc).
    limit: u64,
    axes: Axes,
    calibration: Calibration,
    /// Over the pages of a type wider than 32-bit float: the smallest and largest value,
    /// and the most a value moved in the conversion ([`Self::detail_loss`]).
    wide: Option<(f64, f64, f64)>,
}

impl PageReader<BufReader<File>> {
    /// Opens a file and reads its first page's header.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file and the problem.
    pub fn open(path: &Path) -> Result<Self, TiffIoError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| TiffIoError::Io {
            path: p.clone(),
            source,
        })?;
        Self::new(BufReader::new(file), p)
    }
}

impl<R: Read + Seek> PageReader<R> {
    /// Starts reading TIFF data from `reader`; `path` names it in messages.
    ///
    /// # Errors
    /// [`TiffIoError`] when the header or the first page's layout is unusable.
    pub fn new(reader: R, path: String) -> Result<Self, TiffIoError> {
        let limit = budget(&path)?;
        let fmt = |e: tiff::TiffError| TiffIoError::Format {
            path: path.clone(),
            reason: plain(&e),
        };
        let mut limits = Limits::default();
        // One page is decoded at a time, and `check_layout` refuses one over the budget
        // with the sizes named. The decoder's own limits are raised to the budget: its
        // defaults refused a real 16k x 16k 16-bit plane (256 MiB decoded) and any strip
        // over 128 MiB read in one piece, which is how ImageJ stores an uncompressed
        // plane (8k x 8k at 16 bits). They are never lowered below the defaults: a small
        // budget would then refuse a long description as "limits exceeded", not the page.
        let budget = usize::try_from(limit).unwrap_or(usize::MAX);
        limits.decoding_buffer_size = limits.decoding_buffer_size.max(budget);
        limits.intermediate_buffer_size = limits.intermediate_buffer_size.max(budget);
        let reader = PaletteAsGrey::new(reader).map_err(|source| TiffIoError::Io {
            path: path.clone(),
            source,
        })?;
        let mut dec = Decoder::new(reader).map_err(fmt)?.with_limits(limits);
        while auxiliary(&mut dec) && dec.more_images() {
            dec.next_image().map_err(fmt)?;
        }
        let mut r = Self {
            dec,
            path,
            width: 0,
            height: 0,
            bits: None,
            page: 0,
            pending: true,
            limit,
            axes: Axes::PLAIN,
            calibration: Calibration::default(),
            wide: None,
        };
        (r.width, r.height) = r.dec.dimensions().map_err(|e| r.fmt(plain(&e)))?;
        let description = match r.dec.find_tag(tiff::tags::Tag::ImageDescription) {
            Ok(Some(d)) => d.into_string().ok(),
            _ => None,
        };
        if let Some(d) = &description {
            r.axes = Axes::parse(d).map_err(|e| r.fmt(e))?;
        }
        let mut rational = |tag| match r.dec.find_tag(tag) {
            Ok(Some(tiff::decoder::ifd::Value::Rational(n, d))) if d > 0 => Some((n, d)),
            _ => None,
        };
        let (x, y) = (
            rational(tiff::tags::Tag::XResolution),
            rational(tiff::tags::Tag::YResolution),
        );
        r.calibration.resolution = x.zip(y).map(|(x, y)| [x, y]);
        // A resolution without its unit is in inches (TIFF's default), not unitless.
        r.calibration.unit = r
            .dec
            .find_tag_unsigned::<u16>(tiff::tags::Tag::ResolutionUnit)
            .ok()
            .flatten()
            .or(r.calibration.resolution.map(|_| 2));
        r.calibration.white_is_zero = r.white_is_zero();
        if r.dec.inner().palette() {
            r.calibration.palette = r
                .dec
                .find_tag_unsigned_vec::<u16>(tiff::tags::Tag::ColorMap)
                .ok()
                .flatten();
        }
        match description {
            Some(d) if d.starts_with("ImageJ=") => {
                r.calibration.imagej = Some(d);
                let mut tag = |t| r.dec.find_tag(tiff::tags::Tag::Unknown(t)).ok().flatten();
                let counts = tag(IJ_METADATA_COUNTS).and_then(|v| v.into_u32_vec().ok());
                let bytes = tag(IJ_METADATA).and_then(|v| v.into_u8_vec().ok());
                let big = r.dec.byte_order() == tiff::tags::ByteOrder::BigEndian;
                r.calibration.imagej_metadata = counts
                    .zip(bytes)
                    .and_then(|(c, b)| Some((c.clone(), ij_metadata_little_endian(&c, b, big)?)));
            }
            Some(d) => {
                if let Some(tag) = pixels_element(&d) {
                    r.calibration.carry_axes(&r.axes, &tag);
                } else if r.axes.channels * r.axes.frames > 1 {
                    // tifffile's named axes: an ImageJ hyperstack, as for OME.
                    r.calibration.carry_axes(&r.axes, "");
                }
            }
            None => {}
        }
        r.check_layout()?;
        Ok(r)
    }

    fn fmt(&self, reason: String) -> TiffIoError {
        TiffIoError::Format {
            path: self.path.clone(),
            reason,
        }
    }

    fn white_is_zero(&mut self) -> bool {
        self.dec
            .find_tag_unsigned::<u16>(tiff::tags::Tag::PhotometricInterpretation)
            .ok()
            .flatten()
            == Some(0)
    }

    /// Checks the page the decoder stands on: grey-level, the first page's size and
    /// photometric interpretation, and a size the budget can hold.
    fn check_layout(&mut self) -> Result<(), TiffIoError> {
        let n = self.page + 1;
        if self.white_is_zero() != self.calibration.white_is_zero {
            let name = |w| if w { "WhiteIsZero" } else { "BlackIsZero" };
            return Err(self.fmt(format!(
                "page {n} is {}, unlike the first page ({}): one of them would be shown \
                 inverted",
                name(!self.calibration.white_is_zero),
                name(self.calibration.white_is_zero)
            )));
        }
        let (w, h) = self.dec.dimensions().map_err(|e| self.fmt(plain(&e)))?;
        let ct = self.dec.colortype().map_err(|e| self.fmt(plain(&e)))?;
        if !matches!(ct, tiff::ColorType::Gray(_)) {
            return Err(self.fmt(format!(
                "page {n} is {}; only grey-level images are supported (Fiji: Image > Type > \
                 8-bit, or Image > Color > Split Channels)",
                describe_colour(ct)
            )));
        }
        if (w, h) != (self.width, self.height) {
            return Err(self.fmt(format!(
                "page {n} is {w}x{h}, unlike the first page ({}x{})",
                self.width, self.height
            )));
        }
        let (bytes, limit) = (u64::from(w) * u64::from(h) * 4, self.limit);
        if bytes > limit {
            return Err(TiffIoError::TooLarge {
                path: self.path.clone(),
                what: format!("page {n} ({w}x{h})"),
                bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Page width and height in pixels.
    pub fn dims(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    /// The file's sample type, known once the first page was read.
    pub fn bits(&self) -> Option<Bits> {
        self.bits
    }

    /// The axes the file's description gives its pages.
    pub fn axes(&self) -> Axes {
        self.axes
    }

    /// What an output of the same pages carries over (see [`Calibration`]).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Moves to the next page of the stack, if there is one (past thumbnails and masks).
    fn advance(&mut self) -> Result<bool, TiffIoError> {
        loop {
            if !self.dec.more_images() {
                if let Some(n) = self
                    .axes
                    .imagej_images
                    .filter(|&n| n > self.page && self.page == 1)
                {
                    // ImageJ writes a stack over 4 GiB with one directory, its planes after
                    // it.
                    return Err(self.fmt(format!(
                        "ImageJ says it holds {n} images, but it has one image directory \
                         (ImageJ saves stacks over 4 GiB so, the planes stored one after \
                         another): reading only the first would drop the rest. Open it in \
                         Fiji and run DenoiseKit there, or save it from Fiji as OME-TIFF \
                         (Bio-Formats Exporter)"
                    )));
                }
                return Ok(false);
            }
            self.dec.next_image().map_err(|e| self.fmt(plain(&e)))?;
            if !auxiliary(&mut self.dec) {
                break;
            }
        }
        self.check_layout()?;
        self.pending = true;
        Ok(true)
    }

    /// The next page's pixels as f32 (row-major), or `None` after the last page.
    ///
    /// # Errors
    /// [`TiffIoError`] for corrupt data or a page unlike the first.
    pub fn next_page(&mut self) -> Result<Option<Vec<f32>>, TiffIoError> {
        if !self.pending && !self.advance()? {
            return Ok(None);
        }
        self.pending = false;
        self.page += 1;
        let n = self.page;
        let mut page = self.dec.read_image().map_err(|e| self.fmt(plain(&e)))?;
        if self.calibration.white_is_zero {
            keep_as_stored(&mut page);
        }
        let (b, px): (Bits, Vec<f32>) = match page {
            DecodingResult::U8(v) => (Bits::U8, v.into_iter().map(f32::from).collect()),
            DecodingResult::U16(v) => (Bits::U16, v.into_iter().map(f32::from).collect()),
            DecodingResult::F32(v) => (Bits::F32, v),
            DecodingResult::I16(v) => (Bits::F32, v.into_iter().map(f32::from).collect()),
            DecodingResult::I32(v) => (Bits::F32, self.narrow(v.into_iter().map(f64::from))),
            DecodingResult::U32(v) => (Bits::F32, self.narrow(v.into_iter().map(f64::from))),
            DecodingResult::F64(v) => (Bits::F32, self.narrow(v.into_iter())),
            // Every half-precision value, subnormals and infinities included, is a 32-bit
            // float exactly.
            DecodingResult::F16(v) => (Bits::F32, v.into_iter().map(|h| h.to_f32()).collect()),
            other => {
                let name = match other {
                    DecodingResult::U64(_) => "64-bit unsigned integers",
                    DecodingResult::I8(_) => "8-bit signed integers",
                    DecodingResult::I64(_) => "64-bit signed integers",
                    _ => "an unknown type",
                };
                return Err(self.fmt(format!("page {n} holds {name}; supported: {SUPPORTED}")));
            }
        };
        if *self.bits.get_or_insert(b) != b {
            return Err(self.fmt(format!(
                "page {n} holds {}, unlike the first page ({})",
                b.describe(),
                self.bits.map_or("", Bits::describe)
            )));
        }
        let (w, h) = self.dims();
        if px.len() != w * h {
            return Err(self.fmt(format!(
                "page {n} has {} samples for {w}x{h} pixels: 1-, 2- and 4-bit samples, and \
                 several samples per pixel, are not supported",
                px.len()
            )));
        }
        Ok(Some(px))
    }

    /// Values of a type wider than 32-bit float as 32-bit floats, measured for
    /// [`Self::detail_loss`] in the same pass.
    fn narrow(&mut self, values: impl Iterator<Item = f64>) -> Vec<f32> {
        let w = self
            .wide
            .get_or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0));
        values
            .map(|v| {
                let f = v as f32;
                if !v.is_nan() {
                    *w = (w.0.min(v), w.1.max(v), w.2.max((v - f64::from(f)).abs()));
                }
                f
            })
            .collect()
    }

    /// Why the pages read so far, of a type wider than 32-bit float (64-bit floats, 32-bit
    /// integers), would lose their detail as 32-bit floats, judged over all of them
    /// ([`denoisekit_core::float32_precision_loss`]); `None` when they would not. Whoever
    /// reads the pages asks once they are all read.
    pub fn detail_loss(&self) -> Option<TiffIoError> {
        let (lo, hi, moved) = self.wide?;
        denoisekit_core::float32_precision_loss(lo, hi, moved).map(|why| self.fmt(why))
    }

    /// Whether the pages read so far are of a type wider than 32-bit float, whose detail
    /// [`Self::detail_loss`] judges.
    pub fn is_wide(&self) -> bool {
        self.wide.is_some()
    }

    /// Skips the next page without decoding its pixels; `false` after the last page.
    ///
    /// # Errors
    /// [`TiffIoError`] for a corrupt directory or a page unlike the first.
    pub fn skip_page(&mut self) -> Result<bool, TiffIoError> {
        if !self.pending && !self.advance()? {
            return Ok(false);
        }
        self.pending = false;
        self.page += 1;
        Ok(true)
    }
}

/// A TIFF whose palette pages (PhotometricInterpretation 3) read as grey-level pages
/// (BlackIsZero): the decoder refuses palette images, and ImageJ, which saves an 8-bit
/// image with a coloured LUT as one, reads their values as grey levels under that LUT.
/// The photometric value of each such directory is replaced as it is read; the file is
/// not changed.
pub struct PaletteAsGrey<R> {
    inner: R,
    pos: u64,
    /// File offsets of the values replaced, and the bytes read there instead (ascending);
    /// empty unless the first directory is a palette image.
    patches: Vec<(u64, [u8; 2])>,
}

/// Directories walked at most looking for palette pages (a stack's pages).
const MAX_DIRECTORIES: usize = 1 << 20;

impl<R: Read + Seek> PaletteAsGrey<R> {
    fn new(mut inner: R) -> std::io::Result<Self> {
        let mut patches = Vec::new();
        // A damaged chain ends the walk, keeping what it found: the decoder then reports
        // the damage itself, where it meets it.
        let _ = palette_directories(&mut inner, &mut patches);
        patches.sort_unstable_by_key(|p: &(u64, [u8; 2])| p.0);
        inner.seek(SeekFrom::Start(0))?;
        Ok(Self {
            inner,
            pos: 0,
            patches,
        })
    }

    /// Whether the pages are palette images (read as grey).
    fn palette(&self) -> bool {
        !self.patches.is_empty()
    }
}

/// Where the palette directories' photometric values are (into `patches`), walking the
/// chain of image directories only when the first is one (a grey file costs one
/// directory's read).
fn palette_directories<R: Read + Seek>(
    r: &mut R,
    patches: &mut Vec<(u64, [u8; 2])>,
) -> std::io::Result<()> {
    let mut head = [0u8; 16];
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut head[..8])?;
    let big_endian = match &head[..2] {
        b"II" => false,
        b"MM" => true,
        _ => return Ok(()),
    };
    let u16_at = |b: &[u8]| {
        let b = [b[0], b[1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let u64_at = |b: &[u8]| {
        let b: [u8; 8] = b[..8].try_into().expect("8 bytes");
        if big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    };
    let bigtiff = match u16_at(&head[2..4]) {
        42 => false,
        43 => {
            r.read_exact(&mut head[8..16])?;
            true
        }
        _ => return Ok(()),
    };
    let grey = if big_endian { [0, 1] } else { [1, 0] };
    let (entry, count_bytes, value_at) = if bigtiff { (20, 8, 12) } else { (12, 2, 8) };
    let mut next = if bigtiff {
        u64_at(&head[8..16])
    } else {
        u64::from(u32_at(&head[4..8]))
    };
    let mut seen = std::collections::HashSet::new();
    while next != 0 && seen.insert(next) && seen.len() <= MAX_DIRECTORIES {
        r.seek(SeekFrom::Start(next))?;
        let mut n = [0u8; 8];
        r.read_exact(&mut n[..count_bytes])?;
        let count = if bigtiff {
            u64_at(&n)
        } else {
            u64::from(u16_at(&n))
        };
        let count = usize::try_from(count.min(1 << 16)).unwrap_or(1 << 16);
        let mut entries = vec![0u8; count * entry + if bigtiff { 8 } else { 4 }];
        r.read_exact(&mut entries)?;
        let palette = entries.chunks_exact(entry).take(count).position(|e| {
            // PhotometricInterpretation, one SHORT of value 3 (palette).
            u16_at(&e[0..2]) == 262
                && u16_at(&e[2..4]) == 3
                && (if bigtiff {
                    u64_at(&e[4..12])
                } else {
                    u64::from(u32_at(&e[4..8]))
                }) == 1
                && u16_at(&e[value_at..value_at + 2]) == 3
        });
        match palette {
            Some(k) => {
                let at = next + count_bytes as u64 + (k * entry + value_at) as u64;
                patches.push((at, grey));
            }
            // A grey first page: nothing to replace, and no walk through the stack.
            None if patches.is_empty() => return Ok(()),
            None => {}
        }
        let tail = &entries[count * entry..];
        next = if bigtiff {
            u64_at(tail)
        } else {
            u64::from(u32_at(tail))
        };
    }
    Ok(())
}

impl<R: Read> Read for PaletteAsGrey<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let end = self.pos + n as u64;
        let first = self.patches.partition_point(|p| p.0 + 2 <= self.pos);
        for &(at, bytes) in self.patches[first..].iter().take_while(|p| p.0 < end) {
            for (k, b) in bytes.iter().enumerate() {
                let p = at + k as u64;
                if (self.pos..end).contains(&p) {
                    buf[(p - self.pos) as usize] = *b;
                }
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl<R: Seek> Seek for PaletteAsGrey<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// Whether the decoder's page is another page's thumbnail (reduced resolution) or
/// transparency mask, by its NewSubfileType or old SubfileType: Zeiss LSM files follow
/// every plane with one, and some scanners end with one. They are not planes of the stack:
/// reading them would refuse the file for a page of another size.
fn auxiliary<R: Read + Seek>(dec: &mut Decoder<R>) -> bool {
    let new = dec
        .find_tag_unsigned::<u32>(tiff::tags::Tag::NewSubfileType)
        .ok()
        .flatten()
        .unwrap_or(0);
    let old = dec
        .find_tag_unsigned::<u16>(tiff::tags::Tag::SubfileType)
        .ok()
        .flatten();
    new & 0b101 != 0 || old == Some(2)
}

/// Undoes the decoder's inversion of WhiteIsZero samples (`max - v` for unsigned integers,
/// exact; `1 - v` for floats, exact to half a unit in the last place of 1). ImageJ keeps the
/// stored values, so a noise model or a macro's offset read in Fiji fits them here too.
fn keep_as_stored(page: &mut DecodingResult) {
    match page {
        DecodingResult::U8(v) => v.iter_mut().for_each(|x| *x = u8::MAX - *x),
        DecodingResult::U16(v) => v.iter_mut().for_each(|x| *x = u16::MAX - *x),
        DecodingResult::U32(v) => v.iter_mut().for_each(|x| *x = u32::MAX - *x),
        DecodingResult::F32(v) => v.iter_mut().for_each(|x| *x = 1.0 - *x),
        DecodingResult::F64(v) => v.iter_mut().for_each(|x| *x = 1.0 - *x),
        // The decoder refuses other WhiteIsZero types before this.
        _ => {}
    }
}

/// What a TIFF holds, known from its directories without decoding a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Pages in the file.
    pub pages: usize,
    /// Page height in pixels.
    pub height: usize,
    /// Page width in pixels.
    pub width: usize,
    /// The axes the first page's description gives the pages.
    pub axes: Axes,
    /// What an output of the same pages carries over.
    pub calibration: Calibration,
}

/// The file's [`Layout`], walking every directory once (each page's layout is checked
/// against the first's, so a stack that cannot be read is refused before any work).
///
/// # Errors
/// [`TiffIoError`] naming the file and the problem.
pub fn layout(path: &Path) -> Result<Layout, TiffIoError> {
    let mut r = PageReader::open(path)?;
    let mut pages = 0;
    while r.skip_page()? {
        pages += 1;
    }
    let (width, height) = r.dims();
    Ok(Layout {
        pages,
        height,
        width,
        axes: r.axes,
        calibration: r.calibration,
    })
}

/// Reads every page of the TIFF at `path`, one at a time, to judge whether 32-bit floats
/// would lose its detail ([`PageReader::detail_loss`]): for a stack streamed in windows,
/// judged before the work rather than after it.
///
/// # Errors
/// That loss, or [`TiffIoError`] for a page that cannot be read.
pub fn check_detail(path: &Path) -> Result<(), TiffIoError> {
    let mut r = PageReader::open(path)?;
    while r.next_page()?.is_some() {}
    r.detail_loss().map_or(Ok(()), Err)
}

/// Reads every page of a TIFF file into a volume (z = page).
///
/// # Errors
/// [`TiffIoError`] naming the file and the problem (corrupt data, colour images, pages of
/// different sizes or types), or `TooLarge` when the stack exceeds the memory budget.
pub fn read(path: &Path) -> Result<(Volume, Bits), TiffIoError> {
    read_pages(PageReader::open(path)?)
}

/// [`read`] from bytes in memory; `name` names them in messages.
///
/// # Errors
/// As [`read`].
pub fn read_bytes(data: &[u8], name: &str) -> Result<(Volume, Bits), TiffIoError> {
    read_pages(PageReader::new(Cursor::new(data), name.to_string())?)
}

fn read_pages<R: Read + Seek>(mut r: PageReader<R>) -> Result<(Volume, Bits), TiffIoError> {
    let limit = r.limit;
    let (w, h) = r.dims();
    let page_bytes = (w * h * 4) as u64;
    let mut data: Vec<f32> = Vec::new();
    let mut pages = 0usize;
    while let Some(px) = r.next_page()? {
        pages += 1;
        let bytes = page_bytes.saturating_mul(pages as u64);
        if bytes > limit {
            return Err(TiffIoError::TooLarge {
                path: r.path.clone(),
                what: format!("a stack of {w}x{h} pages ({pages} read so far)"),
                bytes,
                limit,
            });
        }
        data.extend(px);
    }
    if let Some(e) = r.detail_loss() {
        return Err(e);
    }
    let v = volume_from_vec(pages, h, w, data).map_err(|e| r.fmt(e.to_string()))?;
    Ok((v, r.bits().unwrap_or(Bits::F32)))
}

/// The file an encoder writes, shared with its [`PageWriter`]: the encoder has no way to
/// hand its writer back, and the last buffered bytes must be flushed, and their error
/// seen, before the file is renamed into place.
#[derive(Clone)]
struct Sink(Arc<Mutex<BufWriter<File>>>);

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.lock().seek(pos)
    }
}

enum Encoder {
    Standard(TiffEncoder<Sink, TiffKindStandard>),
    Big(TiffEncoder<Sink, TiffKindBig>),
}

/// Writes a stack page by page into a file beside the target, which [`PageWriter::finish`]
/// renames into place: the target (which may be the input being read, page by page) is
/// untouched until the whole output is written, and a run that fails part-way, or is
/// dropped without `finish`, leaves no partial file and the old target as it was.
#[must_use = "the pages reach the target only through PageWriter::finish"]
pub struct PageWriter {
    enc: Option<Encoder>,
    sink: Sink,
    path: String,
    /// Where the pages go until `finish`; the target itself for one that is not a regular
    /// file (a device, a pipe), which cannot be replaced by a rename.
    part: PathBuf,
    target: PathBuf,
    bits: Bits,
    /// What the next page carries (the first page's only).
    calibration: Option<Calibration>,
    /// Every page's photometric interpretation (see [`Calibration::white_is_zero`]).
    white_is_zero: bool,
    /// Every page's colour map (see [`Calibration::palette`]), when it fits the type.
    palette: Option<std::sync::Arc<Vec<u16>>>,
    /// See [`PageWriter::saturated`].
    saturated: u64,
}

/// Classic TIFF offsets are 32-bit; leave room for the directories.
const CLASSIC_MAX: u64 = 4_000_000_000;

impl PageWriter {
    /// Creates `path` (and its folder) for about `total_pixels` samples of type `bits`:
    /// BigTIFF when they would pass the classic format's 4 GiB.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file.
    pub fn create(path: &Path, bits: Bits, total_pixels: u64) -> Result<Self, TiffIoError> {
        Self::create_as(
            path,
            bits,
            total_pixels.saturating_mul(bits.bytes()) > CLASSIC_MAX,
        )
    }

    /// Creates `path` as a classic TIFF or, with `big`, a BigTIFF.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file.
    pub fn create_as(path: &Path, bits: Bits, big: bool) -> Result<Self, TiffIoError> {
        let p = path.display().to_string();
        let io = |source| TiffIoError::Io {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A link is followed, so that the file it names is replaced, not the link.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let old = std::fs::metadata(&target).ok();
        // A rename would replace a file its owner made read-only (a raw file kept safe).
        if old.as_ref().is_some_and(|m| m.permissions().readonly()) {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the file is read-only; choose another output or make it writable",
            )));
        }
        let special = old.as_ref().is_some_and(|m| !m.is_file());
        let part = if special {
            target.clone()
        } else {
            denoisekit_core::files::part_beside(&target)
        };
        let file = if special {
            File::create(&part)
        } else {
            File::options().write(true).create_new(true).open(&part)
        }
        .map_err(|e| {
            io(std::io::Error::new(
                e.kind(),
                format!("{e} (writing {} in its folder)", part.display()),
            ))
        })?;
        // The replaced file's permissions carry over (a shared folder's group access).
        if let Some(m) = old.filter(|m| m.is_file()) {
            let _ = file.set_permissions(m.permissions());
        }
        let sink = Sink(Arc::new(Mutex::new(BufWriter::new(file))));
        let mut w = Self {
            enc: None,
            sink: sink.clone(),
            path: p,
            part,
            target,
            bits,
            calibration: None,
            white_is_zero: false,
            palette: None,
            saturated: 0,
        };
        let enc = if big {
            TiffEncoder::new_big(sink).map(Encoder::Big)
        } else {
            TiffEncoder::new(sink).map(Encoder::Standard)
        };
        w.enc = Some(enc.map_err(|e| w.write_error(e))?);
        Ok(w)
    }

    /// Checks that `path` could be written as [`PageWriter::create`] would (a read-only
    /// file refused, a file written beside it, or in the nearest existing folder where its
    /// own is still to be made), leaving nothing behind, no folders either:
    /// for a run to name an unwritable output before its work rather than after. A
    /// target that is not a regular file (a pipe) is not opened twice.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file.
    pub fn probe(path: &Path) -> Result<(), TiffIoError> {
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if target.is_dir() {
            return Err(TiffIoError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "it is a folder: name a file in it, such as out.tif",
                ),
            });
        }
        if std::fs::metadata(&target).is_ok_and(|m| !m.is_file()) {
            return Ok(());
        }
        // Folders the output needs are made only when it is written: a run that fails
        // leaves none. Where they are missing, the nearest folder that exists must take
        // a file (the folders would be made in it).
        let parent = target.parent().filter(|d| !d.as_os_str().is_empty());
        match parent.filter(|d| !d.exists()) {
            None => Self::create_as(path, Bits::F32, false).map(drop),
            Some(missing) => {
                let existing = missing
                    .ancestors()
                    .find(|a| a.exists())
                    .unwrap_or(Path::new("."));
                let trial = denoisekit_core::files::part_beside(&existing.join("probe"));
                std::fs::write(&trial, b"")
                    .map(|()| drop(std::fs::remove_file(&trial)))
                    .map_err(|source| TiffIoError::Io {
                        path: path.display().to_string(),
                        source: std::io::Error::new(
                            source.kind(),
                            format!("{source} (making its folder in {})", existing.display()),
                        ),
                    })
            }
        }
    }

    fn write_error(&self, e: impl std::fmt::Display) -> TiffIoError {
        TiffIoError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Gives the first page an input's [`Calibration`]; call before the first page.
    /// Pages are written as they come: a description written for reordered pages
    /// ([`Calibration::order`]) is not carried (only [`PageWriter::write_volume`] reorders).
    pub fn calibrate(&mut self, c: &Calibration) {
        self.white_is_zero = c.white_is_zero;
        // A colour map has an entry per value of the type: a 32-bit float output of a
        // palette image is grey.
        let entries = match self.bits {
            Bits::U8 => 3 << 8,
            Bits::U16 => 3 << 16,
            Bits::F32 => 0,
        };
        self.palette = c
            .palette
            .clone()
            .filter(|p| p.len() == entries)
            .map(std::sync::Arc::new);
        let mut c = c.clone();
        if c.order.take().is_some() {
            c.imagej = None;
            c.imagej_metadata = None;
        }
        self.calibration = Some(c);
    }

    /// Flushes the pages and moves the file into place (replacing any file there).
    ///
    /// # Errors
    /// [`TiffIoError::Write`] when the last bytes cannot be written or the file cannot be
    /// renamed; the target is then left as it was.
    pub fn finish(mut self) -> Result<(), TiffIoError> {
        drop(self.enc.take());
        {
            let mut file = self.sink.lock();
            file.flush().map_err(|e| self.write_error(e))?;
            // On disk before it replaces the target, which may be the input itself.
            file.get_ref().sync_all().map_err(|e| self.write_error(e))?;
        }
        if self.part != self.target {
            std::fs::rename(&self.part, &self.target).map_err(|e| self.write_error(e))?;
        }
        // Nothing left to clean up.
        self.part = self.target.clone();
        Ok(())
    }

    /// Appends every plane of `v`, the first carrying `calibration`, in its page order
    /// ([`Calibration::order`]) where it has one.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file.
    pub fn write_volume(
        &mut self,
        v: &Volume,
        calibration: &Calibration,
    ) -> Result<(), TiffIoError> {
        let (_, h, w) = v.dim();
        self.calibrate(&Calibration {
            order: None,
            ..calibration.clone()
        });
        let pages: Vec<usize> = calibration
            .order
            .clone()
            .unwrap_or_else(|| (0..v.dim().0).collect());
        for &k in &pages {
            let plane = v.index_axis(ndarray::Axis(0), k);
            match plane.as_slice() {
                Some(px) => self.write_page(w, h, px)?,
                None => self.write_page(w, h, &plane.iter().copied().collect::<Vec<_>>())?,
            }
        }
        Ok(())
    }

    /// How many pixels written so far lay above the type's largest value and were
    /// written as it (a deconvolution's peaks can pass 65535); 0 for floats.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// Appends one page of `width` x `height` pixels (row-major), quantised to the type.
    ///
    /// # Errors
    /// [`TiffIoError`] naming the file.
    pub fn write_page(
        &mut self,
        width: usize,
        height: usize,
        px: &[f32],
    ) -> Result<(), TiffIoError> {
        let (w, h) = (
            u32::try_from(width).map_err(|_| self.write_error(tiff::TiffError::IntSizeError))?,
            u32::try_from(height).map_err(|_| self.write_error(tiff::TiffError::IntSizeError))?,
        );
        let (bits, text) = (self.bits, self.calibration.take());
        if let Some(top) = bits.max() {
            self.saturated += px.iter().filter(|&&x| x.round() > top).count() as u64;
        }
        let page = Page {
            size: (w, h),
            bits,
            white_is_zero: self.white_is_zero,
            palette: self.palette.clone(),
        };
        match self.enc.as_mut() {
            Some(Encoder::Standard(e)) => write_into(e, &page, px, text),
            Some(Encoder::Big(e)) => write_into(e, &page, px, text),
            None => unreachable!("the encoder is taken only by finish, which consumes self"),
        }
        .map_err(|e| self.write_error(e))
    }
}

impl Drop for PageWriter {
    fn drop(&mut self) {
        if self.part != self.target {
            drop(self.enc.take());
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

/// How one output page is stored.
struct Page {
    size: (u32, u32),
    bits: Bits,
    white_is_zero: bool,
    palette: Option<std::sync::Arc<Vec<u16>>>,
}

fn write_into<K: TiffKind>(
    enc: &mut TiffEncoder<Sink, K>,
    p: &Page,
    px: &[f32],
    calibration: Option<Calibration>,
) -> tiff::TiffResult<()> {
    fn page<K: TiffKind, C: colortype::ColorType>(
        enc: &mut TiffEncoder<Sink, K>,
        p: &Page,
        data: &[C::Inner],
        calibration: Option<Calibration>,
    ) -> tiff::TiffResult<()>
    where
        [C::Inner]: tiff::encoder::TiffValue,
    {
        let mut image = enc.new_image::<C>(p.size.0, p.size.1)?;
        if p.white_is_zero {
            // Replaces the colour type's BlackIsZero: the values are the input's as stored.
            image
                .encoder()
                .write_tag(tiff::tags::Tag::PhotometricInterpretation, 0u16)?;
        }
        if let Some(map) = &p.palette {
            let enc = image.encoder();
            enc.write_tag(tiff::tags::Tag::PhotometricInterpretation, 3u16)?;
            enc.write_tag(tiff::tags::Tag::ColorMap, map.as_slice())?;
        }
        let c = calibration.unwrap_or_default();
        if let Some(text) = &c.imagej {
            image.encoder().write_tag(
                tiff::tags::Tag::ImageDescription,
                imagej_description(text).as_str(),
            )?;
        }
        if let Some((counts, bytes)) = &c.imagej_metadata {
            let enc = image.encoder();
            enc.write_tag(
                tiff::tags::Tag::Unknown(IJ_METADATA_COUNTS),
                counts.as_slice(),
            )?;
            enc.write_tag(tiff::tags::Tag::Unknown(IJ_METADATA), bytes.as_slice())?;
        }
        if let Some([(xn, xd), (yn, yd)]) = c.resolution {
            use tiff::encoder::Rational;
            image.x_resolution(Rational { n: xn, d: xd });
            image.y_resolution(Rational { n: yn, d: yd });
            if let Some(unit) = c.unit.and_then(tiff::tags::ResolutionUnit::from_u16) {
                image.resolution_unit(unit);
            }
        }
        image.write_data(data)
    }
    match p.bits {
        Bits::U8 => {
            let b: Vec<u8> = px.iter().map(|&x| Bits::U8.quantise(x) as u8).collect();
            page::<K, colortype::Gray8>(enc, p, &b, calibration)
        }
        Bits::U16 => {
            let b: Vec<u16> = px.iter().map(|&x| Bits::U16.quantise(x) as u16).collect();
            page::<K, colortype::Gray16>(enc, p, &b, calibration)
        }
        Bits::F32 => page::<K, colortype::Gray32Float>(enc, p, px, calibration),
    }
}

/// An ImageJ description as an output carries it: without its `images=` line. ImageJ
/// takes that line as a promise that the planes lie one after another from the first
/// page's offset, and then reads no other page directory; this writer puts each page's
/// directory after its plane, so every plane after the first would open shifted. Without
/// it ImageJ reads each page where its directory says, and still takes the channels,
/// slices and frames from the description.
fn imagej_description(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !line.starts_with("images="))
        .collect()
}

/// Writes a volume as a (multi-page) TIFF of the given type, replacing the file only once
/// the whole volume is written (see [`PageWriter`]).
///
/// # Errors
/// [`TiffIoError`] naming the file.
pub fn write(path: &Path, v: &Volume, bits: Bits) -> Result<(), TiffIoError> {
    write_calibrated(path, v, bits, &Calibration::default())
}

/// [`write()`], the first page carrying an input's [`Calibration`].
///
/// # Errors
/// [`TiffIoError`] naming the file.
pub fn write_calibrated(
    path: &Path,
    v: &Volume,
    bits: Bits,
    calibration: &Calibration,
) -> Result<(), TiffIoError> {
    let mut out = PageWriter::create(path, bits, v.len() as u64)?;
    out.write_volume(v, calibration)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use denoisekit_core::Volume;

    #[test]
    fn unsupported_pages_name_what_is_supported() {
        use tiff::TiffUnsupportedError as U;
        let said = |u| plain(&tiff::TiffError::UnsupportedError(u));
        let grey12 = said(U::UnsupportedColorType(tiff::ColorType::Gray(12)));
        assert!(
            grey12.starts_with(
                "its pages are grey, 12 bits per sample; supported: grey levels of 8-"
            ),
            "{grey12}"
        );
        let float24 = said(U::UnsupportedSampleDepth(24));
        assert!(
            float24.starts_with("its pages have 24 bits per sample; supported:"),
            "{float24}"
        );
        let lzma = said(U::UnsupportedCompressionMethod(
            tiff::tags::CompressionMethod::Unknown(34925),
        ));
        assert!(
            lzma.contains("compression (code 34925) is not supported; supported: none, LZW"),
            "{lzma}"
        );
    }

    #[test]
    fn imagej_metadata_of_a_big_endian_file_is_turned_little_endian() {
        // A header for one Info text and two labels, then the blocks, as ImageJ writes
        // them big-endian.
        let mut be = b"IJIJinfo\0\0\0\x01labl\0\0\0\x02".to_vec();
        be.extend([0, b'h', 0, b'i']);
        be.extend([0, b'a', 0, b'b', 0, b'c']);
        be.extend([0, b'z']);
        let counts = [20, 4, 6, 2];
        let le = ij_metadata_little_endian(&counts, be, true).unwrap();
        let mut want = b"JIJIofni\x01\0\0\0lbal\x02\0\0\0".to_vec();
        want.extend([b'h', 0, b'i', 0, b'a', 0, b'b', 0, b'c', 0, b'z', 0]);
        assert_eq!(le, want);
        // Little-endian blocks are kept; blocks that do not add up are dropped.
        assert_eq!(
            ij_metadata_little_endian(&counts, want.clone(), false),
            Some(want.clone())
        );
        assert_eq!(ij_metadata_little_endian(&[20, 4], want, false), None);
    }

    #[test]
    fn a_resolution_without_its_unit_is_in_inches() {
        // A 2x2 grey page with XResolution and YResolution (300/1) and no ResolutionUnit,
        // which TIFF reads as inches: carried as none, a reader would drop the unit.
        let mut f: Vec<u8> = b"II*\0".to_vec();
        f.extend(8u32.to_le_bytes());
        let entries: [(u16, u16, u32); 11] = [
            (256, 3, 2),
            (257, 3, 2),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, 162),
            (277, 3, 1),
            (278, 3, 2),
            (279, 4, 4),
            (282, 5, 146),
            (283, 5, 154),
        ];
        f.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            f.extend(tag.to_le_bytes());
            f.extend(kind.to_le_bytes());
            f.extend(1u32.to_le_bytes());
            if kind == 3 {
                f.extend((value as u16).to_le_bytes());
                f.extend([0, 0]);
            } else {
                f.extend(value.to_le_bytes());
            }
        }
        f.extend(0u32.to_le_bytes());
        for _ in 0..2 {
            f.extend(300u32.to_le_bytes());
            f.extend(1u32.to_le_bytes());
        }
        f.extend([1, 2, 3, 4]);
        let path = tmp("no-unit.tif");
        std::fs::write(&path, &f).unwrap();
        let r = PageReader::open(&path).unwrap();
        let c = r.calibration().clone();
        assert_eq!(
            (c.resolution, c.unit),
            (Some([(300, 1), (300, 1)]), Some(2))
        );
        // And written so.
        let out = tmp("no-unit-out.tif");
        let (v, bits) = read(&path).unwrap();
        write_calibrated(&out, &v, bits, &c).unwrap();
        let back = PageReader::open(&out).unwrap();
        assert_eq!(back.calibration().unit, Some(2));
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("denoisekit-tiff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn stack() -> Volume {
        Volume::from_shape_fn((3, 5, 7), |(z, y, x)| (z * 35 + y * 7 + x) as f32 * 1.5)
    }

    /// The files in `path`'s folder whose names start with `name.`: left-over parts.
    fn parts(path: &Path) -> Vec<String> {
        let prefix = format!("{}.", path.file_name().unwrap().to_string_lossy());
        std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.starts_with(&prefix).then_some(name)
            })
            .collect()
    }

    #[test]
    fn the_target_changes_only_when_the_whole_output_is_written() {
        let path = tmp("replace.tif");
        write(&path, &stack(), Bits::F32).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A run that fails part-way (or panics) drops its writer: the old file stays.
        let mut w = PageWriter::create(&path, Bits::U16, 35).unwrap();
        w.write_page(7, 5, &[1.0; 35]).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(parts(&path), Vec::<String>::new());
        // Written over the file it reads page by page (`run a.tif a.tif` on a stack
        // streamed through the memory limit): every page read is the old one.
        let mut r = PageReader::open(&path).unwrap();
        let mut w = PageWriter::create(&path, Bits::F32, 105).unwrap();
        let mut pages = 0;
        while let Some(px) = r.next_page().unwrap() {
            w.write_page(7, 5, &px.iter().map(|v| v + 1.0).collect::<Vec<_>>())
                .unwrap();
            pages += 1;
        }
        w.finish().unwrap();
        assert_eq!(pages, 3);
        assert_eq!(read(&path).unwrap().0, stack().mapv(|v| v + 1.0));
        assert_eq!(parts(&path), Vec::<String>::new());
        // A link is followed: the file it names is replaced, the link stays a link.
        #[cfg(unix)]
        {
            let link = tmp("link.tif");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&path, &link).unwrap();
            write(&link, &stack(), Bits::U8).unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
            assert_eq!(read(&path).unwrap().1, Bits::U8);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_target_is_refused_and_permissions_carry_over() {
        use std::os::unix::fs::PermissionsExt;
        let path = tmp("kept.tif");
        let _ = std::fs::remove_file(&path);
        write(&path, &stack(), Bits::U8).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, &stack(), Bits::U16).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = write(&path, &stack(), Bits::F32).unwrap_err().to_string();
        assert!(e.contains("read-only"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[test]
    fn a_write_that_fails_names_the_file_as_written_not_read() {
        // A device, not a regular file, is written in place (a rename cannot replace it).
        let full = Path::new("/dev/full");
        if full.exists() {
            let e = write(full, &stack(), Bits::F32).unwrap_err().to_string();
            assert!(e.starts_with("/dev/full: cannot be written: "), "{e}");
        }
        let e = write(Path::new("/proc/denoisekit/x.tif"), &stack(), Bits::F32)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/proc/denoisekit/x.tif: "), "{e}");
    }

    #[test]
    fn imagej_and_ome_descriptions_give_the_axes_and_a_single_directory_stack_is_refused() {
        let a = Axes::parse("ImageJ=1.54f\nimages=12\nchannels=2\nslices=3\nframes=2\n").unwrap();
        assert_eq!(
            (a.channels, a.slices, a.frames, a.imagej_images),
            (2, 3, 2, Some(12))
        );
        // ImageJ's order: channels fastest, then z, then time.
        assert_eq!(
            (a.page(1, 0, 0), a.page(0, 1, 0), a.page(0, 0, 1)),
            (1, 2, 6)
        );
        // tifffile's own: the leading sizes of its first series, as z when unnamed.
        let shaped = Axes::parse("{\"shape\": [2, 3, 8, 8]}").unwrap();
        assert_eq!((shaped.slices, shaped.declared), (6, true));
        assert!(!Axes::parse("{\"shape\": [8, 8]}").unwrap().declared);
        assert!(!Axes::parse("{\"shape\": \"odd\"}").unwrap().declared);
        // Named (tifffile's metadata={'axes': ...}): channels and time are not z, and
        // the pages run in the shape's order, its last axis fastest.
        let named = Axes::parse("{\"shape\": [4, 2, 3, 8, 8], \"axes\": \"TCZYX\"}").unwrap();
        assert_eq!(
            (named.frames, named.channels, named.slices, named.order),
            (4, 2, 3, *b"ZCT")
        );
        assert_eq!((named.page(1, 0, 0), named.page(0, 1, 0)), (3, 1));
        // A trailing axis of length 1 (img[..., None]) is not part of the plane.
        let trailing = Axes::parse("{\"shape\": [8, 8, 1]}").unwrap();
        assert_eq!((trailing.slices, trailing.declared), (1, false));
        let trailing = Axes::parse("{\"shape\": [5, 8, 8, 1]}").unwrap();
        assert_eq!((trailing.slices, trailing.channels), (5, 1));
        let trailing = Axes::parse("{\"axes\": \"ZYXC\", \"shape\": [3, 8, 8, 1]}").unwrap();
        assert_eq!((trailing.slices, trailing.channels), (3, 1));
        let generic = Axes::parse("{\"axes\": \"IYX\", \"shape\": [5, 8, 8]}").unwrap();
        assert_eq!(generic.slices, 5);
        let e = Axes::parse("{\"shape\": [3, 5, 8, 8], \"axes\": \"EZYX\"}").unwrap_err();
        assert!(
            e.contains("axis 'E' of length 3 (axes EZYX), which is"),
            "{e}"
        );
        let ome = Axes::parse(
            "<?xml version=\"1.0\"?><OME><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" \
             DimensionOrder=\"XYZCT\" SizeC=\"2\" SizeT=\"1\" SizeX=\"8\" SizeY=\"8\" \
             SizeZ=\"3\" Type=\"uint16\"></Pixels></Image></OME>",
        )
        .unwrap();
        assert_eq!(
            (ome.channels, ome.slices, ome.frames, ome.order),
            (2, 3, 1, *b"ZCT")
        );
        // A namespace prefix, single quotes, attributes on their own lines, a closed tag.
        let prefixed = Axes::parse(
            "<ome:OME><ome:Image><ome:Pixels\n  SizeZ='4'\n\tSizeC = '3' SizeT='1' \
             DimensionOrder='XYCZT'/></ome:Image></ome:OME>",
        )
        .unwrap();
        assert_eq!(
            (prefixed.channels, prefixed.slices, prefixed.order),
            (3, 4, *b"CZT")
        );
        assert_eq!((ome.page(1, 0, 0), ome.page(0, 1, 0)), (3, 1));
        assert_eq!(Axes::parse("a camera's own text"), Ok(Axes::PLAIN));

        // One directory, `images=4`: what ImageJ writes above 4 GiB.
        let path = tmp("one-directory.tif");
        {
            let mut enc = TiffEncoder::new(File::create(&path).unwrap()).unwrap();
            let mut image = enc.new_image::<colortype::Gray16>(4, 4).unwrap();
            let e = image.encoder();
            let description = "ImageJ=1.54f\nimages=4\nslices=4\n";
            e.write_tag(tiff::tags::Tag::ImageDescription, description)
                .unwrap();
            image.x_resolution(tiff::encoder::Rational { n: 1000, d: 65 });
            image.y_resolution(tiff::encoder::Rational { n: 1000, d: 66 });
            image.resolution_unit(tiff::tags::ResolutionUnit::Centimeter);
            image.write_data(&[7u16; 16]).unwrap();
        }
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("holds 4 images, but it has one image directory"),
            "{e}"
        );
        assert!(layout(&path).is_err());
        // The calibration is read back for an output to carry.
        let r = PageReader::open(&path).unwrap();
        let c = r.calibration();
        assert_eq!(
            c.imagej.as_deref(),
            Some("ImageJ=1.54f\nimages=4\nslices=4\n")
        );
        assert_eq!(
            (c.resolution, c.unit),
            (Some([(1000, 65), (1000, 66)]), Some(3))
        );
        // An output carries it without `images=`, which would make ImageJ read its
        // planes as one block (this writer puts a directory after each plane).
        let out = tmp("one-directory-out.tif");
        let mut w = PageWriter::create(&out, Bits::U16, 32).unwrap();
        w.calibrate(c);
        w.write_page(4, 4, &[7.0; 16]).unwrap();
        w.write_page(4, 4, &[8.0; 16]).unwrap();
        w.finish().unwrap();
        let back = PageReader::open(&out).unwrap();
        assert_eq!(
            back.calibration().imagej.as_deref(),
            Some("ImageJ=1.54f\nslices=4\n")
        );
    }

    #[test]
    fn every_type_round_trips_classic_and_big() {
        for bits in [Bits::U8, Bits::U16, Bits::F32] {
            for big in [false, true] {
                let path = tmp(&format!("rt-{bits:?}-{big}.tif"));
                let v = stack();
                let mut w = PageWriter::create_as(&path, bits, big).unwrap();
                for plane in v.outer_iter() {
                    w.write_page(7, 5, plane.as_slice().unwrap()).unwrap();
                }
                w.finish().unwrap();
                let (back, b) = read(&path).unwrap();
                assert_eq!(b, bits);
                assert_eq!(back, v.mapv(|x| bits.quantise(x)), "{bits:?} big={big}");
                let l = layout(&path).unwrap();
                assert_eq!((l.pages, l.height, l.width), (3, 5, 7));
            }
        }
    }

    #[test]
    fn half_precision_floats_are_read_exactly_as_32_bit_floats() {
        // napari, numpy and some cameras' exports write float16; the encoder has no such
        // colour type, so the test names one.
        struct GrayF16;
        impl colortype::ColorType for GrayF16 {
            type Inner = u16;
            const TIFF_VALUE: tiff::tags::PhotometricInterpretation =
                tiff::tags::PhotometricInterpretation::BlackIsZero;
            const BITS_PER_SAMPLE: &'static [u16] = &[16];
            const SAMPLE_FORMAT: &'static [tiff::tags::SampleFormat] =
                &[tiff::tags::SampleFormat::IEEEFP];
            fn horizontal_predict(row: &[u16], result: &mut Vec<u16>) {
                result.extend_from_slice(row);
            }
        }
        // 1, 2.5, -0.5, the largest half (65504), the smallest normal one (2^-14) and the
        // smallest subnormal one (2^-24).
        let bits: [u16; 6] = [0x3c00, 0x4100, 0xb800, 0x7bff, 0x0400, 0x0001];
        let want = [1.0, 2.5, -0.5, 65504.0, 2f32.powi(-14), 2f32.powi(-24)];
        let path = tmp("half.tif");
        let mut enc = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
        for _ in 0..2 {
            enc.write_image::<GrayF16>(3, 2, &bits).unwrap();
        }
        drop(enc);
        let (v, b) = read(&path).unwrap();
        assert_eq!(b, Bits::F32);
        assert_eq!(v.dim(), (2, 2, 3));
        for plane in v.outer_iter() {
            assert_eq!(plane.iter().copied().collect::<Vec<f32>>(), want);
        }
    }

    /// A big-endian classic TIFF of `pages` 4x3 8-bit palette pages, as ImageJ saves an
    /// 8-bit stack with a coloured LUT (the decoder's encoder cannot write one).
    fn imagej_palette_stack(pages: u8) -> (Vec<u8>, Vec<u16>) {
        let map: Vec<u16> = (0..768u32)
            .map(|i| ((i % 256) * 257 * (i / 256)) as u16)
            .collect();
        let mut f = b"MM\0\x2a\0\0\0\0".to_vec();
        let map_at = f.len() as u32;
        f.extend(map.iter().flat_map(|v| v.to_be_bytes()));
        let mut link = 4;
        for p in 0..pages {
            let data_at = f.len() as u32;
            f.extend((0..12u8).map(|i| i * 10 + p));
            let ifd = f.len() as u32;
            f[link..link + 4].copy_from_slice(&ifd.to_be_bytes());
            let short = |v: u16| [v.to_be_bytes()[0], v.to_be_bytes()[1], 0, 0];
            let entries: [(u16, u16, u32, [u8; 4]); 10] = [
                (256, 3, 1, short(4)),
                (257, 3, 1, short(3)),
                (258, 3, 1, short(8)),
                (259, 3, 1, short(1)),
                (262, 3, 1, short(3)),
                (273, 4, 1, data_at.to_be_bytes()),
                (277, 3, 1, short(1)),
                (278, 3, 1, short(3)),
                (279, 4, 1, 12u32.to_be_bytes()),
                (320, 3, 768, map_at.to_be_bytes()),
            ];
            f.extend((entries.len() as u16).to_be_bytes());
            for (tag, ty, n, v) in entries {
                f.extend(tag.to_be_bytes());
                f.extend(ty.to_be_bytes());
                f.extend(n.to_be_bytes());
                f.extend(v);
            }
            link = f.len();
            f.extend([0; 4]);
        }
        (f, map)
    }

    #[test]
    fn palette_pages_read_as_grey_levels_and_keep_their_colour_map() {
        let (file, map) = imagej_palette_stack(3);
        let input = tmp("palette.tif");
        std::fs::write(&input, &file).unwrap();
        let mut r = PageReader::open(&input).unwrap();
        assert_eq!(r.calibration().palette.as_deref(), Some(map.as_slice()));
        for p in 0..3u8 {
            let px = r.next_page().unwrap().unwrap();
            let want: Vec<f32> = (0..12u8).map(|i| f32::from(i * 10 + p)).collect();
            assert_eq!(px, want, "page {p}");
        }
        assert_eq!(r.bits(), Some(Bits::U8));
        assert!(r.next_page().unwrap().is_none());
        // The file itself is not changed.
        assert_eq!(std::fs::read(&input).unwrap(), file);
        // An 8-bit output shows the same LUT; a float one is grey.
        let (v, _) = read(&input).unwrap();
        for (bits, big, photometric) in [
            (Bits::U8, false, 3u16),
            (Bits::U8, true, 3),
            (Bits::F32, false, 1),
        ] {
            let out = tmp(&format!("palette-out-{bits:?}-{big}.tif"));
            let mut w = PageWriter::create_as(&out, bits, big).unwrap();
            w.write_volume(&v, r.calibration()).unwrap();
            w.finish().unwrap();
            let mut dec = Decoder::new(BufReader::new(File::open(&out).unwrap())).unwrap();
            for page in 0..3 {
                let tag = |d: &mut Decoder<_>, t| d.find_tag_unsigned_vec::<u16>(t).unwrap();
                let got = tag(&mut dec, tiff::tags::Tag::PhotometricInterpretation);
                assert_eq!(got, Some(vec![photometric]), "{bits:?} page {page}");
                let colours = tag(&mut dec, tiff::tags::Tag::ColorMap);
                assert_eq!(colours.is_some(), photometric == 3, "{bits:?}");
                if page < 2 {
                    dec.next_image().unwrap();
                }
            }
            let (back, _) = read(&out).unwrap();
            assert_eq!(back, v, "{bits:?} big={big}");
            if photometric == 3 {
                // Read back as palette pages too, the BigTIFF chain included.
                let again = PageReader::open(&out).unwrap();
                assert_eq!(again.calibration().palette.as_deref(), Some(map.as_slice()));
            }
        }
        // Cut inside the last page's directory: the pages before it are still palette
        // pages read as grey, and the error is the truncation, not the palette.
        let cut = tmp("palette-cut.tif");
        std::fs::write(&cut, &file[..file.len() - 20]).unwrap();
        let e = read(&cut).unwrap_err().to_string();
        assert!(e.contains("the file ends before its data does"), "{e}");
    }

    #[test]
    fn white_is_zero_values_are_kept_as_stored_and_carried_to_the_output() {
        let white = Calibration {
            white_is_zero: true,
            ..Default::default()
        };
        for bits in [Bits::U8, Bits::U16, Bits::F32] {
            let path = tmp(&format!("white-{bits:?}.tif"));
            let v = stack().mapv(|x| bits.quantise(x.abs() * 0.4));
            write_calibrated(&path, &v, bits, &white).unwrap();
            // The values as stored, as ImageJ reads them, and the tag for the next output.
            let mut r = PageReader::open(&path).unwrap();
            assert!(r.calibration().white_is_zero, "{bits:?}");
            assert_eq!(layout(&path).unwrap().calibration, *r.calibration());
            let first = r.next_page().unwrap().unwrap();
            let tol = if bits == Bits::F32 { 1e-7 } else { 0.0 };
            for (a, b) in first.iter().zip(v.iter()) {
                assert!((a - b).abs() <= tol, "{bits:?}: {a} read for {b}");
            }
            // The tiff decoder alone inverts them: the file holds the values, tagged.
            let mut dec = Decoder::new(BufReader::new(File::open(&path).unwrap())).unwrap();
            let inverted: Vec<f64> = match dec.read_image().unwrap() {
                DecodingResult::U8(p) => p.iter().map(|&x| f64::from(u8::MAX - x)).collect(),
                DecodingResult::U16(p) => p.iter().map(|&x| f64::from(u16::MAX - x)).collect(),
                DecodingResult::F32(p) => p.iter().map(|&x| f64::from(1.0 - x)).collect(),
                _ => unreachable!(),
            };
            for (a, b) in inverted.iter().zip(v.iter()) {
                assert!(
                    (a - f64::from(*b)).abs() <= 1e-7,
                    "{bits:?}: {a} stored for {b}"
                );
            }
        }
        // A file whose pages disagree would show one of them inverted.
        let path = tmp("white-mixed.tif");
        let mut w = PageWriter::create(&path, Bits::U8, 0).unwrap();
        w.calibrate(&white);
        w.write_page(4, 4, &[7.0; 16]).unwrap();
        w.white_is_zero = false;
        w.write_page(4, 4, &[7.0; 16]).unwrap();
        w.finish().unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("page 2 is BlackIsZero, unlike the first page (WhiteIsZero)"),
            "{e}"
        );
    }

    #[test]
    fn pages_are_read_one_at_a_time_and_skipped_without_decoding() {
        let path = tmp("pages.tif");
        write(&path, &stack(), Bits::F32).unwrap();
        let mut r = PageReader::open(&path).unwrap();
        assert!(r.skip_page().unwrap());
        let second = r.next_page().unwrap().unwrap();
        assert_eq!(second[0], 35.0 * 1.5);
        assert!(r.next_page().unwrap().is_some());
        assert!(r.next_page().unwrap().is_none());
        assert!(!r.skip_page().unwrap());
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors_naming_the_file() {
        let path = tmp("whole.tif");
        write(&path, &stack(), Bits::U16).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let e = read_bytes(&bytes[..cut], "cut.tif")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("cut.tif: "), "{e}");
            assert!(!e.contains("failed to fill whole buffer"), "{e}");
        }
        let e = read_bytes(&bytes[..bytes.len() - 1], "cut.tif")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the file ends before its data does"), "{e}");
        let e = read_bytes(b"not a tiff at all", "text.tif")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("text.tif: not a readable grey-level TIFF"),
            "{e}"
        );
    }

    /// An uncompressed 8-bit page in one strip, as ImageJ stores a plane, with `first`
    /// and `last` as its first and last pixels; the rest is a hole in the file.
    fn one_strip(path: &Path, w: u32, h: u32, first: u8, last: u8) {
        let data = 1024u32;
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, data),
            (277, 3, 1),
            (278, 4, h),
            (279, 4, w * h),
        ];
        let mut head = b"II*\0".to_vec();
        head.extend(8u32.to_le_bytes());
        head.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            head.extend(tag.to_le_bytes());
            head.extend(kind.to_le_bytes());
            head.extend(1u32.to_le_bytes());
            // A SHORT sits in the first two bytes of the value field.
            head.extend(value.to_le_bytes());
        }
        head.extend(0u32.to_le_bytes());
        let mut f = File::create(path).unwrap();
        f.write_all(&head).unwrap();
        f.set_len(u64::from(data)).unwrap();
        f.seek(SeekFrom::Start(u64::from(data))).unwrap();
        f.write_all(&[first]).unwrap();
        f.seek(SeekFrom::Start(u64::from(data + w * h - 1)))
            .unwrap();
        f.write_all(&[last]).unwrap();
    }

    #[test]
    fn wide_values_that_32_bit_floats_would_flatten_are_refused() {
        // A 64-bit float image at an offset of a million with detail of a tenth: as 32-bit
        // floats it would keep two levels. The same detail near zero is read.
        for (offset, refused) in [(1e6, true), (0.0, false)] {
            let path = tmp(&format!("wide-{offset}.tif"));
            let mut enc = TiffEncoder::new(BufWriter::new(File::create(&path).unwrap())).unwrap();
            let px: Vec<f64> = (0..64)
                .map(|i| offset + 0.1 * f64::from(i % 7) / 7.0)
                .collect();
            enc.write_image::<colortype::Gray64Float>(8, 8, &px)
                .unwrap();
            drop(enc);
            match read(&path) {
                Err(e) if refused => {
                    let e = e.to_string();
                    assert!(
                        e.contains("its values reach 1.000e6") && e.contains("Subtract an offset"),
                        "{e}"
                    );
                }
                Ok((v, _)) if !refused => assert_eq!(v[[0, 0, 1]], (0.1f64 / 7.0) as f32),
                other => panic!("offset {offset}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_colour_page_is_named_as_users_name_it() {
        let path = tmp("rgb.tif");
        let mut enc = TiffEncoder::new(BufWriter::new(File::create(&path).unwrap())).unwrap();
        enc.write_image::<colortype::RGB8>(2, 2, &[0u8; 12])
            .unwrap();
        drop(enc);
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("page 1 is RGB, 8 bits per sample; only grey-level images"),
            "{e}"
        );
    }

    #[test]
    fn a_plane_stored_in_one_strip_over_128_mib_is_read() {
        // The decoder's default refused any strip over 128 MiB: an 8k x 8k 16-bit plane
        // saved by ImageJ is at that edge, a 9k x 9k one over it. 8-bit keeps the file
        // (mostly a hole) and the test small.
        let path = tmp("one-strip.tif");
        let (w, h) = (12_000u32, 11_200u32);
        assert!(u64::from(w * h) > 128 << 20);
        one_strip(&path, w, h, 7, 9);
        let mut r = PageReader::open(&path).unwrap();
        let px = r.next_page().unwrap().unwrap();
        assert_eq!(px.len(), (w * h) as usize);
        assert_eq!((px[0], px[1], px[px.len() - 1]), (7.0, 0.0, 9.0));
        assert_eq!(r.bits(), Some(Bits::U8));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_ome_input_gives_its_output_imagej_axes_pixel_size_and_plane_order() {
        // 2 channels x 3 slices stored z fastest (XYZCT): page z + 3c holds value z + 3c.
        let ome = |order: &str| {
            format!(
                "<?xml version=\"1.0\"?><OME><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" \
                 DimensionOrder=\"{order}\" SizeC=\"2\" SizeT=\"1\" SizeX=\"4\" SizeY=\"4\" \
                 SizeZ=\"3\" PhysicalSizeXUnit=\"nm\" PhysicalSizeX=\"100\" \
                 PhysicalSizeY=\"0.125\" PhysicalSizeZ=\"700\" PhysicalSizeZUnit=\"nm\" \
                 Type=\"uint16\"></Pixels>\
                 </Image></OME>"
            )
        };
        let (input, output) = (tmp("ome-in.tif"), tmp("ome-out.tif"));
        let write_ome = |order: &str| {
            let mut w = PageWriter::create(&input, Bits::U16, 96).unwrap();
            w.calibrate(&Calibration {
                imagej: Some(ome(order)),
                ..Default::default()
            });
            for page in 0..6 {
                w.write_page(4, 4, &[page as f32; 16]).unwrap();
            }
            w.finish().unwrap();
        };
        write_ome("XYZCT");
        let l = layout(&input).unwrap();
        let c = &l.calibration;
        assert_eq!(
            c.imagej.as_deref(),
            Some(
                "ImageJ=1.54f\nimages=6\nchannels=2\nslices=3\nhyperstack=true\nunit=micron\n\
                 spacing=0.7\nloop=false\n"
            )
        );
        assert_eq!(
            (c.resolution, c.unit),
            (
                Some([(10_000_000, 1_000_000), (8_000_000, 1_000_000)]),
                Some(1)
            )
        );
        // Output page c + 2z is the input's page z + 3c.
        assert_eq!(c.order, Some(vec![0, 3, 1, 4, 2, 5]));
        let (v, bits) = read(&input).unwrap();
        write_calibrated(&output, &v, bits, c).unwrap();
        let back = layout(&output).unwrap();
        assert_eq!(
            (back.axes.channels, back.axes.slices, back.axes.order),
            (2, 3, *b"CZT")
        );
        let (out, _) = read(&output).unwrap();
        let firsts: Vec<f32> = out.outer_iter().map(|p| p[[0, 0]]).collect();
        assert_eq!(firsts, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // Stored in ImageJ's order already: the pages are written as they are.
        write_ome("XYCZT");
        assert_eq!(layout(&input).unwrap().calibration.order, None);
        assert_eq!(per_unit(1e-5), Some((1_000_000_000, 10_000)));
        assert_eq!(per_unit(1e12), None);
        let _ = (std::fs::remove_file(&input), std::fs::remove_file(&output));
    }

    #[test]
    fn thumbnails_and_masks_are_skipped_not_read_as_planes() {
        // As a Zeiss LSM stores them: each plane followed by its thumbnail; then a
        // transparency mask (NewSubfileType bit 2) and an old-style SubfileType 2 thumbnail.
        let path = tmp("thumbnails.tif");
        {
            let mut enc = TiffEncoder::new(File::create(&path).unwrap()).unwrap();
            let mut page = |size: u32, value: u8, new: u32, old: Option<u16>| {
                let mut image = enc.new_image::<colortype::Gray8>(size, size).unwrap();
                if new != 0 {
                    image
                        .encoder()
                        .write_tag(tiff::tags::Tag::NewSubfileType, new)
                        .unwrap();
                }
                if let Some(old) = old {
                    image
                        .encoder()
                        .write_tag(tiff::tags::Tag::SubfileType, old)
                        .unwrap();
                }
                let px = vec![value; (size * size) as usize];
                image.write_data(&px).unwrap();
            };
            page(2, 9, 1, None);
            page(6, 1, 0, None);
            page(2, 9, 1, None);
            page(6, 2, 0, None);
            page(2, 9, 1, None);
            page(6, 0, 4, None);
            page(6, 3, 0, None);
            page(3, 9, 0, Some(2));
        }
        let (v, _) = read(&path).unwrap();
        assert_eq!(v.dim(), (3, 6, 6));
        assert_eq!((v[[0, 0, 0]], v[[1, 5, 5]], v[[2, 3, 3]]), (1.0, 2.0, 3.0));
        assert_eq!(layout(&path).unwrap().pages, 3);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn pages_of_different_sizes_are_refused() {
        let path = tmp("mixed.tif");
        let mut w = PageWriter::create_as(&path, Bits::U8, false).unwrap();
        w.write_page(4, 4, &[1.0; 16]).unwrap();
        w.write_page(5, 3, &[1.0; 15]).unwrap();
        w.finish().unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("page 2 is 5x3, unlike the first page (4x4)"),
            "{e}"
        );
    }
}
