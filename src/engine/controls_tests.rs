//! Operator controls and verdicts, table by table: a retry measures again,
//! an abort stops its analysis, "we cannot tell" holds or rolls traffic back
//! without Git, the progress deadline aborts when asked, and a known-bad
//! revision that comes back is refused.

use std::time::Duration;

use super::hash::pod_template_hash;
use super::plan::{Plan, Write};
use super::testkit::{Sim, analysis, blue_green_rollout, rollout, template, weight};
use crate::crd::{
    AnalysisPhase, AnalysisRunStatus, AnalysisTemplateRef, CannotTellAction, PromotionAnalysis,
    RolloutPhase, RolloutStatus,
};

const SEC: Duration = Duration::from_secs(1);

fn hash(image: &str) -> String {
    pod_template_hash(&template(image))
}

fn status(sim: &Sim) -> RolloutStatus {
    sim.rollout.status.clone().unwrap_or_default()
}

/// Healthy on web:1 with steps 20% → analysis → 100%, routed through the HTTPRoute.
fn canary_sim(cannot_tell: Option<CannotTellAction>) -> Sim {
    let mut r = rollout(
        4,
        Some(vec![weight(20), analysis("error-rate"), weight(100)]),
        true,
    );
    r.spec.analysis_cannot_tell = cannot_tell;
    let mut sim = Sim::new(r);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim
}

fn promotion_analysis() -> Option<PromotionAnalysis> {
    Some(PromotionAnalysis {
        templates: vec![AnalysisTemplateRef {
            template_name: "error-rate".into(),
            ..Default::default()
        }],
        args: Vec::new(),
    })
}

/// Healthy blue-green on web:1 with pre- or post-promotion analysis.
fn blue_green_sim(pre: bool, cannot_tell: Option<CannotTellAction>) -> Sim {
    let mut r = blue_green_rollout(2, false, |b| {
        if pre {
            b.pre_promotion_analysis = promotion_analysis();
        } else {
            b.post_promotion_analysis = promotion_analysis();
        }
    });
    r.spec.analysis_cannot_tell = cannot_tell;
    let mut sim = Sim::new(r);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim
}

/// Names of the runs that are not terminated, in creation order.
fn live_runs(sim: &Sim) -> Vec<String> {
    sim.observed
        .analysis_runs
        .iter()
        .filter(|r| !r.spec.terminate)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

/// Give the named run a verdict, as the analysis loop would.
fn verdict(sim: &mut Sim, name: &str, phase: AnalysisPhase) {
    for run in &mut sim.observed.analysis_runs {
        if run.metadata.name.as_deref() == Some(name) {
            run.status = Some(AnalysisRunStatus {
                phase: Some(phase),
                message: Some("error ratio 9.1% vs 0.4%".into()),
                ..Default::default()
            });
        }
    }
}

fn newest_run(sim: &Sim) -> String {
    sim.observed
        .analysis_runs
        .last()
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_default()
}

fn aborts(plans: &[Plan]) -> usize {
    plans.iter().filter(|p| p.newly_aborted.is_some()).count()
}

#[test]
fn a_retry_after_an_analysis_abort_measures_again_in_both_strategies() {
    let cases = [
        ("canary step", None),
        ("blue-green pre", Some(true)),
        ("blue-green post", Some(false)),
    ];
    for (case, blue_green_pre) in cases {
        let mut sim = match blue_green_pre {
            None => canary_sim(None),
            Some(pre) => blue_green_sim(pre, None),
        };
        sim.set_image("web:2");
        sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
        let first = newest_run(&sim);
        verdict(&mut sim, &first, AnalysisPhase::Failed);
        sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Aborted));
        let before = aborts(&sim.plans);
        sim.annotate("sluice.dev/retry", "t1");
        sim.run_until(SEC, 20, |s| {
            live_runs(s).len() > 1 || newest_run(s) != first
        });
        let second = newest_run(&sim);
        assert_ne!(second, first, "{case}: a retry creates a new run");
        assert!(
            second.ends_with("-2"),
            "{case}: named for attempt 2: {second}"
        );
        // The old Failed verdict is not read again: the rollout waits for the new run.
        for _ in 0..5 {
            sim.tick(SEC);
        }
        assert_ne!(
            sim.phase(),
            Some(RolloutPhase::Aborted),
            "{case}: {:?}",
            status(&sim).message
        );
        assert_eq!(
            aborts(&sim.plans),
            before,
            "{case}: no second abort, no second alert"
        );
        verdict(&mut sim, &second, AnalysisPhase::Successful);
        sim.run_until(SEC, 30, |s| s.phase() == Some(RolloutPhase::Healthy));
        assert_eq!(status(&sim).stable_revision, Some(hash("web:2")), "{case}");
    }
}

