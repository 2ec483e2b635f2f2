/*
 * wire_json.h - the JSON shapes of the wire format, written once with
 * cJSON for the two that emit them: `mdbx serve` (its replies) and the
 * CLI's --json (its lines). The http:// client reads the same keys
 * (libminidbx/http.c, with json-c); wire.h has the names they share.
 *
 * Integers go out as exact literals: cJSON keeps numbers as doubles, which
 * would round sizes and ns times past 2^53.
 *
 * Compiled into mdbx, not into the library (which does not use cJSON).
 */
#ifndef MINIDBX_WIRE_JSON_H
#define MINIDBX_WIRE_JSON_H

#include <minidbx.h>

#include <cjson/cJSON.h>
#include <stdint.h>

void dbx_json_add_u64(cJSON *obj, const char *key, uint64_t value);
void dbx_json_add_i64(cJSON *obj, const char *key, int64_t value);
/* 64 hex digits, or null when id is NULL. */
void dbx_json_add_id(cJSON *obj, const char *key, const minidbx_id *id);

/* {"id", "size", "created_ns", "refs", "inline"}; NULL when out of memory. */
cJSON *dbx_json_object_info(const minidbx_object_info *info);
/* {"name", "id", "size", "mtime_ns"}; NULL when out of memory. */
cJSON *dbx_json_name_info(const minidbx_name_info *info);
/* {"problem": "corrupt" (dbx_wire_problem_name), "id" (or null), "detail",
 * "repaired"} ("name_removed" has "name" too, the same as "detail"): one verify problem, in `mdbx --json verify` and in
 * /v1/verify's "problem_list". NULL when out of memory. */
cJSON *dbx_json_problem(minidbx_problem kind, const minidbx_id *id, const char *detail, int repaired);

/* {"location", "up", "last_error", "down_since_ns", "requests", "failures",
 * "latency_us_avg", "latency_us_max"}: one node of a cluster: store. */
cJSON *dbx_json_node_info(const minidbx_node_info *node);
/* obj.nodes = [node...] for a store made of nodes (minidbx_nodes); nothing
 * for any other store. */
void dbx_json_add_nodes(cJSON *obj, minidbx *db);

#endif /* MINIDBX_WIRE_JSON_H */
