use super::*;

/// Lint one file named `f.yaml`; the problems as `LINE:COLUMN: object: message`.
fn problems(text: &str) -> Vec<String> {
    let (found, _) = lint(&[("f.yaml".into(), text.into())]);
    found
        .iter()
        .map(|p| {
            assert_eq!(p.file, "f.yaml");
            format!("{}:{}: {}: {}", p.line, p.column, p.object, p.message)
        })
        .collect()
}

const ROLLOUT: &str = "apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: web:1
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      trafficRouting:
        gatewayAPI:
          httpRoute: web
      steps:
        - setWeight: 10
        - pause: {duration: 30s}
        - setWeight: 50
";

#[test]
fn a_valid_rollout_beside_other_kinds_has_no_problems() {
    let text =
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: web-stable\n---\n{ROLLOUT}");
    let (found, checked) = lint(&[("f.yaml".into(), text)]);
    assert_eq!(found, Vec::new());
    assert_eq!(checked, 1, "the Service is skipped");
}

#[test]
fn a_route_step_must_name_a_route_listed_in_managed_routes() {
    let text = ROLLOUT
        .replace(
            "          httpRoute: web\n",
            "          httpRoute: web\n        managedRoutes: [{name: staff}]\n",
        )
        .replace(
            "        - setWeight: 50\n",
            "        - setHeaderRoute:\n            name: beta\n            match: [{headerName: x-beta, headerValue: {exact: \"1\"}}]\n",
        );
    assert_eq!(
        problems(&text),
        [
            "30:13: Rollout web: steps[2].setHeaderRoute.name \"beta\" is not listed in trafficRouting.managedRoutes"
        ]
    );
    let listed = text.replace("[{name: staff}]", "[{name: staff}, {name: beta}]");
    assert_eq!(problems(&listed), Vec::<String>::new());
}

#[test]
fn problems_point_at_the_line_and_column_in_the_right_document() {
    let bad = ROLLOUT.replace(
        "      stableService: web-stable",
        "      stableServise: web-stable",
    );
    let weights = ROLLOUT.replace("        - setWeight: 50", "        - setWeight: 5");
    let text = format!("# two Rollouts\n---\n{bad}---\n{weights}");
    let found = problems(&text);
    // Document 1 starts on line 3, document 2 on line 32.
    assert_eq!(
        found,
        [
            // The CRD's CEL rule; the controller's check says the same and is not repeated.
            "21:5: Rollout web: spec.strategy.canary: trafficRouting needs both stableService and canaryService",
            "22:7: Rollout web: spec.strategy.canary.stableServise: unknown field \"stableServise\"",
            "59:11: Rollout web: steps[2].setWeight 5 is lower than the earlier 10; weights must not decrease",
        ]
    );
}

#[test]
fn a_schema_violation_is_not_repeated_by_the_typed_parse() {
    let text = ROLLOUT
        .replace("  replicas: 4", "  replicas: four")
        .replace("        - setWeight: 50", "        - setWeight: 500");
    let found = problems(&text);
    assert_eq!(
        found,
        [
            "6:3: Rollout web: spec.replicas: must be an integer, not string",
            // The CRD's CEL rule, evaluated offline.
            "28:11: Rollout web: spec.strategy.canary.steps[2].setWeight: 500: setWeight must be between 0 and 100",
        ],
        "the typed parse fails on spec.replicas and says nothing more"
    );
}

