//! Work buffers kept between steps.

/// Sizes a work buffer to `len` values. Every buffer sized this way is overwritten in
/// full before it is read, so the old contents are kept rather than zeroed: filling
/// megabytes with zeros on one thread each step cost more than a tenth of a step.
pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        v.resize(len, 0.0);
    }
}
