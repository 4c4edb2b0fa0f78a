//! Scratch directories for one test's files (session databases, config
//! files, working directories of child processes), removed when dropped, so
//! a run leaves nothing behind. `tests/run` also points `TMPDIR` into
//! `target/`, so even a killed run leaves nothing in the system's temp dir.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A directory removed with everything in it when dropped.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mcp-chat-proxy-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("a scratch directory: {e}"));
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `contents` to `name` in the directory; its path as a string.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path.display().to_string()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// A file in a scratch directory of its own: the path, kept as long as this lives.
pub struct ScratchFile {
    pub path: String,
    _dir: Scratch,
}

impl ScratchFile {
    pub fn new(name: &str, contents: &str) -> Self {
        let dir = Scratch::new();
        let path = dir.write(name, contents);
        Self { path, _dir: dir }
    }
}

impl Deref for ScratchFile {
    type Target = String;

    fn deref(&self) -> &String {
        &self.path
    }
}
