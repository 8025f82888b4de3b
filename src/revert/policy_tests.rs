//! `revert::policy`: when to revert and what a result means for the record.

use super::*;
use crate::crd::GitSource;
use crate::engine::testkit::rollout as test_rollout;

fn aborted(reason: &str) -> (Rollout, RolloutStatus) {
    let mut r = test_rollout(4, None, true);
    r.spec.git = Some(GitSource {
        repository: Some("https://git.example.com/apps.git".into()),
        path: "apps/web".into(),
        ..Default::default()
    });
    let status = RolloutStatus {
        abort: Some(AbortStatus {
            revision: "canaryhash".into(),
            reason: reason.into(),
            message: "m".into(),
            at: Time(Timestamp::UNIX_EPOCH),
            step_index: 1,
            weight: 10,
            cannot_tell: false,
            keep_git: false,
        }),
        ..Default::default()
    };
    (r, status)
}

#[test]
fn analysis_aborts_revert_and_manual_ones_only_when_asked() {
    let now = Timestamp::UNIX_EPOCH;
    let (r, s) = aborted("AnalysisFailed");
    assert_eq!(
        wanted(&r, &s, now),
        Wanted::Revert {
            canary: "canaryhash".into(),
            attempts: 0
        }
    );
    let (mut r, s) = aborted("AbortedByUser");
    assert_eq!(
        wanted(&r, &s, now),
        Wanted::Skip {
            canary: "canaryhash".into(),
            why: "aborted by an operator without --revert: Git is left as it is",
        }
    );
    r.metadata.annotations =
        Some([(ABORT_REVERT_ANNOTATION.to_string(), "true".to_string())].into());
    assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
    let (mut r, s) = aborted("AbortedByUser");
    if let Some(git) = r.spec.git.as_mut() {
        git.revert_on_manual_abort = Some(true);
    }
    r.metadata.annotations =
        Some([(ABORT_REVERT_ANNOTATION.to_string(), "false".to_string())].into());
    assert_eq!(
        wanted(&r, &s, now),
        Wanted::Skip {
            canary: "canaryhash".into(),
            why: "aborted by an operator without --revert: Git is left as it is",
        },
        "--no-revert wins"
    );
}

#[test]
fn a_refused_known_bad_revision_is_reverted_anew_and_nothing_else_twice() {
    let now = Timestamp::UNIX_EPOCH;
    let earlier = GitRevertStatus {
        state: RevertState::Reverted,
        canary_revision: "canaryhash".into(),
        revert_commit: Some("abc".into()),
        last_attempt: Some(Time(now)),
        attempts: 1,
        ..Default::default()
    };
    let later = Time(now + Duration::from_secs(60));
    // The same abort planned again (a stale cache) a bit later: no second revert.
    let (r, mut s) = aborted("AnalysisFailed");
    s.git_revert = Some(earlier.clone());
    if let Some(abort) = s.abort.as_mut() {
        abort.at = later.clone();
    }
    assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
    // The revision came back to Git and was refused: its new commit is reverted.
    let (r, mut s) = aborted(reasons::KNOWN_BAD_REVISION);
    s.git_revert = Some(earlier);
    if let Some(abort) = s.abort.as_mut() {
        abort.at = later;
    }
    assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
    // "We cannot tell" and the progress deadline leave Git alone.
    let (r, mut s) = aborted("AnalysisError");
    if let Some(abort) = s.abort.as_mut() {
        abort.keep_git = true;
        abort.cannot_tell = true;
    }
    assert!(
        matches!(wanted(&r, &s, now), Wanted::Skip { why, .. } if why.contains("could not tell"))
    );
}

#[test]
fn a_rollout_that_recovers_is_not_reverted() {
    let now = Timestamp::UNIX_EPOCH;
    // Never aborted: nothing to do in Git.
    let (r, mut s) = aborted("AnalysisFailed");
    let healthy = RolloutStatus {
        abort: None,
        ..s.clone()
    };
    assert_eq!(wanted(&r, &healthy, now), Wanted::Nothing);
    // Aborted, then retried (the abort is cleared) before the revert ran: Git stays.
    s.abort = None;
    assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
    // No spec.git: aborts never touch Git.
    let (mut r, s) = aborted("AnalysisFailed");
    r.spec.git = None;
    assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
}

