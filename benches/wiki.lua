-- wrk script for benches/wiki-bench.sh and benches/load. WIKI_MODE=wiki
-- requests /wiki/<random title>, WIKI_MODE=read /read/<random title> (the
-- rendered article), WIKI_MODE=offsets /offsets/<random 3-letter prefix>
-- (from the same titles), anything else the URL's own path. Titles come
-- percent-encoded, one per line, from the file named by WIKI_TITLES.
local titles = {}
local mode = os.getenv("WIKI_MODE") or "fixed"

function init(args)
  local file = os.getenv("WIKI_TITLES")
  if file then
    for line in io.lines(file) do titles[#titles + 1] = line end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

local function prefix_of(title)
  -- Three characters: keep whole %XX escapes together.
  local out, n, i = {}, 0, 1
  while i <= #title and n < 3 do
    if title:sub(i, i) == "%" then
      out[#out + 1] = title:sub(i, i + 2); i = i + 3
    else
      out[#out + 1] = title:sub(i, i); i = i + 1
    end
    n = n + 1
  end
  return table.concat(out)
end

function request()
  if mode == "wiki" and #titles > 0 then
    return wrk.format("GET", "/wiki/" .. titles[math.random(#titles)])
  elseif mode == "read" and #titles > 0 then
    return wrk.format("GET", "/read/" .. titles[math.random(#titles)])
  elseif mode == "offsets" and #titles > 0 then
    return wrk.format("GET", "/offsets/" .. prefix_of(titles[math.random(#titles)]) .. "?limit=20")
  end
  return wrk.format("GET", wrk.path)
end
