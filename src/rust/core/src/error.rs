//! One error type for the core; the binding maps it to an R condition in one place.

use thiserror::Error as ThisError;

/// Everything the core can refuse or fail at. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, ThisError)]
pub enum Error {
    /// A parameter outside its domain, e.g. a negative regularization.
    #[error("'{field}' {rule}")]
    InvalidParameter { field: &'static str, rule: String },
    /// Two inputs whose sizes do not agree.
    #[error("'{field}' has length {got}, expected {expected}")]
    LengthMismatch { field: &'static str, got: usize, expected: usize },
    /// NA, NaN or infinite values where finite numbers are needed.
    #[error("'{field}' contains non-finite values (NA, NaN or Inf)")]
    NonFinite { field: &'static str },
    /// A label code outside 0..n_classes.
    #[error("'{field}' contains a label code outside 1..{n_classes}")]
    LabelOutOfRange { field: &'static str, n_classes: usize },
    /// Weights that do not fit the architecture.
    #[error("'weights' do not match the architecture: {0}")]
    Weights(String),
    /// The loss stopped being a finite number.
    #[error("training diverged: the loss became {value} in epoch {epoch}; try a smaller learning rate")]
    Diverged { epoch: usize, value: f64 },
    /// The user asked to stop (Ctrl-C); the binding turns it into an R interrupt.
    #[error("interrupted by the user")]
    Interrupted,
    /// A failure inside the engine that user input should not be able to cause.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Error::InvalidParameter { field, rule: rule.into() }
    }
}
