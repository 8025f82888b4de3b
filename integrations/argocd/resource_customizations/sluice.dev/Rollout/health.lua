-- Argo CD health of a Sluice Rollout (sluice.dev/v1alpha1). Argo CD runs this
-- with the live object as the global `obj` and reads hs.status / hs.message.
-- Sluice persists its state machine in status.phase; the mapping is
-- documented in integrations/argocd/README.md. Lua 5.1 compatible (gopher-lua).
local hs = {}
local status = obj.status
local generation = obj.metadata.generation

-- A status that describes an older spec says nothing about the new one.
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice controller to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local message = status.message
if message == nil or message == "" then
  message = tostring(phase)
end

if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  -- A pause step, an operator's pause, a blue-green preview waiting for
  -- promotion, or an analysis that could not tell: all wait for a human.
  hs.status = "Suspended"
  if status.pauseReason ~= nil then
    message = status.pauseReason .. ": " .. message
  end
elseif phase == "Aborted" then
  -- Traffic is back on stable; the message names the reason.
  hs.status = "Degraded"
elseif phase == "Degraded" then
  hs.status = "Degraded"
else
  -- Progressing, or a phase this script does not know yet.
  hs.status = "Progressing"
end
hs.message = message
return hs
