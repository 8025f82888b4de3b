-- Argo CD action "promote-full" on a Sluice Rollout: skip the remaining steps (and blue-green analyses) and go to 100%.
-- Same request as `sluice rollout promote --full`: the annotation sluice.dev/promote-full set to a new
-- token. The token is derived from the object's resourceVersion, which moves
-- with every write, so it always differs from the token Sluice last handled
-- (status.handledControls) and the output is reproducible for tests.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = "argocd-" .. tostring(obj.metadata.resourceVersion)
if obj.metadata.annotations["sluice.dev/promote-full"] == token then
  token = token .. "-again"
end
obj.metadata.annotations["sluice.dev/promote-full"] = token
return obj
