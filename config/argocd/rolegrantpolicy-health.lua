-- Argo CD health check for invites.rolecall.dev/RoleGrantPolicy.
--
--   Healthy      Ready is True: the selector parses and every CEL rule compiles
--   Degraded     Ready is False: the message names the field and the problem
--   Progressing  rolecall has not reported on the current spec yet
--
-- Argo CD runs custom checks with only Lua's base and table libraries: no string functions.

local hs = {status = "Progressing", message = "waiting for rolecall to check the policy"}

if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for rolecall to check generation " .. generation
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.message ~= nil then
      hs.message = c.message
    end
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.status == "False" then
      hs.status = "Degraded"
    end
  end
end
return hs
