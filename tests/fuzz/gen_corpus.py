#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz (corpus/TARGET/NAME), one file per
seed. Run it again after changing a target's input format:
    python3 tests/fuzz/gen_corpus.py
The baseline objects and the write token are those of serve_fixture.c.
Files named regress-* in corpus/ are not written here: they are the inputs
of fixed findings, moved from crashes/, and stay as they are; nor are
grown-* (inputs of long runs kept by libFuzzer's -merge=1, see README.md)."""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "fuzz-write-token"
AUTH = "Authorization: Bearer " + TOKEN + "\r\n"

SMALL = b"hello world\n"
LARGE = bytes(((i * 7 + i // 251) & 0xFF) for i in range(100 * 1024))
EMPTY = b""
def hexid(b):
    return hashlib.sha256(b).hexdigest()
SMALL_ID, LARGE_ID, EMPTY_ID = hexid(SMALL), hexid(LARGE), hexid(EMPTY)
MISSING_ID = "ab" * 32
NEW = b"a new object\n"
NEW_ID = hexid(NEW)

corpora = {}
def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    corpora.setdefault(target, {})[name] = data

# ---- ids and names ---------------------------------------------------------
for name, text in [
        ("valid-lower", SMALL_ID), ("valid-upper", SMALL_ID.upper()),
        ("valid-mixed", "Ab" * 32), ("short-63", SMALL_ID[:63]),
        ("long-65", SMALL_ID + "0"), ("non-hex", "g" + SMALL_ID[1:]),
        ("path", "../../etc/passwd"), ("empty", ""), ("nul-inside", SMALL_ID[:10] + "\0" + SMALL_ID[11:]),
        ("spaces", " " + SMALL_ID[1:]), ("prefix-0x", "0x" + SMALL_ID[2:])]:
    seed("id", name, text)

for name, text in [
        ("simple", "photos/2024/cat.jpg"), ("one", "a"), ("dot-in-name", "a.b/.c/d.."),
        ("utf8", "caf\u00e9/\u65e5\u672c/\U0001F600".encode("utf-8")),
        ("leading-slash", "/abs"), ("trailing-slash", "dir/"), ("double-slash", "a//b"),
        ("dot", "a/./b"), ("dotdot", "a/../b"), ("control", "a\tb"), ("del", "a\x7fb"),
        ("overlong", b"\xc0\xaf"), ("surrogate", b"\xed\xa0\x80"), ("past-max", b"\xf4\x90\x80\x80"),
        ("truncated-utf8", b"abc\xe2\x82"), ("max-length", "n" * 500), ("over-max", "n" * 501),
        ("go-record", "_go/register/" + SMALL_ID)]:
    seed("name", name, text)

# ---- locations: byte 0 is the flags (0x02 read-only, 0x04 no-verify, 0x80 full sync)
for name, flags, text in [
        ("store", 0, "store"), ("store-slash", 0x80, "store/"), ("store-dot", 2, "./store"),
        ("file-scheme", 0, "file://store"), ("empty-dir", 0, "empty"), ("missing", 0, "nothere"),
        ("missing-parent", 0, "nothere/store"), ("file", 0, "file.txt"), ("not-a-store", 4, "notastore"),
        ("bad-meta", 0, "badmeta"), ("store-subdir", 0, "store/blobs"), ("meta-file", 0, "store/meta.lmdb"),
        ("registered-scheme", 0, "fuzz://anything"), ("unknown-scheme", 0, "nosuch://bucket/prefix"),
        ("scheme-only", 0, "://"), ("empty", 0, ""), ("http-not-tried", 0, "http://127.0.0.1:1"),
        # schemes are case-insensitive; remote stores are not tried (fuzz_open.c)
        ("http-upper-not-tried", 0, "HTTP://127.0.0.1:1"), ("s3-not-tried", 0, "s3://bucket/prefix")]:
    seed("open", name, bytes([flags]) + text.encode())
# open_http: byte 0 is the flags, the rest follows "http://"
for name, flags, text in [
        ("node", 0, "127.0.0.1:8001"), ("slashes", 0, "node.example:8001/prefix///"),
        ("prefix", 0, "node.example/store/"), ("ipv6", 0, "[::1]:8001"), ("userinfo", 0, "user:pa%20ss@host:1/x?y#z"),
        ("long", 0, "h/" + "a" * 1900), ("empty-host", 0, ""), ("bad-port", 0, "host:99999"),
        ("query", 0, "h/p?x=1&y=%zz"), ("spaces", 0, "h/a b/c"), ("control", 0, "h/\x01\x7f"),
        ("percent", 0, "h/%2e%2e/%00"), ("scheme-twice", 0, "http://h")]:
    seed("open_http", name, bytes([flags]) + text.encode())

# ---- whole requests ----------------------------------------------------------
def req(method, path, headers="", body=b"", auth=False, length=True):
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    if auth:
        head += AUTH
    head += headers
    if length and (body or method in ("PUT", "POST")):
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body

BOUNDARY = "----fuzzboundary"
def multipart(fields, boundary=BOUNDARY):
    out = b""
    for name, filename, data in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"
MP_TYPE = "Content-Type: multipart/form-data; boundary=%s\r\n" % BOUNDARY
register = json.dumps({"hash": SMALL_ID, "name": "docs/hello.txt", "size": 12,
                       "replicas": ["127.0.0.1:8002"]}).encode()

requests = {
    "object-put": req("PUT", "/v1/objects", body=NEW, auth=True),
    "object-put-id": req("PUT", "/v1/objects/" + NEW_ID, body=NEW, auth=True),
    "object-put-wrong-id": req("PUT", "/v1/objects/" + MISSING_ID, body=NEW, auth=True),
    "object-put-no-token": req("PUT", "/v1/objects", body=NEW),
    "object-put-chunked": req("PUT", "/v1/objects", "Transfer-Encoding: chunked\r\n",
                              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", auth=True, length=False),
    "object-put-too-long": req("PUT", "/v1/objects", "Content-Length: 99999999999\r\n", auth=True, length=False),
    "object-get": req("GET", "/v1/objects/" + SMALL_ID),
    "object-get-large": req("GET", "/v1/objects/" + LARGE_ID),
    "object-get-range": req("GET", "/v1/objects/" + LARGE_ID, "Range: bytes=100-199\r\n"),
    "object-get-suffix": req("GET", "/v1/objects/" + SMALL_ID, "Range: bytes=-5\r\n"),
    "object-get-open-range": req("GET", "/v1/objects/" + LARGE_ID, "Range: bytes=102000-\r\n"),
    "object-get-bad-range": req("GET", "/v1/objects/" + SMALL_ID, "Range: bytes=50-60\r\n"),
    "object-get-inm": req("GET", "/v1/objects/" + SMALL_ID, 'If-None-Match: "%s"\r\n' % SMALL_ID),
    "object-get-inm-star": req("GET", "/v1/objects/" + LARGE_ID, "If-None-Match: *\r\n"),
    "object-get-missing": req("GET", "/v1/objects/" + MISSING_ID),
    "object-get-bad-id": req("GET", "/v1/objects/../../etc/passwd"),
    "object-head": req("HEAD", "/v1/objects/" + LARGE_ID),
    "object-delete": req("DELETE", "/v1/objects/" + SMALL_ID, auth=True),
    "object-delete-cascade": req("DELETE", "/v1/objects/" + SMALL_ID + "?cascade=1", auth=True),
    "object-list": req("GET", "/v1/objects?limit=2"),
    "object-list-after": req("GET", "/v1/objects?after=%s&limit=10" % EMPTY_ID),
    "missing": req("POST", "/v1/missing", "Content-Type: application/json\r\n",
                   json.dumps([SMALL_ID, MISSING_ID]).encode()),
    "name-put": req("PUT", "/v1/names/new/name.txt", "Content-Type: application/json\r\n",
                    json.dumps({"id": SMALL_ID}).encode(), auth=True),
    "name-get": req("GET", "/v1/names/docs/hello.txt"),
    "name-head": req("HEAD", "/v1/names/docs/hello.txt"),
    "name-delete": req("DELETE", "/v1/names/empty", auth=True),
    "name-list": req("GET", "/v1/names?prefix=docs/&limit=5"),
    "name-list-after": req("GET", "/v1/names?after=big&limit=1"),
    "name-escaped": req("GET", "/v1/names/caf%C3%A9%2Fx"),
    "info": req("GET", "/v1/info"),
    "verify": req("POST", "/v1/verify"),
    "verify-one": req("POST", "/v1/verify?id=" + LARGE_ID),
    "verify-repair": req("POST", "/v1/verify?repair=1", auth=True),
    "gc": req("POST", "/v1/gc", auth=True),
    "health": req("GET", "/health"),
    "metrics": req("GET", "/metrics"),
    "upload": req("POST", "/upload", MP_TYPE, multipart([("file", "new.txt", NEW)]), auth=True),
    "upload-two-fields": req("POST", "/upload", MP_TYPE,
                             multipart([("note", None, b"x"), ("file", "a.bin", b"\0\1\2")]), auth=True),
    "upload-urlencoded": req("POST", "/upload", "Content-Type: application/x-www-form-urlencoded\r\n",
                             b"file=abc&x=1", auth=True),
    "retrieve": req("GET", "/retrieve?hash=" + SMALL_ID),
    "retrieve-range": req("GET", "/retrieve?hash=" + LARGE_ID, "Range: bytes=0-0\r\n"),
    "register": req("POST", "/register", "Content-Type: application/json\r\n", register, auth=True),
    "get": req("GET", "/get?hash=" + SMALL_ID),
    "list": req("GET", "/list"),
    "unknown-route": req("GET", "/nothing/here"),
    "wrong-method": req("PATCH", "/v1/objects/" + SMALL_ID),
    "pipelined": req("GET", "/health") + req("GET", "/v1/objects/" + SMALL_ID) + req("GET", "/list"),
    "http10": b"GET /health HTTP/1.0\r\n\r\n",
    "keepalive-then-put": req("GET", "/health", "Connection: keep-alive\r\n") +
                          req("PUT", "/v1/objects", body=NEW, auth=True),
    "truncated-body": req("PUT", "/v1/objects", "Content-Length: 100\r\n", b"short", auth=True, length=False),
}
for name, data in requests.items():
    seed("serve_request", name, data)

# ---- headers of an object request: byte 0 picks the object (bits 0-1:
# small, large, empty, record), HEAD (bit 2), /retrieve?hash= (bit 3); the
# rest is "RANGE\nIF-NONE-MATCH\nAUTHORIZATION", parts may be empty.
for name, sel, text in [
        ("range", 1, "bytes=0-99"), ("range-suffix", 0, "bytes=-3"), ("range-open", 1, "bytes=1000-"),
        ("range-past-end", 0, "bytes=12-20"), ("range-zero-suffix", 1, "bytes=-0"),
        ("range-reversed", 1, "bytes=10-5"), ("range-multi", 1, "bytes=0-1,5-6"),
        ("range-other-unit", 1, "items=0-1"), ("range-huge", 1, "bytes=0-18446744073709551615"),
        ("range-empty-object", 2, "bytes=0-0"), ("range-head", 5, "bytes=0-10"),
        ("range-retrieve", 9, "bytes=5-"), ("inm-match", 0, '\n"%s"' % SMALL_ID),
        ("inm-star", 1, "\n*"), ("inm-list", 1, '\n"x", "%s"' % LARGE_ID), ("inm-weak", 0, '\nW/"%s"' % SMALL_ID),
        ("inm-other", 0, '\n"%s"' % MISSING_ID), ("range-and-inm", 1, 'bytes=1-2\n"nope"'),
        ("auth", 3, "bytes=0-5\n\nBearer wrong"), ("none", 0, "")]:
    seed("serve_headers", name, bytes([sel]) + text.encode())

# ---- query strings: byte 0 picks the route (see fuzz_serve_query.c)
for name, sel, text in [
        ("objects-limit", 0, "limit=2"), ("objects-after", 0, "after=%s&limit=1" % EMPTY_ID),
        ("objects-bad-limit", 0, "limit=0"), ("objects-limit-max", 0, "limit=10000"),
        ("objects-limit-neg", 0, "limit=-1"), ("objects-bad-after", 0, "after=zz"),
        ("names-prefix", 1, "prefix=docs/&limit=3"), ("names-after", 1, "after=big/blob.bin"),
        ("names-escaped", 1, "prefix=%5Fgo%2F"), ("retrieve", 2, "hash=" + LARGE_ID),
        ("retrieve-missing", 2, "hash=" + MISSING_ID), ("retrieve-twice", 2, "hash=1&hash=" + SMALL_ID),
        ("get", 3, "hash=" + SMALL_ID), ("get-none", 3, ""), ("verify-id", 4, "id=" + SMALL_ID),
        ("verify-repair", 4, "repair=1"), ("verify-repair-0", 4, "repair=0&id=" + MISSING_ID),
        ("delete-cascade", 5, "cascade=1"), ("delete-plain", 5, ""), ("list", 6, "x=y"),
        ("object-get", 7, "a=b&c"), ("gc", 8, "now=1"), ("plus-and-percent", 1, "prefix=a+b%2")]:
    seed("serve_query", name, bytes([sel]) + text.encode())

# ---- JSON bodies: byte 0 picks the route: 0 POST /register, 1 POST
# /v1/missing, 2 PUT /v1/names/NAME with "NAME\nBODY"
for name, sel, text in [
        ("register", 0, register.decode()),
        ("register-no-replicas", 0, json.dumps({"hash": SMALL_ID, "name": "x", "size": 1})),
        ("register-missing-object", 0, json.dumps({"hash": MISSING_ID, "name": "gone", "size": 5, "replicas": []})),
        ("register-bad-name", 0, json.dumps({"hash": SMALL_ID, "name": "../x", "size": 1})),
        ("register-negative-size", 0, json.dumps({"hash": SMALL_ID, "name": "x", "size": -1})),
        ("register-big-size", 0, '{"hash":"%s","name":"x","size":1e15}' % SMALL_ID),
        ("register-replica-number", 0, json.dumps({"hash": SMALL_ID, "name": "x", "size": 1, "replicas": [1]})),
        ("register-array", 0, "[]"), ("register-deep", 0, "[" * 100 + "]" * 100),
        ("missing", 1, json.dumps([SMALL_ID, MISSING_ID, LARGE_ID])), ("missing-empty", 1, "[]"),
        ("missing-not-ids", 1, '[1, null, "x"]'), ("missing-object", 1, '{"ids": []}'),
        ("missing-dup", 1, json.dumps([MISSING_ID] * 5)), ("missing-broken", 1, '["' + SMALL_ID),
        ("name-put", 2, "new/name\n" + json.dumps({"id": SMALL_ID})),
        ("name-put-missing", 2, "x\n" + json.dumps({"id": MISSING_ID})),
        ("name-put-bad-name", 2, "a/../b\n" + json.dumps({"id": SMALL_ID})),
        ("name-put-replace", 2, "docs/hello.txt\n" + json.dumps({"id": LARGE_ID})),
        ("name-put-utf8", 2, "caf\u00e9\n" + json.dumps({"id": SMALL_ID})),
        ("name-put-id-number", 2, 'n\n{"id": 5}'), ("name-put-empty", 2, "n\n")]:
    seed("serve_json", name, bytes([sel]) + text.encode("utf-8"))

# ---- multipart: "CONTENT-TYPE\nBODY" (an empty first line: the default
# multipart/form-data; boundary=----fuzzboundary)
for name, ctype, body in [
        ("upload", "", multipart([("file", "new.txt", NEW)])),
        ("upload-empty-file", "", multipart([("file", "e", b"")])),
        ("upload-no-file", "", multipart([("other", None, b"x")])),
        ("upload-two-files", "", multipart([("file", "a", b"a"), ("file", "b", b"b")])),
        ("upload-quoted-boundary", 'multipart/form-data; boundary="q b"', multipart([("file", "q", b"q")], "q b")),
        ("upload-no-boundary", "multipart/form-data", multipart([("file", "a", b"a")])),
        ("upload-truncated", "", multipart([("file", "t", b"0123456789")])[:-20]),
        ("upload-urlencoded", "application/x-www-form-urlencoded", b"file=hello%20there&x=1"),
        ("upload-text", "text/plain", b"just text"),
        ("upload-nested-headers", "", b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=x\r\n"
         b"Content-Transfer-Encoding: binary\r\nX: y\r\n\r\nabc\r\n--" + BOUNDARY.encode() + b"--\r\n")]:
    seed("serve_multipart", name, ctype.encode() + b"\n" + body)

# ---- the server's config file
for name, cfg in [
        ("all", {"listen": "127.0.0.1:8001", "threads": 4, "max-object-size": "512M", "max-connections": 100,
                 "max-connections-per-ip": 8, "rate-limit": 50, "read-token": "r", "write-token": "w",
                 "idle-timeout": 30, "header-timeout": 10, "drain-timeout": 5}),
        ("tls", {"tls-cert": "cert.pem", "tls-key": "key.pem"}), ("empty", {}),
        ("unknown", {"nope": 1}), ("config-in-config", {"config": "other.json"}),
        ("bad-size", {"max-object-size": "12X"}), ("negative", {"threads": -1}),
        ("huge", {"max-object-size": 1e300}), ("bool", {"threads": True}), ("null", {"listen": None}),
        ("size-suffixes", {"max-object-size": "1GiB", "rate-limit": "4K"})]:
    seed("serve_config", name, json.dumps(cfg))
for name, text in [("array", "[1,2]"), ("broken", '{"listen": '), ("duplicate", '{"threads": 1, "threads": 2}'),
                   ("not-json", "listen=1")]:
    seed("serve_config", name, text)

# ---- responses of a node, for the http:// client: byte 0: the low 4 bits
# pick the status (see fuzz_http_client.c: 0 -> 200), the high 4 bits the
# call; the rest follows "HTTP/1.1 STATUS X\r\n": headers, blank line, body
def resp(headers, body=b""):
    return (headers + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
JSON = "Content-Type: application/json\r\n"
OBJ_HEADERS = ("ETag: \"%s\"\r\nContent-Type: application/octet-stream\r\nX-Minidbx-Created-Ns: 1\r\n"
               "X-Minidbx-Refs: 1\r\nX-Minidbx-Storage: inline\r\n" % SMALL_ID)
name_info = {"name": "docs/hello.txt", "id": SMALL_ID, "size": 12, "mtime_ns": 5}
GRACE_S = 14 * 24 * 3600  # MINIDBX_GC_DEFAULT_GRACE_NS, in seconds
CALLS = {"open": 0, "get": 1, "stat": 2, "exists": 3, "name-get": 4, "list": 5, "name-list": 6,
         "missing": 7, "verify": 8, "info": 9, "reader": 10, "put": 11, "delete": 12, "gc": 13,
         "name-set": 14, "name-delete": 15}
for name, call, status, text in [
        ("health", "open", 0, resp("Content-Type: text/plain\r\n", b"OK")),
        ("health-404", "open", 8, resp(JSON, b'{"error": "no such route"}')),
        ("get", "get", 0, resp(OBJ_HEADERS, SMALL)),
        ("get-wrong-bytes", "get", 0, resp("", b"hello world?")),
        ("get-chunked", "get", 0, b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n world\n\r\n0\r\n\r\n"),
        ("get-no-length", "get", 0, b"\r\nhello world\n"),
        ("get-short-body", "get", 0, b"Content-Length: 100\r\n\r\nhello world\n"),
        # a length no reply of a node should make the client reserve: EIO,
        # and no 200 MiB buffer (fuzz_http_client.c's ALLOC_MAX)
        ("get-length-lie", "get", 0, b"Content-Length: 209715200\r\n\r\n0123456789"),
        ("list-length-lie", "list", 0, b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n{\"objects\": []"),
        ("get-continue", "get", 0, b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n"),
        ("get-not-found", "get", 8, resp(JSON, b'{"error": "get: object not found"}')),
        ("get-corrupt", "get", 11, resp(JSON, b'{"error": "corrupt"}')),
        ("get-redirect", "get", 15, resp("Location: http://127.0.0.1:1/\r\n")),
        ("stat", "stat", 0, resp(OBJ_HEADERS)),
        ("stat-huge-numbers", "stat", 0, resp("X-Minidbx-Refs: 99999999999999999999999\r\nX-Minidbx-Created-Ns: -9999999999999999999\r\n")),
        ("exists", "exists", 0, resp(OBJ_HEADERS)),
        ("exists-not", "exists", 8, resp("")),
        ("name-get", "name-get", 0, resp(JSON, json.dumps(name_info).encode())),
        ("name-get-long-name", "name-get", 0, resp(JSON, json.dumps(dict(name_info, name="n" * 600)).encode())),
        ("list", "list", 0, resp(JSON, json.dumps(
            {"objects": [{"id": SMALL_ID, "size": 12, "created_ns": 1, "refs": 1, "inline": True}],
             "next": None}).encode())),
        ("list-too-many", "list", 0, resp(JSON, json.dumps(
            {"objects": [{"id": SMALL_ID, "size": 1, "created_ns": 1, "refs": 0, "inline": True}] * 12,
             "next": SMALL_ID}).encode())),
        ("list-bad-types", "list", 0, resp(JSON, b'{"objects": [{"id": "x", "size": -1}], "next": 5}')),
        ("name-list", "name-list", 0, resp(JSON, json.dumps({"names": [name_info], "next": None}).encode())),
        ("name-list-next", "name-list", 0, resp(JSON, json.dumps({"names": [name_info] * 8, "next": "docs/hello.txt"}).encode())),
        ("missing", "missing", 0, resp(JSON, json.dumps({"missing": [MISSING_ID]}).encode())),
        ("missing-unasked", "missing", 0, resp(JSON, json.dumps({"missing": [LARGE_ID, SMALL_ID, SMALL_ID, SMALL_ID]}).encode())),
        ("verify", "verify", 0, resp(JSON, json.dumps(
            {"objects_checked": 3, "bytes_checked": 10, "problems": 2, "repaired": 1, "truncated": False,
             "problem_list": [{"problem": "corrupt", "id": SMALL_ID, "detail": "bad", "repaired": True},
                              {"problem": "name_removed", "name": "docs/hello.txt", "id": SMALL_ID,
                               "detail": "docs/hello.txt", "repaired": True},
                              {"problem": "temp", "id": None, "detail": "tmp/x", "repaired": False},
                              {"problem": "from-a-newer-node", "id": None, "detail": "", "repaired": False}]}).encode())),
        ("info", "info", 0, resp(JSON, json.dumps(
            {"objects": 1, "bytes": 2, "inline_objects": 1, "file_objects": 0, "names": 1,
             "inline_threshold": 16384, "backend": "local-backend-with-a-long-name"}).encode())),
        ("reader", "reader", 0, resp(OBJ_HEADERS, SMALL)),
        ("reader-wrong-bytes", "reader", 0, resp("", b"HELLO WORLD\n")),
        ("reader-error", "reader", 12, resp(JSON, b'{"error": "boom"}')),
        ("put", "put", 2, resp(JSON, json.dumps({"id": SMALL_ID, "size": 12, "created": True}).encode())),
        ("put-other-id", "put", 0, resp(JSON, json.dumps({"id": MISSING_ID, "size": 12, "created": False}).encode())),
        ("put-full", "put", 14, resp(JSON, b'{"error": "no space"}')),
        ("delete", "delete", 3, b"\r\n"),
        ("delete-referenced", "delete", 9, resp(JSON, b'{"error": "referenced"}')),
        # gc with a grace asks /v1/info for gc_grace first: the fake node
        # answers both requests with this one body (fuzz_http_client.c runs
        # a gc and a dry run: the one whose echo differs fails)
        ("gc", "gc", 0, resp(JSON, json.dumps(
            {"gc_grace": True, "objects_removed": 2, "bytes_removed": 30, "older_than": GRACE_S,
             "dry_run": False, "removed": [{"id": SMALL_ID, "size": 12}, {"id": MISSING_ID, "size": 18}]}).encode())),
        ("gc-dry-run", "gc", 0, resp(JSON, json.dumps(
            {"gc_grace": True, "objects_removed": 1, "bytes_removed": 12, "older_than": GRACE_S,
             "dry_run": True, "removed": [{"id": SMALL_ID, "size": 12}]}).encode())),
        ("gc-old-node", "gc", 0, resp(JSON, b'{"objects_removed": 2, "bytes_removed": 30}')),
        ("name-set", "name-set", 0, resp(JSON, json.dumps(name_info).encode())),
        ("name-delete", "name-delete", 3, b"\r\n"),
        ("bad-header", "get", 0, b"no colon here\r\n\r\n")]:
    seed("http_client", name, bytes([CALLS[call] << 4 | status]) + text)

if __name__ == "__main__":
    for target, seeds in corpora.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%-16s %3d seeds" % (target, len(seeds)))
