//! The stdout line reader: a [`Decoder`] for `FramedRead` that never errors on content.
//!
//! `tokio_util::codec::LinesCodec` reports an over-long line (and invalid UTF-8) as a
//! decoder error, and `FramedRead` ends the stream after any decoder error
//! (tokio-rs/tokio#3976): the reader would stop and the child would block on a full pipe.
//! Here an over-long line is an item ([`Line::TooLong`]) and the rest of it is discarded
//! up to the next newline; invalid UTF-8 is replaced (lossy). Only I/O errors end the stream.

use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{AgentEvent, MessageDraft, StreamParser};

/// One line of a child's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\n` (and `\r`), invalid UTF-8 replaced.
    Text(String),
    /// A line longer than the limit; `head` is its start (lossy UTF-8, at most 200 bytes).
    /// The rest of the line was discarded.
    TooLong { head: String, max: usize },
}

impl Line {
    /// Feeds this line to `parser`; an over-long line becomes an error message.
    pub fn feed(&self, parser: &mut dyn StreamParser) -> Vec<AgentEvent> {
        match self {
            Line::Text(text) => parser.line(text),
            Line::TooLong { head, max } => vec![AgentEvent::Message(MessageDraft::error(format!(
                "agent output line longer than {max} bytes skipped (starts with: {head})"
            )))],
        }
    }
}

/// Splits bytes into [`Line`]s of at most `max` bytes.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max: usize,
    /// Bytes of the buffer already searched for `\n`.
    searched: usize,
    /// Inside an over-long line: drop bytes up to and including the next `\n`.
    discarding: bool,
}

/// Default line limit: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

impl LineCodec {
    pub fn new(max: usize) -> LineCodec {
        LineCodec {
            max: max.max(1),
            searched: 0,
            discarding: false,
        }
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new(DEFAULT_MAX_LINE)
    }
}

fn text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        loop {
            if self.discarding {
                match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.discarding = false;
                        self.searched = 0;
                        continue;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                }
            }
            // Search at most max+1 bytes: a line of exactly `max` bytes plus its newline.
            let limit = buf.len().min(self.max.saturating_add(1));
            let start = self.searched.min(limit);
            if let Some(i) = buf[start..limit].iter().position(|b| *b == b'\n') {
                let line = buf.split_to(start + i + 1);
                self.searched = 0;
                return Ok(Some(Line::Text(text(&line[..line.len() - 1]))));
            }
            if buf.len() > self.max {
                let head_len = 200.min(buf.len());
                let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
                self.discarding = true;
                self.searched = 0;
                buf.advance(self.max);
                return Ok(Some(Line::TooLong {
                    head,
                    max: self.max,
                }));
            }
            self.searched = limit;
            return Ok(None);
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.searched = 0;
        if self.discarding {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let rest = buf.split_to(buf.len());
        Ok(Some(Line::Text(text(&rest))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<Line> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).expect("decode") {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).expect("decode_eof") {
            out.push(line);
        }
        out
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_cr() {
        let mut c = LineCodec::new(100);
        let got = decode_all(&mut c, &[b"ab", b"c\r\nde", b"f\n\ng"]);
        let want = ["abc", "def", "", "g"].map(|s| Line::Text(s.into()));
        assert_eq!(got, want);
    }

    #[test]
    fn over_long_line_is_an_item_and_reading_resumes() {
        let mut c = LineCodec::new(8);
        let got = decode_all(&mut c, &[b"12345678\n", b"123456789abc", b"def\nok\n"]);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Line::Text("12345678".into()));
        assert!(matches!(&got[1], Line::TooLong { head, max: 8 } if head.starts_with("123456789")));
        assert_eq!(got[2], Line::Text("ok".into()));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut c = LineCodec::new(100);
        let got = decode_all(&mut c, &[b"a\xffb\nnext\n"]);
        assert_eq!(
            got,
            vec![Line::Text("a\u{fffd}b".into()), Line::Text("next".into())]
        );
    }
}
