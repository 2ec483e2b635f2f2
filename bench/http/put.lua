-- wrk script: PUT a new object per request. The body is the file given by
-- $BODY_FILE with its first bytes made unique, so that every request stores
-- new bytes (no deduplication); nginx gets a new file name per request
-- ($UNIQUE_PATHS=1), mdbx serve computes the id itself (PUT /v1/objects).
-- The tag starts with the time the load began, so that the next run's
-- bodies are new too (the same bodies again would be deduplicated: a
-- commit with nothing to write, no flush).
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local base = f:read("*a")
f:close()
local unique_paths = os.getenv("UNIQUE_PATHS") == "1"
local threads = 0
local started = os.time()

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
    thread:set("started", started)
end

local n = 0
function request()
    n = n + 1
    local tag = string.format("%010d-%04d-%012d-", started, tid, n)
    local body = tag .. base:sub(#tag + 1)
    local path = "/v1/objects"
    if unique_paths then
        path = string.format("/v1/objects/u%s", tag)
    end
    return wrk.format("PUT", path, nil, body)
end
