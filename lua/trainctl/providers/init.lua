-- The providers trainctl speaks to, one line each: its name (the first
-- word of `trainctl call`, a reference's "provider"), its module, the
-- title the help shows, and other names the command line accepts. The
-- command line, completion, `trainctl config`, the error objects and the
-- docs read this list; nothing else names a provider. Loading it loads
-- no provider.
local M = {}

M.list = {
  { name = "aitems", module = "trainctl.providers.aitems", title = "NAVER Cloud AiTEMS (recommendation)" },
  { name = "opensearch", module = "trainctl.providers.opensearch",
    title = "Alibaba Cloud OpenSearch algorithm functions" },
  { name = "azure_language", module = "trainctl.providers.azure_language",
    title = "Azure AI Language text authoring and analyze-text", aliases = { "azure", "azure-language" } },
}

-- find(name) -> the entry of a provider named so (or by an alias), or nil.
function M.find(name)
  for _, p in ipairs(M.list) do
    if p.name == name then return p end
    for _, a in ipairs(p.aliases or {}) do
      if a == name then return p end
    end
  end
end

-- names() -> the providers' names, in order.
function M.names()
  local out = {}
  for i, p in ipairs(M.list) do out[i] = p.name end
  return out
end

-- load(name) -> the provider's module, or nil for a name not listed.
function M.load(name)
  local p = M.find(name)
  return p and require(p.module)
end

return M
