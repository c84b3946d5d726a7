//! Trained weights in a file: train once on one image, apply to many (`save_weights=`,
//! then `weights=`).
//!
//! The file is JSON, a few tens of kilobytes, readable without DenoiseKit:
//! `{"format": "denoisekit weights", "version": 1 or 2, "method": "zs_n2n", "width": c,
//! "layers": n, "trained_on": {..}, "tensors": {"w1": [..], "b1": [..], "w2": [..], "b2": [..],
//! "w3": [..], "b3": [..]}}`, with the layouts of [`Net`] (`layers`, absent from files
//! written before the depth could be chosen, is then 2; version 2 for more than two
//! layers, see `VERSION`). Floats are written in the
//! shortest form that reads back to the same bits, so applying loaded weights gives
//! exactly the pixels that applying them straight after training gives.

use super::net::Net;
use crate::error::{DenoiseError, Result};
use crate::volume::Shape;
use serde::{Deserialize, Serialize};
use std::path::Path;

const FORMAT: &str = "denoisekit weights";
/// Version 1 holds two layers; version 2 says its number of layers, so that a build that
/// reads only version 1 refuses a deeper network by its version rather than by a tensor's
/// size. A two-layer network is still written as version 1, which every build reads.
const VERSION: u32 = 2;
const TWO_LAYERS: u32 = 1;
const METHOD: &str = "zs_n2n";

/// What the weights were trained on, for the person who finds the file later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainedOn {
    /// The stack's shape, `[depth, height, width]`.
    pub shape: [usize; 3],
    /// Adam steps.
    pub steps: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Patch side.
    pub patch: usize,
    /// Seed.
    pub seed: usize,
    /// What it learnt from (`training`: self, pairs or synthetic); absent from files
    /// written before it was recorded, which are read as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<String>,
    /// The scenes' PSF, for `training = synthetic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psf_sigma: Option<f64>,
    /// The sub-images, for `training = self`; absent from files written before they could
    /// be chosen (diagonal, then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subimages: Option<String>,
}

/// A tensor the network does not have is refused: within the versions read here it can
/// only come from a damaged or edited file, whose other tensors are not to be trusted.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tensors {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w3: Vec<f32>,
    b3: Vec<f32>,
}

/// The file's names of the tensors and the network's order ([`Net::tensors`]), side by
/// side.
impl Tensors {
    const NAMES: [&str; 6] = ["w1", "b1", "w2", "b2", "w3", "b3"];

    fn of(net: &Net) -> Self {
        let [w1, b1, w2, b2, w3, b3] = net.tensors().map(<[f32]>::to_vec);
        Self {
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
        }
    }

    fn in_order(self) -> [Vec<f32>; 6] {
        [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3]
    }
}

/// What says which file this is: read before the rest, which another version may shape
/// differently.
#[derive(Deserialize)]
struct Head {
    format: String,
    version: u32,
    method: String,
}

/// The file; `T` the tensors, or [`serde::de::IgnoredAny`] to read the rest without them.
#[derive(Serialize, Deserialize)]
struct File<T = Tensors> {
    format: String,
    version: u32,
    method: String,
    width: usize,
    /// Absent from version 1 files written before the depth could be chosen, which had 2
    /// ([`File::layers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
    trained_on: TrainedOn,
    tensors: T,
}

impl<T> File<T> {
    /// The network's depth: as the file says, or 2 for a version 1 file that says none
    /// (written before the depth could be chosen; builds between that and version 2 wrote
    /// deeper networks as version 1 with their `layers`, which are read as they say).
    ///
    /// # Errors
    /// The reason, when a later version says none.
    fn layers(&self) -> std::result::Result<usize, String> {
        match (self.version, self.layers) {
            (_, Some(n)) => Ok(n),
            (TWO_LAYERS, None) => Ok(2),
            (v, None) => Err(format!("damaged: version {v} says its `layers`, and it has none")),
        }
    }
}

impl TrainedOn {
    /// The record for a stack of shape `s` trained with `p`.
    pub fn new(s: Shape, p: &super::ZsN2nParams) -> Self {
        Self {
            shape: [s.depth, s.height, s.width],
            steps: p.steps,
            learning_rate: p.learning_rate,
            patch: p.patch,
            seed: p.seed,
            training: Some(p.training.name().to_string()),
            psf_sigma: (p.training == super::Training::Synthetic).then_some(p.psf_sigma),
            subimages: (p.training == super::Training::Zero)
                .then(|| p.subimages.name().to_string()),
        }
    }
}

/// Writes `net` to `path` (replacing it).
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] for `key`, naming the path and the system's reason.
pub fn save(net: &Net, trained_on: TrainedOn, path: &Path, key: &str) -> Result<()> {
    // JSON has no non-finite numbers: such a file could not be read back, and it would
    // replace weights that could.
    if net.tensors().iter().any(|t| t.iter().any(|x| !x.is_finite())) {
        return Err(unwritable(
            path,
            key,
            &"the trained weights are not finite numbers: the training diverged; a smaller \
              learning_rate",
        ));
    }
    let file = File {
        format: FORMAT.into(),
        version: if net.layers == 2 { TWO_LAYERS } else { VERSION },
        method: METHOD.into(),
        width: net.c,
        layers: Some(net.layers),
        trained_on,
        tensors: Tensors::of(net),
    };
    let bad = |e: &dyn std::fmt::Display| unwritable(path, key, e);
    let text = serde_json::to_string(&file).map_err(|e| bad(&e))?;
    // A batch reading the file while a training replaces it (a macro's channels save to
    // one path) sees the old weights or the new, never half of them.
    let tmp = crate::files::part_beside(path);
    std::fs::write(&tmp, text).map_err(|e| bad(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        bad(&e)
    })
}

