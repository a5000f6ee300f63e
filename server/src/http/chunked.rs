//! A chunked request body (`Transfer-Encoding: chunked`), decoded as its bytes arrive.

use super::{HttpError, find};

/// Where the decoder stands in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before a chunk size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data { left: usize },
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section, before its empty line.
    Trailers,
}

/// The body decoded so far, and where the next bytes go.
#[derive(Debug)]
pub(super) struct ChunkedBody {
    body: Vec<u8>,
    position: Position,
}

impl ChunkedBody {
    pub(super) fn new() -> ChunkedBody {
        ChunkedBody {
            body: Vec::new(),
            position: Position::Size,
        }
    }

    /// Consumes what it can of `pending`. `Ok(Some(body))` once the body is whole; `Ok(None)`
    /// while more bytes are needed. `line_bytes_max` bounds a size line and the trailers.
    pub(super) fn advance(
        &mut self,
        pending: &mut Vec<u8>,
        body_bytes_max: usize,
        line_bytes_max: usize,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            match self.position {
                Position::Size => match httparse::parse_chunk_size(pending) {
                    Ok(httparse::Status::Complete((line_bytes, size))) => {
                        pending.drain(..line_bytes);
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size == 0 {
                            self.position = Position::Trailers;
                            continue;
                        }
                        let total = self.body.len().saturating_add(size);
                        if total > body_bytes_max {
                            return Err(HttpError::BodyTooLarge {
                                size: total,
                                max: body_bytes_max,
                            });
                        }
                        self.position = Position::Data { left: size };
                    }
                    Ok(httparse::Status::Partial) if pending.len() > line_bytes_max => {
                        return Err(HttpError::Malformed("chunk size line too long".into()));
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err(HttpError::Malformed("bad chunk size".into())),
                },
                Position::Data { left } => {
                    let taken = left.min(pending.len());
                    self.body.extend_from_slice(&pending[..taken]);
                    pending.drain(..taken);
                    if taken < left {
                        self.position = Position::Data { left: left - taken };
                        return Ok(None);
                    }
                    self.position = Position::DataEnd;
                }
                Position::DataEnd => {
                    if pending.len() < 2 {
                        return Ok(None);
                    }
                    if &pending[..2] != b"\r\n" {
                        return Err(HttpError::Malformed("a chunk does not end in CRLF".into()));
                    }
                    pending.drain(..2);
                    self.position = Position::Size;
                }
                Position::Trailers => match find(pending, b"\r\n") {
                    Some(0) => {
                        pending.drain(..2);
                        return Ok(Some(std::mem::take(&mut self.body)));
                    }
                    Some(end) => {
                        pending.drain(..end + 2);
                    }
                    None if pending.len() > line_bytes_max => {
                        return Err(HttpError::HeadTooLarge(line_bytes_max));
                    }
                    None => return Ok(None),
                },
            }
        }
    }
}
