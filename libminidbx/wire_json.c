/* wire_json.c - the JSON shapes of the wire format (see wire_json.h). */
#include "wire_json.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void dbx_json_add_u64(cJSON *obj, const char *key, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON_AddRawToObject(obj, key, text);
}

void dbx_json_add_i64(cJSON *obj, const char *key, int64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject(obj, key, text);
}

void dbx_json_add_id(cJSON *obj, const char *key, const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE];

    if (!id) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    minidbx_id_format(id, hex);
    cJSON_AddStringToObject(obj, key, hex);
}

cJSON *dbx_json_object_info(const minidbx_object_info *info)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    dbx_json_add_id(obj, "id", &info->id);
    dbx_json_add_u64(obj, "size", info->size);
    dbx_json_add_i64(obj, "created_ns", info->created_ns);
    dbx_json_add_u64(obj, "refs", info->refs);
    cJSON_AddBoolToObject(obj, "inline", (info->flags & MINIDBX_OBJECT_INLINE) != 0);
    return obj;
}

cJSON *dbx_json_name_info(const minidbx_name_info *info)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    cJSON_AddStringToObject(obj, "name", info->name);
    dbx_json_add_id(obj, "id", &info->id);
    dbx_json_add_u64(obj, "size", info->size);
    dbx_json_add_i64(obj, "mtime_ns", info->mtime_ns);
    return obj;
}

cJSON *dbx_json_problem(minidbx_problem kind, const minidbx_id *id, const char *detail, int repaired)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    cJSON_AddStringToObject(obj, "problem", dbx_wire_problem_name(kind));
    if (kind == MINIDBX_PROBLEM_NAME_REMOVED)
        cJSON_AddStringToObject(obj, "name", detail ? detail : "");
    dbx_json_add_id(obj, "id", id);
    cJSON_AddStringToObject(obj, "detail", detail ? detail : "");
    cJSON_AddBoolToObject(obj, "repaired", repaired);
    return obj;
}

cJSON *dbx_json_node_info(const minidbx_node_info *node)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    cJSON_AddStringToObject(obj, "location", node->location);
    cJSON_AddBoolToObject(obj, "up", node->up);
    cJSON_AddStringToObject(obj, "last_error", node->last_error);
    dbx_json_add_i64(obj, "down_since_ns", node->down_since_ns);
    dbx_json_add_u64(obj, "requests", node->requests);
    dbx_json_add_u64(obj, "failures", node->failures);
    dbx_json_add_u64(obj, "latency_us_avg", node->latency_us_avg);
    dbx_json_add_u64(obj, "latency_us_max", node->latency_us_max);
    return obj;
}

#define NODES_MAX 64

void dbx_json_add_nodes(cJSON *obj, minidbx *db)
{
    minidbx_node_info *nodes = malloc(NODES_MAX * sizeof *nodes);
    size_t count = 0;

    if (nodes && minidbx_nodes(db, NULL, nodes, NODES_MAX, &count) == 0) {
        cJSON *array = cJSON_AddArrayToObject(obj, "nodes");
        for (size_t i = 0; array && i < count; i++)
            cJSON_AddItemToArray(array, dbx_json_node_info(&nodes[i]));
    }
    free(nodes);
}
