-- Argo CD health of a Sluice AnalysisRun (sluice.dev/v1alpha1). Argo CD runs
-- this with the live object as the global `obj` and reads hs.status /
-- hs.message. Lua 5.1 compatible (gopher-lua).
local hs = {}
local phase = nil
local message = nil
if obj.status ~= nil then
  phase = obj.status.phase
  message = obj.status.message
end
if phase == nil then
  phase = "Pending"
end
if message == nil or message == "" then
  message = phase
end

if phase == "Successful" then
  hs.status = "Healthy"
elseif phase == "Terminated" then
  -- Stopped because nothing waits on it any more: no verdict, nothing wrong.
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Error" then
  hs.status = "Degraded"
elseif phase == "Inconclusive" then
  -- The Rollout holds (or rolls traffic back) and waits for an operator.
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
