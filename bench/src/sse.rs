//! Counts the events of an SSE stream as its bytes arrive, however the
//! network splits them: the stream client needs to know when each content
//! chunk arrived and whether the stream ended with `[DONE]`.

/// What one complete SSE event was.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Event {
    /// A chunk with non-empty `delta.content`: a token reached the client.
    Content,
    /// `data: [DONE]`, the end of an OpenAI stream.
    Done,
    /// Anything else (role-only or finish chunks, comments).
    Other,
}

/// Incremental scanner: feed it bytes, it reports each event it completes.
#[derive(Default)]
pub struct EventScanner {
    event: Vec<u8>,
    last_was_newline: bool,
}

/// An event longer than this is not one the mock sends: give up on it.
const MAX_EVENT: usize = 64 * 1024;

impl EventScanner {
    /// Feeds `bytes`; calls `on_event` for each event they complete.
    pub fn push(&mut self, bytes: &[u8], mut on_event: impl FnMut(Event)) {
        for &b in bytes {
            if b == b'\r' {
                // CRLF framing (some servers) counts as LF.
                continue;
            }
            if b == b'\n' && self.last_was_newline {
                on_event(classify(&self.event));
                self.event.clear();
                self.last_was_newline = false;
                continue;
            }
            self.last_was_newline = b == b'\n';
            if self.event.len() < MAX_EVENT {
                self.event.push(b);
            }
        }
    }
}

fn classify(event: &[u8]) -> Event {
    if find(event, b"[DONE]").is_some() {
        return Event::Done;
    }
    match find(event, b"\"content\":") {
        Some(at) if starts_non_empty_string(&event[at + 10..]) => Event::Content,
        _ => Event::Other,
    }
}

/// `rest` (after `"content":`) begins, after spaces, with a non-empty string.
fn starts_non_empty_string(rest: &[u8]) -> bool {
    let mut it = rest.iter().skip_while(|b| **b == b' ');
    it.next() == Some(&b'"') && it.next().is_some_and(|b| *b != b'"')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"tok \"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\": \"x\"}}]}\r\n\r\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

    fn events_split_at(at: usize) -> Vec<Event> {
        let mut scanner = EventScanner::default();
        let mut seen = Vec::new();
        scanner.push(&STREAM[..at], |e| seen.push(e));
        scanner.push(&STREAM[at..], |e| seen.push(e));
        seen
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let want = vec![Event::Other, Event::Content, Event::Content, Event::Other, Event::Done];
        for at in 0..=STREAM.len() {
            assert_eq!(events_split_at(at), want, "split at {at}");
        }
    }
}
