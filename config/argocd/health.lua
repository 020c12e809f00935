-- Argo CD health check for invites.rolecall.dev/Invitation.
--
--   Healthy      Active (redeemable) or Exhausted (every use redeemed: it did its job)
--   Progressing  rolecall has not reported on the current spec yet; Pending while it waits
--                for something that is on its way (a Custom token's Secret synced later);
--                Active while a failed delivery is being retried
--   Degraded     Denied by policy; Pending on something only a person can fix (a weak or
--                unlabeled Custom token, a Secret name taken); Active but the link could
--                not be delivered (DeliveryFailed, DeliveryNotConfigured)
--   Suspended    Revoked, Expired or Declined: the end of its life, nothing to wait for
--
-- The message is the Ready condition's, or the Delivered condition's when delivery
-- decides the status. docs/argocd.md explains the choices.
--
-- Argo CD runs custom checks with only Lua's base and table libraries: no string functions.

local hs = {status = "Progressing", message = "waiting for rolecall to report on the invitation"}

local function condition(conditionType)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function messageOf(c)
  if c ~= nil and c.message ~= nil then
    return c.message
  end
  return ""
end

-- TokenIssued reasons of a Pending invitation that waiting will not fix.
local stuck = {CustomTokenWeak = true, CustomTokenUnlabeled = true, CustomTokenInUse = true, SecretConflict = true, StatusEdited = true}
-- Delivered reasons that mean the invited person will not get the link without help.
local undelivered = {DeliveryFailed = true, DeliveryNotConfigured = true}

if obj.status == nil or obj.status.phase == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for rolecall to report on generation " .. generation
  return hs
end

local phase = obj.status.phase
hs.message = messageOf(condition("Ready"))

if phase == "Active" then
  hs.status = "Healthy"
  local delivered = condition("Delivered")
  if delivered ~= nil and delivered.status == "False" then
    if undelivered[delivered.reason] then
      hs.status = "Degraded"
      hs.message = messageOf(delivered)
    elseif delivered.reason == "DeliveryRetrying" then
      hs.status = "Progressing"
      hs.message = messageOf(delivered)
    end
  end
elseif phase == "Exhausted" then
  hs.status = "Healthy"
elseif phase == "Pending" then
  local issued = condition("TokenIssued")
  if issued ~= nil and issued.status == "False" and stuck[issued.reason] then
    hs.status = "Degraded"
  end
elseif phase == "Denied" then
  hs.status = "Degraded"
elseif phase == "Revoked" or phase == "Expired" or phase == "Declined" then
  hs.status = "Suspended"
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. phase
end
return hs