#[test]
fn yaml_syntax_errors_and_unknown_kinds_are_reported_not_panicked_on() {
    let found = problems(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nspec: [unclosed\n---\napiVersion: sluice.dev/v1alpha1\nkind: Rolout\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("4:1: document 1: not valid YAML"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("6:1: Rolout (no name): unknown kind \"Rolout\""),
        "{found:?}"
    );
    assert_eq!(problems(""), Vec::<String>::new());
}

const TEMPLATE: &str = "apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: errors
spec:
  args:
    - name: prometheus
    - name: limit
      value: \"0.01\"
  metrics:
    - name: error-rate
      interval: 30s
      provider:
        prometheus:
          address: \"{{args.prometheus}}\"
          query: sum(rate(errors{app=\"{{args.rollout}}\",x=\"{{args.typo}}\"}[1m]))
      successCondition: \"result <= 0.01 &&& result >= 0\"
";

#[test]
fn template_conditions_args_and_the_rollouts_that_use_them_are_checked() {
    let rollout = ROLLOUT.replace(
        "        - setWeight: 50",
        "        - analysis:\n            templates:\n              - templateName: errors\n            args:\n              - name: limt\n                value: \"1\"",
    );
    let found = problems(&format!("{TEMPLATE}---\n{rollout}"));
    assert_eq!(found.len(), 4, "{found:#?}");
    // The condition's own column, inside the quoted value: the third `&` is column 18 of the condition, 43 of the line.
    assert!(
        found[1].starts_with("17:43: AnalysisTemplate errors: error-rate: condition"),
        "{found:#?}"
    );
    assert!(
        found[0].starts_with(
            "16:11: AnalysisTemplate errors: error-rate: {{args.typo}} names no declared argument"
        ),
        "{found:#?}"
    );
    assert!(
        found[2].ends_with("template errors needs argument \"prometheus\", which this analysis does not give (add it to args)"),
        "{found:#?}"
    );
    assert!(found[2].starts_with("48:15: Rollout web:"), "{found:#?}");
    assert!(
        found[3].starts_with(
            "50:15: Rollout web: argument \"limt\" is declared by none of the templates"
        ),
        "{found:#?}"
    );
}

#[test]
fn a_job_metric_lints_clean_and_a_bad_job_spec_or_argument_is_reported() {
    let template = |spec: &str| {
        format!(
            "apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  args:
    - name: url
  metrics:
    - name: smoke-test
      count: 1
      provider:
        job:
          spec:
            backoffLimit: 0
            template:
              spec:
                restartPolicy: Never
{spec}"
        )
    };
    let good = "                containers:
                  - name: smoke
                    image: curl:8
                    args: [\"{{args.url}}/healthz\"]
";
    assert_eq!(problems(&template(good)), Vec::<String>::new());
    let found = problems(&template(&good.replace("args.url", "args.ulr")));
    // The line of the container's `args`, inside the Job spec.
    assert_eq!(
        found,
        [
            "21:21: AnalysisTemplate smoke: smoke-test: {{args.ulr}} names no declared argument (declared: baseline-hash, canary-hash, namespace, rollout, stable-hash, url)"
        ]
    );
    let found = problems(&template("                containers: {name: smoke}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("provider.job.spec is not a batch/v1 JobSpec"),
        "{found:?}"
    );
}

#[test]
fn a_rollout_adopting_a_deployment_is_accepted_and_one_with_a_template_too_is_not() {
    let adopting = ROLLOUT.replace(
        "  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: web:1\n",
        "  workloadRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    scaleDown: progressively\n",
    );
    assert_ne!(adopting, ROLLOUT);
    assert_eq!(problems(&adopting), Vec::<String>::new());
    let both = ROLLOUT.replace(
        "  replicas: 4\n",
        "  replicas: 4\n  workloadRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n",
    );
    assert_eq!(
        problems(&both),
        ["5:1: Rollout web: spec: set exactly one of spec.template and spec.workloadRef"]
    );
    let stateful = adopting.replace("kind: Deployment", "kind: StatefulSet");
    let found = problems(&stateful);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(
            "StatefulSet \"apps/v1\" cannot be adopted; Sluice adopts apps/v1 Deployments only"
        ),
        "{found:?}"
    );
    let neither = adopting.replace(
        "  workloadRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    scaleDown: progressively\n",
        "",
    );
    let found = problems(&neither);
    assert!(
        found
            .iter()
            .any(|p| p.ends_with("set exactly one of spec.template and spec.workloadRef")),
        "{found:?}"
    );
}
