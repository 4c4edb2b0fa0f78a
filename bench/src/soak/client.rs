//! One exchange of each kind with the proxy, judged by [`traffic::judge`].
//! A hang-up is the response dropped after its first chunk: reqwest then
//! closes that connection instead of pooling it, as a browser tab closing would.

use serde_json::{json, Value};

use super::traffic::{self, Expect, Kind, Outcome, Path};

pub const AUTH: &str = "Bearer sk-bench-master";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder().build().map_err(|e| format!("http client: {e}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string() })
    }

    /// One exchange of `kind`, within [`traffic::TIMEOUT`].
    pub async fn run(&self, kind: &Kind) -> Outcome {
        let exchange = async {
            match kind.path {
                Path::Chat => self.chat_session().await,
                Path::Passthrough | Path::ToolLoop => self.completion(kind).await,
            }
        };
        tokio::time::timeout(traffic::TIMEOUT, exchange).await.unwrap_or(Outcome::Stuck)
    }

    async fn completion(&self, kind: &Kind) -> Outcome {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", AUTH)
            .json(&traffic::body(kind));
        if kind.path == Path::Passthrough {
            req = req.header("x-mcp-tools", "off");
        }
        let mut resp = match req.send().await {
            Ok(resp) => resp,
            // The proxy must answer even when the upstream does not.
            Err(e) => return Outcome::Unexpected(format!("{}: no response: {e}", kind.name)),
        };
        let status = resp.status().as_u16();
        let (mut body, mut body_error) = (Vec::new(), false);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if kind.expect == Expect::HangUp {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    body_error = true;
                    break;
                }
            }
        }
        // Dropping a response not read to its end closes the connection.
        drop(resp);
        traffic::judge(kind, status, &body, body_error)
    }

    /// A `/chat` session from birth to removal: a turn, a streamed turn,
    /// the history, the `DELETE` (so the store does not grow with the soak).
    async fn chat_session(&self) -> Outcome {
        match self.chat_steps().await {
            Ok(()) => Outcome::Behaved,
            Err(e) => Outcome::Unexpected(format!("chat: {e}")),
        }
    }

    async fn chat_steps(&self) -> Result<(), String> {
        let url = format!("{}/chat", self.base);
        let first: Value = self.send(self.http.post(&url).json(&json!({"message": "hello"}))).await?;
        let id = first["session_id"].as_str().ok_or_else(|| format!("no session_id in {first}"))?.to_string();
        let turn = json!({"message": "again", "session_id": id, "stream": true});
        let resp = self.http.post(&url).header("authorization", AUTH).json(&turn).send().await;
        let text = resp.map_err(|e| format!("turn 2: {e}"))?.text().await.map_err(|e| format!("turn 2 body: {e}"))?;
        if !text.contains("chat.session") || text.contains("\"error\"") {
            return Err(format!("turn 2 streamed {}", text.chars().take(160).collect::<String>()));
        }
        let history: Value = self.send(self.http.get(format!("{url}/{id}"))).await?;
        let turns = history["messages"].as_array().map_or(0, Vec::len);
        if turns < 4 {
            return Err(format!("history holds {turns} messages: {history}"));
        }
        let gone = self.http.delete(format!("{url}/{id}")).header("authorization", AUTH).send().await;
        let status = gone.map_err(|e| format!("delete: {e}"))?.status();
        if !status.is_success() {
            return Err(format!("delete answered {status}"));
        }
        Ok(())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let resp = req.header("authorization", AUTH).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", body.chars().take(160).collect::<String>()));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {}", body.chars().take(160).collect::<String>()))
    }

    /// `/healthz`'s live task counts: the serving runtime's and the MCP hub's.
    pub async fn runtime_tasks(&self) -> (Option<u64>, Option<u64>) {
        let Ok(h) = self.send(self.http.get(format!("{}/healthz", self.base))).await else { return (None, None) };
        (h["runtime"]["tasks"].as_u64(), h["runtime"]["hub_tasks"].as_u64())
    }
}
