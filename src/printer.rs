//! Where output goes: data to stdout; status, warnings and errors to stderr. The only place
//! that knows about terminals and colours (`NO_COLOR`, `--quiet`, `-v`).
//!
//! `-v` detail goes through `tracing` (see [`init_tracing`]), so that what kaddons says and
//! what kube-client logs about its requests come out in one stream with one filter.

use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    color: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Printer {
            quiet,
            color: !no_color && !dumb && io::stderr().is_terminal(),
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Writes data to stdout. A closed pipe comes back as an error for `main` to treat as
    /// success.
    pub fn data(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// A status line on stderr, unless `--quiet`.
    pub fn status(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Detail shown with `-v` (an info event of target `kaddons`).
    pub fn debug(&self, msg: &str) {
        tracing::info!("{msg}");
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{}: {msg}", self.paint("warning", "33;1"));
        }
    }

    /// An error with its causes. Shown even with `--quiet`.
    pub fn error(&self, err: &anyhow::Error) {
        eprintln!("{}: {err}", self.paint("error", "31;1"));
        // Typed errors often repeat their source in their own message; show each text once.
        let mut shown = err.to_string();
        for cause in err.chain().skip(1) {
            let text = cause.to_string();
            if !shown.contains(&text) {
                eprintln!("  caused by: {text}");
                shown = text;
            }
        }
    }

    fn paint(&self, word: &str, sgr: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{word}\x1b[0m")
        } else {
            word.to_string()
        }
    }
}

/// The `-v` filter: nothing by default, kaddons' own detail with `-v`, kube-client's
/// requests too with `-vv`, everything with `-vvv`; `KADDONS_LOG` (a tracing filter such as
/// `kube=trace`) replaces it. `--quiet` silences it.
pub fn log_filter(quiet: bool, verbose: u8, custom: Option<&str>) -> String {
    match (quiet, custom.filter(|c| !c.trim().is_empty()), verbose) {
        (true, _, _) => "off".into(),
        (false, Some(c), _) => c.to_string(),
        (false, None, 0) => "off".into(),
        (false, None, 1) => "kaddons=info".into(),
        (false, None, 2) => "kaddons=debug,kube=debug,kube_client=debug,tower_http=debug".into(),
        (false, None, _) => "trace".into(),
    }
}

/// Sends `tracing` events to stderr, coloured only when the printer colours.
pub fn init_tracing(printer: &Printer, filter: &str) {
    use tracing_subscriber::EnvFilter;
    // An invalid KADDONS_LOG is reported once and replaced by the plain -v filter.
    let env_filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: KADDONS_LOG is not a valid filter ({e}); ignoring it");
        EnvFilter::new("kaddons=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(io::stderr)
        .with_ansi(printer.color)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
}

/// Left-aligned columns separated by three spaces, like kubectl's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["a".into(), "ok".into()],
                vec!["longer".into(), "x".into()],
            ],
        );
        assert_eq!(t, "NAME     STATUS\na        ok\nlonger   x\n");
    }

    #[test]
    fn verbosity_filters() {
        assert_eq!(log_filter(false, 0, None), "off");
        assert_eq!(log_filter(false, 1, None), "kaddons=info");
        assert!(log_filter(false, 2, None).contains("kube_client=debug"));
        assert_eq!(log_filter(true, 2, Some("trace")), "off");
        assert_eq!(log_filter(false, 0, Some("kube=trace")), "kube=trace");
    }
}
