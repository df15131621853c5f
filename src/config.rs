//! The user's defaults file, `~/.config/kaddons/config.yaml`.
//!
//! People who always use the same mirror, profile or context should not have to type it on
//! every command, and a bootstrap script should not have to thread it through. The file holds
//! only a handful of keys, each the default of one flag; the binary merges it under the flags
//! and the `KADDONS_*` environment variables (flag > env > file > built-in default). This
//! module knows the file: where it is, its keys, parsing with errors that name the line, and
//! writing it back for `kaddons config set`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaddons_model::duration::{parse_go_duration, DurationError};
use serde::{Deserialize, Serialize};

use crate::catalog::{closest, did_you_mean, Profile};

/// The keys a config file may hold, in the order `config view` shows them.
pub const KEYS: [&str; 5] = [
    "profile",
    "imageMirror",
    "registry",
    "requestTimeout",
    "context",
];

/// The environment variable that overrides each key (same order as [`KEYS`]).
pub const ENV_VARS: [&str; 5] = [
    "KADDONS_PROFILE",
    "KADDONS_IMAGE_MIRROR",
    "KADDONS_REGISTRY",
    "KADDONS_REQUEST_TIMEOUT",
    "KADDONS_CONTEXT",
];

/// Points at another config file (tests, CI, several setups side by side).
pub const PATH_ENV: &str = "KADDONS_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Syntax {
        path: String,
        /// 1-based line of the problem, when serde_yaml knows it.
        line: Option<usize>,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{}unknown config key \"{key}\"{}; known keys: {}", at(.path, .line), did_you_mean(.suggestion), KEYS.join(", "))]
    UnknownKey {
        path: Option<String>,
        line: Option<usize>,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{}{key}: {problem}", at(.path, .line))]
    Invalid {
        path: Option<String>,
        line: Option<usize>,
        key: String,
        problem: String,
    },
}

/// `file:line: ` (or just `file: `) in front of a message, when the file is known.
fn at(path: &Option<String>, line: &Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{p}:{l}: "),
        (Some(p), None) => format!("{p}: "),
        _ => String::new(),
    }
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// `auto` or an explicit profile: what a user may write where a profile is chosen (flags, the
/// config file, addon set entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileChoice {
    #[default]
    Auto,
    Named(Profile),
}

impl ProfileChoice {
    /// `auto`, then every profile, in [`Profile::ALL`] order.
    pub const ALL: [ProfileChoice; Profile::ALL.len() + 1] = {
        let mut all = [ProfileChoice::Auto; Profile::ALL.len() + 1];
        let mut i = 0;
        while i < Profile::ALL.len() {
            all[i + 1] = ProfileChoice::Named(Profile::ALL[i]);
            i += 1;
        }
        all
    };

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|c| c.as_str()).collect()
    }

    /// The explicit profile, or `None` for auto-detection.
    pub fn explicit(self) -> Option<Profile> {
        match self {
            ProfileChoice::Auto => None,
            ProfileChoice::Named(p) => Some(p),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileChoice::Auto => "auto",
            ProfileChoice::Named(p) => p.as_str(),
        }
    }

    /// Parses a profile name, with a suggestion for a typo.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(ProfileChoice::Auto);
        }
        Profile::from_name(s)
            .map(ProfileChoice::Named)
            .ok_or_else(|| {
                let names = Self::names();
                format!(
                    "unknown profile \"{s}\"{}; one of: {}",
                    did_you_mean(&closest(s, names.iter().copied())),
                    names.join(", ")
                )
            })
    }
}

impl Serialize for ProfileChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProfileChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // A visitor, so that a parse error is raised at the scalar (YAML errors then carry
        // its line, not the line of the enclosing mapping).
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ProfileChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a profile name")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                s: &str,
            ) -> std::result::Result<Self::Value, E> {
                ProfileChoice::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

/// A Go duration (`10s`, `5m`, `1h30m`, `500ms`, see [`parse_go_duration`]) or a bare number of
/// seconds; zero is refused, since every duration we take is a timeout or an interval.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse().map_err(|_| not_a_duration(s))?)
    } else {
        parse_go_duration(s).map_err(|e| match e {
            DurationError::UnknownUnit { .. } => {
                format!("\"{s}\" has an unknown unit; use ms, s, m or h")
            }
            _ => not_a_duration(s),
        })?
    };
    if d.is_zero() {
        return Err("a duration must be more than zero".into());
    }
    Ok(d)
}

