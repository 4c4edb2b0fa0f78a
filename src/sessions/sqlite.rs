//! The default session store: one SQLite file, no server to run.
//!
//! WAL with `synchronous=FULL`: a turn the client saw complete has been
//! fsynced before the response was written, so it survives `kill -9` and
//! power loss. Each write is one transaction, so a crash leaves either the
//! whole change or none of it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{now, History, SessionLock, SessionStore, StoreError, Turn};
use crate::openai::chat::Message;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session, number)
);
CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL,
    turn INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session, turn, seq),
    FOREIGN KEY (session, turn) REFERENCES turns(session, number) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expires ON responses(expires);
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    ttl: Duration,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its directory.
    pub fn open(path: &Path, ttl: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), ttl, locks: Mutex::new(HashMap::new()) })
    }

    /// Runs `f` on the connection off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| backend("the connection lock is poisoned"))?;
            f(&mut guard).map_err(backend)
        })
        .await
        .map_err(backend)?
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }
}

/// The whole history in two queries, each row placed in one step (a lookup
/// per message, not a scan of the turns).
fn read_history(tx: &rusqlite::Transaction<'_>, id: &str, created: i64, updated: i64) -> rusqlite::Result<History> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut stmt = tx.prepare("SELECT number, complete FROM turns WHERE session = ?1 ORDER BY number")?;
    let rows = stmt.query_map(params![id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (number, complete) = row?;
        index.insert(number.unsigned_abs(), turns.len());
        turns.push(Turn { number: number.unsigned_abs(), complete: complete != 0, messages: Vec::new() });
    }
    let mut stmt = tx.prepare("SELECT turn, body FROM messages WHERE session = ?1 ORDER BY turn, seq")?;
    let rows = stmt.query_map(params![id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (turn, body) = row?;
        let Ok(message) = serde_json::from_str::<Message>(&body) else { continue };
        if let Some(t) = index.get(&turn.unsigned_abs()).and_then(|&i| turns.get_mut(i)) {
            t.messages.push(message);
        }
    }
    Ok(History { created: created.unsigned_abs(), updated: updated.unsigned_abs(), turns })
}

fn insert_messages(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    turn: i64,
    from_seq: i64,
    messages: &[String],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare("INSERT INTO messages (session, turn, seq, body) VALUES (?1, ?2, ?3, ?4)")?;
    for (i, body) in messages.iter().enumerate() {
        stmt.execute(params![id, turn, from_seq + i as i64, body])?;
    }
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, owner: &str) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (sid, owner, ttl) = (id.clone(), owner.to_string(), self.ttl_secs());
        self.with(move |c| {
            let t = now() as i64;
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sessions WHERE expires <= ?1", params![t])?;
            tx.execute(
                "INSERT INTO sessions (id, owner, created, updated, expires) VALUES (?1, ?2, ?3, ?3, ?4)",
                params![sid, owner, t, t + ttl],
            )?;
            tx.commit()
        })
        .await?;
        Ok(id)
    }

    async fn load(&self, id: &str, owner: &str) -> Result<Option<History>, StoreError> {
        let (id, owner, ttl) = (id.to_string(), owner.to_string(), self.ttl_secs());
        self.with(move |c| {
            let t = now() as i64;
            let tx = c.transaction()?;
            let row: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT created, updated FROM sessions WHERE id = ?1 AND owner = ?2 AND expires > ?3",
                    params![id, owner, t],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((created, updated)) = row else { return Ok(None) };
            tx.execute("UPDATE sessions SET expires = ?2 WHERE id = ?1", params![id, t + ttl])?;
            let history = read_history(&tx, &id, created, updated)?;
            tx.commit()?;
            Ok(Some(history))
        })
        .await
    }

    async fn begin_turn(&self, id: &str, user: &Message) -> Result<u64, StoreError> {
        let body = serde_json::to_string(user).map_err(backend)?;
        let id = id.to_string();
        self.with(move |c| {
            let tx = c.transaction()?;
            let next: i64 =
                tx.query_row("SELECT COALESCE(MAX(number), 0) + 1 FROM turns WHERE session = ?1", params![id], |r| {
                    r.get(0)
                })?;
            tx.execute("INSERT INTO turns (session, number, complete) VALUES (?1, ?2, 0)", params![id, next])?;
            insert_messages(&tx, &id, next, 0, &[body])?;
            tx.execute("UPDATE sessions SET updated = ?2 WHERE id = ?1", params![id, now() as i64])?;
            tx.commit()?;
            Ok(next.unsigned_abs())
        })
        .await
    }

    async fn complete_turn(&self, id: &str, turn: u64, messages: &[Message]) -> Result<(), StoreError> {
        let bodies: Vec<String> =
            messages.iter().map(serde_json::to_string).collect::<Result<_, _>>().map_err(backend)?;
        let (id, turn) = (id.to_string(), i64::try_from(turn).map_err(backend)?);
        self.with(move |c| {
            let tx = c.transaction()?;
            insert_messages(&tx, &id, turn, 1, &bodies)?;
            tx.execute("UPDATE turns SET complete = 1 WHERE session = ?1 AND number = ?2", params![id, turn])?;
            tx.execute("UPDATE sessions SET updated = ?2 WHERE id = ?1", params![id, now() as i64])?;
            tx.commit()
        })
        .await
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.with(move |c| Ok(c.execute("DELETE FROM sessions WHERE id = ?1 AND owner = ?2", params![id, owner])? > 0))
            .await
    }

    async fn lock(&self, id: &str) -> Result<SessionLock, StoreError> {
        let mutex = {
            let mut locks = self.locks.lock().map_err(|_| backend("the lock table is poisoned"))?;
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(id).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id.to_string(), Arc::downgrade(&m));
                    m
                }
            }
        };
        Ok(SessionLock::new(mutex.lock_owned().await))
    }

    async fn put_response(&self, id: &str, owner: &str, record: &str) -> Result<(), StoreError> {
        let (id, owner, body, ttl) = (id.to_string(), owner.to_string(), record.to_string(), self.ttl_secs());
        self.with(move |c| {
            let t = now() as i64;
            let tx = c.transaction()?;
            tx.execute("DELETE FROM responses WHERE expires <= ?1", params![t])?;
            tx.execute(
                "INSERT OR REPLACE INTO responses (id, owner, created, expires, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, owner, t, t + ttl, body],
            )?;
            tx.commit()
        })
        .await
    }

    async fn get_response(&self, id: &str, owner: &str) -> Result<Option<String>, StoreError> {
        let (id, owner, ttl) = (id.to_string(), owner.to_string(), self.ttl_secs());
        self.with(move |c| {
            let t = now() as i64;
            let tx = c.transaction()?;
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM responses WHERE id = ?1 AND owner = ?2 AND expires > ?3",
                    params![id, owner, t],
                    |r| r.get(0),
                )
                .optional()?;
            if body.is_some() {
                tx.execute("UPDATE responses SET expires = ?2 WHERE id = ?1", params![id, t + ttl])?;
            }
            tx.commit()?;
            Ok(body)
        })
        .await
    }

    async fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.with(move |c| Ok(c.execute("DELETE FROM responses WHERE id = ?1 AND owner = ?2", params![id, owner])? > 0))
            .await
    }
}
