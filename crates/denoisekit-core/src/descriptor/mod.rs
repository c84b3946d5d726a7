//! Method descriptors: the single source of truth for every method and parameter.
//!
//! Each method module declares its parameters once with [`method_params!`](crate::method_params), which emits
//! the typed parameter struct (whose field docs are the help text), the [`ParamSpec`]
//! table and the conversions between them. The CLI, the JNI `describe` call, the ImageJ
//! dialog, the docs and the property tests all read these tables; nothing else lists
//! methods or parameters.

pub mod noise_model;

use crate::control::Control;
use crate::error::{DenoiseError, Result};
use crate::format::fmt_num;
use crate::volume::{Volume, VolumeView};
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use std::collections::BTreeMap;

/// How a slider for the parameter should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced in log space: for ranges that span decades.
    Log,
}

/// What a parameter is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Pixels (or planes, for z parameters).
    Pixels,
    /// The image's own grey levels, never rescaled by bit depth.
    Intensity,
    /// Grey levels per detected photon (a camera's gain).
    IntensityPerPhoton,
    /// A count (iterations).
    Count,
    /// Nanometres (optics: wavelengths, pixel sizes).
    Nanometres,
    /// Dimensionless.
    None,
}

impl Unit {
    /// The unit as a dialog or a table writes it after a value ("px", "grey levels"); ""
    /// for counts and dimensionless values.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Pixels => "px",
            Self::Intensity => "grey levels",
            Self::IntensityPerPhoton => "grey levels/photon",
            Self::Nanometres => "nm",
            Self::Count | Self::None => "",
        }
    }
}

/// The default of a float parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// A fixed number.
    Fixed(f64),
    /// This multiple of the image's estimated noise standard deviation
    /// ([`crate::estimate_sigma`]).
    TimesNoise(f64),
}

/// Type and range of a parameter. Bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A real number in `[min, max]`.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value (may be infinite).
        max: f64,
        /// Value used when none is given.
        default: DefaultValue,
    },
    /// An integer in `[min, max]`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// Value used when none is given.
        default: i64,
    },
    /// One of a fixed list of names.
    Choice {
        /// The allowed names.
        options: &'static [&'static str],
        /// Name used when none is given.
        default: &'static str,
    },
    /// A file's path; empty (the default) for none. The method reads it when it runs, or
    /// writes it when `writes` is set: front ends offer a save dialog for those, and leave
    /// them empty in previews, trials and tuning, where a written file would hold the
    /// result of a crop or a masked image.
    File {
        /// The method writes the file (else it reads it).
        writes: bool,
    },
    /// A rectangle of the image's planes, `x,y,width,height` in pixels from the top-left
    /// corner; empty (the default) for the whole plane. Front ends offer the current
    /// selection, and leave it empty in previews, trials and tuning, which run on crops
    /// whose coordinates are not the image's.
    Region,
}

/// One parameter of a method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Stable key, used in macros and on the command line (`snake_case`).
    pub key: &'static str,
    /// Short label for dialogs.
    pub label: &'static str,
    /// Type, range and default.
    pub kind: ParamKind,
    /// Slider scale.
    pub scale: Scale,
    /// Unit of the value.
    pub unit: Unit,
    /// One or two sentences for users: what it does and how to choose it.
    pub help: &'static str,
    /// The method's strength: what automatic tuning ([`crate::tune`]) searches.
    pub tunable: bool,
    /// Acts along z only: it means nothing on a 2D image, and front ends hide it there.
    pub along_z: bool,
    /// The value that switches the method's z neighbourhood on (`sigma_z = 1`,
    /// `z_mode = volume`); `None` for one that only describes the z axis (`z_step`) or
    /// acts in the plane. [`MethodDescriptor::three_d_values`] collects them.
    pub three_d: Option<ParamValue>,
    /// Used only when another parameter has this value (`("noise_model",
    /// "poisson_gaussian")`); front ends hide or leave it out otherwise.
    pub when: Option<(&'static str, &'static str)>,
}

impl ParamSpec {
    /// A float parameter (key and help are filled in by [`method_params!`](crate::method_params)).
    pub const fn float(label: &'static str, min: f64, max: f64, default: DefaultValue) -> Self {
        Self::new(label, ParamKind::Float { min, max, default })
    }

    /// An integer parameter (key and help are filled in by [`method_params!`](crate::method_params)).
    pub const fn int(label: &'static str, min: i64, max: i64, default: i64) -> Self {
        Self::new(label, ParamKind::Int { min, max, default })
    }

