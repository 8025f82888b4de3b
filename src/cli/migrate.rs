//! `sluice migrate`: read Argo Rollouts and Flagger manifests from files or
//! stdin, print Sluice manifests, and report on stderr what was not carried over.

use std::io::Read;
use std::path::PathBuf;

use crate::migrate::{Input, Outcome, migrate};

/// Exit status when the output is complete but something was dropped or needs a person.
pub const ATTENTION_EXIT: u8 = 3;

/// Flags of `sluice migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Manifest files (multi-document YAML); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Do not print notes (findings that lose nothing, e.g. status left out).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Errors of `sluice migrate`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} (nothing was printed)")]
    Parse(#[from] crate::migrate::Error),
    #[error("writing the output: {0}")]
    Write(#[from] std::io::Error),
}

/// Convert, print, and say whether the output needs attention.
pub fn run(args: &MigrateArgs) -> Result<Outcome, Error> {
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let name = path.display().to_string();
        let text = if name == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Read("standard input".into(), e))?;
            text
        } else {
            std::fs::read_to_string(path).map_err(|e| Error::Read(name.clone(), e))?
        };
        inputs.push(Input { name, text });
    }
    let outcome = migrate(&inputs)?;
    crate::cli::output::write(outcome.yaml.as_bytes())?;
    for finding in &outcome.findings {
        if args.quiet && finding.finding.severity == crate::migrate::Severity::Note {
            continue;
        }
        eprintln!("{finding}");
    }
    let attention = outcome
        .findings
        .iter()
        .filter(|f| f.finding.severity > crate::migrate::Severity::Note)
        .count();
    eprintln!(
        "sluice migrate: {} object(s) converted; {attention} finding(s) need attention{}",
        outcome.converted,
        if attention > 0 {
            " (exit status 3)"
        } else {
            ""
        }
    );
    Ok(outcome)
}
