//! What the crates' bincode encodings share.

/// Appends what bincode writes to a vector, each field a plain `extend_from_slice`. Through
/// bincode's `std::io::Write` adapter every field paid a call to `write_all`: a fifth of the
/// time to image a store, and more than the encoding itself for the log's records.
pub struct VecAppender<'a>(pub &'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecAppender<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}
