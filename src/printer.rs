//! Where output goes: data to stdout; status, warnings and errors to stderr. The only place
//! that knows about terminals and colours (`NO_COLOR`, `--quiet`, `-v`).

use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    verbose: u8,
    color: bool,
}

impl Printer {
    pub fn new(quiet: bool, verbose: u8) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Printer {
            quiet,
            verbose,
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

    /// Detail shown with `-v`.
    pub fn debug(&self, msg: &str) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}: {msg}", self.paint("debug", "2"));
        }
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
}
