-- Argo CD action "pause" on a Sluice Rollout: hold the update where it is.
-- Same request as `sluice rollout pause`: annotation sluice.dev/paused=true.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["sluice.dev/paused"] = "true"
return obj
