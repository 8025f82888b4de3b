//! `crdgen`: writes the CRDs generated from the Rust types into `crds/`.
//!
//! `cargo run --bin crdgen` rewrites the files; `--check` exits non-zero
//! when the checked-in YAML differs from the types.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut drifted = Vec::new();
    for (file, crd) in sluice::crd::all_crds() {
        let rendered = match sluice::crd::render_crd(&crd) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("crdgen: cannot render {file}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let path = dir.join(file);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
                drifted.push(path.display().to_string());
            }
        } else if let Err(err) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, rendered))
        {
            eprintln!("crdgen: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "crdgen: out of date, run `cargo run --bin crdgen`: {}",
            drifted.join(", ")
        );
        ExitCode::FAILURE
    }
}
