//! The shared session store: one Redis behind several proxy instances, so a
//! session begun on one instance continues on any other.
//!
//! # Layout
//!
//! Every key starts with `mcp-chat-proxy:`; the session id sits in a hash tag
//! (`{id}`) so that all of a session's keys land in one Redis Cluster slot,
//! as a multi-key script requires.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `session:{id}` | hash | `owner`, `created`, `updated` (unix seconds), `last_turn` (the `HINCRBY` counter) |
//! | `session:{id}:turns` | hash | turn number → `0` (incomplete) or `1` (complete) |
//! | `session:{id}:messages` | list | `{"turn": n, "message": {…}}` in the order written |
//! | `lock:{id}` | string | the random token of the instance holding the session's lock |
//! | `response:{id}` | hash | a stored Responses record: `owner`, `body` |
//!
//! # Atomicity
//!
//! Every write that touches more than one key is one Lua script (`create` is
//! one `MULTI`/`EXEC`): Redis runs a script without interleaving other
//! clients, and persists its effects as one transaction, which a truncated
//! AOF drops whole on restart. Scripts validate before their first write, so
//! a refused call changes nothing. Each script also moves the expiry of all
//! three session keys forward together, so they expire together.
//!
//! # Lock
//!
//! `SET lock:{id} <token> NX PX <lease>`, retried with short sleeps. A task
//! renews the lease every third of it while the guard lives; dropping the
//! guard deletes the key only if it still holds our token. A crashed
//! instance renews nothing, so its lock lapses after one lease.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Script};
use serde::Deserialize;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{now, History, SessionLock, SessionStore, StoreError, Turn};
use crate::openai::chat::Message;

const PREFIX: &str = "mcp-chat-proxy:";
/// How long a lock outlives a holder that stopped renewing it.
const LEASE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Generous next to Redis's own latency: a long history is one reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest sleep between two attempts to take a busy lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(50);

/// KEYS: session, turns, messages. ARGV: owner, ttl ms.
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
local s = redis.call('HMGET', KEYS[1], 'created', 'updated')
return {s[1], s[2], redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, -1)}
",
    )
});

/// KEYS: session, turns, messages. ARGV: user message JSON, now, ttl ms.
/// Returns the new turn's number, or 0 when there is no such session.
static BEGIN_TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tostring(redis.call('HINCRBY', KEYS[1], 'last_turn', 1))
redis.call('HSET', KEYS[1], 'updated', ARGV[2])
redis.call('HSET', KEYS[2], n, '0')
redis.call('RPUSH', KEYS[3], '{"turn":' .. n .. ',"message":' .. ARGV[1] .. '}')
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return tonumber(n)
"#,
    )
});

/// KEYS: session, turns, messages. ARGV: turn, now, ttl ms, message JSON….
/// Returns 1 when done, 0 when there is no such turn, -1 when it is complete.
static COMPLETE_TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[2], ARGV[1])
if state == '1' then return -1 end
if state ~= '0' or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[3], '{"turn":' .. ARGV[1] .. ',"message":' .. ARGV[i] .. '}')
end
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('HSET', KEYS[1], 'updated', ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"#,
    )
});

/// KEYS: session, turns, messages. ARGV: owner.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) > 0 and 1 or 0
",
    )
});

/// KEYS: response. ARGV: owner, ttl ms. The body, expiry refreshed, if the owner's.
static GET_RESPONSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'body')
",
    )
});

/// KEYS: response. ARGV: owner.
static DELETE_RESPONSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
",
    )
});

/// KEYS: lock. ARGV: token, lease ms. 1 while the token still holds the lock.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// KEYS: lock. ARGV: token. Never deletes a lock another holder took after ours lapsed.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

pub struct RedisStore {
    conn: ConnectionManager,
    ttl_ms: u64,
    lease: Duration,
    /// Stops this store's lease renewals when it is dropped, as a crash would.
    renewals: CancellationToken,
    _stop_renewals: DropGuard,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The session's three keys: hash, turns, messages.
fn keys(id: &str) -> [String; 3] {
    let session = format!("{PREFIX}session:{{{id}}}");
    [session.clone(), format!("{session}:turns"), format!("{session}:messages")]
}

impl RedisStore {
    /// Connects to the Redis at `url` once, failing fast with the host (never
    /// the URL, which may carry a password) when it does not answer; later
    /// disconnections are healed by the connection manager.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, StoreError> {
        Self::connect_with_lease(url, ttl, LEASE).await
    }

