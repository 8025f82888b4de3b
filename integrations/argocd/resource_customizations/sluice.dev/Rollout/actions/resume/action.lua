-- Argo CD action "resume" on a Sluice Rollout: release a hold made with
-- "pause". Same request as `sluice rollout resume`: the annotation
-- sluice.dev/paused is removed.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["sluice.dev/paused"] = nil
  if next(obj.metadata.annotations) == nil then
    -- An empty table would be sent as an empty list; drop the map instead.
    obj.metadata.annotations = nil
  end
end
return obj
