#!/usr/bin/env bash
# The Sluice demo on a real Kubernetes control plane built on this machine.
#
#   scripts/demo.sh          build what is missing, start the stack, run the story
#   scripts/demo.sh stop     tear the stack down
#
# The story: a GitOps repository (a local bare Git repository, synced by a
# loop that plays Argo CD's auto-sync) holds a Rollout. CI pushes a new image;
# Sluice moves traffic 10 → 25 → 50 → 100% on a Gateway API HTTPRoute while
# Prometheus shows requests following the weights, and the analysis at 10%
# passes early. Then CI pushes an image that answers 10% errors; the analysis
# finds the canary worse than the baseline, Sluice aborts, traffic goes back
# to stable at once, Sluice reverts the image commit in Git, and the sync
# loop brings the Rollout home. A signed webhook (sluice-alert-sink, playing a
# team's endpoint) hears about the promotion, the abort with its numbers, and
# the revert.
#
# Simulated: only the users and the application's metrics (sluice-trafficgen);
# pods are KWOK pods. Everything else is real: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, Prometheus, Git, Sluice.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${SLUICE_DEMO_DIR:-/tmp/sluice-demo}
NS=demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

stop_demo() {
  for pidfile in "$DEMO"/pids/*.pid; do
    [[ -e $pidfile ]] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [[ -x target/debug/sluice-testcluster && -d $DEMO/cluster ]]; then
    target/debug/sluice-testcluster stop --data-dir "$DEMO/cluster" 2>/dev/null || true
  fi
}

if [[ ${1:-} == stop ]]; then
  stop_demo
  echo "demo stopped"
  exit 0
fi

say "Building (first run on a fresh machine: Debian packages, then Kubernetes from source, ~10-15 min)"
bash tests/cluster/install-deps.sh
CACHE=$(bash tests/cluster/build.sh | tail -n 1)
cargo build --workspace --bins --locked --quiet
BIN=$ROOT/target/debug
KUBECTL=$CACHE/bin/kubectl

stop_demo
rm -rf "$DEMO"
mkdir -p "$DEMO/pids" "$DEMO/logs"

background() { # name, command...
  local name=$1
  shift
  "$@" >"$DEMO/logs/$name.out" 2>"$DEMO/logs/$name.log" </dev/null &
  echo $! >"$DEMO/pids/$name.pid"
}

say "Starting the control plane: etcd, kube-apiserver, controller-manager, scheduler, KWOK (3 nodes), Prometheus"
background cluster "$BIN/sluice-testcluster" run --prometheus --nodes 3 \
  --bin-dir "$CACHE/bin" --data-dir "$DEMO/cluster"
for _ in $(seq 1 600); do
  grep -q '^SLUICE_CLUSTER_READY' "$DEMO/logs/cluster.out" 2>/dev/null && break
  kill -0 "$(cat "$DEMO/pids/cluster.pid")" 2>/dev/null || { tail -30 "$DEMO/logs/cluster.log"; exit 1; }
  sleep 0.2
done
grep -q '^SLUICE_CLUSTER_READY' "$DEMO/logs/cluster.out" || { echo "cluster did not start"; tail -30 "$DEMO/logs/cluster.log"; exit 1; }
INFO=$DEMO/cluster/cluster.json
export KUBECONFIG
KUBECONFIG=$(jq -r .kubeconfig "$INFO")
PROM=$(jq -r .prometheus "$INFO")
TARGETS=$(jq -r .prometheusTargetsDir "$INFO")
note "Kubernetes $(jq -r .kubernetesVersion "$INFO") at $(jq -r .apiserver "$INFO"), Prometheus at $PROM"
"$KUBECTL" get nodes

say "Installing the CRDs and the demo namespace"
"$KUBECTL" apply --server-side -k crds/ >/dev/null
for crd in rollouts analysisruns analysistemplates clusteranalysistemplates alerttargets; do
  for _ in $(seq 1 300); do
    [[ $("$KUBECTL" get crd "$crd.sluice.dev" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]] && break
    sleep 0.2
  done
done
"$KUBECTL" create namespace "$NS" >/dev/null

say "A GitOps repository with examples/gateway-canary: pauses of 10 s, and an analysis step at 10% (error rate against the baseline)"
git init -q --bare -b main "$DEMO/gitops.git"
git clone -q "$DEMO/gitops.git" "$DEMO/ci" 2>/dev/null
mkdir -p "$DEMO/ci/apps/web"
cp examples/gateway-canary/services.yaml examples/gateway-canary/httproute.yaml "$DEMO/ci/apps/web/"
# The first pause becomes an analysis step (canary against baseline error
# rate), and spec.git tells Sluice where the Rollout lives, for the revert.
sed -e '0,/- pause: {duration: 30s}/s//- analysis: {templates: [{templateName: error-rate}]}/' \
  -e 's/duration: 30s/duration: 10s/' -e 's/DelaySeconds: 30/DelaySeconds: 10/' \
  -e "/^spec:/a\\  git:\\n    repository: $DEMO/gitops.git\\n    branch: main\\n    path: apps/web" \
  examples/gateway-canary/rollout.yaml >"$DEMO/ci/apps/web/rollout.yaml"
# The team's webhook hears about promotions, aborts and reverts.
cat >>"$DEMO/ci/apps/web/rollout.yaml" <<'YAML'
  alerts:
    subscriptions:
      - target: team-hook
        events: [promoted, aborted, reverted, revertFailed]
YAML
cat >"$DEMO/ci/apps/web/analysis.yaml" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  metrics:
    - name: errors-vs-baseline
      interval: 5s
      initialDelay: 5s
      count: 12
      provider:
        prometheus:
          address: $PROM
          events: sum(increase(http_requests_total{namespace="{{args.namespace}}",app="{{args.rollout}}",pod_template_hash="{{revision}}",code="500"}[{{interval}}]))
          exposure: sum(increase(http_requests_total{namespace="{{args.namespace}}",app="{{args.rollout}}",pod_template_hash="{{revision}}"}[{{interval}}]))
      compare:
        kind: Counts
        direction: Increase
        tolerance: {relative: 0.5, absolute: 0.02}
        # Shortened for a demo at 200 req/s; production defaults are 6 intervals, 5m, 2000 requests.
        minimum: {intervals: 6, duration: 30s, requests: 200}
YAML
commit() { # message
  git -C "$DEMO/ci" -c user.name="CI" -c user.email="ci@example.com" commit -q -am "$1"
  git -C "$DEMO/ci" push -q origin main
  note "pushed $(git -C "$DEMO/ci" rev-parse --short HEAD) \"$1\""
}
git -C "$DEMO/ci" add .
commit "web 1.0.0"

say "Starting the GitOps sync loop, the Sluice controller, the traffic generator (200 req/s) and the team's webhook"
SINK_KEY=demo-signing-key-$RANDOM$RANDOM
background alert-sink "$BIN/sluice-alert-sink" --signing-key "$SINK_KEY" --out "$DEMO/alerts.jsonl"
for _ in $(seq 1 100); do grep -q '^SLUICE_ALERT_SINK' "$DEMO/logs/alert-sink.out" 2>/dev/null && break; sleep 0.1; done
SINK=$(awk '/^SLUICE_ALERT_SINK/ {print $2}' "$DEMO/logs/alert-sink.out")
# The URL and key stay in a Secret; the AlertTarget only names it.
"$KUBECTL" -n "$NS" create secret generic team-hook --from-literal=url="$SINK/hooks/team" \
  --from-literal=signingKey="$SINK_KEY" >/dev/null
"$KUBECTL" -n "$NS" apply --server-side -f - >/dev/null <<'YAML'
apiVersion: sluice.dev/v1alpha1
kind: AlertTarget
metadata:
  name: team-hook
spec:
  type: Webhook
  secretName: team-hook
YAML
background gitops-sync "$BIN/sluice-gitops-sync" --repo "$DEMO/gitops.git" --path apps/web \
  --namespace "$NS" --work-dir "$DEMO/sync-work"
background controller "$BIN/sluice" controller --namespace "$NS" --no-leader-election --listen 127.0.0.1:0 \
  --git-workspace "$DEMO/git-workspace"
background trafficgen "$BIN/sluice-trafficgen" --namespace "$NS" --rollout web --rps 200 \
  --prometheus-targets-dir "$TARGETS"
"$BIN/sluice" rollout -n "$NS" status web --watch --timeout 2m | tail -n 9

# One line every 3 s: what Sluice reports and what Prometheus measures per revision.
narrate() { # seconds, until-phase
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    local rollout phase
    rollout=$("$KUBECTL" -n "$NS" get rollout web -o json)
    phase=$(jq -r '.status.phase // "-"' <<<"$rollout")
    local rates
    rates=$(curl -s "$PROM/api/v1/query" --data-urlencode \
      "query=sum by (pod_template_hash) (rate(http_requests_total{namespace=\"$NS\"}[5s])) > 0" |
      jq -r '[.data.result[] | "\(.metric.pod_template_hash) \(.value[1] | tonumber | floor) req/s"] | join(", ")')
    local errors
    errors=$(curl -s "$PROM/api/v1/query" --data-urlencode \
      "query=sum by (pod_template_hash) (rate(http_requests_total{namespace=\"$NS\",code=\"500\"}[10s])) / (sum by (pod_template_hash) (rate(http_requests_total{namespace=\"$NS\"}[10s])) > 0)" |
      jq -r '[.data.result[] | select(.value[1] != "NaN") | "\(.metric.pod_template_hash) \(.value[1] | tonumber * 1000 | floor / 10)%"] | join(", ")')
    printf '   %s  %-10s %-28s canary %3s%%  | Prometheus: %s | errors: %s\n' \
      "$(date +%T)" "$phase" "$(jq -r '.status.stepLabel // "-"' <<<"$rollout")" \
      "$(jq -r '.status.currentWeight // 0' <<<"$rollout")" "${rates:--}" "${errors:--}"
    [[ -n ${2:-} && $phase == "$2" ]] && return 0
    sleep 3
  done
}

say "CI pushes web:1.0.1. Watch the weights move and Prometheus follow them"
sed -i 's#web:1.0.0#web:1.0.1#' "$DEMO/ci/apps/web/rollout.yaml"
commit "web 1.0.1"
sleep 3
narrate 150 Healthy

say "CI pushes web:1.0.2-err10, an image that answers 10% errors; the analysis at 10% judges it"
sed -i 's#web:1.0.1#web:1.0.2-err10#' "$DEMO/ci/apps/web/rollout.yaml"
commit "web 1.0.2"
sleep 3
narrate 90 Aborted
say "Traffic is back on stable; Sluice now reverts the image commit in Git, and the sync loop applies it"
narrate 60 Healthy
"$BIN/sluice" rollout -n "$NS" status web
note "the GitOps repository now ends with Sluice's revert:"
git --git-dir "$DEMO/gitops.git" log --format='     %h %an: %s' -3 main
git --git-dir "$DEMO/gitops.git" log -1 --format='%b' main | sed 's/^/       /'
note "every measurement and the numbers: $KUBECTL -n $NS get analysisruns -o yaml"
note "the team's webhook received (signatures checked with the shared key):"
sed 's/^/     /' "$DEMO/logs/alert-sink.out" | grep ALERT || note "(no alert yet: see $DEMO/logs/controller.log)"
note "full alert bodies: $DEMO/alerts.jsonl"

say "The demo keeps running. Look around:"
note "export KUBECONFIG=$KUBECONFIG"
note "$KUBECTL -n $NS get rollouts,replicasets,pods,httproutes"
note "$BIN/sluice rollout -n $NS status web"
note "Prometheus: $PROM   controller logs: $DEMO/logs/controller.log"
note "stop everything: scripts/demo.sh stop"
