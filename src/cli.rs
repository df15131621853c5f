//! The command line: commands, flags and their help. Nothing here does any work; see
//! `commands/` for that.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

use kaddons::catalog::Profile;
use kaddons::config::ProfileChoice;

const AFTER_HELP: &str = "\
Examples:
  kaddons list                                   # the catalog, and what is enabled in the cluster
  kaddons enable metrics-server                  # apply, then wait until `kubectl top node` works
  kaddons enable metrics-server --image-mirror cn --set kubeletInsecureTLS=true
  kaddons status metrics-server                  # every object with its state
  kaddons disable metrics-server                 # remove what kaddons created, nothing else
  kaddons render metrics-server --profile kind   # the manifests enable would apply, offline
  kaddons profile                                # which profile fits the current context, and why
  kaddons apply -f addons.yaml --prune           # make the cluster's addons match a file
  kaddons config set imageMirror cn              # a default for every command

minikube habits work too: `kaddons addons enable metrics-server` is `kaddons enable metrics-server`.

Settings: flag > KADDONS_* environment variable > config file (`kaddons config view`) > default.
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
    /// Kubeconfig context to use (default: the current context) [env: KADDONS_CONTEXT;
    /// config: context].
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Extra catalog directory (DIR/addons/<name>/addon.yaml, DIR/templates/<name>/); its
    /// addons are added to the built-in ones and replace those with the same name.
    #[arg(long, global = true, env = "KADDONS_ADDONS_DIR", value_name = "DIR")]
    pub addons_dir: Option<PathBuf>,
    /// Output format for data on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only data and errors (no status lines, warnings or -v detail).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr: -v what kaddons does, -vv also every API request (KADDONS_LOG
    /// takes a tracing filter instead, e.g. KADDONS_LOG=kube=trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Upper bound for each API request (e.g. 10s, 1m) [env: KADDONS_REQUEST_TIMEOUT; config:
    /// requestTimeout].
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// `10s`, `5m`, `1h`, `500ms`, or a number of seconds (shared with the config file).
pub use kaddons::config::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable (tables; YAML for manifests).
    Text,
    Yaml,
    Json,
}

