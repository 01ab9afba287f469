-- CSV (RFC 4180): quoted fields, doubled quotes, CRLF or LF line ends.
local M = {}

-- parse(text) -> list of rows, each a list of strings | nil, err
function M.parse(text)
  local rows, row, field = {}, {}, {}
  local i, n = 1, #text
  local quoted, line = false, 1
  local function end_field()
    row[#row + 1] = table.concat(field)
    field = {}
  end
  local function end_row()
    end_field()
    if not (#row == 1 and row[1] == "") then rows[#rows + 1] = row end
    row = {}
    line = line + 1
  end
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then
          field[#field + 1] = '"'
          i = i + 1
        else
          quoted = false
        end
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      if #field > 0 then return nil, ("line %d: quote inside an unquoted field"):format(line) end
      quoted = true
    elseif c == "," then
      end_field()
    elseif c == "\n" then
      end_row()
    elseif c == "\r" then
      if text:sub(i + 1, i + 1) ~= "\n" then end_row() end
    else
      local j = text:find('[,\r\n"]', i) or n + 1
      field[#field + 1] = text:sub(i, j - 1)
      i = j - 1
    end
    i = i + 1
  end
  if quoted then return nil, ("line %d: unterminated quoted field"):format(line) end
  if #field > 0 or #row > 0 then end_row() end
  return rows
end

-- records(text) -> list of {column = value}, header list | nil, err
function M.records(text)
  local rows, err = M.parse(text)
  if not rows then return nil, err end
  local header = table.remove(rows, 1) or {}
  if header[1] then header[1] = header[1]:gsub("^\239\187\191", "") end
  local out = {}
  for r, row in ipairs(rows) do
    if #row ~= #header then
      return nil, ("row %d has %d fields, the header %d"):format(r + 1, #row, #header)
    end
    local rec = {}
    for j, name in ipairs(header) do rec[name] = row[j] end
    out[#out + 1] = rec
  end
  return out, header
end

-- read(path) -> records, header | nil, err
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local recs, header = M.records(text)
  if not recs then return nil, path .. ": " .. header end
  return recs, header
end

local function quote(v)
  if v == nil then return "" end
  if type(v) == "number" then v = require("trainctl.json").number_string(v) end
  if type(v) == "table" then v = require("trainctl.json").encode(v) end
  v = tostring(v)
  if v:find('[,"\r\n]') or v:find("^%s") or v:find("%s$") then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

-- encode(records [, columns]) -> text. Columns default to the sorted union
-- of the records' keys.
function M.encode(records, columns)
  if not columns then
    local set = {}
    columns = {}
    for _, rec in ipairs(records) do
      for k in pairs(rec) do
        if not set[k] then set[k] = true columns[#columns + 1] = k end
      end
    end
    table.sort(columns)
  end
  local lines = {}
  local head = {}
  for i, c in ipairs(columns) do head[i] = quote(c) end
  lines[1] = table.concat(head, ",")
  for _, rec in ipairs(records) do
    local cells = {}
    for i, c in ipairs(columns) do cells[i] = quote(rec[c]) end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  return table.concat(lines, "\r\n") .. "\r\n"
end

return M
