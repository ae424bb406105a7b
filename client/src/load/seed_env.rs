//! The seed's `.env`: the seed's client reads the frontend's address from a `.env` file in the
//! directory it runs in (`host=...`, `frontend_port=...`, among the other services' settings),
//! so `toystore client` does too when `--url` is not given. The seed document calls the port
//! key `port`; that spelling is taken as well, and both at once must agree.
//!
//! The format is the usual dotenv one: `KEY=value` per line, blank lines and `#` comments
//! ignored, an optional `export ` before the key, a value optionally in matching single or
//! double quotes. Keys this client does not use are ignored (the seed's `.env` configures every
//! service); a line that is not `KEY=value`, an empty host or a port that is not 1-65535 is an
//! error naming the file and the line.

use std::io;
use std::path::{Path, PathBuf};

use crate::ClientArgs;

/// The file name looked for in the current directory.
pub const FILE_NAME: &str = ".env";

/// What went wrong reading a `.env`.
#[derive(Debug, thiserror::Error)]
pub enum SeedEnvError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}:{line}: expected KEY=value, found {text:?}", path.display())]
    Malformed { path: PathBuf, line: usize, text: String },
    #[error("{}:{line}: `{key}` is empty", path.display())]
    EmptyHost { path: PathBuf, line: usize, key: String },
    #[error("{}:{line}: `{key}` must be a port number 1-65535, found {value:?}", path.display())]
    BadPort { path: PathBuf, line: usize, key: String, value: String },
    #[error("{}: `frontend_port` ({frontend_port}) and `port` ({port}) disagree", path.display())]
    PortsDisagree { path: PathBuf, frontend_port: u16, port: u16 },
}

/// The frontend's address as a `.env` gives it; either part may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedEnv {
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl SeedEnv {
    /// Parse the text of a `.env` (`path` is only for the messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SeedEnvError> {
        let mut env = SeedEnv::default();
        let mut frontend_port = None;
        let mut port = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let assignment = trimmed.strip_prefix("export ").unwrap_or(trimmed);
            let malformed = || SeedEnvError::Malformed { path: path.to_path_buf(), line, text: raw.to_string() };
            let (key, value) = assignment.split_once('=').ok_or_else(malformed)?;
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(malformed());
            }
            let value = unquote(value.trim());
            match key {
                "host" => {
                    if value.is_empty() {
                        return Err(SeedEnvError::EmptyHost { path: path.to_path_buf(), line, key: key.into() });
                    }
                    env.host = Some(value.to_string());
                }
                "frontend_port" | "port" => {
                    let parsed = value.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| SeedEnvError::BadPort {
                        path: path.to_path_buf(),
                        line,
                        key: key.into(),
                        value: value.to_string(),
                    })?;
                    if key == "port" {
                        port = Some(parsed);
                    } else {
                        frontend_port = Some(parsed);
                    }
                }
                _ => {}
            }
        }
        env.port = match (frontend_port, port) {
            (Some(frontend_port), Some(port)) if frontend_port != port => {
                return Err(SeedEnvError::PortsDisagree { path: path.to_path_buf(), frontend_port, port })
            }
            (Some(p), _) | (None, Some(p)) => Some(p),
            (None, None) => None,
        };
        Ok(env)
    }

    /// Read `dir/.env`: `Ok(None)` if there is no such file.
    pub fn read(dir: &Path) -> Result<Option<Self>, SeedEnvError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SeedEnvError::Read { path, source }),
        }
    }

    /// The frontend's base URL: the parts the file gives, the rest from `default` (the host
    /// and port of `--url`'s default). `None` if the file names neither.
    pub fn url(&self, default_host: &str, default_port: u16) -> Option<String> {
        if self.host.is_none() && self.port.is_none() {
            return None;
        }
        let host = self.host.as_deref().unwrap_or(default_host);
        // An IPv6 literal needs its brackets in a URL.
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        Some(format!("http://{host}:{}", self.port.unwrap_or(default_port)))
    }
}

/// Where `--url`'s default points (`ClientArgs::default().url`; a test keeps them the same).
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8080;

/// Point `args.url` at the frontend `dir/.env` names, unless `--url` was given on the command
/// line (`url_given`), which always wins; the file is then not read at all. Returns the file
/// the address came from, if any.
pub fn apply(args: &mut ClientArgs, url_given: bool, dir: &Path) -> Result<Option<PathBuf>, SeedEnvError> {
    if url_given {
        return Ok(None);
    }
    let Some(url) = SeedEnv::read(dir)?.and_then(|env| env.url(DEFAULT_HOST, DEFAULT_PORT)) else {
        return Ok(None);
    };
    args.url = url;
    Ok(Some(dir.join(FILE_NAME)))
}

