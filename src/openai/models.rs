//! `GET /v1/models`: the list the proxy answers with when the upstream cannot.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}

impl ModelList {
    /// A list holding only `model`, so clients that list models on start keep
    /// working while the upstream is away.
    pub fn fallback(model: &str) -> Self {
        Self {
            object: "list".into(),
            data: vec![Model {
                id: model.to_string(),
                object: "model".into(),
                created: 0,
                owned_by: "mcp-chat-proxy".into(),
            }],
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}