fn not_a_duration(s: &str) -> String {
    format!("\"{s}\" is not a duration; write e.g. 30s, 5m or 1h")
}

/// The file's contents. Every key is optional: absent means "no default of mine".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_mirror: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Kept as written (`30s`); checked on load and on set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Where the config file is: `$KADDONS_CONFIG`, else `$XDG_CONFIG_HOME/kaddons/config.yaml`,
/// else `$HOME/.config/kaddons/config.yaml`. `None` when none of these is set. `env` reads a
/// variable (injected so that tests need not change the process environment).
pub fn path_from_env(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(p) = set(PATH_ENV) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = set("XDG_CONFIG_HOME") {
        return Some(Path::new(&x).join("kaddons").join("config.yaml"));
    }
    set("HOME").map(|h| {
        Path::new(&h)
            .join(".config")
            .join("kaddons")
            .join("config.yaml")
    })
}

/// The 1-based line on which `key:` starts a top-level entry, for messages about it.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_end();
            let unquoted = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| l.strip_prefix(&format!("'{key}'")));
            unquoted.is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

impl Config {
    /// Parses a config file's text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let syntax = |source: serde_yaml::Error| ConfigError::Syntax {
            path: path.to_string(),
            line: source.location().map(|l| l.line()),
            source,
        };
        // Keys first, so that a typo gets a suggestion rather than serde's "expected one of".
        let raw: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax)?;
        // Only comments (what `config unset` of the last key leaves): nothing set.
        if raw.is_null() {
            return Ok(Config::default());
        }
        let Some(map) = raw.as_mapping() else {
            return Err(ConfigError::Invalid {
                path: Some(path.to_string()),
                line: Some(1),
                key: "(top level)".into(),
                problem: "the config file must be a mapping of key: value".into(),
            });
        };
        for k in map.keys() {
            let key = k.as_str().unwrap_or_default();
            if !KEYS.contains(&key) {
                let shown = if key.is_empty() {
                    format!("{k:?}")
                } else {
                    key.to_string()
                };
                return Err(ConfigError::UnknownKey {
                    path: Some(path.to_string()),
                    line: key_line(text, key),
                    suggestion: closest(key, KEYS),
                    key: shown,
                });
            }
        }
        let config: Config = serde_yaml::from_str(text).map_err(syntax)?;
        config
            .check()
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: Some(path.to_string()),
                line: key_line(text, key),
                key: key.to_string(),
                problem,
            })?;
        Ok(config)
    }

    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the file (creating its directory). Comments in an existing file are not kept.
    pub fn save(&self, path: &Path) -> Result<()> {
        let write = |source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let body = if *self == Config::default() {
            String::new()
        } else {
            serde_yaml::to_string(self).map_err(|e| write(std::io::Error::other(e)))?
        };
        let text = format!(
            "# kaddons defaults; flags and KADDONS_* variables override them.\n# Edit with `kaddons config set KEY VALUE`; keys: {}\n{body}",
            KEYS.join(", ")
        );
        std::fs::write(path, text).map_err(write)
    }

    /// The value of `key` as written in the file, or `None` when the file does not set it.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(match check_key(key)? {
            "profile" => self.profile.map(|p| p.as_str().to_string()),
            "imageMirror" => self.image_mirror.clone(),
            "registry" => self.registry.clone(),
            "requestTimeout" => self.request_timeout.clone(),
            _ => self.context.clone(),
        })
    }

    /// Sets `key` (checked like a loaded file); `None` removes it.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let mut next = self.clone();
        let owned = value.map(str::to_string);
        match check_key(key)? {
            "profile" => {
                next.profile =
                    match value {
                        Some(v) => Some(ProfileChoice::parse(v).map_err(|problem| {
                            ConfigError::Invalid {
                                path: None,
                                line: None,
                                key: key.into(),
                                problem,
                            }
                        })?),
                        None => None,
                    }
            }
            "imageMirror" => next.image_mirror = owned,
            "registry" => next.registry = owned,
            "requestTimeout" => next.request_timeout = owned,
            _ => next.context = owned,
        }
        next.check()
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: None,
                line: None,
                key: key.to_string(),
                problem,
            })?;
        *self = next;
        Ok(())
    }

    /// The request timeout as a duration (checked when the file was loaded).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
    }

    /// Checks values that serde cannot: durations, empty strings, contradicting keys.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if let Some(t) = &self.request_timeout {
            parse_duration(t).map_err(|e| ("requestTimeout", e))?;
        }
        for (key, v) in [
            ("imageMirror", &self.image_mirror),
            ("registry", &self.registry),
            ("context", &self.context),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err((key, "must not be empty (remove the key instead)".into()));
            }
        }
        if self.image_mirror.is_some() && self.registry.is_some() {
            return Err((
                "registry",
                "registry and imageMirror both choose where images come from; set only one".into(),
            ));
        }
        Ok(())
    }
}

