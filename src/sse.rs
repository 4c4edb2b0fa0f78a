//! Server-sent events: an incremental decoder that parses what is buffered
//! and waits for more, with a bound on the size of one event.
//!
//! Used for the upstream's chat streams and for MCP's legacy SSE transport.
//! Lines may end in `\n`, `\r\n` or `\r`, and a chunk may end anywhere, even
//! between `\r` and `\n`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event exceeded {0} bytes")]
    TooLarge(usize),
    #[error("the stream ended in the middle of an event")]
    Truncated,
}

#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Where the scan for the next line ending resumes.
    scanned: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    event_bytes: usize,
    max_event_bytes: usize,
}

impl SseDecoder {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            event_bytes: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            if b == b'\r' && i + 1 == self.buf.len() {
                // Maybe the first half of \r\n: wait for the next byte.
                break;
            }
            let line_end = i;
            i += if b == b'\r' && self.buf[i + 1] == b'\n' { 2 } else { 1 };
            let line = String::from_utf8_lossy(&self.buf[start..line_end]).into_owned();
            start = i;
            if let Some(ev) = self.line(&line)? {
                events.push(ev);
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len().saturating_sub(usize::from(self.buf.last() == Some(&b'\r')));
        // A held `\r` ends a line and is not counted: when it is the blank line
        // closing an event at the cap, counting it refused a valid stream cut there.
        if self.event_bytes + self.scanned > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        Ok(events)
    }

    /// The stream has ended: returns the event a final lone `\r` completes;
    /// a half-received event is an error, never an event.
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        if self.buf.last() == Some(&b'\r') {
            let line = String::from_utf8_lossy(&self.buf[..self.buf.len() - 1]).into_owned();
            self.buf.clear();
            self.scanned = 0;
            events.extend(self.line(&line)?);
        }
        if !self.buf.is_empty() || self.has_data {
            return Err(SseError::Truncated);
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        self.event_bytes += line.len() + 1;
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.find(':') {
            Some(p) => (&line[..p], line[p + 1..].strip_prefix(' ').unwrap_or(&line[p + 1..])),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.event_bytes = 0;
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event, data: std::mem::take(&mut self.data), id: self.id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: endpoint\r\ndata: /messages?sessionId=1\r\n\r\n: keep-alive\n\ndata: {\"a\":1}\ndata: {\"b\":2}\n\nid: 7\rdata:x\r\r";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent { event: Some("endpoint".into()), data: "/messages?sessionId=1".into(), id: None },
            SseEvent { event: None, data: "{\"a\":1}\n{\"b\":2}".into(), id: None },
            SseEvent { event: None, data: "x".into(), id: Some("7".into()) },
        ]
    }

    #[test]
    fn same_events_at_every_split_point() {
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let mut d = SseDecoder::new(1024);
            let mut got = d.feed(&bytes[..split]).unwrap_or_else(|e| panic!("{e}"));
            got.extend(d.feed(&bytes[split..]).unwrap_or_else(|e| panic!("{e}")));
            got.extend(d.finish().unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(got, expected(), "split at {split}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut d = SseDecoder::new(1024);
        let mut got = Vec::new();
        for b in STREAM.as_bytes() {
            got.extend(d.feed(std::slice::from_ref(b)).unwrap_or_else(|e| panic!("{e}")));
        }
        got.extend(d.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(got, expected());
    }

    #[test]
    fn an_event_cut_by_eof_is_an_error() {
        let mut d = SseDecoder::new(1024);
        assert_eq!(d.feed(b"data: {\"half\"").map(|v| v.len()), Ok(0));
        assert_eq!(d.finish(), Err(SseError::Truncated));
        let mut d = SseDecoder::new(1024);
        let _ = d.feed(b"data: complete line\n");
        assert_eq!(d.finish(), Err(SseError::Truncated));
    }

    #[test]
    fn an_event_at_the_cap_survives_a_cut_between_cr_and_lf() {
        // 11 bytes of line + its ending = 12, the cap; the chunk ends after the closing `\r`.
        let (head, tail) = (b"data: abcde\r\n\r".as_slice(), b"\n".as_slice());
        let mut d = SseDecoder::new(12);
        let mut got = d.feed(head).unwrap_or_else(|e| panic!("{e}"));
        got.extend(d.feed(tail).unwrap_or_else(|e| panic!("{e}")));
        got.extend(d.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(got, [SseEvent { event: None, data: "abcde".into(), id: None }]);
        let mut d = SseDecoder::new(12);
        assert_eq!(d.feed(b"data: abcdef\r"), Ok(vec![]));
        assert_eq!(d.feed(b"\n"), Err(SseError::TooLarge(12)), "a line over the cap is still refused");
    }

    #[test]
    fn oversized_events_are_refused_without_unbounded_buffering() {
        let mut d = SseDecoder::new(64);
        assert_eq!(d.feed(&[b'a'; 100]), Err(SseError::TooLarge(64)));
        let mut d = SseDecoder::new(64);
        let many = "data: 0123456789\n".repeat(10);
        assert_eq!(d.feed(many.as_bytes()), Err(SseError::TooLarge(64)));
    }
}
