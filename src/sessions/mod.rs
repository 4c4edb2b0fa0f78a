//! `/chat` conversation history behind one trait: an embedded SQLite file by
//! default ([`sqlite`]), Redis when several proxy instances share sessions
//! ([`redis`]).
//!
//! A session is a list of turns. A turn begins when the user's message is
//! stored (before the upstream is called) and completes when the assistant's
//! answer and the turn's tool calls and results are stored, in one atomic
//! step: a turn interrupted by a crash stays marked incomplete, never half
//! written.
//!
//! The same store keeps the Responses surface's stored responses: one
//! record per response id, owned and expiring like a session.

pub mod redis;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sha2::Digest;

use crate::openai::chat::Message;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store: {0}")]
    Backend(String),
}

/// One turn: the user's message, then (when complete) what answered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    pub number: u64,
    pub complete: bool,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub created: u64,
    pub updated: u64,
    pub turns: Vec<Turn>,
}

/// Holds a session's lock; dropping it releases the lock.
pub struct SessionLock {
    _guard: Box<dyn Send + Sync>,
}

impl SessionLock {
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self { _guard: Box::new(guard) }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `sqlite` or `redis`, for metrics.
    fn kind(&self) -> &'static str;

    /// Creates an empty session owned by `owner` and returns its id (a uuid v4).
    async fn create(&self, owner: &str) -> Result<String, StoreError>;

    /// The history, or `None` when the session does not exist, has expired,
    /// or belongs to another owner (the caller answers 404 in each case).
    /// Refreshes the session's expiry.
    async fn load(&self, id: &str, owner: &str) -> Result<Option<History>, StoreError>;

    /// Stores `user` as the start of a new turn, before the upstream is
    /// called, so a crash cannot lose it. Returns the turn's number.
    async fn begin_turn(&self, id: &str, user: &Message) -> Result<u64, StoreError>;

    /// Appends the turn's answer (assistant and tool messages) and marks it
    /// complete, atomically.
    async fn complete_turn(&self, id: &str, turn: u64, messages: &[Message]) -> Result<(), StoreError>;

    /// Removes the session; false when there was none for this owner.
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError>;

    /// Waits until no other turn runs on this session (on any instance, for
    /// shared stores) and holds it until the returned lock is dropped.
    async fn lock(&self, id: &str) -> Result<SessionLock, StoreError>;

    /// Stores a Responses record (`record`: the surface's JSON, opaque
    /// here) under `id` for `owner`, with the sessions' expiry; written
    /// once, atomically, before the client is told the response is done.
    async fn put_response(&self, id: &str, owner: &str, record: &str) -> Result<(), StoreError>;

    /// The record, or `None` when there is none, it expired, or it is
    /// another owner's. Refreshes its expiry.
    async fn get_response(&self, id: &str, owner: &str) -> Result<Option<String>, StoreError>;

    /// Removes the record; false when there was none for this owner.
    async fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
}

/// Opens the store named by `SESSION_STORE`: `sqlite:PATH` (the default) or
/// `redis://…` (`redis+unix://…` for a socket).
pub async fn open(spec: &str, ttl: std::time::Duration) -> Result<Arc<dyn SessionStore>, StoreError> {
    if spec.starts_with("redis://") || spec.starts_with("redis+unix://") {
        return Ok(Arc::new(redis::RedisStore::connect(spec, ttl).await?));
    }
    let path = spec.strip_prefix("sqlite://").or_else(|| spec.strip_prefix("sqlite:")).unwrap_or(spec);
    Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(path), ttl)?))
}

/// Who owns a session: a hash of the client's bearer token (never the token
/// itself), or `""` for clients that send none.
pub fn owner_of(authorization: Option<&str>) -> String {
    match authorization.map(str::trim).filter(|a| !a.is_empty()) {
        None => String::new(),
        Some(a) => {
            let digest = sha2::Sha256::digest(a.as_bytes());
            digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// The messages to send for a new turn: the system prompt, then as many of
/// the latest complete turns as fit in `budget_chars` (oldest dropped
/// first, whole turns only, so tool calls keep their results), then the
/// user's new message. Nothing is deleted from the store.
pub fn context(history: &History, system_prompt: &str, user: &Message, budget_chars: usize) -> Vec<Message> {
    let size = |m: &Message| m.content_text().len() + m.tool_calls.as_ref().map_or(0, |c| c.len() * 64);
    let mut room = budget_chars.saturating_sub(system_prompt.len() + size(user));
    let mut kept: Vec<&Turn> = Vec::new();
    for turn in history.turns.iter().rev().filter(|t| t.complete) {
        let cost: usize = turn.messages.iter().map(size).sum();
        if cost > room {
            break;
        }
        room -= cost;
        kept.push(turn);
    }
    let mut out = Vec::new();
    if !system_prompt.is_empty() {
        out.push(Message::text("system", system_prompt));
    }
    for turn in kept.into_iter().rev() {
        out.extend(turn.messages.iter().cloned());
    }
    out.push(user.clone());
    out
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(n: u64, complete: bool, text: &str) -> Turn {
        Turn { number: n, complete, messages: vec![Message::text("user", text), Message::text("assistant", text)] }
    }

    #[test]
    fn context_keeps_the_newest_whole_turns_that_fit() {
        let history = History {
            created: 0,
            updated: 0,
            turns: vec![
                turn(1, true, &"a".repeat(100)),
                turn(2, false, "lost"),
                turn(3, true, "bb"),
                turn(4, true, "cc"),
            ],
        };
        let user = Message::text("user", "now");
        let ctx = context(&history, "sys", &user, 30);
        let texts: Vec<String> = ctx.iter().map(Message::content_text).collect();
        assert_eq!(texts, ["sys", "bb", "bb", "cc", "cc", "now"]);
        let all = context(&history, "", &user, 10_000);
        assert_eq!(all.len(), 7, "incomplete turns are left out; no empty system message");
    }

    #[test]
    fn owners_are_hashes() {
        assert_eq!(owner_of(None), "");
        let a = owner_of(Some("Bearer sk-one"));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("sk-one"));
        assert_ne!(a, owner_of(Some("Bearer sk-two")));
    }
}
