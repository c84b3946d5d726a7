//! The one error type of the core library.
//!
//! Every message names the offending value and, where there is one, the allowed range,
//! so that the text can be shown unchanged in an ImageJ dialog or on a terminal.

use thiserror::Error;

/// Everything that can go wrong in a call into DenoiseKit.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DenoiseError {
    /// The image itself is unusable (empty, non-finite pixels, too small for the method).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong with the image, with the offending value or position.
        reason: String,
    },
    /// A parameter value lies outside its allowed range.
    #[error("parameter `{name}` = {value} is outside {}", interval(min, max))]
    ParamOutOfRange {
        /// The parameter key.
        name: String,
        /// The value given, as written.
        value: String,
        /// Inclusive lower bound.
        min: String,
        /// Inclusive upper bound.
        max: String,
    },
    /// A parameter value could not be parsed (not a number, not one of the choices).
    #[error("parameter `{name}`: cannot use {value:?}: {expected}")]
    InvalidParamValue {
        /// The parameter key.
        name: String,
        /// The value given.
        value: String,
        /// What was expected instead.
        expected: String,
    },
    /// A parameter key that the method does not have.
    #[error("method `{method}` has no parameter `{name}`; its parameters are: {valid}")]
    UnknownParam {
        /// The method id.
        method: String,
        /// The unknown key.
        name: String,
        /// The valid keys, comma-separated.
        valid: String,
    },
    /// A method id that is not registered.
    #[error("unknown method `{name}`; available methods: {valid}")]
    UnknownMethod {
        /// The unknown id.
        name: String,
        /// The registered ids, comma-separated.
        valid: String,
    },
    /// The method cannot handle images of this dimensionality.
    #[error("method `{method}` does not support {dims}D images (supported: {supported})")]
    UnsupportedDims {
        /// The method id.
        method: String,
        /// The dimensionality of the input.
        dims: usize,
        /// The supported dimensionalities.
        supported: String,
    },
    /// The job needs more memory than allowed.
    #[error(
        "{job} needs {} of working memory, more than the limit of {} ({way})",
        crate::format::fmt_bytes(*.bytes),
        crate::format::fmt_bytes(*.limit)
    )]
    TooLarge {
        /// The job, with its method and image size.
        job: String,
        /// The way forward, for this image and limit.
        way: String,
        /// Bytes the job would need.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The job was cancelled through its [`crate::Control`].
    #[error("cancelled")]
    Cancelled,
    /// The requested compute backend is not available.
    #[error("backend unavailable: {reason}")]
    BackendUnavailable {
        /// Why the backend cannot be used.
        reason: String,
    },
}

impl DenoiseError {
    /// A stable, machine-readable name for the variant (used as the Java exception kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "InvalidInput",
            Self::ParamOutOfRange { .. } => "ParamOutOfRange",
            Self::InvalidParamValue { .. } => "InvalidParamValue",
            Self::UnknownParam { .. } => "UnknownParam",
            Self::UnknownMethod { .. } => "UnknownMethod",
            Self::UnsupportedDims { .. } => "UnsupportedDims",
            Self::TooLarge { .. } => "TooLarge",
            Self::Cancelled => "Cancelled",
            Self::BackendUnavailable { .. } => "BackendUnavailable",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = DenoiseError> = std::result::Result<T, E>;

/// The environment variable that sets the memory budget, in bytes or with a K/M/G/T
/// suffix (binary units): `DENOISEKIT_MEMORY_LIMIT=8G`. Declared with the error whose
/// message names it ([`DenoiseError::TooLarge`]); read by [`crate::budget::limit`].
pub const MEMORY_LIMIT_ENV: &str = "DENOISEKIT_MEMORY_LIMIT";

/// `[min, max]`, or the half-open `[min, inf)` for a range with no upper bound: "inf is
/// outside [0, inf]" read as a contradiction.
fn interval(min: &str, max: &str) -> String {
    match max {
        "inf" => format!("[{min}, inf)"),
        _ => format!("[{min}, {max}]"),
    }
}