#[test]
fn an_abort_terminates_the_running_analysis_in_the_same_reconcile() {
    let mut sim = canary_sim(None);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
    let run = newest_run(&sim);
    sim.tick(SEC);
    sim.annotate("sluice.dev/abort", "t1");
    let plan = sim.tick(SEC);
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert!(
        plan.writes
            .iter()
            .any(|w| matches!(w, Write::TerminateAnalysisRun { name } if *name == run)),
        "the running run is stopped with the abort: {:?}",
        plan.writes
    );
}

#[test]
fn a_verdict_that_cannot_tell_holds_or_rolls_traffic_back_and_never_reverts_git() {
    // (verdict, setting, phase, route weight after, aborted without Git)
    let cases = [
        (AnalysisPhase::Error, None, RolloutPhase::Paused, 20, false),
        (
            AnalysisPhase::Inconclusive,
            Some(CannotTellAction::Hold),
            RolloutPhase::Paused,
            20,
            false,
        ),
        (
            AnalysisPhase::Error,
            Some(CannotTellAction::RollbackTraffic),
            RolloutPhase::Aborted,
            0,
            true,
        ),
        (
            AnalysisPhase::Inconclusive,
            Some(CannotTellAction::RollbackTraffic),
            RolloutPhase::Aborted,
            0,
            true,
        ),
    ];
    for (phase, setting, expected, route, rolled_back) in cases {
        let mut sim = canary_sim(setting);
        sim.set_image("web:2");
        sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
        let run = newest_run(&sim);
        verdict(&mut sim, &run, phase);
        sim.run_until(SEC, 5, |s| s.phase() == Some(expected));
        sim.tick(SEC);
        let st = status(&sim);
        assert_eq!(sim.route_weight(), route, "{phase:?} {setting:?}");
        assert_eq!(sim.phase(), Some(expected), "{phase:?} {setting:?}");
        match st.abort {
            Some(abort) => {
                assert!(rolled_back, "{phase:?} {setting:?}: {}", abort.reason);
                assert!(abort.keep_git && abort.cannot_tell, "Git is left alone");
                assert!(
                    st.aborted_revisions.is_empty(),
                    "no verdict: not remembered as bad"
                );
            }
            None => {
                assert!(!rolled_back, "{phase:?} {setting:?}");
                assert!(
                    st.pause_reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("Analysis"))
                );
                assert!(
                    sim.plans
                        .iter()
                        .flat_map(|p| &p.events)
                        .any(|e| e.reason == "AnalysisCannotTell"),
                    "its own Warning Event"
                );
            }
        }
    }
}

