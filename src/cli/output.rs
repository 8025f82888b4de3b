//! Standard output that a closed pipe cannot turn into a panic.
//!
//! `println!` panics when the reader has gone (`sluice crds | head -1`): Rust
//! ignores SIGPIPE, so the write fails with `BrokenPipe`. Every command prints
//! through [`outln!`](crate::outln) or [`write`] instead, which return the
//! error; `main` ends quietly with status 0 when [`is_broken_pipe`] says that
//! is why a command stopped, as ripgrep and other Rust tools do.

use std::error::Error;
use std::io::{self, Write};

/// Write `bytes` to standard output and flush.
pub fn write(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Write formatted text and a newline to standard output.
pub fn line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// `println!` that returns an `io::Result` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::output::write(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

/// Whether `err`, or any error it wraps, is a write to a closed pipe.
pub fn is_broken_pipe(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[from] io::Error);

    #[test]
    fn a_broken_pipe_is_found_through_the_wrapping_errors() {
        let pipe = Outer(io::Error::from(io::ErrorKind::BrokenPipe));
        let boxed: Box<dyn Error> = Box::new(pipe);
        assert!(is_broken_pipe(boxed.as_ref()));
        let other = Outer(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
        assert!(is_broken_pipe(&io::Error::from(io::ErrorKind::BrokenPipe)));
    }
}
