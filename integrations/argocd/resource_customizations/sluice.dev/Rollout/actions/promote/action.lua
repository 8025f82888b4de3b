-- Argo CD action "promote" on a Sluice Rollout: move past the current step (a pause, an analysis, a wait; a blue-green switch).
-- Same request as `sluice rollout promote`: the annotation sluice.dev/promote set to a new
-- token. The token is derived from the object's resourceVersion, which moves
-- with every write, so it always differs from the token Sluice last handled
-- (status.handledControls) and the output is reproducible for tests.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = "argocd-" .. tostring(obj.metadata.resourceVersion)
if obj.metadata.annotations["sluice.dev/promote"] == token then
  token = token .. "-again"
end
obj.metadata.annotations["sluice.dev/promote"] = token
return obj
