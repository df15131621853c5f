//! Progress of long steps (waiting for rollouts and APIServices): a spinner per step on a
//! terminal, one plain line per finished step otherwise (logs, CI, pipes).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kaddons::cluster::wait::Progress;

use crate::printer::Printer;

pub struct StepReporter<'p> {
    printer: &'p Printer,
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl<'p> StepReporter<'p> {
    pub fn new(printer: &'p Printer) -> Self {
        StepReporter {
            printer,
            tty: std::io::stderr().is_terminal() && !printer.is_quiet(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for StepReporter<'_> {
    fn start(&self, step: &str) {
        if !self.tty {
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("waiting for {step}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn finish(&self, step: &str, elapsed: Duration, ok: bool) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
        let mark = if ok { "ready" } else { "NOT ready" };
        self.printer
            .status(&format!("{mark}: {step} ({:.1}s)", elapsed.as_secs_f64()));
    }
}
