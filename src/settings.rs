//! Settings resolved once, before any command runs: the parsed flags, the `KADDONS_*`
//! environment variables and the config file merged into the parsed command line.
//!
//! Commands then read their arguments as usual and never look at the environment or the
//! config file themselves, so that precedence is decided in one place: flag > environment >
//! config file > built-in default. `kaddons config view` shows the outcome with its sources.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Serialize;

use kaddons::config::{self, parse_duration, Config, ProfileChoice, ENV_VARS, KEYS};

use crate::cli::{Cli, Command, ProfileArg};

/// The default request timeout (kubectl has none; a hung cluster should fail, not hang).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Flag,
    Env,
    Config,
    Default,
}

/// One setting in effect.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub key: &'static str,
    /// `None`: not set anywhere (e.g. context: the kubeconfig's current context).
    pub value: Option<String>,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the config file is (or would be); `None` without HOME and the variables.
    pub config_path: Option<PathBuf>,
    pub config: Config,
    /// One per key of [`KEYS`], in that order.
    pub resolved: Vec<Resolved>,
}

/// Loads the config file and merges everything into `cli`. `env` reads an environment
/// variable (the process environment in `main`).
pub fn resolve(
    cli: &mut Cli,
    matches: &ArgMatches,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Settings> {
    let config_path = config::path_from_env(env);
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let var = |name: &str| -> anyhow::Result<Option<String>> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name} is not valid UTF-8")),
        }
    };
    let [env_profile, env_mirror, env_registry, env_timeout, env_context] = ENV_VARS;
    let leaf = leaf_matches(matches);
    let given = |m: &ArgMatches, id: &str| {
        m.ids().any(|i| i.as_str() == id) && m.value_source(id) == Some(ValueSource::CommandLine)
    };

    // profile
    let targets = value_targets(&mut cli.command);
    let has_targets = targets.is_some();
    let profile = if has_targets && given(leaf, "profile") {
        let flag = targets.as_ref().map(|t| *t.0).unwrap_or(ProfileArg::AUTO);
        resolved("profile", ProfileChoice::from(flag).as_str(), Source::Flag)
    } else if let Some(v) = var(env_profile)? {
        let p = ProfileChoice::parse(&v).map_err(|e| anyhow::anyhow!("{env_profile}: {e}"))?;
        resolved("profile", p.as_str(), Source::Env)
    } else if let Some(p) = config.profile {
        resolved("profile", p.as_str(), Source::Config)
    } else {
        resolved("profile", "auto", Source::Default)
    };

    // imageMirror and registry: one choice of image source, taken whole from the highest
    // layer that makes it, so that a default mirror never combines with a registry flag.
    let flag_layer = has_targets && (given(leaf, "image_mirror") || given(leaf, "registry"));
    let (mirror, registry, source) = if flag_layer {
        let t = targets.as_ref();
        (
            t.and_then(|t| t.1.clone()),
            t.and_then(|t| t.2.clone()),
            Source::Flag,
        )
    } else {
        let (m, r) = (var(env_mirror)?, var(env_registry)?);
        if m.is_some() && r.is_some() {
            anyhow::bail!("{env_mirror} and {env_registry} are both set; set only one");
        }
        if m.is_some() || r.is_some() {
            (m, r, Source::Env)
        } else if config.image_mirror.is_some() || config.registry.is_some() {
            (
                config.image_mirror.clone(),
                config.registry.clone(),
                Source::Config,
            )
        } else {
            (None, None, Source::Default)
        }
    };
    if let Some((p, m, r)) = targets {
        if let Some(v) = &profile.value {
            *p = ProfileChoice::parse(v)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .into();
        }
        *m = mirror.clone();
        *r = registry.clone();
    }

    // requestTimeout
    let timeout = if given(matches, "request_timeout") {
        Resolved {
            key: "requestTimeout",
            value: Some(format_duration(cli.global.request_timeout)),
            source: Source::Flag,
        }
    } else {
        let (d, source) = if let Some(v) = var(env_timeout)? {
            let d = parse_duration(&v).map_err(|e| anyhow::anyhow!("{env_timeout}: {e}"))?;
            (d, Source::Env)
        } else if let Some(d) = config.request_timeout() {
            (d, Source::Config)
        } else {
            (DEFAULT_REQUEST_TIMEOUT, Source::Default)
        };
        cli.global.request_timeout = d;
        Resolved {
            key: "requestTimeout",
            value: Some(format_duration(d)),
            source,
        }
    };

    // context
    let context = if given(matches, "context") {
        Resolved {
            key: "context",
            value: cli.global.context.clone(),
            source: Source::Flag,
        }
    } else {
        let (value, source) = if let Some(v) = var(env_context)? {
            (Some(v), Source::Env)
        } else if let Some(c) = &config.context {
            (Some(c.clone()), Source::Config)
        } else {
            (None, Source::Default)
        };
        cli.global.context = value.clone();
        Resolved {
            key: "context",
            value,
            source,
        }
    };

    let resolved = vec![
        profile,
        Resolved {
            key: "imageMirror",
            value: mirror,
            source,
        },
        Resolved {
            key: "registry",
            value: registry,
            source,
        },
        timeout,
        context,
    ];
    debug_assert!(resolved.iter().map(|r| r.key).eq(KEYS));
    Ok(Settings {
        config_path,
        config,
        resolved,
    })
}

