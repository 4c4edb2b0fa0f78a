//! What a reload reads again while the proxy runs: `servers_config.json` and
//! the client keys (the `AUTH_KEYS` list and the keys file), with the
//! environment `${VAR}` is expanded from. Everything else needs a restart.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keys::Keys;
use super::servers::{self, ServerConfig};
use super::DEFAULT_SERVERS_CONFIG;

#[derive(Clone, Default)]
pub struct ReloadSources {
    /// The servers file as configured (`mcp.servers_config`); empty: none.
    servers_file: String,
    plain_keys: Vec<String>,
    keys_file: Option<PathBuf>,
    env: Arc<HashMap<String, String>>,
}

/// Paths only: the keys and the environment hold secrets.
impl fmt::Debug for ReloadSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadSources")
            .field("servers_file", &self.servers_file)
            .field("keys_file", &self.keys_file)
            .finish_non_exhaustive()
    }
}

impl ReloadSources {
    pub(super) fn new(
        servers_file: &str,
        plain_keys: &[String],
        keys_file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Self {
        Self {
            servers_file: servers_file.to_string(),
            plain_keys: plain_keys.to_vec(),
            keys_file: keys_file.map(Path::to_path_buf),
            env: Arc::new(env.clone()),
        }
    }

    /// The servers, read as at start-up: an empty setting means none, and the
    /// default file may be absent (then none).
    pub fn servers(&self) -> Result<Vec<ServerConfig>, String> {
        let path = Path::new(&self.servers_file);
        if self.servers_file.is_empty() || (self.servers_file == DEFAULT_SERVERS_CONFIG && !path.exists()) {
            return Ok(Vec::new());
        }
        servers::load(path, &self.env)
    }

    pub fn keys(&self) -> Result<Keys, String> {
        Keys::load(&self.plain_keys, self.keys_file.as_deref(), &self.env)
    }

    /// The files whose change on disk starts a reload.
    pub fn watched(&self) -> Vec<PathBuf> {
        let servers = (!self.servers_file.is_empty()).then(|| PathBuf::from(&self.servers_file));
        servers.into_iter().chain(self.keys_file.clone()).collect()
    }
}