#[test]
fn done_is_done_and_failures_back_off() {
    let now = Timestamp::UNIX_EPOCH + Duration::from_secs(100);
    let (r, mut s) = aborted("AnalysisFailed");
    s.git_revert = Some(GitRevertStatus {
        state: RevertState::Reverted,
        canary_revision: "canaryhash".into(),
        ..Default::default()
    });
    assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
    s.git_revert = Some(GitRevertStatus {
        state: RevertState::Failed,
        canary_revision: "canaryhash".into(),
        attempts: 2,
        last_attempt: Some(Time(Timestamp::UNIX_EPOCH + Duration::from_secs(90))),
        ..Default::default()
    });
    assert!(
        matches!(wanted(&r, &s, now), Wanted::Later(d) if d.as_secs() == 50),
        "{:?}",
        wanted(&r, &s, now)
    );
    let later = now + Duration::from_secs(60);
    assert_eq!(
        wanted(&r, &s, later),
        Wanted::Revert {
            canary: "canaryhash".into(),
            attempts: 2
        }
    );
    // A record about an older canary does not count for this one.
    s.git_revert = Some(GitRevertStatus {
        state: RevertState::Reverted,
        canary_revision: "older".into(),
        ..Default::default()
    });
    assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
}
#[test]
fn a_push_left_unconfirmed_by_a_crash_is_resolved_even_after_the_abort_cleared() {
    let now = Timestamp::UNIX_EPOCH;
    let (r, mut s) = aborted("AnalysisFailed");
    let pushing = GitRevertStatus {
        state: RevertState::Pushing,
        canary_revision: "canaryhash".into(),
        reverted_commit: Some("bump".into()),
        revert_commit: Some("revert".into()),
        attempts: 1,
        ..Default::default()
    };
    s.git_revert = Some(pushing.clone());
    // The GitOps sync applied the revert while the controller was down:
    // the abort is over, but the record still waits for its push.
    s.abort = None;
    assert_eq!(
        wanted(&r, &s, now),
        Wanted::Resolve { record: pushing },
        "the trailer on the branch settles it"
    );
    let mut reverting = s.clone();
    if let Some(record) = reverting.git_revert.as_mut() {
        record.state = RevertState::Reverting;
    }
    assert!(matches!(
        wanted(&r, &reverting, now),
        Wanted::Resolve { .. }
    ));
    // Settled records stay settled.
    for state in [
        RevertState::Reverted,
        RevertState::AlreadyReverted,
        RevertState::NotNeeded,
        RevertState::Skipped,
        RevertState::Failed,
    ] {
        let mut done = s.clone();
        if let Some(record) = done.git_revert.as_mut() {
            record.state = state;
        }
        assert_eq!(wanted(&r, &done, now), Wanted::Nothing, "{state}");
    }
}

fn reverting() -> GitRevertStatus {
    starting(&RolloutStatus::default(), "canaryhash".into(), 0)
}

#[test]
fn an_attempt_result_becomes_the_record_and_its_notice() {
    let now = Timestamp::UNIX_EPOCH;
    let (record, notice) = after_attempt(
        reverting(),
        Ok(RevertOutcome::Reverted {
            reverted: "bump".into(),
            revert: "undo".into(),
            fallback: true,
            bundled: vec!["README.md".into()],
            pull_request: None,
        }),
        now,
    );
    assert_eq!(record.state, RevertState::Reverted);
    assert_eq!(record.revert_commit.as_deref(), Some("undo"));
    assert_eq!(record.attempts, 1);
    assert!(!notice.warning);
    assert_eq!(notice.reason, "GitReverted");
    assert!(notice.note.contains("set back by an edit") && notice.note.contains("README.md"));
    assert_eq!(record.message.as_deref(), Some(notice.note.as_str()));

    let (record, notice) = after_attempt(
        reverting(),
        Err(AttemptError::Setup("secret git-creds not found".into())),
        now,
    );
    assert_eq!(record.state, RevertState::Failed);
    assert!(notice.warning);
    assert_eq!(notice.reason, "GitRevertFailed");
    assert!(
        notice
            .note
            .contains("secret git-creds not found; traffic stays on stable; retrying in 30s"),
        "{}",
        notice.note
    );

    let (record, _) = after_attempt(
        reverting(),
        Ok(RevertOutcome::NotNeeded {
            reason: "the branch no longer carries the image".into(),
        }),
        now,
    );
    assert_eq!(record.state, RevertState::NotNeeded);
    assert_eq!(
        after_attempt(reverting(), Err(AttemptError::ImagesUnknown), now)
            .0
            .state,
        RevertState::Failed
    );
}

