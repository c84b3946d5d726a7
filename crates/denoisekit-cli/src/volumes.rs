//! A hyperstack's pages as the volumes a method runs on, split as the Fiji plugin splits
//! an image: each channel, and each position along the axis that is not z, is its own
//! volume; z is the slices, or the frames of a time series without slices. A plain stack
//! is one volume. Unlike the plugin, which resolves the defaults once on the channel on
//! screen and uses them for all, each volume here gets its own noise estimate and
//! defaults (as the Python API's `channel_axis` does): a file has no channel on screen,
//! and channels differ in brightness and noise.

use crate::CliResult;
use denoisekit_core::Volume;
use denoisekit_tiff as tiffio;
use ndarray::{Axis, Zip};
use std::path::Path;

/// The pages of one volume, in z order.
pub struct Group {
    pages: Vec<usize>,
    /// How a message names the volume: "" for a plain stack.
    label: String,
}

/// The volumes of the TIFF at `path`, with `layout`.
///
/// # Errors
/// When the file's description gives sizes its pages do not add up to (a wrong or
/// damaged description, or several OME series in one file): its volumes are then unknown,
/// and running the pages as one stack would mix channels, time points or series.
pub fn of(path: &Path, layout: &tiffio::Layout) -> CliResult<Vec<Group>> {
    let (a, pages) = (layout.axes, layout.pages);
    let described = a
        .channels
        .checked_mul(a.slices)
        .and_then(|n| n.checked_mul(a.frames));
    if a.declared && described != Some(pages) {
        let why = if described.is_some_and(|n| n > pages) {
            "a dataset whose planes are split over several files, as Micro-Manager writes \
             them, or a damaged description"
        } else {
            "several series in one file, or a damaged description"
        };
        return Err(format!(
            "{}: its description says {} channel(s) x {} slice(s) x {} frame(s) = {} \
             images, but it has {pages} pages ({why}): its volumes are unknown, and running \
             the pages as one stack could mix them. Open it in Fiji (Bio-Formats, each \
             series on its own) and save each volume as a TIFF",
            path.display(),
            a.channels,
            a.slices,
            a.frames,
            described.map_or_else(|| "too many".to_string(), |n| n.to_string()),
        )
        .into());
    }
    let split = a.channels > 1 || (a.slices > 1 && a.frames > 1);
    if !split {
        return Ok(vec![Group {
            pages: (0..pages).collect(),
            label: String::new(),
        }]);
    }
    let z_is_frames = a.slices == 1;
    let (len, others) = if z_is_frames {
        (a.frames, 1)
    } else {
        (a.slices, a.frames)
    };
    let mut groups = Vec::new();
    for o in 0..others {
        for c in 0..a.channels {
            let page = |k: usize| {
                if z_is_frames {
                    a.page(c, 0, k)
                } else {
                    a.page(c, k, o)
                }
            };
            let mut label = Vec::new();
            if a.channels > 1 {
                label.push(format!("channel {}", c + 1));
            }
            if others > 1 {
                label.push(format!("frame {}", o + 1));
            }
            groups.push(Group {
                pages: (0..len).map(page).collect(),
                label: format!("{}: ", label.join(", ")),
            });
        }
    }
    Ok(groups)
}

/// Why a hyperstack too large for memory is refused.
pub fn too_large_to_split(path: &Path, groups: &[Group]) -> String {
    format!(
        "{}: a hyperstack of {} volumes (channels, time points) larger than the memory \
         limit: streaming it would run its channels and time points together. Split it in \
         Fiji (Image > Stacks > Tools > Reduce Dimensionality, or Split Channels) and run \
         each part, or raise {}",
        path.display(),
        groups.len(),
        denoisekit_core::memory::LIMIT_ENV
    )
}

/// Refuses a hyperstack as the image input `key` (a PSF, a training target): one image
/// serves the whole run, and a hyperstack's channels would be read as its planes.
pub fn refuse_hyperstack_input(path: &Path, key: &str) -> CliResult<()> {
    let groups = of(path, &tiffio::layout(path)?)?;
    if groups.len() > 1 {
        return Err(format!(
            "{key}={}: a hyperstack of {} volumes (channels, time points), whose channels \
             would be read as planes of one image. Save the one that belongs to the image \
             (Fiji: Image > Stacks > Tools > Reduce Dimensionality, or Split Channels), and \
             run each channel of a hyperstack with its own",
            path.display(),
            groups.len()
        )
        .into());
    }
    Ok(())
}

/// Refuses `what` (a command that measures or times the whole file) on a hyperstack,
/// whose channels or time points it would pool.
pub fn refuse_pooled(path: &Path, what: &str) -> CliResult<()> {
    let groups = of(path, &tiffio::layout(path)?)?;
    if groups.len() > 1 {
        return Err(format!(
            "{}: a hyperstack of {} volumes (channels, time points): `{what}` would pool \
             their noise and intensities. Save one channel or time point (Fiji: Image > \
             Stacks > Tools > Reduce Dimensionality, or Split Channels) and run it on that",
            path.display(),
            groups.len()
        )
        .into());
    }
    Ok(())
}

impl Group {
    /// The volume's planes copied out of the whole file's pages; `None` for a plain
    /// stack, which is the whole file.
    pub fn gather(&self, all: &Volume) -> Option<Volume> {
        (!self.label.is_empty()).then(|| all.select(Axis(0), &self.pages))
    }

    /// Puts a result for this volume back at its pages.
    pub fn scatter(&self, part: &Volume, all: &mut Volume) {
        for (plane, &page) in part.outer_iter().zip(&self.pages) {
            Zip::from(all.index_axis_mut(Axis(0), page))
                .and(plane)
                .for_each(|o, &v| *o = v);
        }
    }

    /// "channel 2, frame 1: ", or "" for a plain stack.
    pub fn label(&self) -> &str {
        &self.label
    }
}