    /// A choice parameter (key and help are filled in by [`method_params!`](crate::method_params)).
    pub const fn choice(
        label: &'static str,
        options: &'static [&'static str],
        default: &'static str,
    ) -> Self {
        Self::new(label, ParamKind::Choice { options, default })
    }

    /// A file parameter (key and help are filled in by [`method_params!`](crate::method_params)).
    pub const fn file(label: &'static str, writes: bool) -> Self {
        Self::new(label, ParamKind::File { writes })
    }

    /// A region parameter ([`ParamKind::Region`]; key and help are filled in by
    /// [`method_params!`](crate::method_params)).
    pub const fn region(label: &'static str) -> Self {
        Self::new(label, ParamKind::Region)
    }

    /// Whether the method writes to this parameter's file.
    pub const fn writes(&self) -> bool {
        matches!(self.kind, ParamKind::File { writes: true })
    }

    /// Whether the value means something only for the whole image the user gave: a file
    /// the method writes (a crop's result would overwrite it) or a region in the image's
    /// coordinates. Previews, trials, tuning and chunked runs leave it empty.
    pub const fn whole_image_only(&self) -> bool {
        self.writes() || matches!(self.kind, ParamKind::Region)
    }

    const fn new(label: &'static str, kind: ParamKind) -> Self {
        Self {
            key: "",
            label,
            kind,
            scale: Scale::Linear,
            unit: Unit::None,
            help: "",
            tunable: false,
            along_z: false,
            three_d: None,
            when: None,
        }
    }

    /// Marks the parameter as describing the z axis only (it changes nothing in 2D).
    pub const fn along_z(mut self) -> Self {
        self.along_z = true;
        self
    }

    /// Marks the parameter as acting along z, with `value` the setting that switches the
    /// method's z neighbourhood on.
    pub const fn three_d(mut self, value: ParamValue) -> Self {
        self.along_z = true;
        self.three_d = Some(value);
        self
    }

    /// Marks the parameter as used only when parameter `key` is `value`.
    pub const fn when(mut self, key: &'static str, value: &'static str) -> Self {
        self.when = Some((key, value));
        self
    }

    /// Whether the parameter is used under `values` (a value for its `when` key, if any):
    /// true when that key is absent, so a partial list hides nothing.
    pub fn applies(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.when
            .is_none_or(|(key, value)| value_of(key).is_none_or(|v| v == value))
    }

    /// Marks the parameter as the method's strength, searched by [`crate::tune`].
    pub const fn tunable(mut self) -> Self {
        self.tunable = true;
        self
    }

    /// Sets the unit.
    pub const fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Sets the slider scale.
    pub const fn scale(mut self, scale: Scale) -> Self {
        self.scale = scale;
        self
    }

    #[doc(hidden)]
    pub const fn named(mut self, key: &'static str, help: &'static str) -> Self {
        self.key = key;
        self.help = help;
        self
    }

    /// The help text with the doc-comment indentation removed.
    pub fn help_text(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Checks a value against this parameter's kind and range.
    ///
    /// # Errors
    /// [`DenoiseError::ParamOutOfRange`] or [`DenoiseError::InvalidParamValue`].
    pub fn check(&self, v: &ParamValue) -> Result<()> {
        let out_of_range =
            |value: String, min: String, max: String| DenoiseError::ParamOutOfRange {
                name: self.key.to_string(),
                value,
                min,
                max,
            };
        match (&self.kind, v) {
            (ParamKind::Float { min, max, .. }, ParamValue::Float(x)) => {
                if x.is_nan() || *x < *min || *x > *max || x.is_infinite() {
                    return Err(out_of_range(fmt_num(*x), fmt_num(*min), fmt_num(*max)));
                }
            }
            (ParamKind::Int { min, max, .. }, ParamValue::Int(x)) => {
                if x < min || x > max {
                    return Err(out_of_range(
                        x.to_string(),
                        min.to_string(),
                        max.to_string(),
                    ));
                }
            }
            (ParamKind::Choice { options, .. }, ParamValue::Choice(s)) => {
                if !options.contains(s) {
                    return Err(self.invalid(s, format!("one of {}", options.join(", "))));
                }
            }
            // Whether the file can be read or written is known only when the method runs,
            // which names the file and the problem.
            (ParamKind::File { .. }, ParamValue::File(_)) => {}
            // Whether it lies inside the image is known only with the image, and the
            // method says so naming both.
            (ParamKind::Region, ParamValue::Region(_)) => {}
            (_, other) => {
                return Err(self.invalid(&other.to_string(), self.kind_name().to_string()));
            }
        }
        Ok(())
    }

    /// Parses a value as written by a user (CLI, macro, dialog) and checks its range.
    ///
    /// # Errors
    /// [`DenoiseError::InvalidParamValue`] if it does not parse,
    /// [`DenoiseError::ParamOutOfRange`] if it is outside the range.
    pub fn parse(&self, raw: &str) -> Result<ParamValue> {
        let s = raw.trim();
        let v = match self.kind {
            ParamKind::Float { .. } => ParamValue::Float(
                s.parse::<f64>()
                    .map_err(|_| self.invalid(raw, "a number".into()))?,
            ),
            ParamKind::Int { min, max, .. } => {
                // Dialogs and macros may write an integer as "2.0"; accept that, but not "2.5".
                let x = match s.parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => match s.parse::<f64>() {
                        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                        // Past i64 (or past f64's exact integers, or infinite): outside
                        // every range.
                        Ok(f) if f.fract() == 0.0 || f.is_infinite() => {
                            return Err(DenoiseError::ParamOutOfRange {
                                name: self.key.to_string(),
                                value: s.to_string(),
                                min: min.to_string(),
                                max: max.to_string(),
                            });
                        }
                        _ => return Err(self.invalid(raw, "a whole number".into())),
                    },
                };
                ParamValue::Int(x)
            }
            ParamKind::Choice { options, .. } => {
                let found = options.iter().find(|o| o.eq_ignore_ascii_case(s));
                match found {
                    Some(o) => ParamValue::Choice(o),
                    None => return Err(self.invalid(raw, format!("one of {}", options.join(", ")))),
                }
            }
            // Macro syntax brackets a value with spaces: `weights=[C:/my data/w.json]`.
            ParamKind::File { .. } => {
                let path = s
                    .strip_prefix('[')
                    .and_then(|p| p.strip_suffix(']'))
                    .unwrap_or(s);
                ParamValue::File(intern(path.trim()))
            }
            ParamKind::Region => ParamValue::Region(Rect::parse(s).map_err(|()| {
                self.invalid(
                    raw,
                    "x,y,width,height in pixels (four whole numbers, width and height at \
                     least 1), or empty for the whole image"
                        .into(),
                )
            })?),
        };
        self.check(&v)?;
        Ok(v)
    }

    /// The default value, given the noise estimate when the default depends on it.
    pub fn default_value(&self, noise_sigma: impl FnOnce() -> Result<f64>) -> Result<ParamValue> {
        Ok(match self.kind {
            ParamKind::Float { min, max, default } => {
                let v = match default {
                    DefaultValue::Fixed(v) => v,
                    DefaultValue::TimesNoise(k) => k * noise_sigma()?,
                };
                ParamValue::Float(v.clamp(min, max))
            }
            ParamKind::Int { default, .. } => ParamValue::Int(default),
            ParamKind::Choice { default, .. } => ParamValue::Choice(default),
            ParamKind::File { .. } => ParamValue::File(""),
            ParamKind::Region => ParamValue::Region(None),
        })
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            ParamKind::Float { .. } => "a number",
            ParamKind::Int { .. } => "a whole number",
            ParamKind::Choice { .. } => "a choice",
            ParamKind::File { .. } => "a file path",
            ParamKind::Region => "a rectangle x,y,width,height",
        }
    }

    fn invalid(&self, raw: &str, expected: String) -> DenoiseError {
        DenoiseError::InvalidParamValue {
            name: self.key.to_string(),
            value: raw.to_string(),
            expected,
        }
    }
}

