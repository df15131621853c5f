//! The command line: commands, flags and their help. Nothing here does any work; see
//! `commands/` for that.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use kaddons::catalog::Profile;

const AFTER_HELP: &str = "\
Examples:
  kaddons list                                   # the catalog (and, with a cluster, what is enabled)
  kaddons render metrics-server --profile kind   # the manifests enable would apply
  kaddons render metrics-server --image-mirror cn --set kubeletInsecureTLS=true
  kaddons profile                                # which profile fits the current context, and why

minikube habits work too: `kaddons addons list` is `kaddons list`.

Exit codes: 0 success, 1 not ready or a check failed, 2 usage or other error.";

/// minikube-style addons (metrics-server first) for any local Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "kaddons", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Extra catalog directory (DIR/addons/<name>/addon.yaml, DIR/templates/<name>/); its
    /// addons are added to the built-in ones and replace those with the same name.
    #[arg(long, global = true, env = "KADDONS_ADDONS_DIR", value_name = "DIR")]
    pub addons_dir: Option<PathBuf>,
    /// Output format for data on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only data and errors (no status lines or warnings).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable (tables; YAML for manifests).
    Text,
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the addons in the catalog.
    #[command(after_help = "Examples:\n  kaddons list\n  kaddons list -o json")]
    List,
    /// Print the manifests that `enable` would apply, without touching any cluster.
    #[command(
        after_help = "Examples:\n  kaddons render metrics-server\n  kaddons render metrics-server --profile kind -o json\n  kaddons render metrics-server --set ha=true --values my-values.yaml\n  kaddons render metrics-server --image-mirror cn\n  kaddons render metrics-server --image metrics-server=:v0.8.0"
    )]
    Render(RenderArgs),
    /// Show an addon: upstream, images, values with defaults, and what each profile changes.
    #[command(
        after_help = "Examples:\n  kaddons info metrics-server\n  kaddons info metrics-server -o yaml"
    )]
    Info(InfoArgs),
    /// Show the profile detected for the current context, and the evidence for it.
    #[command(
        after_help = "Examples:\n  kaddons profile\n  kaddons profile --context kind-dev -o json"
    )]
    Profile,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Addon name (see `kaddons list`).
    pub addon: String,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Addon name (see `kaddons list`).
    pub addon: String,
    #[command(flatten)]
    pub values: ValuesArgs,
}

/// How an addon is configured: shared by render and (later) enable.
#[derive(Debug, Args)]
pub struct ValuesArgs {
    /// Cluster profile; `auto` detects it from the kubeconfig.
    #[arg(long, value_enum, default_value_t = ProfileArg::Auto)]
    pub profile: ProfileArg,
    /// Set a value: KEY.PATH=VALUE, typed like its default (see `kaddons info ADDON`).
    /// Repeatable; later wins. Lists: a,b,c. A dot inside a key: \.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// YAML file of values, merged over the defaults and the profile. Repeatable.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values_files: Vec<PathBuf>,
    /// Pull every image of the addon from this registry (e.g. localhost:5000).
    #[arg(long, value_name = "REGISTRY", conflicts_with = "image_mirror")]
    pub registry: Option<String>,
    /// Replace one image: NAME=REF, or NAME=:TAG / NAME=@DIGEST to change only that.
    #[arg(long = "image", value_name = "NAME=REF")]
    pub images: Vec<String>,
    /// Use a registry mirror preset for registry.k8s.io images (e.g. `cn`).
    #[arg(long, value_name = "MIRROR")]
    pub image_mirror: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    Auto,
    Generic,
    Minikube,
    Kind,
    Kubeadm,
}

impl ProfileArg {
    /// The explicit profile, or `None` for auto-detection.
    pub fn explicit(self) -> Option<Profile> {
        match self {
            ProfileArg::Auto => None,
            ProfileArg::Generic => Some(Profile::Generic),
            ProfileArg::Minikube => Some(Profile::Minikube),
            ProfileArg::Kind => Some(Profile::Kind),
            ProfileArg::Kubeadm => Some(Profile::Kubeadm),
        }
    }
}

/// Global flags that take a value, so that their value is not mistaken for a command.
const VALUE_FLAGS: [&str; 5] = [
    "--kubeconfig",
    "--context",
    "--addons-dir",
    "--output",
    "-o",
];

/// Drops a leading `addons` command so that minikube's `addons list|enable|disable` spelling
/// runs the same commands.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let mut i = 1;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else { break };
        if VALUE_FLAGS.contains(&arg) {
            i += 2;
        } else if arg.starts_with('-') {
            i += 1;
        } else {
            if arg == "addons" && i + 1 < args.len() {
                args.remove(i);
            }
            break;
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn addons_prefix_is_dropped_only_in_command_position() {
        assert_eq!(norm(&["kaddons", "addons", "list"]), ["kaddons", "list"]);
        assert_eq!(
            norm(&["kaddons", "-q", "--context", "addons", "addons", "list"]),
            ["kaddons", "-q", "--context", "addons", "list"]
        );
        assert_eq!(
            norm(&["kaddons", "render", "addons"]),
            ["kaddons", "render", "addons"]
        );
        assert_eq!(norm(&["kaddons", "addons"]), ["kaddons", "addons"]);
    }
}
