//! `--name value` flags: the binaries take a handful of numbers and
//! addresses, not worth a command-line parser dependency.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Reads `--name value` pairs from the process arguments.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::args().skip(1))
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut iter = args.into_iter();
        while let Some(flag) = iter.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("expected --flag, got {flag:?}"));
            };
            let value = iter.next().ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name.to_string(), value);
        }
        Ok(Self { values })
    }

    /// The flag's value parsed as `T`, or `default` when it is absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: cannot use {v:?}")),
        }
    }

    /// A flag that must be given.
    pub fn required<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self.values.get(name).ok_or_else(|| format!("--{name} is required"))?;
        v.parse().map_err(|_| format!("--{name}: cannot use {v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_default() {
        let a = Args::parse(["--port", "80", "--host", "h"].map(String::from)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.get("port", 1u16), Ok(80));
        assert_eq!(a.get("missing", 7u16), Ok(7));
        assert_eq!(a.required::<String>("host"), Ok("h".to_string()));
        assert!(a.get::<u16>("host", 0).is_err());
        assert!(Args::parse(["--x"].map(String::from)).is_err());
    }
}