impl Settings {
    /// The config file's path, or an error saying how to give one.
    pub fn require_path(&self) -> anyhow::Result<&PathBuf> {
        self.config_path
            .as_ref()
            .context("no config file location: set KADDONS_CONFIG, XDG_CONFIG_HOME or HOME")
    }
}

fn resolved(key: &'static str, value: &str, source: Source) -> Resolved {
    Resolved {
        key,
        value: Some(value.to_string()),
        source,
    }
}

/// The matches of the innermost subcommand (where per-command flags are).
fn leaf_matches(m: &ArgMatches) -> &ArgMatches {
    match m.subcommand() {
        Some((_, sub)) => leaf_matches(sub),
        None => m,
    }
}

type Targets<'a> = (
    &'a mut ProfileArg,
    &'a mut Option<String>,
    &'a mut Option<String>,
);

/// The profile, image mirror and registry arguments of the command, for those that render.
fn value_targets(cmd: &mut Command) -> Option<Targets<'_>> {
    match cmd {
        Command::Render(a) => Some((
            &mut a.values.profile,
            &mut a.values.image_mirror,
            &mut a.values.registry,
        )),
        Command::Enable(a) => Some((
            &mut a.values.profile,
            &mut a.values.image_mirror,
            &mut a.values.registry,
        )),
        Command::Apply(a) => Some((&mut a.profile, &mut a.image_mirror, &mut a.registry)),
        _ => None,
    }
}

/// `10s`, `1500ms`, `2m`: the shortest exact spelling that parses back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)], config: Option<&str>) -> (Cli, Settings) {
        let dir = tempfile_dir();
        let path = dir.join("config.yaml");
        if let Some(c) = config {
            std::fs::write(&path, c).unwrap();
        }
        let mut vars: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        vars.insert("KADDONS_CONFIG".into(), path.into_os_string());
        let matches = crate::cli::command(false)
            .try_get_matches_from(std::iter::once("kaddons").chain(args.iter().copied()))
            .unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        let settings = resolve(&mut cli, &matches, &|k| vars.get(k).cloned()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (cli, settings)
    }

    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "kaddons-settings-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn source(s: &Settings, key: &str) -> (Option<String>, Source) {
        let r = s.resolved.iter().find(|r| r.key == key).unwrap();
        (r.value.clone(), r.source)
    }

    #[test]
    fn flag_beats_env_beats_config_beats_default() {
        let config = "profile: minikube\nrequestTimeout: 30s\ncontext: from-config\n";
        let env = [
            ("KADDONS_PROFILE", "kubeadm"),
            ("KADDONS_CONTEXT", "from-env"),
        ];
        let (cli, s) = run(&["render", "x"], &[], None);
        assert_eq!(
            source(&s, "profile"),
            (Some("auto".into()), Source::Default)
        );
        assert_eq!(cli.global.request_timeout, DEFAULT_REQUEST_TIMEOUT);

        let (cli, s) = run(&["render", "x"], &[], Some(config));
        assert_eq!(source(&s, "profile").1, Source::Config);
        assert_eq!(cli.global.request_timeout, Duration::from_secs(30));
        assert_eq!(cli.global.context.as_deref(), Some("from-config"));
        let Command::Render(a) = &cli.command else {
            panic!()
        };
        assert_eq!(
            a.values.profile,
            ProfileArg(ProfileChoice::Named(kaddons::catalog::Profile::Minikube))
        );

        let (cli, s) = run(&["render", "x"], &env, Some(config));
        assert_eq!(source(&s, "profile"), (Some("kubeadm".into()), Source::Env));
        assert_eq!(cli.global.context.as_deref(), Some("from-env"));

        let (cli, s) = run(
            &[
                "render",
                "x",
                "--profile",
                "kind",
                "--context",
                "flag",
                "--request-timeout",
                "2m",
            ],
            &env,
            Some(config),
        );
        assert_eq!(source(&s, "profile"), (Some("kind".into()), Source::Flag));
        assert_eq!(
            source(&s, "requestTimeout"),
            (Some("2m".into()), Source::Flag)
        );
        assert_eq!(cli.global.context.as_deref(), Some("flag"));
        // A flag given as a global flag before the command counts too.
        let (cli, _) = run(&["--context", "early", "render", "x"], &env, Some(config));
        assert_eq!(cli.global.context.as_deref(), Some("early"));
    }

    #[test]
    fn image_source_is_taken_whole_from_one_layer() {
        let (cli, s) = run(
            &["render", "x", "--registry", "localhost:5000"],
            &[("KADDONS_IMAGE_MIRROR", "cn")],
            None,
        );
        let Command::Render(a) = &cli.command else {
            panic!()
        };
        assert_eq!(a.values.image_mirror, None);
        assert_eq!(a.values.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(source(&s, "imageMirror"), (None, Source::Flag));
        let (cli, _) = run(&["render", "x"], &[], Some("registry: r.example\n"));
        let Command::Render(a) = &cli.command else {
            panic!()
        };
        assert_eq!(a.values.registry.as_deref(), Some("r.example"));
    }

    #[test]
    fn durations_format_back() {
        for d in ["10s", "2m", "1h", "1500ms"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }
}