const LIST_HELP: &str = "Examples:\n  kaddons list\n  kaddons list -o json\n\nWithout a reachable cluster the STATUS column says unknown (exit code 0).";
const ENABLE_HELP: &str = "Examples:\n  kaddons enable metrics-server\n  kaddons enable metrics-server --profile kind --no-wait\n  kaddons enable metrics-server --image-mirror cn\n  kaddons enable metrics-server --dry-run\n  kaddons enable metrics-server --force     # take over an install by minikube, helm or kubectl\n\nExit codes: 0 enabled and working, 1 applied but not working within --timeout (the likely cause is printed), 2 error.";
const DISABLE_HELP: &str =
    "Examples:\n  kaddons disable metrics-server\n  kaddons disable metrics-server --no-wait";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the addons in the catalog, with their state in the cluster.
    #[command(
        after_help = LIST_HELP
    )]
    List,
    /// Apply an addon with server-side apply, then wait until it really works.
    #[command(
        after_help = ENABLE_HELP
    )]
    Enable(EnableArgs),
    /// Delete what kaddons created for an addon (and nothing else).
    #[command(
        after_help = DISABLE_HELP
    )]
    Disable(DisableArgs),
    /// Find out why an addon does not work (default: metrics-server), with a fix for each finding.
    #[command(
        after_help = "Examples:\n  kaddons doctor\n  kaddons doctor metrics-server -o json\n\nExit codes: 0 no errors found, 1 at least one error found, 2 the checks could not run."
    )]
    Doctor(DoctorArgs),
    /// Resource usage of nodes or pods, like kubectl top, even without a metrics server.
    #[command(
        subcommand,
        after_help = "Examples:\n  kaddons top nodes\n  kaddons top pods -A --sort-by cpu\n  kaddons top pods -n kube-system --source kubelet"
    )]
    Top(TopCommand),
    /// Set up the aggregation layer of a hand-built cluster.
    #[command(subcommand)]
    Aggregator(AggregatorCommand),
    /// Show every object of an addon with its state.
    #[command(
        after_help = "Examples:\n  kaddons status metrics-server\n  kaddons status metrics-server -o json\n\nExit codes: 0 enabled, 1 disabled, degraded or unmanaged, 2 error."
    )]
    Status(StatusArgs),
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
    /// Make the cluster's addons match a file: enable each listed addon, prune the others.
    #[command(
        after_help = "Examples:\n  kaddons apply -f addons.yaml\n  kaddons apply -f addons.yaml --prune --dry-run\n  cat addons.yaml | kaddons apply -f -\n\nThe file (README, \"Bootstrap file\"):\n  apiVersion: kaddons.io/v1alpha1\n  kind: AddonSet\n  addons:\n    - name: metrics-server\n      profile: kind                     # optional, default auto\n      set: {kubeletInsecureTLS: true}   # values, like a --values file\n      imageMirror: cn                   # optional; or registry: HOST[:PORT]\n      images: {metrics-server: \":v0.8.0\"}\n\nExit codes: 0 applied and working (or nothing to do), 1 applied but not working within --timeout, 2 error."
    )]
    Apply(ApplyArgs),
    /// Print a shell completion script (addon names included).
    #[command(
        after_help = "Examples:\n  kaddons completion bash > ~/.local/share/bash-completion/completions/kaddons\n  kaddons completion zsh > \"${fpath[1]}/_kaddons\"\n  kaddons completion fish > ~/.config/fish/completions/kaddons.fish"
    )]
    Completion(CompletionArgs),
    /// Read or change the defaults in the config file (~/.config/kaddons/config.yaml).
    #[command(
        subcommand,
        after_help = "Examples:\n  kaddons config view\n  kaddons config set imageMirror cn\n  kaddons config get profile\n  kaddons config unset imageMirror\n\nKeys: profile, imageMirror, registry, requestTimeout, context.\nThe file is $KADDONS_CONFIG, else $XDG_CONFIG_HOME/kaddons/config.yaml, else ~/.config/kaddons/config.yaml.\nPrecedence: flag > KADDONS_* environment variable > config file > default."
    )]
    Config(ConfigCommand),
    /// Build kaddons' own images without Docker, and load image archives into the nodes.
    #[command(
        subcommand,
        after_help = "Examples:\n  kaddons image build metrics-server                       # kaddons-metrics-server.tar, from a release build\n  kaddons image build metrics-server --binary target/release/kaddons-metrics-server --out ms.tar\n  kaddons image load kaddons-metrics-server.tar            # into the kind or minikube cluster of the context\n  kaddons image load ms.tar --into kind=dev\n  kaddons image load ms.tar --into minikube=minikube\n  kaddons image load ms.tar --into containerd              # ctr -n k8s.io images import, on the node\n\nExit codes: 0 done, 2 error."
    )]
    Image(ImageCommand),
    /// minikube's spelling, `kaddons addons list|enable|disable`, kept for muscle memory.
    #[command(hide = true)]
    Addons {
        #[command(subcommand)]
        command: AddonsCommand,
    },
}

/// `kaddons addons ...`: the same commands as `kaddons list|enable|disable`.
#[derive(Debug, Subcommand)]
pub enum AddonsCommand {
    /// List the addons in the catalog, with their state in the cluster.
    #[command(after_help = LIST_HELP)]
    List,
    /// Apply an addon with server-side apply, then wait until it really works.
    #[command(after_help = ENABLE_HELP)]
    Enable(EnableArgs),
    /// Delete what kaddons created for an addon (and nothing else).
    #[command(after_help = DISABLE_HELP)]
    Disable(DisableArgs),
}

