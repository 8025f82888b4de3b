//! The "Examples:" that close each command's `--help` (and its man page).

/// `sluice`.
pub const ROOT: &str = "\
Examples:
  sluice rollout status web -n shop --watch
  sluice --context staging rollout promote web
  sluice crds | kubectl apply --server-side -f -
  kubectl sluice rollout status web    (installed as a kubectl plugin)";

/// `sluice controller`.
pub const CONTROLLER: &str = "\
Examples:
  sluice controller                     (in a pod: its service account)
  sluice controller --context dev --no-leader-election
  sluice controller --namespace apps --lease-name sluice-apps";

/// `sluice rollout`.
pub const ROLLOUT: &str = "\
Examples:
  sluice rollout list -A
  sluice rollout get web --watch
  sluice rollout status web --watch --timeout 10m
  sluice rollout promote web -n shop
  sluice rollout abort web --revert";

/// `sluice rollout status`.
pub const STATUS: &str = "\
Examples:
  sluice rollout status web
  sluice rollout status web -n shop --watch --timeout 10m
  sluice rollout status web -o yaml        (the live Rollout object)";

/// `sluice rollout list`.
pub const LIST: &str = "\
Examples:
  sluice rollout list
  sluice rollout list -A                   (every namespace)
  sluice rollout list -n shop -o json | jq -r '.items[].metadata.name'";

/// `sluice rollout get`.
pub const GET: &str = "\
Examples:
  sluice rollout get web
  sluice rollout get web -n shop --watch --timeout 10m
  sluice rollout get web -o json | jq '.revisions[0].images'";

/// `sluice rollout set`.
pub const SET: &str = "\
Example:
  sluice rollout set image web web=registry.example.com/web:1.4.2";

/// `sluice rollout set image`.
pub const SET_IMAGE: &str = "\
Examples:
  sluice rollout set image web web=registry.example.com/web:1.4.2
  sluice rollout set image web -n shop web=web:1.4.2 sidecar=envoy:1.31
  sluice rollout set image web '*=registry.example.com/web:1.4.2'   (every container)";

/// `sluice rollout undo`.
pub const UNDO: &str = "\
Examples:
  sluice rollout undo web                  (back to the previous revision)
  sluice rollout undo web --to-revision 3
  sluice rollout undo web --spec-patch     (patch the cluster even with spec.git)";

/// `sluice rollout promote`.
pub const PROMOTE: &str = "\
Examples:
  sluice rollout promote web
  sluice rollout promote web --full";

/// `sluice rollout abort`.
pub const ABORT: &str = "\
Examples:
  sluice rollout abort web
  sluice rollout abort web --revert      (also revert the image commit in Git)";

/// `sluice rollout retry`.
pub const RETRY: &str = "\
Example:
  sluice rollout retry web -n shop";

/// `sluice rollout restart`.
pub const RESTART: &str = "\
Examples:
  sluice rollout restart web
  sluice rollout restart web -n shop --in 30m     (at now + 30 minutes)
  sluice rollout status web --watch               (then: progress, and status.restartedAt)";

/// `sluice rollout pause`.
pub const PAUSE: &str = "\
Example:
  sluice rollout pause web";

/// `sluice rollout resume`.
pub const RESUME: &str = "\
Example:
  sluice rollout resume web";

/// `sluice analyze`.
pub const ANALYZE: &str = "\
Examples:
  sluice analyze -f analysis-templates/error-rate-vs-baseline.yaml -n shop --rollout web \\
    --canary 7882wclslg --baseline wctbhsh2rl --arg prometheus=http://localhost:9090 --since 15m
  sluice analyze --template error-rate --canary 7882wclslg --baseline wctbhsh2rl
  sluice analyze --live -f web-error-rate.yaml -n shop --rollout web \\
    --canary 7882wclslg --baseline wctbhsh2rl --arg metrics-url=http://localhost:8080/api/v1/error-rate
  sluice analyze --live --for 5m --template error-rate --canary 7882wclslg --baseline wctbhsh2rl";

/// `sluice lint`.
pub const LINT: &str = "\
Examples:
  sluice lint rollout.yaml analysis-templates/*.yaml
  kustomize build overlays/prod | sluice lint -
  helm template web ./chart | sluice lint -";

/// `sluice crds`.
pub const CRDS: &str = "\
Example:
  sluice crds | kubectl apply --server-side -f -";

/// `sluice completion`.
pub const COMPLETION: &str = "\
Examples:
  source <(sluice completion bash)
  sluice completion bash > /etc/bash_completion.d/sluice
  sluice completion zsh > \"${fpath[1]}/_sluice\"
  sluice completion fish > ~/.config/fish/completions/sluice.fish";

/// `sluice man`.
pub const MAN: &str = "\
Examples:
  sluice man > /usr/local/share/man/man1/sluice.1
  sluice man --out-dir /usr/local/share/man/man1    (one page per command)";

/// `sluice migrate`.
pub const MIGRATE: &str = "\
Examples:
  sluice migrate rollout.yaml analysis.yaml > sluice.yaml
  sluice migrate deployment.yaml canary.yaml metric-templates.yaml alert-providers.yaml
  kubectl get rollouts.argoproj.io web -o yaml | sluice migrate - | kubectl apply --dry-run=server -f -
  sluice migrate -q app/*.yaml 2> migrate-report.txt || echo \"exit $?: see the report\"";