    /// [`connect`](Self::connect) with another lock lease, so tests can watch
    /// an abandoned lock lapse without waiting the production 30 s.
    pub async fn connect_with_lease(url: &str, ttl: Duration, lease: Duration) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| backend(format!("SESSION_STORE is not a usable Redis URL: {e}")))?;
        let host = client.get_connection_info().addr().to_string();
        let unreachable = |e: &dyn std::fmt::Display| backend(format!("Redis at {host} is unreachable: {e}"));
        // The manager retries its first connection for seconds; one plain
        // attempt first makes a wrong address fail at start-up, at once.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut first =
            client.get_multiplexed_async_connection_with_config(&probe).await.map_err(|e| unreachable(&e))?;
        redis::cmd("PING").query_async::<String>(&mut first).await.map_err(|e| unreachable(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_with_config(client, config).await.map_err(|e| unreachable(&e))?;
        let renewals = CancellationToken::new();
        Ok(Self { conn, ttl_ms: millis(ttl), lease, _stop_renewals: renewals.clone().drop_guard(), renewals })
    }
}

/// One entry of the messages list.
#[derive(Deserialize)]
struct Entry {
    turn: u64,
    message: Message,
}

/// Builds the history from what [`LOAD`] returns: the turns hash flattened
/// into number, state pairs, and the messages list.
fn history(created: u64, updated: u64, turn_states: &[String], entries: &[String]) -> History {
    let mut turns: Vec<Turn> = turn_states
        .chunks_exact(2)
        .filter_map(|pair| Some(Turn { number: pair[0].parse().ok()?, complete: pair[1] == "1", messages: Vec::new() }))
        .collect();
    turns.sort_by_key(|t| t.number);
    for entry in entries {
        // Like the SQLite store: a message this build cannot read is skipped, not fatal.
        let Ok(Entry { turn, message }) = serde_json::from_str::<Entry>(entry) else { continue };
        if let Ok(i) = turns.binary_search_by_key(&turn, |t| t.number) {
            turns[i].messages.push(message);
        }
    }
    History { created, updated, turns }
}

type Loaded = Option<(u64, u64, Vec<String>, Vec<String>)>;