/// A method's working memory, in `f32` copies of the image (output included, input
/// excluded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// Copies of the whole volume (the output counts as one).
    pub volume: f32,
    /// Copies of one plane per plane in flight (transforms, padded buffers, per-thread
    /// aggregation).
    pub plane: f32,
}

/// A parsed, typed parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// A real number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// One of a choice parameter's names.
    Choice(&'static str),
    /// A file's path, or "" for none ([`ParamKind::File`]).
    File(&'static str),
    /// A rectangle, or `None` for the whole plane ([`ParamKind::Region`]).
    Region(Option<Rect>),
}

/// A rectangle of a plane, in pixels ([`ParamKind::Region`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: usize,
    /// Top row.
    pub y: usize,
    /// Columns, at least 1.
    pub width: usize,
    /// Rows, at least 1.
    pub height: usize,
}

impl Rect {
    /// `x,y,width,height` (spaces and one pair of brackets or parentheses allowed, as a
    /// macro or a Python tuple writes it), or `None` for the whole plane when empty; `Err`
    /// when malformed.
    fn parse(text: &str) -> std::result::Result<Option<Self>, ()> {
        let t = text.trim();
        let t = t
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .or_else(|| t.strip_prefix('(').and_then(|t| t.strip_suffix(')')))
            .unwrap_or(t)
            .trim();
        if t.is_empty() {
            return Ok(None);
        }
        let v: Vec<usize> = t
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| ())?;
        match v[..] {
            [x, y, width, height] if width >= 1 && height >= 1 => Ok(Some(Self {
                x,
                y,
                width,
                height,
            })),
            _ => Err(()),
        }
    }

    /// The whole of a plane of an image of shape `s`.
    #[must_use]
    pub const fn plane(s: crate::volume::Shape) -> Self {
        Self {
            x: 0,
            y: 0,
            width: s.width,
            height: s.height,
        }
    }

    /// Whether it lies inside a plane of an image of this shape. A shape, not two bare
    /// numbers: the text form is x,y,width,height, arrays are (height, width), and two
    /// sizes in either order would compile.
    pub fn fits(&self, image: crate::volume::Shape) -> bool {
        self.x
            .checked_add(self.width)
            .is_some_and(|r| r <= image.width)
            && self
                .y
                .checked_add(self.height)
                .is_some_and(|b| b <= image.height)
    }
}

impl std::fmt::Display for Rect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

/// A path given as a parameter, kept for the life of the process so that values stay
/// `Copy` like the names of choices. Each distinct path is stored once: a session that
/// replays one weights file on a thousand images keeps one copy.
fn intern(path: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static PATHS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    if path.is_empty() {
        return "";
    }
    let mut guard = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(&p) = set.get(path) {
        return p;
    }
    let p: &'static str = Box::leak(path.to_owned().into_boxed_str());
    set.insert(p);
    p
}

/// Writes `value` as macro options do: in brackets when it holds spaces (a path) or
/// starts with one (parsing strips one pair), so that the option string splits back into
/// the same pairs and values.
fn write_option(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    if value.contains(char::is_whitespace) || value.starts_with('[') {
        out.push('[');
        out.push_str(value);
        out.push(']');
    } else {
        out.push_str(value);
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Float(x) => f.write_str(&fmt_num(*x)),
            Self::Int(x) => write!(f, "{x}"),
            Self::Choice(s) | Self::File(s) => f.write_str(s),
            Self::Region(Some(r)) => write!(f, "{r}"),
            Self::Region(None) => Ok(()),
        }
    }
}

/// Conversion between a typed parameter field and a [`ParamValue`].
pub trait ParamField: Sized {
    /// Builds the field from a value already checked against its spec.
    ///
    /// # Errors
    /// [`DenoiseError::InvalidParamValue`] on a kind mismatch (a bug in a descriptor).
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self>;
    /// The field as a value, for range checks and display.
    fn to_value(&self) -> ParamValue;
}