#[test]
fn held_on_a_verdict_that_cannot_tell_retry_measures_again_and_promote_goes_on() {
    let mut sim = canary_sim(None);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
    let first = newest_run(&sim);
    verdict(&mut sim, &first, AnalysisPhase::Error);
    sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.annotate("sluice.dev/retry", "r1");
    sim.run_until(SEC, 5, |s| newest_run(s) != first);
    sim.tick(SEC);
    assert_eq!(
        sim.phase(),
        Some(RolloutPhase::Progressing),
        "measuring again"
    );
    assert_eq!(sim.route_weight(), 20, "traffic stayed where it was");
    let second = newest_run(&sim);
    verdict(&mut sim, &second, AnalysisPhase::Inconclusive);
    sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.annotate("sluice.dev/promote", "p1");
    sim.run_until(SEC, 30, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(aborts(&sim.plans), 0);
}

#[test]
fn blue_green_cannot_tell_holds_before_and_after_the_switch_or_switches_back() {
    // (pre-promotion?, setting, phase, active Service on the new version?)
    let cases = [
        (true, None, RolloutPhase::Paused, false),
        (false, None, RolloutPhase::Paused, true),
        (
            true,
            Some(CannotTellAction::RollbackTraffic),
            RolloutPhase::Aborted,
            false,
        ),
        (
            false,
            Some(CannotTellAction::RollbackTraffic),
            RolloutPhase::Aborted,
            false,
        ),
    ];
    for (pre, setting, expected, on_new) in cases {
        let mut sim = blue_green_sim(pre, setting);
        sim.set_image("web:2");
        sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
        let run = newest_run(&sim);
        verdict(&mut sim, &run, AnalysisPhase::Error);
        sim.run_until(SEC, 10, |s| s.phase() == Some(expected));
        sim.tick(SEC);
        let active = sim.selector_of("web-stable");
        let want = if on_new { hash("web:2") } else { hash("web:1") };
        assert_eq!(active, Some(want), "pre={pre} {setting:?}");
        if let Some(abort) = status(&sim).abort {
            assert!(abort.keep_git, "pre={pre}: {}", abort.reason);
        }
    }
}

#[test]
fn the_progress_deadline_aborts_when_asked_and_removes_the_stuck_pods_at_once() {
    for abort_on_deadline in [false, true] {
        let mut sim = canary_sim(None);
        sim.rollout.spec.progress_deadline_seconds = Some(30);
        sim.rollout.spec.abort_on_progress_deadline = abort_on_deadline;
        sim.broken.push(hash("web:2"));
        sim.set_image("web:2");
        let expected = if abort_on_deadline {
            RolloutPhase::Aborted
        } else {
            RolloutPhase::Degraded
        };
        sim.run_until(SEC * 5, 20, |s| s.phase() == Some(expected));
        let st = status(&sim);
        let reason = st.conditions.iter().find(|c| c.type_ == "Degraded");
        assert_eq!(
            reason.map(|c| c.reason.as_str()),
            Some("ProgressDeadlineExceeded")
        );
        if abort_on_deadline {
            let abort = st
                .abort
                .clone()
                .unwrap_or_else(|| panic!("aborted: {st:?}"));
            assert!(abort.keep_git, "a stuck update is no verdict on the image");
            assert!(
                abort.message.contains("no progress for 30s"),
                "{}",
                abort.message
            );
            assert_eq!(
                sim.replicas_of(&hash("web:2")),
                Some(0),
                "stuck pods go at once"
            );
            assert_eq!(sim.route_weight(), 0);
            assert_eq!(aborts(&sim.plans), 1);
        } else {
            assert!(st.abort.is_none());
        }
    }
}

#[test]
fn a_known_bad_revision_that_comes_back_is_refused_until_retry() {
    for blue_green in [false, true] {
        let mut sim = if blue_green {
            blue_green_sim(true, None)
        } else {
            canary_sim(None)
        };
        let bad = hash("web:2");
        sim.set_image("web:2");
        sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
        let run = newest_run(&sim);
        verdict(&mut sim, &run, AnalysisPhase::Failed);
        sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Aborted));
        // The revert lands: the template is back on web:1.
        sim.set_image("web:1");
        sim.run_until(SEC, 60, |s| s.phase() == Some(RolloutPhase::Healthy));
        let runs = sim.observed.analysis_runs.len();
        let known = status(&sim).aborted_revisions;
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].images, vec!["web:2".to_string()]);
        // Image automation commits web:2 again.
        sim.set_image("web:2");
        let plan = sim.tick(SEC);
        let abort = plan
            .newly_aborted
            .clone()
            .unwrap_or_else(|| panic!("refused: {:?}", plan.status));
        assert_eq!(abort.reason, "KnownBadRevision");
        assert!(
            !abort.keep_git,
            "the commit that brought it back is reverted again"
        );
        assert!(abort.message.contains("web:2"), "{}", abort.message);
        for _ in 0..5 {
            sim.tick(SEC);
        }
        assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
        assert_eq!(
            aborts(&sim.plans[sim.plans.len() - 6..]),
            1,
            "one refusal, one alert"
        );
        let scaled_up = sim.plans[sim.plans.len() - 6..]
            .iter()
            .flat_map(|p| &p.writes)
            .any(|w| matches!(w, Write::ApplyReplicaSet(rs) if rs.hash == bad && rs.replicas > 0));
        assert!(!scaled_up, "no pod of it starts");
        assert_eq!(sim.selector_of("web-stable"), Some(hash("web:1")));
        assert_eq!(
            sim.observed.analysis_runs.len(),
            runs,
            "no run read or created"
        );
        // An operator insists: it is rolled out again, measured afresh.
        sim.annotate("sluice.dev/retry", "t1");
        sim.run_until(SEC, 20, |s| s.observed.analysis_runs.len() > runs);
        assert!(status(&sim).aborted_revisions.is_empty());
        assert_ne!(sim.phase(), Some(RolloutPhase::Aborted));
    }
}