#[async_trait]
impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn create(&self, owner: &str) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let [session, _, _] = keys(&id);
        let t = now();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&session)
            .arg(&[("owner", owner), ("created", &t.to_string()), ("updated", &t.to_string()), ("last_turn", "0")])
            .cmd("PEXPIRE")
            .arg(&session)
            .arg(self.ttl_ms)
            .exec_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(id)
    }

    async fn load(&self, id: &str, owner: &str) -> Result<Option<History>, StoreError> {
        let [session, turns, messages] = keys(id);
        let loaded: Loaded = LOAD
            .key(session)
            .key(turns)
            .key(messages)
            .arg(owner)
            .arg(self.ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(loaded.map(|(created, updated, states, entries)| history(created, updated, &states, &entries)))
    }

    async fn begin_turn(&self, id: &str, user: &Message) -> Result<u64, StoreError> {
        let body = serde_json::to_string(user).map_err(backend)?;
        let [session, turns, messages] = keys(id);
        let number: u64 = BEGIN_TURN
            .key(session)
            .key(turns)
            .key(messages)
            .arg(body)
            .arg(now())
            .arg(self.ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        if number == 0 {
            return Err(backend(format!("session {id} does not exist")));
        }
        Ok(number)
    }

    async fn complete_turn(&self, id: &str, turn: u64, messages: &[Message]) -> Result<(), StoreError> {
        let bodies: Vec<String> =
            messages.iter().map(serde_json::to_string).collect::<Result<_, _>>().map_err(backend)?;
        let [session, turns, list] = keys(id);
        let mut call = COMPLETE_TURN.key(session);
        call.key(turns).key(list).arg(turn).arg(now()).arg(self.ttl_ms);
        for body in &bodies {
            call.arg(body);
        }
        match call.invoke_async::<i64>(&mut self.conn.clone()).await.map_err(backend)? {
            1 => Ok(()),
            -1 => Err(backend(format!("turn {turn} of session {id} is already complete"))),
            _ => Err(backend(format!("session {id} has no turn {turn}"))),
        }
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let [session, turns, messages] = keys(id);
        let deleted: i64 = DELETE
            .key(session)
            .key(turns)
            .key(messages)
            .arg(owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(deleted == 1)
    }

    async fn lock(&self, id: &str) -> Result<SessionLock, StoreError> {
        // The guard exists before the first SET, so that a caller giving up
        // mid-wait (a dropped future) still deletes a lock whose SET reached
        // Redis but whose reply it never read.
        let mut held = Held {
            conn: self.conn.clone(),
            key: format!("{PREFIX}lock:{{{id}}}"),
            token: uuid::Uuid::new_v4().to_string(),
            renewal: None,
        };
        let lease_ms = millis(self.lease).max(1);
        let mut pause = Duration::from_millis(5);
        loop {
            let set: Option<String> = redis::cmd("SET")
                .arg(&held.key)
                .arg(&held.token)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut held.conn)
                .await
                .map_err(backend)?;
            if set.is_some() {
                break;
            }
            // Jitter keeps instances waiting on one session out of step.
            let jitter = uuid::Uuid::new_v4().as_u128() % (millis(pause) as u128 + 1);
            tokio::time::sleep(pause + Duration::from_millis(jitter as u64)).await;
            pause = (pause * 2).min(MAX_LOCK_PAUSE);
        }
        held.renewal = Some(tokio::spawn(renew(held.clone_parts(), self.lease, self.renewals.clone())));
        Ok(SessionLock::new(held))
    }

    async fn put_response(&self, id: &str, owner: &str, record: &str) -> Result<(), StoreError> {
        let key = response_key(id);
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&key)
            .cmd("HSET")
            .arg(&key)
            .arg(&[("owner", owner), ("body", record)])
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.ttl_ms)
            .exec_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }

    async fn get_response(&self, id: &str, owner: &str) -> Result<Option<String>, StoreError> {
        GET_RESPONSE
            .key(response_key(id))
            .arg(owner)
            .arg(self.ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }

    async fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let deleted: i64 = DELETE_RESPONSE
            .key(response_key(id))
            .arg(owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(deleted == 1)
    }
}

fn response_key(id: &str) -> String {
    format!("{PREFIX}response:{{{id}}}")
}

/// A session lock taken in Redis; dropping it releases the lock.
struct Held {
    conn: ConnectionManager,
    key: String,
    token: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Held {
    fn clone_parts(&self) -> (ConnectionManager, String, String) {
        (self.conn.clone(), self.key.clone(), self.token.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        // Drop cannot wait; without a runtime the lease lapses on its own.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (mut conn, key, token) = self.clone_parts();
        runtime.spawn(async move {
            if let Err(e) = RELEASE.key(&key).arg(&token).invoke_async::<i64>(&mut conn).await {
                tracing::warn!(lock = %key, error = %e, "could not release a session lock; it lapses after its lease");
            }
        });
    }
}

/// Extends the lease every third of it until aborted, the store is dropped,
/// or the lock turns out lost; a failed renewal is retried on the next tick,
/// while two thirds of the lease remain.
async fn renew((mut conn, key, token): (ConnectionManager, String, String), lease: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(1)));
    tick.tick().await;
    while stop.run_until_cancelled(tick.tick()).await.is_some() {
        match RENEW.key(&key).arg(&token).arg(millis(lease).max(1)).invoke_async::<i64>(&mut conn).await {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(lock = %key, "a session lock lapsed while held; another turn may run alongside");
                return;
            }
            Err(e) => tracing::warn!(lock = %key, error = %e, "could not renew a session lock"),
        }
    }
}
