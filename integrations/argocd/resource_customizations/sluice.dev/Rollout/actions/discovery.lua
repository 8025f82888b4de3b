-- Argo CD action discovery for a Sluice Rollout: which actions make sense in
-- the object's current state. Mirrors the CLI's "nothing to promote / abort /
-- retry" rules (src/cli/rollout.rs). Lua 5.1 compatible (gopher-lua), and
-- uses only what Argo CD opens for argocd-cm scripts: base, table, os.
local actions = {}
local status = obj.status
if status == nil then
  status = {}
end
local annotations = obj.metadata.annotations
if annotations == nil then
  annotations = {}
end

local in_flight = status.canaryRevision ~= nil
local aborted = status.abort ~= nil
-- Held on an analysis that could not tell: retry measures it again. Listed
-- rather than matched, because Argo CD opens no string library for scripts
-- from argocd-cm.
local held_reasons = {
  ["AnalysisError"] = true, ["AnalysisInconclusive"] = true,
  ["BackgroundAnalysisError"] = true, ["BackgroundAnalysisInconclusive"] = true,
  ["PrePromotionAnalysisError"] = true, ["PrePromotionAnalysisInconclusive"] = true,
  ["PostPromotionAnalysisError"] = true, ["PostPromotionAnalysisInconclusive"] = true,
}
local held = status.pauseReason ~= nil and held_reasons[status.pauseReason] == true
local paused = annotations["sluice.dev/paused"] == "true"
local moving = in_flight and not aborted

actions["promote"] = {["disabled"] = not moving, ["iconClass"] = "fa fa-fw fa-forward"}
actions["promote-full"] = {["disabled"] = not moving, ["iconClass"] = "fa fa-fw fa-angle-double-right"}
actions["abort"] = {["disabled"] = not moving, ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["retry"] = {["disabled"] = not (aborted or held), ["iconClass"] = "fa fa-fw fa-redo-alt"}
actions["pause"] = {["disabled"] = paused or not moving, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
