//! Analysis: measuring a canary and judging it against a baseline.
//!
//! `condition` and `template` are the template language, `judge` the
//! statistics, `run` the pure bookkeeping of an AnalysisRun (what is due,
//! what a measurement means, the run's verdict), and `prometheus` the only
//! I/O: the provider's HTTP client.

pub mod args;
pub mod condition;
mod condition_parse;
#[cfg(test)]
mod condition_tests;
pub mod job;
pub mod judge;
pub mod measure;
pub mod phase;
pub mod prometheus;
pub mod redact;
pub mod run;
pub mod scrape;
pub mod simulate;
pub mod template;
pub mod verdicts;
pub mod web;