#[test]
fn an_unfinished_record_settles_from_the_branch() {
    let now = Timestamp::UNIX_EPOCH;
    let half = pushing(&reverting(), "bump".into(), "undo".into());
    assert_eq!(half.state, RevertState::Pushing);
    let (found, _) = after_resolve(
        half.clone(),
        Ok(Some(("bump".into(), "undo".into(), None))),
        now,
    );
    assert_eq!(found.state, RevertState::Reverted);
    let (gone, notice) = after_resolve(half.clone(), Ok(None), now);
    assert_eq!(
        (gone.state, gone.revert_commit),
        (RevertState::NotNeeded, None)
    );
    assert_eq!(notice.reason, "GitRevertNotNeeded");
    let (failed, notice) = after_resolve(half, Err(AttemptError::Setup("offline".into())), now);
    assert_eq!(failed.state, RevertState::Failed);
    assert!(notice.warning);
}

#[test]
fn a_new_attempt_keeps_the_commits_an_earlier_one_was_pushing() {
    let status = RolloutStatus {
        git_revert: Some(pushing(&reverting(), "bump".into(), "undo".into())),
        ..Default::default()
    };
    let next = starting(&status, "canaryhash".into(), 1);
    assert_eq!((next.state, next.attempts), (RevertState::Reverting, 2));
    assert_eq!(next.revert_commit.as_deref(), Some("undo"));
    assert_eq!(starting(&status, "other".into(), 0).revert_commit, None);
}

#[test]
fn a_record_settled_since_the_reconcile_read_its_cache_is_not_settled_again() {
    // Seen as Pushing by a reconcile on a stale cache; the attempt then finished.
    let seen = pushing(&reverting(), "bump".into(), "undo".into());
    let (settled, _) = after_attempt(
        seen.clone(),
        Ok(RevertOutcome::AlreadyReverted {
            reverted: "bump".into(),
            revert: "undo".into(),
            pull_request: None,
        }),
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(still_open(&seen, Some(settled)), None);
    assert_eq!(still_open(&seen, None), None);
    // Still open: settle what is live (it may know more than the stale copy).
    assert_eq!(
        still_open(&reverting(), Some(seen.clone())),
        Some(seen.clone())
    );
    // Another canary's record is not this one.
    let other = GitRevertStatus {
        canary_revision: "other".into(),
        ..seen.clone()
    };
    assert_eq!(still_open(&seen, Some(other)), None);
}

#[test]
fn a_revert_asked_for_from_a_stale_cache_is_not_started_again_once_settled() {
    let (_, status) = aborted(reasons::ANALYSIS_FAILED);
    let abort = status.abort.expect("abort");
    let settled = |state| GitRevertStatus {
        state,
        last_attempt: Some(Time(Timestamp::UNIX_EPOCH)),
        ..reverting()
    };
    // The attempt that finished after the reconcile read its cache settled it.
    for state in [
        RevertState::Reverted,
        RevertState::AlreadyReverted,
        RevertState::NotNeeded,
        RevertState::Skipped,
    ] {
        assert!(!still_wanted(&abort, Some(&settled(state))), "{state:?}");
    }
    // A failed attempt is retried; one killed mid-way is finished (the trailer makes it safe).
    for state in [
        RevertState::Failed,
        RevertState::Reverting,
        RevertState::Pushing,
    ] {
        assert!(still_wanted(&abort, Some(&settled(state))), "{state:?}");
    }
    // Nothing recorded yet, or another canary's record: this canary's revert is wanted.
    assert!(still_wanted(&abort, None));
    let other = GitRevertStatus {
        canary_revision: "other".into(),
        ..settled(RevertState::Reverted)
    };
    assert!(still_wanted(&abort, Some(&other)));
    // A known-bad revision pushed again and refused: the record of its earlier
    // abort is older than the refusal and does not count; it is reverted anew.
    let (_, status) = aborted(reasons::KNOWN_BAD_REVISION);
    let refusal = AbortStatus {
        at: Time(Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(60)),
        ..status.abort.expect("abort")
    };
    assert!(still_wanted(
        &refusal,
        Some(&settled(RevertState::Reverted))
    ));
    let after_refusal = GitRevertStatus {
        last_attempt: Some(Time(
            Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(61),
        )),
        ..settled(RevertState::Reverted)
    };
    assert!(!still_wanted(&refusal, Some(&after_refusal)));
}
