//! Records the Git commit the binary was built from, for `sluice --version`:
//! `SLUICE_GIT_COMMIT` when the build sets it (the Containerfile does, as
//! `.git` is not in its build context), else `git rev-parse HEAD`, else
//! `unknown` (a source tarball).

use std::process::Command;

/// A full commit id shortened to 12 characters, any suffix (`-dirty`) kept.
fn short(commit: &str) -> String {
    let hex = commit.chars().take_while(char::is_ascii_hexdigit).count();
    if hex > 12 {
        format!("{}{}", &commit[..12], &commit[hex..])
    } else {
        commit.to_string()
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_GIT_COMMIT");
    let given = std::env::var("SLUICE_GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty() && c != "unknown");
    let commit = given
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|sha| sha.trim().to_string())
                .filter(|sha| !sha.is_empty())
        })
        .map(|c| short(&c))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SLUICE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves (a commit or a checkout), not on every build.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
