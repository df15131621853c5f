//! `kaddons top nodes|pods`: usage from metrics.k8s.io when it is served, otherwise from each
//! kubelet's Summary API through the API server, so usage is visible with no metrics server.
//! The reading is in [`kaddons::cluster::top`], the table in [`kaddons::top`].

use kaddons::cluster::client::Connection;
use kaddons::cluster::top::{self as fetch, Fetched, Source, TopIoError};
use kaddons::top::{node_usage_list, pod_usage_list, PodTableOptions, SortBy};

use crate::cli::{
    GlobalArgs, OutputFormat, SortArg, SourceArg, TopCommand, TopNodesArgs, TopPodsArgs,
};
use crate::printer::Printer;

use super::{connect, structured, ExitStatus};

const FALLBACK: &str = "metrics.k8s.io is not served; reading the kubelets' Summary API instead";

pub async fn run(
    global: &GlobalArgs,
    cmd: &TopCommand,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let conn = connect(global).await?;
    match cmd {
        TopCommand::Nodes(args) => nodes(global, &conn, args, printer).await,
        TopCommand::Pods(args) => pods(global, &conn, args, printer).await,
    }
}

fn sort(s: SortArg) -> SortBy {
    match s {
        SortArg::Name => SortBy::Name,
        SortArg::Cpu => SortBy::Cpu,
        SortArg::Memory => SortBy::Memory,
    }
}

fn source(s: SourceArg) -> Source {
    match s {
        SourceArg::Auto => Source::Auto,
        SourceArg::Metrics => Source::Metrics,
        SourceArg::Kubelet => Source::Kubelet,
    }
}

/// The usage, after reporting the kubelets that failed; a failed metrics API names the way out.
fn usage<T>(printer: &Printer, fetched: Result<Fetched<T>, TopIoError>) -> anyhow::Result<Vec<T>> {
    match fetched {
        Ok(f) => {
            for (node, e) in f.failed_nodes {
                let e = anyhow::Error::from(e);
                printer.warn(&format!("node {node}: kubelet Summary API failed: {e:#}"));
            }
            Ok(f.usage)
        }
        Err(e) => Err(into_anyhow(e)),
    }
}

/// The error as the command reports it: the underlying error itself (not a wrapper, so the
/// chain printed is the cluster's or the parser's), with a way out when the metrics API failed.
fn into_anyhow(e: TopIoError) -> anyhow::Error {
    match e {
        TopIoError::Metrics(e) => anyhow::Error::from(e)
            .context("metrics.k8s.io (use --source kubelet to read the kubelets directly)"),
        TopIoError::Cluster(e) => e.into(),
        TopIoError::Usage(e) => e.into(),
    }
}

async fn nodes(
    global: &GlobalArgs,
    conn: &Connection,
    args: &TopNodesArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let selector = args.selector.as_deref();
    let allocatable = fetch::allocatable(conn, selector)
        .await
        .map_err(into_anyhow)?;
    let names: Vec<String> = allocatable.keys().cloned().collect();
    let fetched = fetch::node_usage(conn, source(args.source), selector, &names, || {
        printer.status(FALLBACK)
    })
    .await;
    let usage = usage(printer, fetched)?;
    let list = node_usage_list(&usage, &allocatable, sort(args.sort_by));
    let text = match global.output {
        OutputFormat::Text => list.to_table(false),
        format => structured(format, &list)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}

async fn pods(
    global: &GlobalArgs,
    conn: &Connection,
    args: &TopPodsArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| conn.client.default_namespace().to_string()),
        )
    };
    let fetched = fetch::pod_usage(
        conn,
        source(args.source),
        namespace.as_deref(),
        args.selector.as_deref(),
        || printer.status(FALLBACK),
    )
    .await;
    let usage = usage(printer, fetched)?;
    let list = pod_usage_list(&usage, sort(args.sort_by));
    let text = match global.output {
        OutputFormat::Text => list.to_table(PodTableOptions {
            all_namespaces: args.all_namespaces,
            containers: args.containers,
            no_headers: false,
        }),
        format => structured(format, &list)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}
