//! Reading and writing grey-level TIFF images and multi-page stacks.
//!
//! 8-bit, 16-bit and 32-bit float data (and 16/32-bit signed integers and 64-bit floats,
//! converted to f32) are read without rescaling. Every page must have the same size and
//! sample type. Output keeps the input's type by default, rounding and clamping only to
//! that type's own range, or is written as 32-bit float.

use denoisekit_core::{Volume, volume_from_vec};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{TiffEncoder, colortype};

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
        match self {
            Bits::U8 => v.round().clamp(0.0, 255.0),
            Bits::U16 => v.round().clamp(0.0, 65535.0),
            Bits::F32 => v,
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
    /// Not a TIFF, corrupt, or an unsupported layout.
    #[error("{path}: not a readable grey-level TIFF: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads every page of a TIFF into a volume (z = page).
///
/// # Errors
/// [`TiffIoError`] naming the file and the problem (corrupt data, colour images, pages of
/// different sizes or types).
pub fn read(path: &Path) -> Result<(Volume, Bits), TiffIoError> {
    let p = path.display().to_string();
    let fmt = |reason: String| TiffIoError::Format {
        path: p.clone(),
        reason,
    };
    let file = File::open(path).map_err(|source| TiffIoError::Io {
        path: p.clone(),
        source,
    })?;
    let mut dec = Decoder::new(BufReader::new(file)).map_err(|e| fmt(e.to_string()))?;
    let mut data: Vec<f32> = Vec::new();
    let mut dims = None;
    let mut bits = None;
    let mut pages = 0usize;
    loop {
        let (w, h) = dec.dimensions().map_err(|e| fmt(e.to_string()))?;
        let ct = dec.colortype().map_err(|e| fmt(e.to_string()))?;
        if !matches!(ct, tiff::ColorType::Gray(_)) {
            return Err(fmt(format!(
                "page {} is {ct:?}; only grey-level images are supported",
                pages + 1
            )));
        }
        if *dims.get_or_insert((w, h)) != (w, h) {
            return Err(fmt(format!(
                "page {} is {w}x{h}, unlike the first page",
                pages + 1
            )));
        }
        let page = dec.read_image().map_err(|e| fmt(e.to_string()))?;
        let (b, px): (Bits, Vec<f32>) = match page {
            DecodingResult::U8(v) => (Bits::U8, v.into_iter().map(f32::from).collect()),
            DecodingResult::U16(v) => (Bits::U16, v.into_iter().map(f32::from).collect()),
            DecodingResult::F32(v) => (Bits::F32, v),
            DecodingResult::I16(v) => (Bits::F32, v.into_iter().map(f32::from).collect()),
            DecodingResult::I32(v) => (Bits::F32, v.into_iter().map(|x| x as f32).collect()),
            DecodingResult::U32(v) => (Bits::F32, v.into_iter().map(|x| x as f32).collect()),
            DecodingResult::F64(v) => (Bits::F32, v.into_iter().map(|x| x as f32).collect()),
            other => {
                return Err(fmt(format!(
                    "unsupported sample type {:?}",
                    std::mem::discriminant(&other)
                )));
            }
        };
        if *bits.get_or_insert(b) != b {
            return Err(fmt(format!(
                "page {} has a different sample type",
                pages + 1
            )));
        }
        if px.len() != (w as usize) * (h as usize) {
            return Err(fmt(format!(
                "page {} has {} samples for {w}x{h} pixels",
                pages + 1,
                px.len()
            )));
        }
        data.extend(px);
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| fmt(e.to_string()))?;
    }
    let (w, h) = dims.unwrap_or((0, 0));
    let v = volume_from_vec(pages, h as usize, w as usize, data).map_err(|e| fmt(e.to_string()))?;
    Ok((v, bits.unwrap_or(Bits::F32)))
}

/// Writes a volume as a (multi-page) TIFF of the given type.
///
/// # Errors
/// [`TiffIoError`] naming the file.
pub fn write(path: &Path, v: &Volume, bits: Bits) -> Result<(), TiffIoError> {
    let p = path.display().to_string();
    let fmt = |e: tiff::TiffError| TiffIoError::Format {
        path: p.clone(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TiffIoError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let file = File::create(path).map_err(|source| TiffIoError::Io {
        path: p.clone(),
        source,
    })?;
    let mut enc = TiffEncoder::new(BufWriter::new(file)).map_err(fmt)?;
    let (_, h, w) = v.dim();
    for plane in v.outer_iter() {
        let px: Vec<f32> = plane.iter().map(|x| bits.quantise(*x)).collect();
        match bits {
            Bits::U8 => {
                let b: Vec<u8> = px.iter().map(|x| *x as u8).collect();
                enc.write_image::<colortype::Gray8>(w as u32, h as u32, &b)
                    .map_err(fmt)?;
            }
            Bits::U16 => {
                let b: Vec<u16> = px.iter().map(|x| *x as u16).collect();
                enc.write_image::<colortype::Gray16>(w as u32, h as u32, &b)
                    .map_err(fmt)?;
            }
            Bits::F32 => enc
                .write_image::<colortype::Gray32Float>(w as u32, h as u32, &px)
                .map_err(fmt)?,
        }
    }
    Ok(())
}
