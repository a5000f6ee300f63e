//! Watching a prefix: [`Rafting::watch_stream`] opens one streamed answer
//! (`GET /v1/kv/<prefix>?watch&stream`) and yields every change under the prefix, in revision
//! order, for as long as it is iterated.
//!
//! ```no_run
//! # fn main() -> Result<(), rafting_client::Error> {
//! let rafting = rafting_client::connect_from_env()?;
//! for event in rafting.watch_stream("/config", None)? {
//!     let event = event?;
//!     println!("{} {} {:?}", event.revision, event.key, event.value);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The stream survives what a long-lived connection meets: when it is cut (the node stopped,
//! the client fell too far behind and the node dropped it, or no line came within three
//! progress intervals), it reconnects to the next node and resumes from the last `next_since`
//! it read, so no change is missed or repeated. When the history it needs has been compacted
//! away it yields [`Error::Api`] with code `compacted` and ends: re-read the prefix and watch
//! again from the listing's revision + 1.

use super::{Error, Rafting, encode};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::BufRead;
use std::time::{Duration, Instant};

/// How often the node is asked to report progress while nothing changes.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// A stream with no line for this many progress intervals is taken for dead.
const PROGRESS_INTERVALS_MISSED_MAX: u32 = 3;
/// A line of the stream longer than this is a protocol error (a value is at most 1 MiB).
const LINE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// One change under a watched prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub revision: u64,
    pub key: String,
    /// The new value; `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// The changes under a prefix, as an iterator ([`Rafting::watch_stream`]). An `Err` that is
/// [`Error::is_retryable`] (no node could be reached) leaves the iterator usable: the next
/// call tries again from where it stood.
pub struct WatchStream<'a> {
    rafting: &'a Rafting,
    prefix: String,
    /// The first revision not yet yielded; `None` until the node said where it starts.
    next_since: Option<u64>,
    reader: Option<Box<dyn BufRead + Send + Sync>>,
    events: VecDeque<WatchEvent>,
    ended: bool,
    line: Vec<u8>,
}

impl Rafting {
    /// Every change under `prefix` from revision `since` on (or, with `None`, from now on), as
    /// an iterator that reconnects and resumes by itself; see [`WatchStream`].
    pub fn watch_stream(&self, prefix: &str, since: Option<u64>) -> Result<WatchStream<'_>, Error> {
        let mut stream = WatchStream {
            rafting: self,
            prefix: prefix.to_owned(),
            next_since: since,
            reader: None,
            events: VecDeque::new(),
            ended: false,
            line: Vec::new(),
        };
        stream.connect()?;
        Ok(stream)
    }
}

impl WatchStream<'_> {
    /// The revision to resume from: every change before it has been yielded (or was before
    /// the watch started).
    pub fn next_since(&self) -> Option<u64> {
        self.next_since
    }

    fn connect(&mut self) -> Result<(), Error> {
        let mut path = format!(
            "/v1/kv/{}?watch&stream&progress_ms={}",
            encode(&self.prefix),
            PROGRESS_INTERVAL.as_millis()
        );
        if let Some(since) = self.next_since {
            path.push_str(&format!("&since={since}"));
        }
        let read_timeout = PROGRESS_INTERVAL * PROGRESS_INTERVALS_MISSED_MAX;
        let reader = self.rafting.open_stream(&path, read_timeout)?;
        self.reader = Some(reader);
        Ok(())
    }

    /// Reads one line and takes what it says; `Err` ends the iteration for good.
    fn read_line(&mut self) -> Result<(), Error> {
        let Some(reader) = &mut self.reader else {
            return Ok(());
        };
        self.line.clear();
        let read = std::io::Read::take(&mut *reader, LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut self.line);
        match read {
            // A clean end (the node stops) or a cut: resume elsewhere.
            Ok(0) | Err(_) => {
                tracing::debug!(?read, "a watch stream ended; reconnecting");
                self.reader = None;
                return Ok(());
            }
            Ok(_) if self.line.last() != Some(&b'\n') => {
                self.reader = None;
                return Ok(());
            }
            Ok(_) => {}
        }
        let json: Value = serde_json::from_slice(&self.line).map_err(|error| {
            Error::Protocol(format!("a watch stream line is not JSON: {error}"))
        })?;
        if let Some(code) = json["code"].as_str() {
            let message = json["message"].as_str().unwrap_or_default().to_owned();
            if code == "compacted" {
                return Err(Error::Api {
                    status: 410,
                    code: code.to_owned(),
                    message,
                });
            }
            // The node could not read the changes (it is overloaded, say): resume elsewhere.
            tracing::debug!(
                code,
                message,
                "a watch stream ended with an error; reconnecting"
            );
            self.reader = None;
            return Ok(());
        }
        for event in json["events"].as_array().into_iter().flatten() {
            self.events.push_back(watch_event(event)?);
        }
        if let Some(next_since) = json["next_since"].as_u64() {
            self.next_since = Some(next_since);
        }
        Ok(())
    }
}

impl Iterator for WatchStream<'_> {
    type Item = Result<WatchEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let started = Instant::now();
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            if self.reader.is_none()
                && let Err(error) = self.connect()
            {
                if error.is_retryable() && started.elapsed() < self.rafting.retry_window {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                self.ended = !error.is_retryable();
                return Some(Err(error));
            }
            if let Err(error) = self.read_line() {
                self.ended = true;
                self.reader = None;
                return Some(Err(error));
            }
        }
    }
}

fn watch_event(event: &Value) -> Result<WatchEvent, Error> {
    let revision = event["revision"]
        .as_u64()
        .ok_or_else(|| Error::Protocol(format!("an event without a revision: {event}")))?;
    let key = event["key"].as_str().unwrap_or_default().to_owned();
    let value = match (
        event["type"].as_str(),
        &event["value"],
        &event["value_base64"],
    ) {
        (Some("delete"), _, _) => None,
        (_, Value::String(text), _) => Some(text.clone().into_bytes()),
        (_, _, Value::String(encoded)) => Some(
            base64_decode(encoded)
                .ok_or_else(|| Error::Protocol(format!("bad value_base64 in an event of {key}")))?,
        ),
        _ => Some(Vec::new()),
    };
    Ok(WatchEvent {
        revision,
        key,
        value,
    })
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut bits: u32 = 0;
    let mut count = 0;
    for byte in text.bytes().filter(|&b| b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_a_binary_value_and_a_delete_decode() {
        let put =
            serde_json::json!({"revision": 7, "key": "/a", "type": "put", "value_base64": "AP8="});
        assert_eq!(
            watch_event(&put).unwrap(),
            WatchEvent {
                revision: 7,
                key: "/a".into(),
                value: Some(vec![0, 255])
            }
        );
        let delete = serde_json::json!({"revision": 8, "key": "/a", "type": "delete"});
        assert_eq!(watch_event(&delete).unwrap().value, None);
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
    }
}
