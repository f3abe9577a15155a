//! Configuration errors: one line each, naming the file, the position and the problem.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::core::identity::KeyError;

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// TOML syntax error, unknown key or wrong value type.
    #[error("{0}")]
    Syntax(String),
    /// A value is out of range or malformed (the message names the key).
    #[error("{0}")]
    Invalid(String),
    /// `private_key` is malformed.
    #[error("private_key: {0}")]
    Key(KeyError),
    /// The key file could not be used.
    #[error("private_key_file {path}: {reason}")]
    KeyFile {
        /// The key file as resolved.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Both key settings are present.
    #[error("private_key_file: set either private_key or private_key_file, not both")]
    TwoKeys,
    /// Neither key setting is present.
    #[error(
        "no node key: set private_key or private_key_file (`meshrouter genconf` writes a config with a fresh key)"
    )]
    NoKey,
}

/// A configuration error with its location.
#[derive(Debug)]
pub struct ConfigError {
    /// The configuration file.
    pub path: PathBuf,
    /// One-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The problem.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    pub(super) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::whole_file(path, ConfigErrorKind::Io(error))
    }

    pub(super) fn whole_file(path: &Path, kind: ConfigErrorKind) -> Self {
        Self {
            path: path.to_owned(),
            position: None,
            kind,
        }
    }

    pub(super) fn at(path: &Path, text: &str, span: Range<usize>, kind: ConfigErrorKind) -> Self {
        Self {
            path: path.to_owned(),
            position: Some(line_and_column(text, span.start)),
            kind,
        }
    }

    pub(super) fn syntax(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = one_line(error.message());
        match error.span() {
            Some(span) => Self::at(path, text, span, ConfigErrorKind::Syntax(message)),
            None => Self::whole_file(path, ConfigErrorKind::Syntax(message)),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// The Display text already carries the cause, so no `source` is reported (it would print twice).
impl std::error::Error for ConfigError {}

/// Converts a byte offset into a one-based line and column (in characters).
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Joins a possibly multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
