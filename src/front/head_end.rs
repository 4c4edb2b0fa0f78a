//! Finding where an HTTP/1 request head ends, in bytes that arrive in pieces.

/// The end of a request head is the first empty line after a non-empty one.
/// Lines may end in LF or CRLF (httparse accepts both), and empty lines before
/// the request line are skipped (httparse does too), so they do not end it.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeadEnd {
    /// What the current, unfinished line holds so far.
    line: Line,
    /// A non-empty line was seen: an empty line now ends the head.
    started: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    #[default]
    Empty,
    /// Exactly one CR: an empty line if LF comes next.
    Cr,
    Text,
}

impl Line {
    /// This line followed by the non-empty `more`.
    fn then(self, more: &[u8]) -> Line {
        match (self, more) {
            (Line::Empty, b"\r") => Line::Cr,
            _ => Line::Text,
        }
    }
}

impl HeadEnd {
    /// Feeds the next bytes of the connection; returns the offset just past
    /// the head's end when it is in them (the scanner is then reset).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &bytes[pos..]) {
            let lf = pos + i;
            let line = if i == 0 { self.line } else { self.line.then(&bytes[pos..lf]) };
            if line == Line::Text {
                self.started = true;
            } else if self.started {
                *self = Self::default();
                return Some(lf + 1);
            }
            self.line = Line::Empty;
            pos = lf + 1;
        }
        if pos < bytes.len() {
            self.line = self.line.then(&bytes[pos..]);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::HeadEnd;

    /// Feeds `input` split at `at` and returns where the head ended, as an
    /// offset into the whole input.
    fn end_when_split(input: &[u8], at: usize) -> Option<usize> {
        let mut scan = HeadEnd::default();
        let (a, b) = input.split_at(at);
        scan.feed(a).or_else(|| scan.feed(b).map(|n| n + at))
    }

    fn assert_end_at_every_split(input: &[u8], expected: Option<usize>) {
        for at in 0..=input.len() {
            assert_eq!(end_when_split(input, at), expected, "split at {at} of {:?}", input.escape_ascii().to_string());
        }
    }

    #[test]
    fn crlf_head_ends_after_the_blank_line() {
        let head = b"POST /v1/x HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_end_at_every_split(head, Some(head.len() - 4));
    }

    #[test]
    fn lf_head_ends_after_the_blank_line() {
        let head = b"GET / HTTP/1.1\nHost: a\n\nrest";
        assert_end_at_every_split(head, Some(head.len() - 4));
    }

    #[test]
    fn mixed_endings_end_too() {
        assert_end_at_every_split(b"GET / HTTP/1.1\r\nHost: a\n\r\n", Some(26));
        assert_end_at_every_split(b"GET / HTTP/1.1\nHost: a\r\n\n", Some(25));
    }

    #[test]
    fn empty_lines_before_the_request_line_do_not_end_it() {
        let head = b"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_end_at_every_split(head, Some(head.len()));
    }

    #[test]
    fn a_partial_head_has_no_end() {
        assert_end_at_every_split(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: \r\r\n", None);
        assert_end_at_every_split(b"GET / HTTP/1.1\r\nHost: a\r\n\r", None);
    }

    #[test]
    fn byte_by_byte_finds_the_same_end() {
        let head = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        let mut scan = HeadEnd::default();
        let ends: Vec<usize> = (0..head.len()).filter(|&i| scan.feed(&head[i..=i]).is_some()).collect();
        assert_eq!(ends, vec![head.len() - 1]);
    }
}
