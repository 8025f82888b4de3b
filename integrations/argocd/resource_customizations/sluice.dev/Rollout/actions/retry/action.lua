-- Argo CD action "retry" on a Sluice Rollout: start an aborted update again from step 1 with new analysis runs, or measure again an analysis that could not tell.
-- Same request as `sluice rollout retry`: the annotation sluice.dev/retry set to a new
-- token. The token is derived from the object's resourceVersion, which moves
-- with every write, so it always differs from the token Sluice last handled
-- (status.handledControls) and the output is reproducible for tests.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = "argocd-" .. tostring(obj.metadata.resourceVersion)
if obj.metadata.annotations["sluice.dev/retry"] == token then
  token = token .. "-again"
end
obj.metadata.annotations["sluice.dev/retry"] = token
return obj