#[test]
fn remembered_aborts_stay_bounded() {
    let mut sim = canary_sim(None);
    for n in 2..20 {
        sim.set_image(&format!("web:{n}"));
        let canary = hash(&format!("web:{n}"));
        sim.run_until(SEC, 20, |s| {
            status(s).canary_revision.as_ref() == Some(&canary)
        });
        sim.annotate("sluice.dev/abort", &format!("a{n}"));
        sim.run_until(SEC, 5, |s| {
            status(s).abort.is_some_and(|a| a.revision == canary)
        });
    }
    let known = status(&sim).aborted_revisions;
    assert_eq!(known.len(), super::KNOWN_BAD_LIMIT);
    assert_eq!(
        known.last().map(|k| k.revision.clone()),
        Some(hash("web:19"))
    );
}

#[test]
fn the_git_revert_condition_belongs_to_its_release() {
    use crate::crd::{GitRevertStatus, PromotionStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut sim = canary_sim(None);
    let at = sim.now;
    let mut st = status(&sim);
    st.git_revert = Some(GitRevertStatus {
        state: crate::crd::RevertState::Reverted,
        canary_revision: "bad".into(),
        revert_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        last_attempt: Some(Time(at)),
        ..Default::default()
    });
    sim.rollout.status = Some(st.clone());
    sim.tick(SEC);
    let shown = |sim: &Sim| {
        status(sim)
            .conditions
            .iter()
            .any(|c| c.type_ == "GitReverted")
    };
    assert!(shown(&sim), "the revert of the last release is shown");
    st = status(&sim);
    st.last_promotion = Some(PromotionStatus {
        revision: "good".into(),
        previous: "older".into(),
        at: Time(at + SEC * 60),
    });
    sim.rollout.status = Some(st);
    sim.tick(SEC);
    assert!(!shown(&sim), "a later healthy release ends it");
}

#[test]
fn only_a_verdict_pages_as_aborted_and_cannot_tell_has_its_own_alert() {
    use crate::alerts::events::{Trigger, occurrences};
    use crate::crd::AlertEvent;
    let events = |sim: &Sim| -> Vec<AlertEvent> {
        occurrences(&status(sim))
            .into_iter()
            .filter_map(|o| match o.trigger {
                Trigger::Event(event) => Some(event),
                Trigger::Resolve { .. } => None,
            })
            .collect()
    };
    // (verdict, setting, alert expected, `aborted` expected)
    let cases = [
        (AnalysisPhase::Failed, None, AlertEvent::Aborted, true),
        (
            AnalysisPhase::Error,
            Some(CannotTellAction::RollbackTraffic),
            AlertEvent::AnalysisError,
            false,
        ),
        (AnalysisPhase::Error, None, AlertEvent::AnalysisError, false),
        (
            AnalysisPhase::Inconclusive,
            Some(CannotTellAction::RollbackTraffic),
            AlertEvent::Inconclusive,
            false,
        ),
    ];
    for (phase, setting, expected, aborted) in cases {
        let mut sim = canary_sim(setting);
        sim.set_image("web:2");
        sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
        let run = newest_run(&sim);
        verdict(&mut sim, &run, phase);
        sim.tick(SEC);
        sim.tick(SEC);
        let seen = events(&sim);
        assert!(seen.contains(&expected), "{phase:?} {setting:?}: {seen:?}");
        assert_eq!(
            seen.contains(&AlertEvent::Aborted),
            aborted,
            "{phase:?} {setting:?}: {seen:?}"
        );
    }
    assert_eq!(
        AlertEvent::AnalysisError.default_severity(),
        crate::crd::AlertSeverity::Warning,
        "an outage pages as a warning"
    );
    // The progress deadline is an abort: it pages.
    let mut sim = canary_sim(None);
    sim.rollout.spec.progress_deadline_seconds = Some(30);
    sim.rollout.spec.abort_on_progress_deadline = true;
    sim.broken.push(hash("web:2"));
    sim.set_image("web:2");
    sim.run_until(SEC * 5, 20, |s| s.phase() == Some(RolloutPhase::Aborted));
    assert!(events(&sim).contains(&AlertEvent::Aborted));
}
