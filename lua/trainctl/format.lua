-- The shapes `trainctl call` prints an answer in: json (pretty on a
-- terminal, compact when piped), jsonl (one record per line), table,
-- tsv and yaml; and --jq, jq's own language through libjq
-- (trainctl.jq), as `gh --jq` offers it.
local errors = require("trainctl.errors")
local json = require("trainctl.json")

local M = {}

M.FORMATS = { json = true, jsonl = true, table = true, tsv = true, yaml = true }

local ARRAY = getmetatable(json.array())

-- records(value, key) -> the list a value stands for: itself when it is
-- a list, the list under key (a list operation's answer), else {value}.
function M.records(value, key)
  if type(value) ~= "table" then return { value } end
  if value[1] ~= nil then return value end
  if key then
    local page = require("trainctl.api.page")
    local list = page.get(value, key)
    if type(list) == "table" then return list end
  end
  if next(value) == nil and getmetatable(value) == ARRAY then return value end
  return { value }
end

local function scalar(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean" or v == json.null
end

-- The columns a list shows by default: what identifies a record, then
-- what says how it is doing, then the other scalar fields, up to six.
local RANK = { "^id$", "id$", "^name$", "^generation$", "status$", "state$", "^type$", "kind$",
  "progress", "name$", "label$", "version", "time$", "date" }

local function rank(key)
  local k = key:lower()
  for i, p in ipairs(RANK) do
    if k:find(p) then return i end
  end
  return #RANK + 1
end

M.MAX_COLUMNS = 6

-- columns(records) -> the default columns of a list of records.
function M.columns(records)
  local seen, keys = {}, {}
  for _, r in ipairs(records) do
    if type(r) == "table" then
      for k, v in pairs(r) do
        if type(k) == "string" and not seen[k] and scalar(v) then
          seen[k] = true
          keys[#keys + 1] = k
        end
      end
    end
  end
  table.sort(keys, function(a, b)
    local ra, rb = rank(a), rank(b)
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  local out = {}
  for i = 1, math.min(#keys, M.MAX_COLUMNS) do out[i] = keys[i] end
  return out
end

-- cell(v) -> text of one value in a table or TSV row: scalars as they
-- are, lists and objects as compact JSON, nothing for null.
local function cell(v)
  if v == nil or v == json.null then return "" end
  if type(v) == "string" then return v end
  if type(v) == "table" then return json.encode(v) end
  if type(v) == "number" then return json.number_string(v) end
  return tostring(v)
end

local function field(r, k)
  if type(r) ~= "table" then return k == "value" and r or nil end
  local v = r[k]
  if v == nil then v = require("trainctl.api.page").get(r, k) end
  return v
end

local function rows_of(records, columns)
  local rows = {}
  for i, r in ipairs(records) do
    local row = {}
    for j, c in ipairs(columns) do row[j] = cell(field(r, c)) end
    rows[i] = row
  end
  return rows
end

-- check_columns(records, columns): a column no record has is said on
-- stderr (a typo: --columns serviceId,nme) and printed empty. Not
-- refused: an optional field that no record of today's page has is no
-- typo, and the same cron line must not fail one day and pass the next.
-- Records that are not all objects (scalars, a mixed list) are not judged.
local function check_columns(records, columns)
  if #records == 0 then return end
  local keys, names = {}, {}
  for _, r in ipairs(records) do
    if type(r) ~= "table" or r == json.null or r[1] ~= nil then return end
    for k in pairs(r) do
      if type(k) == "string" and not keys[k] then keys[k], names[#names + 1] = true, k end
    end
  end
  table.sort(names)
  for _, c in ipairs(columns) do
    local found = false
    for _, r in ipairs(records) do
      if field(r, c) ~= nil then found = true break end
    end
    if not found then
      local near = require("trainctl.api.ops").closest(c, names)
      require("trainctl.log").warn(("--columns: no record has %q%s (fields: %s)"):format(c,
        near and ("; did you mean %s?"):format(near) or "", table.concat(names, ", ")))
    end
  end
end

local function pick_columns(records, columns)
  if columns and #columns > 0 then
    check_columns(records, columns)
    return columns
  end
  local cols = M.columns(records)
  if #cols == 0 then cols = { "value" } end
  return cols
end

-- tsv(records, columns): one line per record, tab-separated, no header
-- (as az -o tsv); tabs, newlines and backslashes inside a value escaped.
function M.tsv(records, columns)
  columns = pick_columns(records, columns)
  local lines = {}
  for i, row in ipairs(rows_of(records, columns)) do
    for j, c in ipairs(row) do
      row[j] = c:gsub("[\\\t\n\r]", { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" })
    end
    lines[i] = table.concat(row, "\t") .. "\n"
  end
  return table.concat(lines)
end

-- The East Asian Wide and Fullwidth ranges (Unicode's EastAsianWidth
-- W and F): Hangul, CJK, kana, fullwidth forms, emoji take two columns.
local WIDE = {
  { 0x1100, 0x115F }, { 0x231A, 0x231B }, { 0x2329, 0x232A }, { 0x23E9, 0x23EC }, { 0x2E80, 0x303E },
  { 0x3041, 0x33FF }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xA960, 0xA97F },
  { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE10, 0xFE19 }, { 0xFE30, 0xFE6F }, { 0xFF00, 0xFF60 },
  { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD },
}

local function wide(c)
  if c < 0x1100 then return false end
  for _, r in ipairs(WIDE) do
    if c < r[1] then return false end
    if c <= r[2] then return true end
  end
  return false
end

-- Width on a terminal: a column per character, two for a wide one; a
-- byte per column for text that is not UTF-8.
local function width(s)
  if not utf8.len(s) then return #s end
  local n = 0
  for _, c in utf8.codes(s) do n = n + (wide(c) and 2 or 1) end
  return n
end

-- table(records, columns): a header, a rule, and aligned columns;
-- control characters in a cell shown as escapes (\n, \x1b), as in the logs.
function M.table(records, columns)
  columns = pick_columns(records, columns)
  local rows = rows_of(records, columns)
  local escape = require("trainctl.log").escape
  local head = {}
  for j, c in ipairs(columns) do head[j] = escape(c) end
  local widths = {}
  for j, c in ipairs(head) do widths[j] = width(c) end
  for _, row in ipairs(rows) do
    for j, c in ipairs(row) do
      -- A server's text must not move the cursor or restyle the screen.
      row[j] = escape(c)
      widths[j] = math.max(widths[j], width(row[j]))
    end
  end
  local function line(row)
    local parts = {}
    for j, c in ipairs(row) do
      parts[j] = j < #row and (c .. (" "):rep(widths[j] - width(c))) or c
    end
    return table.concat(parts, "  ") .. "\n"
  end
  local rule = {}
  for j in ipairs(head) do rule[j] = ("-"):rep(widths[j]) end
  local out = { line(head), line(rule) }
  for _, row in ipairs(rows) do out[#out + 1] = line(row) end
  return table.concat(out)
end

-- YAML: every JSON value has a YAML form; strings that a YAML reader
-- would take for something else (a number, true, null, a key, a
-- comment...) are written in JSON's double quotes, which YAML reads the
-- same way.
local RESERVED = { ["true"] = true, ["false"] = true, null = true, yes = true, no = true,
  on = true, off = true, y = true, n = true, ["~"] = true }

local function yaml_string(s)
  if s ~= "" and s:find("^[%a_/][%w_%.%-/ ]*$") and not s:find(" $")
    and not RESERVED[s:lower()] and not tonumber(s) then
    return s
  end
  return json.encode(s)
end

local function yaml_scalar(v)
  if v == nil or v == json.null then return "null" end
  if type(v) == "string" then return yaml_string(v) end
  if type(v) == "number" then
    if v ~= v then return ".nan" end
    if v == math.huge then return ".inf" end
    if v == -math.huge then return "-.inf" end
    return json.number_string(v)
  end
  return tostring(v)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function empty(v)
  if type(v) ~= "table" or next(v) ~= nil then return nil end
  return getmetatable(v) == ARRAY and "[]" or "{}"
end

local function yaml_value(v, indent, out)
  local pad = ("  "):rep(indent)
  if type(v) ~= "table" or v == json.null then
    out[#out + 1] = pad .. yaml_scalar(v)
  elseif v[1] ~= nil then
    for _, item in ipairs(v) do
      if type(item) == "table" and item ~= json.null and not empty(item) then
        local sub = {}
        yaml_value(item, indent + 1, sub)
        sub[1] = pad .. "- " .. sub[1]:sub(#pad + 3)
        for _, l in ipairs(sub) do out[#out + 1] = l end
      else
        out[#out + 1] = pad .. "- " .. (empty(item) or yaml_scalar(item))
      end
    end
  else
    for _, k in ipairs(sorted_keys(v)) do
      local x = v[k]
      local key = yaml_string(tostring(k))
      if type(x) == "table" and x ~= json.null and not empty(x) then
        out[#out + 1] = pad .. key .. ":"
        yaml_value(x, indent + 1, out)
      else
        out[#out + 1] = pad .. key .. ": " .. (empty(x) or yaml_scalar(x))
      end
    end
  end
end

-- yaml(value) -> a YAML document.
function M.yaml(v)
  if type(v) == "table" and empty(v) then return empty(v) .. "\n" end
  local out = {}
  yaml_value(v, 0, out)
  return table.concat(out, "\n") .. "\n"
end

-- jq(filter, value) -> list of results (decoded). A filter that does not
-- compile, or fails on this answer, is a usage error naming jq's reason.
function M.jq(filter, value)
  local results, err = require("trainctl.jq").run(filter, json.encode(value))
  if not results then errors.usage("--jq: " .. tostring(err):gsub("^jq: error: ", "")) end
  for i, text in ipairs(results) do results[i] = json.decode(text) end
  return results
end

-- render(value, {format, pretty, columns, key}) -> text. key names the
-- list inside a list operation's answer (for table, tsv and jsonl).
function M.render(value, o)
  local fmt = o.format or "json"
  if fmt == "json" then return json.encode(value, { pretty = o.pretty }) .. "\n" end
  if fmt == "yaml" then return M.yaml(value) end
  local records = M.records(value, o.key)
  if fmt == "jsonl" then
    local lines = {}
    for i, r in ipairs(records) do lines[i] = json.encode(r) .. "\n" end
    return table.concat(lines)
  end
  if fmt == "tsv" then return M.tsv(records, o.columns) end
  return M.table(records, o.columns)
end

-- render_jq(results, o) -> text: each result as jq -r prints it (a
-- string bare, anything else as JSON), unless a format was asked for.
function M.render_jq(results, o)
  if o.format then
    return M.render(#results == 1 and results[1] or json.array(results), o)
  end
  local out = {}
  for i, r in ipairs(results) do
    out[i] = (type(r) == "string" and r or json.encode(r, { pretty = o.pretty })) .. "\n"
  end
  return table.concat(out)
end

return M
