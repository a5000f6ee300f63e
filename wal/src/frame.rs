//! Framing: how one record batch sits in a segment file, and how a reader finds where it ends
//! and whether it arrived whole.
//!
//! Layout (little-endian, 12 bytes of header, then the body):
//!
//! ```text
//! offset  size  field
//!      0     4  body length in bytes (at most MAX_FRAME_BODY_BYTES)
//!      4     4  CRC32C of the body
//!      8     4  CRC32C of bytes 0..8 (so a damaged length is never trusted)
//!     12     n  body
//! ```
//!
//! The header has its own checksum because a length field that is silently wrong would make
//! the reader skip over good records, or mistake a damaged record in the middle for a torn
//! write at the end.

use crate::segment_header::read_u32;

/// Size of the frame header.
pub const FRAME_HEADER_BYTES: usize = 12;
/// The largest body a frame may carry; a larger length field is damage, never an allocation.
pub const MAX_FRAME_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What the reader found at one offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRead<'a> {
    /// A whole frame whose checksums match; the next frame starts at `next_offset`.
    Frame { body: &'a [u8], next_offset: usize },
    /// The offset is exactly the end of the bytes.
    End,
    /// The bytes at this offset are not a whole, intact frame.
    Damaged(FrameDamage),
}

/// How a frame is damaged. Whether the damage is a torn tail (cut and forgiven) or corruption
/// (an error) depends on where it is, which the recovery code decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameDamage {
    /// Fewer than [`FRAME_HEADER_BYTES`] bytes remain.
    ShortHeader,
    /// The header's own checksum does not match.
    HeaderChecksum,
    /// The header is intact but claims a body longer than [`MAX_FRAME_BODY_BYTES`].
    LengthTooLarge,
    /// The header is intact but the body runs past the end of the bytes.
    BodyPastEnd,
    /// The header is intact, the body is all there, and its checksum does not match.
    BodyChecksum { frame_end: usize },
}

impl FrameDamage {
    /// A sentence describing the damage, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FrameDamage::ShortHeader => "record header cut short",
            FrameDamage::HeaderChecksum => "record header checksum mismatch",
            FrameDamage::LengthTooLarge => "record length exceeds the maximum",
            FrameDamage::BodyPastEnd => "record body runs past the end of the file",
            FrameDamage::BodyChecksum { .. } => "record body checksum mismatch",
        }
    }
}

/// Starts a frame at the end of `buffer` by reserving its header; returns the frame's start.
/// Append the body to `buffer`, then call [`finish_frame`].
pub fn begin_frame(buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    buffer.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    start
}

/// Fills in the header of the frame begun at `start`, covering everything appended since.
/// Returns `None`, leaving the buffer as it was before the frame, if the body is too large.
pub fn finish_frame(buffer: &mut Vec<u8>, start: usize) -> Option<()> {
    let body_start = start + FRAME_HEADER_BYTES;
    let body_length = buffer.len() - body_start;
    if body_length > MAX_FRAME_BODY_BYTES {
        buffer.truncate(start);
        return None;
    }
    let body_checksum = crc32c::crc32c(&buffer[body_start..]);
    let header = &mut buffer[start..body_start];
    header[0..4].copy_from_slice(&(body_length as u32).to_le_bytes());
    header[4..8].copy_from_slice(&body_checksum.to_le_bytes());
    let header_checksum = crc32c::crc32c(&header[0..8]);
    header[8..12].copy_from_slice(&header_checksum.to_le_bytes());
    Some(())
}

/// Reads the frame starting at `offset` of `bytes`. Never panics, whatever the bytes.
pub fn read_frame(bytes: &[u8], offset: usize) -> FrameRead<'_> {
    let remaining = bytes.get(offset..).unwrap_or(&[]);
    if remaining.is_empty() {
        return FrameRead::End;
    }
    let Some(header) = remaining.get(..FRAME_HEADER_BYTES) else {
        return FrameRead::Damaged(FrameDamage::ShortHeader);
    };
    if crc32c::crc32c(&header[0..8]) != read_u32(&header[8..12]) {
        return FrameRead::Damaged(FrameDamage::HeaderChecksum);
    }
    let body_length = read_u32(&header[0..4]) as usize;
    if body_length > MAX_FRAME_BODY_BYTES {
        return FrameRead::Damaged(FrameDamage::LengthTooLarge);
    }
    let frame_length = FRAME_HEADER_BYTES + body_length;
    let Some(body) = remaining.get(FRAME_HEADER_BYTES..frame_length) else {
        return FrameRead::Damaged(FrameDamage::BodyPastEnd);
    };
    let next_offset = offset + frame_length;
    if crc32c::crc32c(body) != read_u32(&header[4..8]) {
        return FrameRead::Damaged(FrameDamage::BodyChecksum {
            frame_end: next_offset,
        });
    }
    FrameRead::Frame { body, next_offset }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut buffer = Vec::new();
        for body in bodies {
            let start = begin_frame(&mut buffer);
            buffer.extend_from_slice(body);
            finish_frame(&mut buffer, start).unwrap();
        }
        buffer
    }

    // Frames written back to back are read back one by one, then the reader reports the end.
    #[test]
    fn frames_round_trip() {
        let bytes = framed(&[b"hello", b"", b"world!"]);
        let FrameRead::Frame { body, next_offset } = read_frame(&bytes, 0) else {
            panic!("first frame unreadable");
        };
        assert_eq!(body, b"hello");
        let FrameRead::Frame { body, next_offset } = read_frame(&bytes, next_offset) else {
            panic!("second frame unreadable");
        };
        assert_eq!(body, b"");
        let FrameRead::Frame { body, next_offset } = read_frame(&bytes, next_offset) else {
            panic!("third frame unreadable");
        };
        assert_eq!(body, b"world!");
        assert_eq!(read_frame(&bytes, next_offset), FrameRead::End);
    }

    // Each kind of damage is named precisely, so recovery can tell a torn tail from corruption.
    #[test]
    fn damage_is_classified() {
        let bytes = framed(&[b"0123456789"]);
        assert_eq!(
            read_frame(&bytes[..5], 0),
            FrameRead::Damaged(FrameDamage::ShortHeader)
        );
        assert_eq!(
            read_frame(&bytes[..15], 0),
            FrameRead::Damaged(FrameDamage::BodyPastEnd)
        );
        let mut flipped_body = bytes.clone();
        flipped_body[14] ^= 0x40;
        assert_eq!(
            read_frame(&flipped_body, 0),
            FrameRead::Damaged(FrameDamage::BodyChecksum {
                frame_end: bytes.len()
            })
        );
        let mut flipped_length = bytes.clone();
        flipped_length[0] ^= 0x01;
        assert_eq!(
            read_frame(&flipped_length, 0),
            FrameRead::Damaged(FrameDamage::HeaderChecksum)
        );
        assert_eq!(
            read_frame(&[0u8; 40], 0),
            FrameRead::Damaged(FrameDamage::HeaderChecksum)
        );
        assert_eq!(read_frame(&bytes, bytes.len() + 5), FrameRead::End);
    }
}