/// `key` if it is a known key, else an error with the closest one.
fn check_key(key: &str) -> Result<&'static str> {
    KEYS.iter()
        .copied()
        .find(|k| *k == key)
        .ok_or_else(|| ConfigError::UnknownKey {
            path: None,
            line: None,
            key: key.to_string(),
            suggestion: closest(key, KEYS),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let c = Config::parse(
            "profile: kind\nimageMirror: cn\nrequestTimeout: 30s\ncontext: kind-dev\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(c.profile, Some(ProfileChoice::Named(Profile::Kind)));
        assert_eq!(c.image_mirror.as_deref(), Some("cn"));
        assert_eq!(c.request_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(c.context.as_deref(), Some("kind-dev"));
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = Config::parse("profile: kind\nimagemirror: cn\n", "c.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.yaml:2: "), "{msg}");
        assert!(msg.contains("did you mean \"imageMirror\""), "{msg}");
    }

    #[test]
    fn bad_values_are_rejected_with_their_line() {
        let e = Config::parse("profile: kind\nrequestTimeout: soon\n", "c.yaml").unwrap_err();
        assert!(
            e.to_string().starts_with("c.yaml:2: requestTimeout:"),
            "{e}"
        );
        let e = Config::parse("profile: kidn\n", "c.yaml").unwrap_err();
        assert!(
            matches!(e, ConfigError::Syntax { line: Some(1), .. }),
            "{e}"
        );
        let e = Config::parse("registry: a\nimageMirror: cn\n", "c.yaml").unwrap_err();
        assert!(e.to_string().contains("set only one"), "{e}");
        assert!(Config::parse("- a\n", "c.yaml").is_err());
    }

    #[test]
    fn set_get_and_unset() {
        let mut c = Config::default();
        c.set("profile", Some("minikube")).unwrap();
        assert_eq!(c.get("profile").unwrap().as_deref(), Some("minikube"));
        assert!(c.set("profile", Some("minikub")).is_err());
        assert!(c.set("requestTimeout", Some("0s")).is_err());
        assert!(matches!(
            c.set("regsitry", Some("x")),
            Err(ConfigError::UnknownKey { suggestion: Some(ref s), .. }) if s == "registry"
        ));
        c.set("profile", None).unwrap();
        assert_eq!(c.get("profile").unwrap(), None);
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = std::env::temp_dir().join(format!("kaddons-config-{}", std::process::id()));
        let path = dir.join("sub").join("config.yaml");
        let mut c = Config::default();
        c.set("registry", Some("localhost:5000")).unwrap();
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
        c.set("registry", None).unwrap();
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
    }

    #[test]
    fn path_precedence() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            path_from_env(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/kaddons/config.yaml"))
        );
        assert_eq!(
            path_from_env(env(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")])),
            Some(PathBuf::from("/x/kaddons/config.yaml"))
        );
        assert_eq!(
            path_from_env(env(&[
                ("XDG_CONFIG_HOME", "/x"),
                ("KADDONS_CONFIG", "/c.yaml")
            ])),
            Some(PathBuf::from("/c.yaml"))
        );
        assert_eq!(path_from_env(env(&[])), None);
    }
}
