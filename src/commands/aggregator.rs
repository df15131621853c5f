//! `kaddons aggregator certs`: front-proxy certificates for clusters built by hand, and the
//! kube-apiserver flags that turn the aggregation layer on.

use kaddons::aggregator::write_front_proxy_certs;

use crate::cli::{AggregatorCommand, GlobalArgs, OutputFormat};
use crate::printer::Printer;

use super::{structured, ExitStatus};

pub fn run(
    global: &GlobalArgs,
    cmd: &AggregatorCommand,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let AggregatorCommand::Certs(args) = cmd;
    let certs = write_front_proxy_certs(&args.out, args.force)?;
    let flags = certs.apiserver_flags();
    let text = match global.output {
        OutputFormat::Text => {
            printer.status(&format!(
                "wrote {}, {}, {}, {}",
                certs.ca_cert.display(),
                certs.ca_key.display(),
                certs.client_cert.display(),
                certs.client_key.display()
            ));
            let mut out = String::from("# Add these flags to kube-apiserver and restart it:\n");
            for f in &flags {
                out.push_str(f);
                out.push('\n');
            }
            out.push_str("\n# Then check:\n");
            for line in certs.how_to_verify().lines() {
                out.push_str(&format!("# {line}\n"));
            }
            out
        }
        format => structured(
            format,
            &serde_json::json!({
                "caCert": certs.ca_cert, "caKey": certs.ca_key,
                "clientCert": certs.client_cert, "clientKey": certs.client_key,
                "apiserverFlags": flags,
            }),
        )?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}
