//! Child processes of the stack: each in its own process group, logging to
//! its own file, and torn down group by group (SIGTERM, then SIGKILL).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The running components, in start order.
#[derive(Default)]
pub struct Procs {
    children: Vec<(String, Child, Option<i32>)>,
}

impl Procs {
    /// Start `binary` with `args` as component `name`, logging to `logs/<name>.log`.
    pub fn spawn(
        &mut self,
        name: &str,
        binary: &Path,
        args: &[String],
        logs: &Path,
    ) -> std::io::Result<()> {
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot start {}: {e}", binary.display()))
            })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        self.children.push((name.to_string(), child, pid));
        Ok(())
    }

    /// The first component that has exited, if any.
    pub fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(name, child, _)| {
            matches!(child.try_wait(), Ok(Some(_))).then(|| name.clone())
        })
    }

    /// Stop every component, newest first; SIGKILL whatever is left after `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        for (_, _, pid) in self.children.iter().rev() {
            signal_group(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        for (_, child, pid) in self.children.iter_mut().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, child.wait()).await.is_err() {
                signal_group(*pid, Signal::SIGKILL);
                let _ = child.wait().await;
            }
            // Grandchildren that outlived their parent share its group.
            signal_group(*pid, Signal::SIGKILL);
        }
        self.children.clear();
    }
}

fn signal_group(pid: Option<i32>, signal: Signal) {
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}
