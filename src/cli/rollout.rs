//! `sluice rollout …`: status and the operator controls.
//!
//! Each control is one merge patch of an annotation on the Rollout (see
//! `engine::controls`), so the same thing can be done with `kubectl annotate`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::format::{self, Format};
use super::kubeconfig::KubeArgs;
use super::show;
use crate::crd::{Rollout, RolloutPhase, RolloutStatus};
use crate::engine::controls;

/// Flags of `sluice rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// Namespace of the Rollout (default: the kubeconfig's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs on one Rollout.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Show phase, step, weights, revisions and conditions.
    #[command(after_help = super::examples::STATUS)]
    Status {
        /// Rollout name.
        name: String,
        /// Keep printing changes until the rollout settles (Healthy, Aborted or Degraded).
        #[arg(short, long, conflicts_with = "output")]
        watch: bool,
        /// With --watch: give up after this long (e.g. 10m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Output format: text, or the live Rollout object as json or yaml.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// List Rollouts: name, strategy, phase, step, weight, stable and canary images, age.
    #[command(after_help = super::examples::LIST)]
    List {
        /// Rollouts of every namespace (adds a NAMESPACE column).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format: a table, or a `List` of the live Rollout objects as json or yaml.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Show a Rollout as a tree: revisions, their ReplicaSets and pods, their
    /// AnalysisRuns with verdicts, and the steps with the current one marked.
    #[command(after_help = super::examples::GET)]
    Get {
        /// Rollout name.
        name: String,
        /// Redraw every 2 s (in place on a terminal; otherwise each changed
        /// snapshot after a blank line) until Ctrl-C or --timeout.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: stop after this long (e.g. 10m), with status 0.
        #[arg(long, value_parser = humantime::parse_duration, requires = "watch")]
        timeout: Option<Duration>,
        /// Output format: the tree as text, or the same tree as json or yaml
        /// (a summary structure: name, phase, steps with state, revisions with
        /// images, pods and analysisRuns).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Change the Rollout's spec in the cluster (`set image`).
    ///
    /// With Argo CD or Flux the Git repository remains the source of truth:
    /// a change made here is drift that the next sync (or self-heal) undoes.
    /// Commit the change to Git for it to last.
    #[command(after_help = super::examples::SET, subcommand)]
    Set(SetVerb),
    /// Go back to an earlier revision (the previous one, or --to-revision N).
    ///
    /// With spec.git (a GitOps repository configured for the Rollout) the
    /// undo is made in Git: the commit that brought the current image is
    /// reverted with Sluice's revert machinery, using the Rollout's Git
    /// Secret (so your credentials must be able to read it), and your GitOps
    /// tool syncs the result. A revert brings back the image from before that
    /// commit; the revision's image is what is set where the revert conflicts. Otherwise, or with --spec-patch, the pod
    /// template of that revision is patched into the Rollout. It always says
    /// which it did.
    #[command(after_help = super::examples::UNDO)]
    Undo {
        /// Rollout name.
        name: String,
        /// The revision number to go back to (see `sluice rollout get`).
        #[arg(long, value_name = "N")]
        to_revision: Option<i64>,
        /// Patch the spec even when spec.git is set (the next GitOps sync undoes it).
        #[arg(long)]
        spec_patch: bool,
    },
    /// Move past the current step (a pause, an analysis, a wait), or all the way with --full.
    #[command(after_help = super::examples::PROMOTE)]
    Promote {
        /// Rollout name.
        name: String,
        /// Skip all remaining steps and go to 100%.
        #[arg(long)]
        full: bool,
    },
    /// Send all traffic back to stable now; the canary scales down after its delay.
    #[command(after_help = super::examples::ABORT)]
    Abort {
        /// Rollout name.
        name: String,
        /// Also revert the image commit in Git (needs spec.git).
        #[arg(long, conflicts_with = "no_revert")]
        revert: bool,
        /// Leave Git as it is, even if spec.git.revertOnManualAbort is set.
        #[arg(long)]
        no_revert: bool,
    },
    /// Restart an aborted update from its first step with new analysis runs (also
    /// a refused known-bad revision), or measure again an analysis that could not tell.
    #[command(after_help = super::examples::RETRY)]
    Retry {
        /// Rollout name.
        name: String,
    },
    /// Restart the pods without a new revision (sets spec.restartAt).
    ///
    /// The controller evicts every pod of the stable and canary (or preview)
    /// ReplicaSets created before that time, one at a time (up to the
    /// canary's maxUnavailable) and only while its ReplicaSet has all its
    /// pods Ready, through the Eviction API (PodDisruptionBudgets hold; a
    /// refusal is retried, never forced). It waits while an update moves
    /// traffic, an analysis measures or the update is aborted.
    ///
    /// GitOps: spec.restartAt is written by the field manager `sluice-cli`
    /// and is a field your Git manifests do not set. Argo CD does not report
    /// it as drift (it is neither in Git nor in the last applied
    /// configuration) and a sync leaves it; Flux's server-side apply leaves
    /// fields of other managers alone (its drift correction takes over only
    /// kubectl's, so prefer this command to a hand `kubectl edit`). If
    /// your manifests do set spec.restartAt, Git owns it and the next sync
    /// puts Git's value back: restart by committing a new time instead.
    #[command(after_help = super::examples::RESTART)]
    Restart {
        /// Rollout name.
        name: String,
        /// Restart after this long instead of now (e.g. 30m, 2h).
        #[arg(long = "in", value_name = "DURATION", value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
    },
    /// Hold the rollout where it is.
    #[command(after_help = super::examples::PAUSE)]
    Pause {
        /// Rollout name.
        name: String,
    },
    /// Release a hold made with `pause`.
    #[command(after_help = super::examples::RESUME)]
    Resume {
        /// Rollout name.
        name: String,
    },
}

/// `sluice rollout set …`.
#[derive(Debug, clap::Subcommand)]
pub enum SetVerb {
    /// Set container images in the pod template, which starts a new revision.
    ///
    /// One merge patch of the containers (and init containers), refused if
    /// the Rollout changed since it was read. With Argo CD or Flux the Git
    /// repository remains the source of truth: commit the new image there,
    /// or the next sync puts the old one back.
    #[command(after_help = super::examples::SET_IMAGE)]
    Image {
        /// Rollout name.
        name: String,
        /// CONTAINER=IMAGE, one or more; `*=IMAGE` sets every container.
        #[arg(required = true, value_name = "CONTAINER=IMAGE", value_parser = super::set_image::parse_arg)]
        images: Vec<(String, String)>,
    },
}

/// Errors of the rollout commands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig.
    #[error("{0}")]
    Client(#[from] super::kubeconfig::Error),
    /// Standard output failed (a closed pipe ends the command quietly).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Watching failed.
    #[error("watch failed: {0}")]
    Watch(#[from] watcher::Error),
    /// The rollout ended badly while watching.
    #[error("rollout {0} ended {1}")]
    Unhealthy(String, RolloutPhase),
    /// The rollout did not settle in time.
    #[error("rollout {0} did not settle within {1}")]
    Timeout(String, String),
    /// The Rollout does not exist.
    #[error("rollout {0} not found")]
    NotFound(String),
    /// JSON or YAML output failed.
    #[error(transparent)]
    Format(#[from] super::format::Error),
    /// `set image` was asked for something the template does not have.
    #[error(transparent)]
    SetImage(#[from] super::set_image::Error),
    /// No revision to go back to.
    #[error(transparent)]
    Undo(#[from] super::undo::Error),
    /// The Rollout changed between read and write; nothing was changed.
    #[error("rollout {0} changed while the command ran; nothing was changed, run it again")]
    Conflict(String),
    /// The Git undo failed.
    #[error("rollout {0}: undo through Git failed: {1}")]
    Git(String, String),
    /// The control has nothing to act on (exit status 3); nothing was changed.
    #[error("rollout {0}: {1}")]
    NothingTo(String, String),
}

/// Exit status of a control that had nothing to act on.
pub const NOTHING_TO_DO_EXIT: u8 = 3;

/// Why `verb` has nothing to act on given the Rollout's `status`, if so.
pub fn nothing_to_do(verb: &Verb, status: Option<&RolloutStatus>) -> Option<String> {
    let default = RolloutStatus::default();
    let status = status.unwrap_or(&default);
    let in_flight = status.canary_revision.is_some();
    let stable = status.stable_revision.as_deref().unwrap_or("none");
    let aborted = status.abort.as_ref();
    let held = status
        .pause_reason
        .as_deref()
        .is_some_and(|r| r.ends_with("AnalysisError") || r.ends_with("AnalysisInconclusive"));
    match verb {
        Verb::Promote { .. } if !in_flight => Some(format!(
            "nothing to promote: no update in flight, stable revision {stable} serves all traffic"
        )),
        Verb::Promote { .. } if aborted.is_some() => Some(
            "nothing to promote: the update is aborted; `sluice rollout retry` starts it again"
                .into(),
        ),
        Verb::Abort { .. } if !in_flight => Some(format!(
            "nothing to abort: no update in flight, stable revision {stable} serves all traffic"
        )),
        Verb::Abort { .. } if aborted.is_some() => {
            Some("nothing to abort: the update is already aborted".into())
        }
        Verb::Retry { .. } if aborted.is_none() && !held => Some(
            "nothing to retry: the update is neither aborted nor held on an analysis that could not tell"
                .into(),
        ),
        _ => None,
    }
}

/// Run a `sluice rollout` command.
pub async fn run(args: RolloutArgs, kube: &KubeArgs) -> Result<(), Error> {
    let client = kube.client().await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let api: Api<Rollout> = Api::namespaced(client.clone(), &namespace);
    if let Verb::Promote { name, .. } | Verb::Abort { name, .. } | Verb::Retry { name } = &args.verb
    {
        let rollout = api
            .get_opt(name)
            .await?
            .ok_or_else(|| Error::NotFound(name.clone()))?;
        if let Some(why) = nothing_to_do(&args.verb, rollout.status.as_ref()) {
            return Err(Error::NothingTo(name.clone(), why));
        }
    }
    match args.verb {
        Verb::Status {
            name,
            watch: false,
            output,
            ..
        } => {
            let rollout = super::get::rollout(&api, &name).await?;
            let text = format::encode(&rollout, output)?.unwrap_or_else(|| show::render(&rollout));
            super::output::write(text.as_bytes())?;
            Ok(())
        }
        Verb::List {
            all_namespaces,
            output,
        } => super::list::run(&client, &namespace, all_namespaces, output).await,
        Verb::Get {
            name,
            watch,
            timeout,
            output,
        } => super::get::run(&client, &namespace, &name, output, watch, timeout).await,
        Verb::Set(SetVerb::Image { name, images }) => {
            super::set_image::run(&api, &name, &images).await
        }
        Verb::Undo {
            name,
            to_revision,
            spec_patch,
        } => super::undo_run::run(&client, &namespace, &name, to_revision, spec_patch).await,
        Verb::Status {
            name,
            watch: true,
            timeout,
            ..
        } => {
            let watching = watch_status(&api, &name);
            match timeout {
                Some(limit) => tokio::time::timeout(limit, watching)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Timeout(
                            name,
                            humantime::format_duration(limit).to_string(),
                        ))
                    }),
                None => watching.await,
            }
        }
        Verb::Promote { name, full } => {
            let key = if full {
                controls::PROMOTE_FULL
            } else {
                controls::PROMOTE
            };
            request(&api, &name, key, json!(token())).await
        }
        Verb::Abort {
            name,
            revert,
            no_revert,
        } => {
            // The choice travels with the abort in one patch, so the controller sees both together.
            let choice = match (revert, no_revert) {
                (true, _) => json!("true"),
                (_, true) => json!("false"),
                _ => serde_json::Value::Null,
            };
            let patch = json!({ "metadata": { "annotations": {
                controls::ABORT: token(),
                crate::reconcile::git_revert::ABORT_REVERT_ANNOTATION: choice,
            } } });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    crate::outln!("rollout {name}: abort requested")?;
                    Ok(())
                }
                Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::NotFound(name)),
                Err(err) => Err(err.into()),
            }
        }
        Verb::Retry { name } => request(&api, &name, controls::RETRY, json!(token())).await,
        Verb::Restart { name, delay } => super::restart::run(&api, &name, delay).await,
        Verb::Pause { name } => request(&api, &name, controls::PAUSED, json!("true")).await,
        Verb::Resume { name } => {
            request(&api, &name, controls::PAUSED, serde_json::Value::Null).await
        }
    }
}