impl Command {
    /// The command itself, with minikube's `addons` spelling resolved, so that settings and
    /// dispatch see one command whichever way it was typed.
    pub fn canonical(self) -> Command {
        match self {
            Command::Addons { command } => match command {
                AddonsCommand::List => Command::List,
                AddonsCommand::Enable(args) => Command::Enable(args),
                AddonsCommand::Disable(args) => Command::Disable(args),
            },
            other => other,
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The addon set file; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Also disable kaddons-managed addons that the file does not list.
    #[arg(long)]
    pub prune: bool,
    /// Print the plan and what would change per object (server-side dry run); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Take over objects of listed addons that another installer created.
    #[arg(long)]
    pub force: bool,
    /// Profile for entries that do not name one [env: KADDONS_PROFILE; config: profile].
    #[arg(long, value_enum, default_value_t = ProfileArg::AUTO)]
    pub profile: ProfileArg,
    /// Registry for entries without imageMirror/registry [env: KADDONS_REGISTRY; config:
    /// registry].
    #[arg(long, value_name = "REGISTRY", conflicts_with = "image_mirror")]
    pub registry: Option<String>,
    /// Mirror preset for entries without imageMirror/registry [env: KADDONS_IMAGE_MIRROR;
    /// config: imageMirror].
    #[arg(long, value_name = "MIRROR")]
    pub image_mirror: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to generate the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the value the config file sets for KEY (exit code 1 when it sets none).
    Get {
        /// profile, imageMirror, registry, requestTimeout or context.
        key: String,
    },
    /// Set KEY to VALUE in the config file (created when missing).
    Set {
        /// profile, imageMirror, registry, requestTimeout or context.
        key: String,
        value: String,
    },
    /// Remove KEY from the config file.
    Unset {
        /// profile, imageMirror, registry, requestTimeout or context.
        key: String,
    },
    /// Every setting in effect, with where it comes from (flag, env, config or default).
    View,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Addon name (see `kaddons list`).
    pub addon: String,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Take over objects of the addon that another installer (minikube, helm, kubectl)
    /// created; also install an --addon-version the cluster's Kubernetes is too old for.
    #[arg(long)]
    pub force: bool,
    /// Show what would change (server-side dry run); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not check before applying that every image is on the nodes or in its registry
    /// (for networks where this machine and the nodes see different registries)
    /// [env: KADDONS_SKIP_IMAGE_CHECK].
    #[arg(
        long,
        env = "KADDONS_SKIP_IMAGE_CHECK",
        hide_env = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub skip_image_check: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Write an image archive (docker-archive with an OCI layout beside it) of a kaddons
    /// image, reproducibly: same binary, same digest.
    Build(ImageBuildArgs),
    /// Load an image archive into the cluster's nodes with kind, minikube or ctr.
    Load(ImageLoadArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// The image: kaddons-metrics-server, tagged as `implementation=builtin` deploys it.
    #[arg(value_parser = ["metrics-server"])]
    pub image: String,
    /// Where to write the archive.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "kaddons-metrics-server.tar"
    )]
    pub out: PathBuf,
    /// The kaddons-metrics-server binary to put in the image (default: `cargo build --release
    /// --locked -p kaddons-metrics-server` in the source checkout kaddons was built from).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// linux/amd64 or linux/arm64 (default: this machine's). A foreign platform needs a
    /// statically linked --binary.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// The CA bundle copied to /etc/ssl/certs/ca-certificates.crt in the image.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/ssl/certs/ca-certificates.crt"
    )]
    pub ca_certificates: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImageLoadArgs {
    /// The image archive (from `kaddons image build`, `docker save`, ...).
    pub file: PathBuf,
    /// kind[=CLUSTER] (`kind load image-archive`), minikube[=PROFILE] (`minikube image load`),
    /// k3d[=CLUSTER] (`k3d image import`) or containerd (`ctr -n k8s.io images import`, run on
    /// the node). Default: the kind, minikube or k3d cluster of the kubeconfig context.
    #[arg(long, value_name = "TARGET")]
    pub into: Option<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Do not wait for the addon to become ready.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// Addon name (see `kaddons list`).
    pub addon: String,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Addon to check.
    #[arg(default_value = "metrics-server")]
    pub addon: String,
}

