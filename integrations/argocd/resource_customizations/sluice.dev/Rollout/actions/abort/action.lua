-- Argo CD action "abort" on a Sluice Rollout: send all traffic back to stable now.
-- Same request as `sluice rollout abort`: the annotation sluice.dev/abort set to a new
-- token. The token is derived from the object's resourceVersion, which moves
-- with every write, so it always differs from the token Sluice last handled
-- (status.handledControls) and the output is reproducible for tests.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = "argocd-" .. tostring(obj.metadata.resourceVersion)
if obj.metadata.annotations["sluice.dev/abort"] == token then
  token = token .. "-again"
end
obj.metadata.annotations["sluice.dev/abort"] = token
-- Like the CLI without --revert/--no-revert: spec.git.revertOnManualAbort decides.
obj.metadata.annotations["sluice.dev/abort-revert"] = nil
return obj
