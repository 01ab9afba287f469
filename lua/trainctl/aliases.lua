-- The public module names (docs/lua-api.md) of the modules that live
-- under core/, api/ and providers/: a user's script keeps writing
-- require("trainctl.aitems"). The build (scripts/embed.lua) turns each
-- line into an embedded module that returns the real one, so both names
-- give the same table (a test double set on one is seen through the
-- other). The library itself requires the real names.
return {
  ["trainctl.http"] = "trainctl.core.http",
  ["trainctl.wait"] = "trainctl.core.wait",
  ["trainctl.task"] = "trainctl.core.task",
  ["trainctl.ops"] = "trainctl.api.ops",
  ["trainctl.page"] = "trainctl.api.page",
  ["trainctl.job"] = "trainctl.api.job",
  ["trainctl.aitems"] = "trainctl.providers.aitems",
  ["trainctl.opensearch"] = "trainctl.providers.opensearch",
  ["trainctl.azure_language"] = "trainctl.providers.azure_language",
}
