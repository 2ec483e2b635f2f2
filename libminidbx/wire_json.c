/* wire_json.c - the JSON shapes of the wire format (see wire_json.h). */
#include "wire_json.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>

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
    dbx_json_add_id(obj, "id", id);
    cJSON_AddStringToObject(obj, "detail", detail ? detail : "");
    cJSON_AddBoolToObject(obj, "repaired", repaired);
    return obj;
}
