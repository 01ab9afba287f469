-- trainctl._http: one HTTP request, the native contract under
-- trainctl.http: request{method, url, headers, body, timeout, ...} ->
-- res{status, headers, header_list, body} | nil, err. Inside a task it
-- waits through trainctl.task (other tasks run meanwhile); elsewhere it
-- blocks on the native request of trainctl._curl (src/lua/lhttp.c).
local curl = require "trainctl._curl"
local task = require "trainctl.core.task"

return {
  request = task.request,
  curl_version = curl.curl_version,
  USER_AGENT = curl.USER_AGENT,
}
