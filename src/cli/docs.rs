//! `sluice completion` and `sluice man`: shell completion scripts and roff
//! manual pages, generated from the same command tree that parses the flags,
//! so they never drift from it.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::output;

/// Flags of `sluice completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `sluice man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (`sluice.1`, `sluice-rollout-status.1`, …)
    /// into this directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Print the completion script of `cmd` for `shell`, for the program `bin_name`
/// (`sluice`, or `kubectl-sluice` when installed as the kubectl plugin).
pub fn completion(shell: Shell, mut cmd: clap::Command, bin_name: &str) -> io::Result<()> {
    // Generated into memory first: the generators panic on write errors.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin_name, &mut script);
    output::write(&script)
}

/// Print the main page (with every command listed), or with `out_dir` write
/// one page per command there and print their paths.
pub fn man(cmd: clap::Command, out_dir: Option<&Path>) -> io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    match out_dir {
        None => output::write(&main_page(&cmd)?),
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut written = Vec::new();
            write_pages(&cmd, dir, &mut written)?;
            for path in written {
                crate::outln!("{}", path.display())?;
            }
            Ok(())
        }
    }
}

/// The page of `cmd` followed by a COMMANDS section that names every command
/// of the tree, nested ones too, with its one-line description.
fn main_page(cmd: &clap::Command) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    Man::new(cmd.clone()).render(&mut page)?;
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    let mut commands = Vec::new();
    every_command(cmd, &mut commands);
    for command in commands {
        let name = command
            .get_bin_name()
            .unwrap_or_else(|| command.get_name())
            .to_string();
        let about = command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(about)]);
    }
    roff.to_writer(&mut page)?;
    Ok(page)
}

/// Every visible command below `cmd`, depth first.
fn every_command<'a>(cmd: &'a clap::Command, out: &mut Vec<&'a clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(sub);
        every_command(sub, out);
    }
}

/// Write the page of `cmd` and of every command below it into `dir`.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    written.push(Man::new(cmd.clone()).generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
