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
    /// Memory the system would not give: a buffer sized by the architecture or the
    /// data (weights, optimizer state, a batch's activations, decoded cells) that could
    /// not be allocated, or whose size does not even fit in a machine word.
    #[error("could not allocate {} for {what}; the model or the data are too large for this machine's memory", human_bytes(*bytes))]
    OutOfMemory { what: String, bytes: u64 },
    /// A failure inside the engine that user input should not be able to cause.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Error::InvalidParameter { field, rule: rule.into() }
    }

    /// A failed allocation of `n` values of `T`.
    pub(crate) fn out_of_memory<T>(n: usize, what: &str) -> Self {
        let bytes = (n as u128 * std::mem::size_of::<T>() as u128).min(u64::MAX as u128) as u64;
        Error::OutOfMemory { what: what.to_string(), bytes }
    }

    /// A buffer whose number of values overflows: as much memory as there is not.
    pub(crate) fn size_overflow(what: &str) -> Self {
        Error::OutOfMemory { what: what.to_string(), bytes: u64::MAX }
    }

    /// This error with "of layer 'name'" added to what could not be allocated.
    pub(crate) fn of_layer(self, name: &str) -> Self {
        match self {
            Error::OutOfMemory { what, bytes } => Error::OutOfMemory { what: format!("{what} of layer '{name}'"), bytes },
            e => e,
        }
    }
}

/// A byte count for people: "512 bytes", "1.5 MB", "120 GB", "2.3 TB" (powers of 1000);
/// `u64::MAX` stands for a size that overflowed.
fn human_bytes(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "more than 18 EB".into();
    }
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_says_how_much_and_for_what() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(120_000_000_000), "120 GB");
        assert_eq!(human_bytes(u64::MAX), "more than 18 EB");
        let e = Error::out_of_memory::<f32>(30_000_000_000, "the kernel").of_layer("encoder_1");
        assert_eq!(
            e.to_string(),
            "could not allocate 120 GB for the kernel of layer 'encoder_1'; the model or the data are too large for this machine's memory"
        );
    }
}
