//! Reading what `get`, `list` and `status -o` show, and the `get --watch` loop.

use std::io::IsTerminal;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use super::format::{self, Format};
use super::rollout::Error;
use super::tree::{Tree, pod_selector};
use crate::crd::{AnalysisRun, Rollout};
use crate::engine::revisions::ROLLOUT_LABEL;

/// How often `get --watch` redraws.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// ANSI: cursor home, then clear the screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The Rollout `name`, or `Error::NotFound`.
pub async fn rollout(api: &Api<Rollout>, name: &str) -> Result<Rollout, Error> {
    api.get_opt(name)
        .await?
        .ok_or_else(|| Error::NotFound(name.into()))
}

/// Read the Rollout and what it owns, and build its tree.
pub async fn tree(client: &Client, namespace: &str, name: &str) -> Result<Tree, Error> {
    let rollout = rollout(&Api::namespaced(client.clone(), namespace), name).await?;
    let owned = ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}"));
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .list(&owned)
        .await?
        .items;
    let runs = Api::<AnalysisRun>::namespaced(client.clone(), namespace)
        .list(&owned)
        .await?
        .items;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&pod_selector(&rollout)))
        .await?
        .items;
    Ok(Tree::build(&rollout, &replica_sets, &pods, &runs))
}

/// The tree as text, JSON or YAML.
pub fn show(tree: &Tree, output: Format) -> Result<String, Error> {
    Ok(format::encode(tree, output)?.unwrap_or_else(|| tree.render()))
}

/// `get`: once, or with `watch` every [`WATCH_INTERVAL`] until Ctrl-C or
/// `timeout`. On a terminal each snapshot replaces the last; into a pipe or
/// file the snapshots that differ follow each other, a blank line between.
pub async fn run(
    client: &Client,
    namespace: &str,
    name: &str,
    output: Format,
    watch: bool,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    if !watch {
        let text = show(&tree(client, namespace, name).await?, output)?;
        super::output::write(text.as_bytes())?;
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last: Option<String> = None;
    loop {
        let text = show(&tree(client, namespace, name).await?, output)?;
        if terminal {
            super::output::write(format!("{CLEAR}{text}").as_bytes())?;
        } else if last.as_ref() != Some(&text) {
            let gap = if last.is_some() { "\n" } else { "" };
            super::output::write(format!("{gap}{text}").as_bytes())?;
        }
        last = Some(text);
        let sleep = match deadline {
            Some(at) if tokio::time::Instant::now() >= at => return Ok(()),
            Some(at) => {
                tokio::time::sleep_until(at.min(tokio::time::Instant::now() + WATCH_INTERVAL))
            }
            None => tokio::time::sleep(WATCH_INTERVAL),
        };
        tokio::select! {
            _ = sleep => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
