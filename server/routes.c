/* routes.c - the routes of every protocol: the list of the protocols'
 * tables (proto_*.c), the route a method and path take, and the routes
 * numbered for the metrics. */
#include "node.h"

#include <string.h>

/* ---- the routes: the protocols' tables ------------------------------------ */

/* The protocols, in the order the router tries them. A new protocol is a
 * proto_*.c file with its table, and a line here. */
static const struct serve_protocol *const protocols[] = {
    &serve_proto_v1,
    &serve_proto_go,
};

#define PROTOCOL_COUNT (sizeof protocols / sizeof protocols[0])

const struct serve_route_spec serve_unknown_route = { "", "", NULL, "unknown", BODY_NONE,
                                                       ACCESS_OPEN };

size_t serve_route_slots(void)
{
    size_t slots = 1;
    for (size_t p = 0; p < PROTOCOL_COUNT; p++)
        slots += protocols[p]->route_count;
    return slots;
}

const struct serve_route_spec *serve_route_in_slot(size_t slot)
{
    if (slot == 0)
        return &serve_unknown_route;
    slot--;
    for (size_t p = 0; p < PROTOCOL_COUNT; p++) {
        if (slot < protocols[p]->route_count)
            return &protocols[p]->routes[slot];
        slot -= protocols[p]->route_count;
    }
    return NULL;
}

size_t serve_route_slot(const struct serve_route_spec *spec)
{
    size_t base = 1;
    for (size_t p = 0; p < PROTOCOL_COUNT; p++) {
        const struct serve_protocol *proto = protocols[p];
        if (spec >= proto->routes && spec < proto->routes + proto->route_count)
            return base + (size_t)(spec - proto->routes);
        base += proto->route_count;
    }
    return 0;
}

static bool path_matches(const struct serve_route_spec *spec, const char *path, const char **arg)
{
    size_t len = strlen(spec->path);
    bool prefix = spec->path[len - 1] == '/';

    if (prefix ? strncmp(path, spec->path, len) != 0 || path[len] == '\0'
               : strcmp(path, spec->path) != 0)
        return false;
    *arg = path + (prefix ? len : strlen(path));
    return true;
}

static bool method_matches(const char *want, const char *method)
{
    return strcmp(want, method) == 0 || (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

const struct serve_route_spec *serve_find_route(const char *method, const char *path,
                                                 const char **arg, bool *path_known)
{
    *path_known = false;
    for (size_t p = 0; p < PROTOCOL_COUNT; p++) {
        const struct serve_protocol *proto = protocols[p];
        for (size_t i = 0; i < proto->route_count; i++) {
            if (!path_matches(&proto->routes[i], path, arg))
                continue;
            *path_known = true;
            if (method_matches(proto->routes[i].method, method))
                return &proto->routes[i];
        }
    }
    return NULL;
}