#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// CPU and memory of nodes, with percentages of allocatable.
    #[command(
        after_help = "Examples:\n  kaddons top nodes\n  kaddons top nodes --sort-by memory -o json"
    )]
    Nodes(TopNodesArgs),
    /// CPU and memory of pods.
    #[command(
        after_help = "Examples:\n  kaddons top pods -A\n  kaddons top pods -n kube-system -l k8s-app=metrics-server --containers"
    )]
    Pods(TopPodsArgs),
}

#[derive(Debug, Args)]
pub struct TopNodesArgs {
    /// Label selector for nodes.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    #[arg(long, value_enum, default_value_t = SortArg::Name)]
    pub sort_by: SortArg,
    /// Where usage comes from: metrics.k8s.io, the kubelets' Summary API through the API
    /// server, or auto (metrics.k8s.io when it is served, else the kubelets, with a notice).
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,
}

#[derive(Debug, Args)]
pub struct TopPodsArgs {
    /// Namespace (default: the context's namespace, else "default").
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Pods of every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Label selector for pods.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// One line per container.
    #[arg(long)]
    pub containers: bool,
    #[arg(long, value_enum, default_value_t = SortArg::Name)]
    pub sort_by: SortArg,
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Name,
    Cpu,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Auto,
    Metrics,
    Kubelet,
}

#[derive(Debug, Subcommand)]
pub enum AggregatorCommand {
    /// Create a front-proxy CA and client certificate, and print the kube-apiserver flags.
    #[command(
        after_help = "Examples:\n  kaddons aggregator certs --out /etc/kubernetes/pki/front-proxy\n  kaddons aggregator certs --out ./pki --force"
    )]
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory for front-proxy-ca.{crt,key} and front-proxy-client.{crt,key}.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Addon name (see `kaddons list`).
    pub addon: String,
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
    /// Choose the addon version for this Kubernetes version (MAJOR.MINOR, e.g. 1.31) without
    /// asking a cluster, as `helm template --kube-version` does. Without it, render asks the
    /// cluster of the kubeconfig's context, if there is one, and else takes the newest.
    #[arg(long, value_name = "X.Y")]
    pub kube_version: Option<String>,
    /// Render an --addon-version the Kubernetes version does not support anyway.
    #[arg(long)]
    pub force: bool,
}

/// How an addon is configured: shared by render and (later) enable.
#[derive(Debug, Args)]
pub struct ValuesArgs {
    /// Cluster profile; `auto` detects it from the kubeconfig [env: KADDONS_PROFILE; config:
    /// profile].
    #[arg(long, value_enum, default_value_t = ProfileArg::AUTO)]
    pub profile: ProfileArg,
    /// Set a value: KEY.PATH=VALUE, typed like its default (see `kaddons info ADDON`).
    /// Repeatable; later wins. Lists: a,b,c. A dot inside a key: \.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// YAML file of values, merged over the defaults and the profile. Repeatable.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values_files: Vec<PathBuf>,
    /// Pull every image of the addon from this registry (e.g. localhost:5000) [env:
    /// KADDONS_REGISTRY; config: registry].
    #[arg(long, value_name = "REGISTRY", conflicts_with = "image_mirror")]
    pub registry: Option<String>,
    /// Replace one image: NAME=REF, or NAME=:TAG / NAME=@DIGEST to change only that.
    #[arg(long = "image", value_name = "NAME=REF")]
    pub images: Vec<String>,
    /// Use a registry mirror preset for registry.k8s.io images (e.g. `cn`) [env:
    /// KADDONS_IMAGE_MIRROR; config: imageMirror].
    #[arg(long, value_name = "MIRROR")]
    pub image_mirror: Option<String>,
    /// Pin the addon's upstream version (e.g. v0.8.1; see `kaddons info ADDON`). Default: the
    /// newest one that supports the cluster's Kubernetes version. A version the cluster is
    /// too old for is refused unless --force.
    #[arg(long, value_name = "VERSION")]
    pub addon_version: Option<String>,
}

/// `--profile`: `auto` or a profile name (clap's view of [`ProfileChoice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileArg(pub ProfileChoice);

impl ProfileArg {
    pub const AUTO: ProfileArg = ProfileArg(ProfileChoice::Auto);

    /// The explicit profile, or `None` for auto-detection.
    pub fn explicit(self) -> Option<Profile> {
        self.0.explicit()
    }
}