/// A fresh token: any value that differs from the last one works.
fn token() -> String {
    jiff::Timestamp::now().to_string()
}

async fn request(
    api: &Api<Rollout>,
    name: &str,
    key: &str,
    value: serde_json::Value,
) -> Result<(), Error> {
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            crate::outln!("rollout {name}: set {key}={value}")?;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::NotFound(name.into())),
        Err(err) => Err(err.into()),
    }
}

async fn watch_status(api: &Api<Rollout>, name: &str) -> Result<(), Error> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).applied_objects().boxed();
    let mut last = String::new();
    while let Some(rollout) = stream.try_next().await? {
        let text = show::render(&rollout);
        if text != last {
            crate::outln!(
                "{}\n{text}",
                jiff::Timestamp::now().strftime("── %H:%M:%S ──")
            )?;
            last = text;
        }
        let status = rollout.status.as_ref();
        let current = status.and_then(|s| s.observed_generation) == rollout.metadata.generation;
        match status.and_then(|s| s.phase) {
            Some(RolloutPhase::Healthy) if current => return Ok(()),
            Some(phase @ (RolloutPhase::Aborted | RolloutPhase::Degraded)) if current => {
                return Err(Error::Unhealthy(name.into(), phase));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AbortStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn verb(kind: &str) -> Verb {
        let name = "web".to_string();
        match kind {
            "promote" => Verb::Promote { name, full: false },
            "abort" => Verb::Abort {
                name,
                revert: false,
                no_revert: false,
            },
            _ => Verb::Retry { name },
        }
    }

    #[test]
    fn a_control_with_nothing_to_act_on_says_so() {
        let healthy = RolloutStatus {
            stable_revision: Some("abc".into()),
            ..RolloutStatus::default()
        };
        let in_flight = RolloutStatus {
            canary_revision: Some("def".into()),
            ..healthy.clone()
        };
        let aborted = RolloutStatus {
            abort: Some(AbortStatus {
                revision: "def".into(),
                reason: "AnalysisFailed".into(),
                message: "m".into(),
                at: Time(jiff::Timestamp::UNIX_EPOCH),
                step_index: 1,
                weight: 0,
                cannot_tell: false,
                keep_git: false,
            }),
            ..in_flight.clone()
        };
        let held = RolloutStatus {
            pause_reason: Some("AnalysisError".into()),
            ..in_flight.clone()
        };
        // (control, status, nothing to do?)
        let cases = [
            ("promote", &healthy, Some("nothing to promote")),
            ("promote", &in_flight, None),
            ("promote", &aborted, Some("nothing to promote")),
            ("abort", &healthy, Some("nothing to abort")),
            ("abort", &in_flight, None),
            ("abort", &aborted, Some("nothing to abort")),
            ("retry", &in_flight, Some("nothing to retry")),
            ("retry", &aborted, None),
            ("retry", &held, None),
        ];
        for (kind, status, expected) in cases {
            let why = nothing_to_do(&verb(kind), Some(status));
            match expected {
                Some(start) => assert!(
                    why.as_deref().is_some_and(|w| w.starts_with(start)),
                    "{kind}: {why:?}"
                ),
                None => assert_eq!(why, None, "{kind}"),
            }
        }
    }
}