/// `"value"` or `'value'` → `value`; anything else as it is.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SeedEnv, SeedEnvError> {
        SeedEnv::parse(text, Path::new("/x/.env"))
    }

    #[test]
    fn the_seeds_keys_are_read_and_the_rest_ignored() {
        let text = "# the seed's settings\ncatalog_port=8081\nexport host = 10.0.0.7\n\nfrontend_port=\"9090\"\ncache='1'\n";
        let env = parse(text).unwrap();
        assert_eq!(env, SeedEnv { host: Some("10.0.0.7".into()), port: Some(9090) });
        assert_eq!(env.url("127.0.0.1", 8080).as_deref(), Some("http://10.0.0.7:9090"));
        // The seed document's spelling of the port key.
        assert_eq!(parse("port=7000").unwrap().port, Some(7000));
        assert_eq!(parse("port=7000\nfrontend_port=7000").unwrap().port, Some(7000));
    }

    #[test]
    fn missing_parts_come_from_the_default() {
        assert_eq!(parse("host=example").unwrap().url("127.0.0.1", 8080).as_deref(), Some("http://example:8080"));
        assert_eq!(parse("frontend_port=81").unwrap().url("127.0.0.1", 8080).as_deref(), Some("http://127.0.0.1:81"));
        assert_eq!(parse("host=::1").unwrap().url("127.0.0.1", 8080).as_deref(), Some("http://[::1]:8080"));
        assert_eq!(parse("catalog_port=8081\n").unwrap().url("127.0.0.1", 8080), None, "neither key: no address");
        assert_eq!(parse("").unwrap(), SeedEnv::default());
    }

    #[test]
    fn malformed_files_name_the_file_and_line() {
        let cases = [
            ("host=a\njust words\n", "/x/.env:2: expected KEY=value, found \"just words\""),
            ("=8080", "/x/.env:1: expected KEY=value"),
            ("front end=1", "/x/.env:1: expected KEY=value"),
            ("host=", "/x/.env:1: `host` is empty"),
            ("host=a\n\nfrontend_port=eighty", "/x/.env:3: `frontend_port` must be a port number 1-65535, found \"eighty\""),
            ("frontend_port=0", "/x/.env:1: `frontend_port` must be a port number"),
            ("port=70000", "/x/.env:1: `port` must be a port number"),
            ("frontend_port=1\nport=2", "/x/.env: `frontend_port` (1) and `port` (2) disagree"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        assert!(matches!(parse("host="), Err(SeedEnvError::EmptyHost { line: 1, .. })));
    }

    #[test]
    fn a_url_on_the_command_line_wins_over_the_file() {
        assert_eq!(ClientArgs::default().url, format!("http://{DEFAULT_HOST}:{DEFAULT_PORT}"));
        let dir = tempfile::tempdir().unwrap();
        let mut args = ClientArgs::default();
        assert_eq!(apply(&mut args, false, dir.path()).unwrap(), None, "no file");
        assert_eq!(args.url, ClientArgs::default().url);

        std::fs::write(dir.path().join(FILE_NAME), "host=10.1.2.3\nfrontend_port=9000\n").unwrap();
        let mut args = ClientArgs::default();
        assert_eq!(apply(&mut args, false, dir.path()).unwrap(), Some(dir.path().join(FILE_NAME)));
        assert_eq!(args.url, "http://10.1.2.3:9000");

        // Given explicitly, even as the default's own value, --url is kept, and a broken file
        // is not even read.
        std::fs::write(dir.path().join(FILE_NAME), "not an assignment\n").unwrap();
        let mut args = ClientArgs::default();
        assert_eq!(apply(&mut args, true, dir.path()).unwrap(), None);
        assert_eq!(args.url, ClientArgs::default().url);
        assert!(matches!(apply(&mut ClientArgs::default(), false, dir.path()), Err(SeedEnvError::Malformed { line: 1, .. })));
    }

    #[test]
    fn read_finds_the_file_in_the_directory_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SeedEnv::read(dir.path()).unwrap().is_none(), "no .env: nothing");
        std::fs::write(dir.path().join(FILE_NAME), "host=h\nfrontend_port=1234\n").unwrap();
        assert_eq!(SeedEnv::read(dir.path()).unwrap().and_then(|e| e.url("127.0.0.1", 8080)).as_deref(), Some("http://h:1234"));
        std::fs::write(dir.path().join(FILE_NAME), "host h\n").unwrap();
        let e = SeedEnv::read(dir.path()).unwrap_err();
        assert!(e.to_string().contains(&format!("{}:1:", dir.path().join(FILE_NAME).display())), "{e}");
        // A directory where the file should be is a read error, not "absent".
        let dir2 = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir2.path().join(FILE_NAME)).unwrap();
        assert!(matches!(SeedEnv::read(dir2.path()), Err(SeedEnvError::Read { .. })));
    }
}