const PROFILE_ARGS: [ProfileArg; ProfileChoice::ALL.len()] = {
    let mut all = [ProfileArg::AUTO; ProfileChoice::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = ProfileArg(ProfileChoice::ALL[i]);
        i += 1;
    }
    all
};

impl ValueEnum for ProfileArg {
    fn value_variants<'a>() -> &'a [Self] {
        &PROFILE_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.as_str()))
    }
}

impl std::fmt::Display for ProfileArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<ProfileChoice> for ProfileArg {
    fn from(c: ProfileChoice) -> Self {
        ProfileArg(c)
    }
}

impl From<ProfileArg> for ProfileChoice {
    fn from(p: ProfileArg) -> Self {
        p.0
    }
}

/// The file name kubectl looks for to run `kubectl kaddons`.
pub const PLUGIN_FILE_NAME: &str = "kubectl-kaddons";

/// True when the binary was started as the kubectl plugin (kubectl runs `kubectl-kaddons`
/// from PATH, so argv[0] names the link or copy, not `kaddons`).
pub fn invoked_as_plugin(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_stem())
        .is_some_and(|stem| stem == PLUGIN_FILE_NAME)
}

/// The command definition, named `kubectl kaddons` in usage lines and examples when run as
/// the kubectl plugin, so that what help suggests can be typed as is.
pub fn command(plugin: bool) -> clap::Command {
    let cmd = Cli::command();
    if plugin {
        as_plugin(
            cmd.bin_name("kubectl kaddons")
                .display_name("kubectl-kaddons"),
        )
    } else {
        cmd
    }
}

fn as_plugin(mut cmd: clap::Command) -> clap::Command {
    if let Some(help) = cmd.get_after_help() {
        let text = help
            .to_string()
            .replace("  kaddons ", "  kubectl kaddons ")
            .replace("`kaddons ", "`kubectl kaddons ");
        cmd = cmd.after_help(text);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, as_plugin);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        // Go's syntax, through the shared parser.
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("0"),
            Err("a duration must be more than zero".to_string())
        );
        assert_eq!(
            parse_duration("5x"),
            Err("\"5x\" has an unknown unit; use ms, s, m or h".to_string())
        );
        assert_eq!(
            parse_duration("soon"),
            Err("\"soon\" is not a duration; write e.g. 30s, 5m or 1h".to_string())
        );
    }

    fn parse(args: &[&str]) -> Command {
        let cli = Cli::try_parse_from(std::iter::once("kaddons").chain(args.iter().copied()));
        cli.unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
            .canonical()
    }

    #[test]
    fn minikube_addons_spelling_runs_the_same_commands() {
        assert!(matches!(parse(&["addons", "list"]), Command::List));
        assert!(matches!(
            parse(&["-q", "--context", "addons", "addons", "list"]),
            Command::List
        ));
        match parse(&["addons", "enable", "metrics-server", "--no-wait"]) {
            Command::Enable(args) => assert!(args.wait.no_wait),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["addons", "disable", "metrics-server"]),
            Command::Disable(_)
        ));
        // `addons` is a command only in command position, and not one of its own.
        assert!(matches!(parse(&["render", "addons"]), Command::Render(_)));
        assert!(Cli::try_parse_from(["kaddons", "addons"]).is_err());
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("\n  addons "), "hidden: {help}");
    }

    #[test]
    fn plugin_name_is_recognised_from_argv0() {
        assert!(invoked_as_plugin(Some(OsStr::new(
            "/usr/local/bin/kubectl-kaddons"
        ))));
        assert!(invoked_as_plugin(Some(OsStr::new("kubectl-kaddons.exe"))));
        assert!(!invoked_as_plugin(Some(OsStr::new("/usr/bin/kaddons"))));
        assert!(!invoked_as_plugin(None));
        let help = command(true).render_long_help().to_string();
        assert!(help.contains("Usage: kubectl kaddons"), "{help}");
        assert!(help.contains("  kubectl kaddons list"), "{help}");
        command(true).debug_assert();
    }
}