/// Makes sure [`save`] can write `path` before the training whose weights it saves:
/// creates the folders it lacks (as the TIFF output does), then a scratch file beside it,
/// removed again. A refusal after the training would throw the training away.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] for `key`, naming the path and the system's reason.
pub fn check_writable(path: &Path, key: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| unwritable(path, key, &e))?;
    }
    let tmp = crate::files::part_beside(path);
    std::fs::write(&tmp, b"").map_err(|e| unwritable(path, key, &e))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

fn unwritable(path: &Path, key: &str, why: &dyn std::fmt::Display) -> DenoiseError {
    DenoiseError::InvalidParamValue {
        name: key.to_string(),
        value: path.display().to_string(),
        expected: format!("a file that can be written ({why})"),
    }
}

/// Whether `path` holds a weights file (of any method or version), judged from its first
/// bytes only: it may be a large image named by mistake.
pub fn is_weights_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(256);
    let read = std::fs::File::open(path).and_then(|f| f.take(256).read_to_end(&mut head));
    let head = String::from_utf8_lossy(&head);
    read.is_ok() && head.trim_start().starts_with('{') && head.contains(FORMAT)
}

/// The width and depth of the network saved at `path`, without reading its tensors into
/// memory; `None` if it is not a readable weights file of this method ([`load`] says why).
pub fn network_of(path: &Path) -> Option<(usize, usize)> {
    let text = read_text(path).ok()?;
    let file: File<serde::de::IgnoredAny> = serde_json::from_str(&text).ok()?;
    let layers = file.layers().ok()?;
    // A network out of range is not sized (a width of 1e9 was stated as petabytes): the
    // load refuses it with the range.
    (file.format == FORMAT && file.method == METHOD && in_range(file.width, layers).is_ok())
        .then_some((file.width, layers))
}

/// The most a weights file can hold: the widest, deepest network's tensors as text.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The text of a file that may be weights. Anything else named by mistake (a stack of
/// gigabytes) is refused from its size or first bytes, not read whole first.
fn read_text(path: &Path) -> std::result::Result<String, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 64];
    let n = file.read(&mut head).map_err(|e| e.to_string())?;
    if !head[..n].trim_ascii_start().starts_with(b"{") {
        return Err("this file is not DenoiseKit weights".into());
    }
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "it holds {size} bytes, and weights files hold at most {MAX_FILE_BYTES}"
        ));
    }
    let mut bytes = head[..n].to_vec();
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "this file is not DenoiseKit weights".into())
}

/// Checks a file's width and depth against the parameters' own ranges: a file cannot ask
/// for a network the dialog could not.
fn in_range(width: usize, layers: usize) -> Result<()> {
    for (key, n) in [("width", width), ("layers", layers)] {
        let spec = (super::ZsN2nParams::SPECS.iter())
            .find(|s| s.key == key)
            .expect("zs_n2n has width and layers parameters");
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        spec.check(&crate::descriptor::ParamValue::Int(n))?;
    }
    Ok(())
}

/// Reads weights written by [`save`], checking every tensor's size and value.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] for `key`, naming the path and what is wrong with
/// it (missing, not a weights file, another method's, another version, damaged).
pub fn load(path: &Path, key: &str) -> Result<(Net, TrainedOn)> {
    let bad = |why: String| DenoiseError::InvalidParamValue {
        name: key.to_string(),
        value: path.display().to_string(),
        expected: format!("a zs_n2n weights file written by save_weights ({why})"),
    };
    let text = read_text(path).map_err(bad)?;
    // The header first, so that a file of another kind, method or version is named as
    // such rather than by a field or tensor this version does not know.
    let head: Head = serde_json::from_str(&text).map_err(|e| {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) => {
                bad("this file is not DenoiseKit weights".into())
            }
            _ => bad(format!("damaged: {e}")),
        }
    })?;
    if head.format != FORMAT {
        return Err(bad("this file is not DenoiseKit weights".into()));
    }
    if !(TWO_LAYERS..=VERSION).contains(&head.version) {
        return Err(bad(format!(
            "it is version {}, this DenoiseKit reads versions {TWO_LAYERS} to {VERSION}",
            head.version
        )));
    }
    if head.method != METHOD {
        return Err(bad(format!("it holds weights of method {}", head.method)));
    }
    let file: File = serde_json::from_str(&text).map_err(|e| bad(format!("damaged: {e}")))?;
    let (c, layers) = (file.width, file.layers().map_err(bad)?);
    in_range(c, layers).map_err(|e| bad(e.to_string()))?;
    let tensors = file.tensors.in_order();
    for ((name, v), want) in (Tensors::NAMES.iter().zip(&tensors)).zip(Net::lengths(c, layers)) {
        if v.len() != want {
            return Err(bad(format!(
                "tensor {name} has {} values, width {c} with {layers} layers needs {want}",
                v.len()
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("tensor {name} holds a non-finite value")));
        }
    }
    let net = Net::from_flat(c, layers, &tensors.concat()).expect("every tensor's length checked");
    Ok((net, file.trained_on))
}
