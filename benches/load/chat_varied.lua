-- wrk script: POST a chat completion whose body is BODY with `{n}` replaced by a request
-- counter (per wrk thread, each thread from its own offset), so that no two requests ask the
-- same question. KEY comes from the environment.
local counter = 0

function setup(thread)
  -- Sets the global `offset` in that thread's interpreter.
  thread:set("offset", math.random(1, 1000) * 1000000)
end

function request()
  counter = counter + 1
  local body = string.gsub(os.getenv("BODY"), "{n}", tostring((offset or 0) + counter))
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (os.getenv("KEY") or "sk-none"),
  }, body)
end