impl ParamField for f64 {
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self> {
        match v {
            ParamValue::Float(x) => Ok(*x),
            other => Err(spec.invalid(&other.to_string(), "a number".into())),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Float(*self)
    }
}

impl ParamField for usize {
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self> {
        match v {
            ParamValue::Int(x) => usize::try_from(*x)
                .map_err(|_| spec.invalid(&x.to_string(), "a non-negative whole number".into())),
            other => Err(spec.invalid(&other.to_string(), "a whole number".into())),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ParamField for &'static str {
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self> {
        match v {
            ParamValue::Choice(s) => Ok(s),
            other => Err(spec.invalid(&other.to_string(), "a choice".into())),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Choice(self)
    }
}

/// The typed field of a [`ParamKind::File`] parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilePath(pub &'static str);

impl FilePath {
    /// The path, or `None` when none was given.
    pub fn get(self) -> Option<&'static std::path::Path> {
        (!self.0.is_empty()).then(|| std::path::Path::new(self.0))
    }
}

impl ParamField for FilePath {
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self> {
        match v {
            ParamValue::File(s) => Ok(Self(s)),
            other => Err(spec.invalid(&other.to_string(), "a file path".into())),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::File(self.0)
    }
}

/// The typed field of a [`ParamKind::Region`] parameter: `None` for the whole plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region(pub Option<Rect>);

impl ParamField for Region {
    fn from_value(spec: &ParamSpec, v: &ParamValue) -> Result<Self> {
        match v {
            ParamValue::Region(r) => Ok(Self(*r)),
            other => Err(spec.invalid(&other.to_string(), "a rectangle x,y,width,height".into())),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Region(self.0)
    }
}

/// Declares the typed enum of a choice parameter: each variant with the name users type.
///
/// The enum gets `ALL`, `NAMES` (in the same order, for [`ParamSpec::choice`]), a `const`
/// `name` and `value` (for a spec's default and [`ParamSpec::three_d`]), `from_name` and
/// [`ParamField`], so a kernel matches on variants and a misspelt option cannot compile.
#[macro_export]
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])+ $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl $name {
            /// Every option, in the order shown to users.
            pub const ALL: [Self; Self::NAMES.len()] = [$(Self::$variant),+];
            /// The names users type, in the order of `ALL`.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The user-facing name.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }

            /// The option as a parameter value.
            pub const fn value(self) -> $crate::descriptor::ParamValue {
                $crate::descriptor::ParamValue::Choice(self.name())
            }

            /// Parses a name from `NAMES` (any case) for the parameter `key`.
            ///
            /// # Errors
            /// [`$crate::DenoiseError::InvalidParamValue`] listing the valid names.
            pub fn from_name(key: &str, s: &str) -> $crate::Result<Self> {
                Self::NAMES
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(s))
                    .map(|i| Self::ALL[i])
                    .ok_or_else(|| $crate::DenoiseError::InvalidParamValue {
                        name: key.to_string(),
                        value: s.to_string(),
                        expected: format!("one of {}", Self::NAMES.join(", ")),
                    })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl $crate::descriptor::ParamField for $name {
            fn from_value(
                spec: &$crate::ParamSpec,
                v: &$crate::descriptor::ParamValue,
            ) -> $crate::Result<Self> {
                // A number is no name: `from_name` refuses it with the names allowed.
                Self::from_name(spec.key, &v.to_string())
            }
            fn to_value(&self) -> $crate::descriptor::ParamValue {
                self.value()
            }
        }
    };
}

/// An image a method takes besides the one it processes (a measured PSF, say). The
/// caller supplies it under `key` ([`ParamValues::with_image`]): the CLI reads a TIFF file
/// named by `key=path`, the ImageJ plugin offers the open images and records
/// `key=[title]`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ImageInput {
    /// Stable key, as for parameters.
    pub key: &'static str,
    /// Short label for dialogs.
    pub label: &'static str,
    /// What the image must be, for users.
    pub help: &'static str,
    /// The choice that needs it, as `(parameter key, option)`; the image is ignored
    /// under any other option.
    pub when: (&'static str, &'static str),
    /// A valid image to go with `input`, for tests, demos and fuzzing seeds: for a PSF,
    /// the default model sampled (the result under `when` then matches the default one);
    /// for a training target, a smoothed copy of the input.
    #[serde(skip)]
    pub example: fn(VolumeView<'_>) -> Volume,
}

/// An image given with a job, shared rather than copied between the values, the
/// resolved job and its replays.
pub type SharedVolume = std::sync::Arc<Volume>;

/// Parameter values as given by a user: `(key, text)` pairs, not yet checked, and the
/// images of the method's [`ImageInput`]s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamValues {
    pairs: Vec<(String, String)>,
    images: Vec<(String, SharedVolume)>,
}

impl ParamValues {
    /// No values: every parameter takes its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (replacing an earlier value for the same key).
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value` in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl ToString) {
        let key = key.into();
        let value = value.to_string();
        match self.pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.pairs.push((key, value)),
        }
    }

    /// Reads a macro-style option string (what [`ParamValues::to_options`] writes): words
    /// of `key=value`, where a value in brackets may hold spaces and ends at the first `]`
    /// followed by a space or the end; a bare word is a key with an empty value. Values
    /// keep their brackets: parsing a parameter's value strips one pair.
    pub fn from_options(text: &str) -> Self {
        let mut v = Self::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let end = match rest.split_once('=') {
                Some((k, val)) if !k.contains(char::is_whitespace) && val.starts_with('[') => {
                    let from = k.len() + 1;
                    let close = rest[from..]
                        .match_indices(']')
                        .map(|(i, _)| from + i + 1)
                        .find(|&i| {
                            rest[i..].is_empty() || rest[i..].starts_with(char::is_whitespace)
                        });
                    close.unwrap_or(rest.len())
                }
                _ => rest.find(char::is_whitespace).unwrap_or(rest.len()),
            };
            let word = &rest[..end];
            match word.split_once('=') {
                Some((k, val)) => v.insert(k, val),
                None => v.insert(word, ""),
            }
            rest = rest[end..].trim_start();
        }
        v
    }

    /// The values as a macro-style option string, in insertion order.
    pub fn to_options(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.pairs {
            write_option(&mut out, k, v);
        }
        out
    }

    /// The given pairs, in insertion order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Supplies the image of input `key` (replacing an earlier one).
    pub fn with_image(mut self, key: impl Into<String>, image: impl Into<SharedVolume>) -> Self {
        self.insert_image(key, image);
        self
    }

    /// Supplies the image of input `key` in place.
    pub fn insert_image(&mut self, key: impl Into<String>, image: impl Into<SharedVolume>) {
        let key = key.into();
        let image = image.into();
        match self.images.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = image,
            None => self.images.push((key, image)),
        }
    }

    /// The supplied images, in insertion order.
    pub fn images(&self) -> &[(String, SharedVolume)] {
        &self.images
    }
}

/// Every parameter of a method with a checked value, in descriptor order.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    values: Vec<(&'static ParamSpec, ParamValue)>,
    images: Vec<(&'static str, SharedVolume)>,
    /// The noise estimate used for defaults, if one was needed.
    pub noise_sigma: Option<f64>,
}

impl Resolved {
    /// The value of parameter `key`.
    ///
    /// # Errors
    /// [`DenoiseError::UnknownParam`] if the method has no such parameter.
    pub fn get<T: ParamField>(&self, key: &str) -> Result<T> {
        let (spec, v) = self
            .values
            .iter()
            .find(|(s, _)| s.key == key)
            .ok_or_else(|| DenoiseError::UnknownParam {
                method: String::new(),
                name: key.to_string(),
                valid: self.keys().join(", "),
            })?;
        T::from_value(spec, v)
    }

    /// The image supplied for input `key`, if any.
    pub fn image(&self, key: &str) -> Option<&Volume> {
        self.images
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether a choice parameter offering exactly `options` is set to `value` (a border
    /// rule set to wrap, say: [`crate::BorderMode::wraps_in`]).
    pub fn chose(&self, options: &[&str], value: &str) -> bool {
        self.values.iter().any(|(s, v)| {
            matches!(s.kind, ParamKind::Choice { options: o, .. } if o == options)
                && matches!(v, ParamValue::Choice(c) if *c == value)
        })
    }

    /// The parameter keys, in descriptor order.
    pub fn keys(&self) -> Vec<&'static str> {
        self.values.iter().map(|(s, _)| s.key).collect()
    }

    /// `(key, value)` for every parameter, in descriptor order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, ParamValue)> + '_ {
        self.values.iter().map(|(s, v)| (s.key, *v))
    }

    /// As [`Self::iter`], without the parameters whose [`ParamSpec::when`] does not hold
    /// (the camera's gain under the Gaussian model): what a person needs to read.
    pub fn iter_used(&self) -> impl Iterator<Item = (&'static str, ParamValue)> + '_ {
        let value_of = |key: &str| {
            self.values
                .iter()
                .find(|(s, _)| s.key == key)
                .map(|(_, v)| v.to_string())
        };
        self.values
            .iter()
            .filter(move |(s, _)| s.applies(value_of))
            .map(|(s, v)| (s.key, *v))
    }

    /// Every value given explicitly: running with these resolves to the same values
    /// without estimating anything again (the key to replaying a job exactly).
    pub fn to_params(&self) -> ParamValues {
        let mut v = ParamValues::new();
        for (k, x) in self.iter() {
            v.insert(k, x);
        }
        for (k, image) in &self.images {
            v.insert_image(*k, image.clone());
        }
        v
    }

    /// The values as a macro-style option string: `sigma=1.5 border=replicate`. Images
    /// are not in it: only the caller knows their names (a file, a window title).
    pub fn to_options(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.iter() {
            write_option(&mut out, k, &v.to_string());
        }
        out
    }
}

/// What a method's output is, which decides the invariants it keeps (the property tests
/// check each kind's own) and how the plugin presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    /// An estimate of the noise-free image: a constant image stays constant and adding an
    /// offset to the input adds it to the output.
    Denoise,
    /// An estimate of the object before the microscope's blur (PSF), for non-negative
    /// (photon-count-like) data: a constant stays constant and scaling the input scales
    /// the output, but offsets do not commute (negative values are not photons).
    Deconvolve,
    /// A transform that removes the background: a constant image becomes 0, the result
    /// does not change when an offset is added, and there is no strength at which it
    /// returns its input, except by asking for the background itself at size 0.
    Background,
}

impl MethodKind {
    /// The heading front ends group methods of this kind under.
    pub fn title(self) -> &'static str {
        match self {
            Self::Denoise => "Denoisers",
            Self::Deconvolve => "Deconvolution",
            Self::Background => "Background removal",
        }
    }
}

/// Which dimensionalities a method accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    /// Single planes only; stacks are refused.
    D2,
    /// Planes and volumes (true 3D neighbourhoods).
    D2D3,
}

impl Dims {
    /// Whether an image of `ndim` dimensions (2 or 3) is accepted.
    pub fn supports(self, ndim: usize) -> bool {
        match self {
            Self::D2 => ndim == 2,
            Self::D2D3 => ndim == 2 || ndim == 3,
        }
    }

    /// `"2D"` or `"2D, 3D"`.
    pub fn label(self) -> &'static str {
        match self {
            Self::D2 => "2D",
            Self::D2D3 => "2D, 3D",
        }
    }
}

/// The reach a support function states for an axis along which every output pixel
/// depends on the whole image (a Fourier transform, sub-band statistics).
pub const GLOBAL_SUPPORT: usize = 1 << 24;

/// Reach of an output pixel, `[z, y, x]`, for resolved parameters.
pub type SupportFn = fn(&Resolved) -> Result<[usize; 3]>;

/// The signature every method's CPU entry is adapted to.
pub type RunFn = fn(VolumeView<'_>, &Resolved, &Control) -> Result<Volume>;

/// How [`crate::tune`] scores a setting without a clean image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TuneLoss {
    /// Noise2Self: hide a grid of pixels, run on the rest, score the prediction of the
    /// hidden ones. Assumes only that the noise is independent from pixel to pixel.
    Masked,
    /// Monte-Carlo SURE: the method runs on the image itself, and its divergence comes
    /// from a second run on a slightly perturbed copy. Assumes independent, roughly
    /// Gaussian noise of a known variance: the estimated level, or, where the image's
    /// own Poisson-Gaussian fit finds the noise growing with the signal, that fit. For
    /// methods whose masked loss is measured to be biased (BM3D: see [`crate::tune`]);
    /// each trial costs two runs.
    Sure,
}

/// Everything known about one method. One static instance per method module.
#[derive(Debug)]
pub struct MethodDescriptor {
    /// Stable id, used in macros and on the command line; never renamed.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Family, for menus and docs ("Smoothing", "Edge-preserving", "Patch-based").
    pub category: &'static str,
    /// One paragraph for users: what it does and when to pick it.
    pub summary: &'static str,
    /// Papers, as "Authors, title, venue year, doi:...".
    pub references: &'static [&'static str],
    /// What the output is; see [`MethodKind`].
    pub kind: MethodKind,
    /// Accepted dimensionalities.
    pub dims: Dims,
    /// The parameters, in dialog order.
    pub params: &'static [ParamSpec],
    /// Images the method takes besides its input (most take none).
    pub images: &'static [ImageInput],
    /// If a GPU kernel exists: the largest allowed |GPU - CPU| as a fraction of the
    /// input's intensity range. It also bounds the difference between CPU architectures
    /// (arm64 against x86_64); a method with no GPU kernel must agree across them bit
    /// for bit (`tests/platforms.rs`).
    pub gpu_tolerance: Option<f32>,
    /// Parameter settings (key, value) at which the method returns its input unchanged
    /// ("zero strength"); checked by the property tests, used for round-trip checks.
    pub identity: &'static [(&'static str, &'static str)],
    /// Settings (key, value) that keep the method's full code path but make it cheap on
    /// small images, for end-to-end tests that run every method on slow hosts (an
    /// emulator, Wine, every chunking of a Dask array) and for untimed warm-up runs (Fiji's
    /// Compare Methods); empty where the defaults are already cheap. Not a recommendation:
    /// the results are those of fewer iterations.
    pub quick: &'static [(&'static str, &'static str)],
    /// How far, in planes, rows and columns, an output pixel reaches into the input for
    /// these parameters. A crop extended by this halo gives exactly the full result inside
    /// the crop: the ImageJ preview relies on it to match the final result to the pixel.
    pub support: SupportFn,
    /// Working memory, checked against the budget before a job starts
    /// ([`crate::memory`]).
    pub memory: Memory,
    /// The working memory of particular settings, for an input of the given shape, when
    /// they need more than `memory` states (a filter that couples planes, say); `None` for
    /// most methods.
    pub memory_for: Option<fn(&Resolved, crate::volume::Shape) -> Memory>,
    /// How self-supervised tuning scores this method's settings.
    pub tune_loss: TuneLoss,
    /// The CPU implementation.
    pub run: RunFn,
}

impl MethodDescriptor {
    /// The settings that switch on every z neighbourhood the method has (each parameter's
    /// [`ParamSpec::three_d`]): what "3D" means for it in benchmarks and tests.
    pub fn three_d_values(&self) -> ParamValues {
        let mut v = ParamValues::new();
        for p in self.params {
            if let Some(on) = p.three_d {
                v.insert(p.key, on);
            }
        }
        v
    }

    /// Whether `key` is one of the method's parameters or image inputs.
    pub fn takes(&self, key: &str) -> bool {
        self.all_params().any(|p| p.key == key) || self.images.iter().any(|i| i.key == key)
    }

    /// The [`MethodDescriptor::quick`] settings as values.
    pub fn quick_values(&self) -> ParamValues {
        let mut v = ParamValues::new();
        for (k, val) in self.quick {
            v.insert(*k, *val);
        }
        v
    }

    /// Every parameter a user can set: the method's own, then for denoisers the shared
    /// noise model ([`noise_model::NOISE_MODEL_PARAMS`]).
    pub fn all_params(&self) -> impl Iterator<Item = &'static ParamSpec> + Clone + '_ {
        let common: &'static [ParamSpec] = match self.kind {
            MethodKind::Denoise => &noise_model::NOISE_MODEL_PARAMS,
            _ => &[],
        };
        self.params.iter().chain(common.iter())
    }

    /// `values` with the [`ImageInput::example`] image of every input that they select,
    /// for `input`.
    pub fn with_example_images(&self, values: &ParamValues, input: VolumeView<'_>) -> ParamValues {
        let mut v = values.clone();
        for spec in self.images {
            let (key, option) = spec.when;
            let chosen = values
                .pairs()
                .iter()
                .any(|(k, val)| k == key && val.trim().eq_ignore_ascii_case(option));
            if chosen {
                v.insert_image(spec.key, (spec.example)(input));
            }
        }
        v
    }

    /// Checks given values and fills in defaults; estimates noise only if a default needs it.
    ///
    /// # Errors
    /// [`DenoiseError::UnknownParam`], [`DenoiseError::InvalidParamValue`],
    /// [`DenoiseError::ParamOutOfRange`].
    pub fn resolve(
        &self,
        given: &ParamValues,
        mut noise_sigma: impl FnMut() -> Result<f64>,
    ) -> Result<Resolved> {
        for (k, _) in given.pairs() {
            if !self.all_params().any(|p| p.key == k) {
                return Err(DenoiseError::UnknownParam {
                    method: self.id.to_string(),
                    name: k.clone(),
                    valid: self
                        .all_params()
                        .map(|p| p.key)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let mut images = Vec::with_capacity(given.images().len());
        for (k, image) in given.images() {
            let Some(input) = self.images.iter().find(|i| i.key == k) else {
                return Err(DenoiseError::UnknownParam {
                    method: self.id.to_string(),
                    name: k.clone(),
                    valid: match self.images.len() {
                        0 => format!(
                            "{} (it takes no image besides its input)",
                            self.all_params()
                                .map(|p| p.key)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => format!(
                            "{} (images: {})",
                            self.all_params()
                                .map(|p| p.key)
                                .collect::<Vec<_>>()
                                .join(", "),
                            self.images
                                .iter()
                                .map(|i| i.key)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    },
                });
            };
            images.push((input.key, image.clone()));
        }
        let mut sigma_used = None;
        let mut values = Vec::with_capacity(self.params.len());
        for spec in self.all_params() {
            let v = match given.pairs().iter().find(|(k, _)| k == spec.key) {
                Some((_, raw)) => spec.parse(raw)?,
                None => spec.default_value(|| {
                    let s = match sigma_used {
                        Some(s) => s,
                        None => noise_sigma()?,
                    };
                    sigma_used = Some(s);
                    Ok(s)
                })?,
            };
            values.push((spec, v));
        }
        // An image its switch does not choose would be ignored, and whoever named it would
        // not know (the Fiji panel sends only chosen ones).
        for (key, _) in &images {
            let Some(input) = self.images.iter().find(|i| i.key == *key) else {
                continue;
            };
            let (switch, option) = input.when;
            if !values
                .iter()
                .any(|(s, v)| s.key == switch && v.to_string() == option)
            {
                return Err(DenoiseError::InvalidParamValue {
                    name: key.to_string(),
                    value: "the image given".into(),
                    expected: format!(
                        "{} uses {key} only with {switch}={option}; add {switch}={option}, \
                         or leave {key} out",
                        self.id
                    ),
                });
            }
        }
        Ok(Resolved {
            values,
            images,
            noise_sigma: sigma_used,
        })
    }
}

impl Serialize for ParamSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ParamSpec", 18)?;
        st.serialize_field("key", self.key)?;
        st.serialize_field("label", self.label)?;
        st.serialize_field("tunable", &self.tunable)?;
        st.serialize_field("along_z", &self.along_z)?;
        st.serialize_field("three_d", &self.three_d.map(|v| v.to_string()))?;
        st.serialize_field("when", &self.when.map(|(k, v)| [k, v]))?;
        match self.kind {
            ParamKind::Float { min, max, default } => {
                st.serialize_field("kind", "float")?;
                // JSON has no infinity: an open bound is written as null.
                st.serialize_field("min", &min.is_finite().then_some(min))?;
                st.serialize_field("max", &max.is_finite().then_some(max))?;
                match default {
                    DefaultValue::Fixed(v) => {
                        st.serialize_field("default", &v)?;
                        st.serialize_field("default_times_noise", &None::<f64>)?;
                    }
                    DefaultValue::TimesNoise(k) => {
                        st.serialize_field("default", &None::<f64>)?;
                        st.serialize_field("default_times_noise", &k)?;
                    }
                }
                st.serialize_field("options", &None::<Vec<&str>>)?;
            }
            ParamKind::Int { min, max, default } => {
                st.serialize_field("kind", "int")?;
                st.serialize_field("min", &min)?;
                st.serialize_field("max", &max)?;
                st.serialize_field("default", &default)?;
                st.serialize_field("default_times_noise", &None::<f64>)?;
                st.serialize_field("options", &None::<Vec<&str>>)?;
            }
            ParamKind::Choice { options, default } => {
                st.serialize_field("kind", "choice")?;
                st.serialize_field("min", &None::<f64>)?;
                st.serialize_field("max", &None::<f64>)?;
                st.serialize_field("default", default)?;
                st.serialize_field("default_times_noise", &None::<f64>)?;
                st.serialize_field("options", options)?;
            }
            ParamKind::File { .. } | ParamKind::Region => {
                let kind = if matches!(self.kind, ParamKind::Region) {
                    "region"
                } else {
                    "file"
                };
                st.serialize_field("kind", kind)?;
                st.serialize_field("min", &None::<f64>)?;
                st.serialize_field("max", &None::<f64>)?;
                st.serialize_field("default", "")?;
                st.serialize_field("default_times_noise", &None::<f64>)?;
                st.serialize_field("options", &None::<Vec<&str>>)?;
            }
        }
        st.serialize_field("writes", &self.writes())?;
        st.serialize_field("whole_image_only", &self.whole_image_only())?;
        st.serialize_field("scale", &self.scale)?;
        st.serialize_field("unit", &self.unit)?;
        st.serialize_field("unit_suffix", self.unit.suffix())?;
        st.serialize_field("help", &self.help_text())?;
        st.end()
    }
}

impl Serialize for MethodDescriptor {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MethodDescriptor", 14)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("category", self.category)?;
        st.serialize_field("summary", self.summary)?;
        st.serialize_field("references", self.references)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("kind_title", self.kind.title())?;
        st.serialize_field("dims", &[2, 3][..if self.dims == Dims::D2 { 1 } else { 2 }])?;
        st.serialize_field("gpu", &self.gpu_tolerance.is_some())?;
        st.serialize_field("gpu_tolerance", &self.gpu_tolerance)?;
        st.serialize_field("params", &self.all_params().collect::<Vec<_>>())?;
        st.serialize_field("images", self.images)?;
        st.serialize_field("tune_loss", &self.tune_loss)?;
        st.serialize_field(
            "quick",
            &self.quick.iter().copied().collect::<BTreeMap<_, _>>(),
        )?;
        st.end()
    }
}

/// Declares a method's parameter struct and its [`ParamSpec`] table in one place.
///
/// Each field is written once, with its doc comment (which becomes the help text), its
/// Rust type, and a spec built from [`ParamSpec::float`], [`ParamSpec::int`] or
/// [`ParamSpec::choice`]. The macro emits the struct, `SPECS`, `from_resolved` and
/// `validate`, so the key, the type and the range can never drift apart.
#[macro_export]
macro_rules! method_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $spec:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl $name {
            /// The parameter table of this method, in dialog order.
            pub const SPECS: &'static [$crate::ParamSpec] = &[
                $( $spec.named(stringify!($field), concat!($($doc),+)), )+
            ];

            /// Builds the struct from values resolved against [`Self::SPECS`].
            ///
            /// # Errors
            /// Only on a kind mismatch between a value and its spec.
            pub fn from_resolved(r: &$crate::Resolved) -> $crate::Result<Self> {
                Ok(Self { $( $field: r.get::<$ty>(stringify!($field))?, )+ })
            }

            /// Checks every field against its range.
            ///
            /// # Errors
            /// [`$crate::DenoiseError::ParamOutOfRange`] for the first field outside its range.
            pub fn validate(&self) -> $crate::Result<()> {
                $(
                    let spec = Self::SPECS
                        .iter()
                        .find(|s| s.key == stringify!($field))
                        .ok_or_else(|| $crate::DenoiseError::InvalidInput {
                            reason: format!("no spec for {}", stringify!($field)),
                        })?;
                    spec.check(&$crate::descriptor::ParamField::to_value(&self.$field))?;
                )+
                Ok(())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path survives the option string: with spaces, and starting with a bracket (which
    /// parsing strips one pair of).
    #[test]
    fn option_strings_split_back_into_their_pairs() {
        let v = ParamValues::new()
            .set("sigma", 1.5)
            .set("weights", "C:/my data/w.json")
            .set("odd", "[a]")
            .set("spaced", "[x y]")
            .set("empty", "");
        let back = ParamValues::from_options(&v.to_options());
        let raw: Vec<(&str, &str)> = back
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            raw,
            [
                ("sigma", "1.5"),
                ("weights", "[C:/my data/w.json]"),
                ("odd", "[[a]]"),
                ("spaced", "[[x y]]"),
                ("empty", ""),
            ]
        );
        let bare = ParamValues::from_options("  flag  k=v=w last=[unclosed value");
        let raw: Vec<(&str, &str)> = bare
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            raw,
            [("flag", ""), ("k", "v=w"), ("last", "[unclosed value")]
        );
    }

    #[test]
    fn whole_numbers_parse_and_any_too_large_one_is_named_with_the_range() {
        let spec = ParamSpec::int("Steps", 1, 1000, 10);
        let parsed = |raw: &str| spec.parse(raw).map_err(|e| e.to_string());
        assert_eq!(parsed("7"), Ok(ParamValue::Int(7)));
        assert_eq!(parsed(" 7.0 "), Ok(ParamValue::Int(7)));
        for raw in ["1e300", "99999999999999999999", "-1e20", "1e400", "-inf"] {
            let e = parsed(raw).unwrap_err();
            assert!(e.contains("outside [1, 1000]"), "{raw}: {e}");
        }
        for raw in ["2.5", "seven", "NaN"] {
            let e = parsed(raw).unwrap_err();
            assert!(e.contains("a whole number"), "{raw}: {e}");
        }
    }

    #[test]
    fn regions_parse_and_round_trip() {
        let spec = ParamSpec::region("Train on region");
        let rect = |x, y, width, height| Rect {
            x,
            y,
            width,
            height,
        };
        for (text, want) in [
            ("", None),
            ("[]", None),
            ("10,20,128,64", Some(rect(10, 20, 128, 64))),
            ("[ 0, 0, 1, 1 ]", Some(rect(0, 0, 1, 1))),
            ("(8, 4, 32, 24)", Some(rect(8, 4, 32, 24))),
        ] {
            let v = spec.parse(text).unwrap();
            assert_eq!(v, ParamValue::Region(want), "{text}");
            assert_eq!(spec.parse(&v.to_string()).unwrap(), v);
        }
        for bad in [
            "1,2,3",
            "1,2,3,4,5",
            "a,b,c,d",
            "-1,0,4,4",
            "0,0,0,4",
            "0,0,4,0",
        ] {
            let e = spec.parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("x,y,width,height") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        // 6 pixels wide, 8 high.
        let plane = crate::volume::Shape::new(1, 8, 6);
        assert!(rect(2, 3, 4, 5).fits(plane));
        assert!(!rect(3, 3, 4, 5).fits(plane));
        assert!(!rect(2, 4, 4, 5).fits(plane));
        assert!(!rect(0, usize::MAX, 1, 1).fits(plane));
    }

    #[test]
    fn file_values_round_trip_through_options() {
        let spec = ParamSpec::file("Weights", false);
        for path in ["C:/my data/w.json", "[a]", "plain.json", "[x y]"] {
            let mut text = String::new();
            write_option(&mut text, "weights", path);
            let value = text.strip_prefix("weights=").unwrap_or_default();
            assert_eq!(
                spec.parse(value).ok(),
                Some(ParamValue::File(path)),
                "{text}"
            );
        }
    }
}
