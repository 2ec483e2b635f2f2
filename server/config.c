/* config.c - the node's settings: defaults, one setting by name (an option
 * of `mdbx serve` or a key of its --config file), the config file, and
 * the checks of settings that only fail together. */
#include "node.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In the order of the switch in minidbx_server_config_set. */
enum setting {
    SET_LISTEN, SET_THREADS, SET_MAX_OBJECT, SET_MAX_CONN, SET_MAX_CONN_IP, SET_RATE,
    SET_READ_TOKEN, SET_WRITE_TOKEN, SET_TLS_CERT, SET_TLS_KEY, SET_IDLE, SET_HEADER,
    SET_DRAIN, SET_MIN_BODY_RATE, SET_VERIFIED_CACHE, SET_BODY_CACHE, SET_CONFIG, SET_READ_ONLY,
    SET_SYNC, SET_MD5_ALIASES, SET_ACCESS_LOG, SET_ACCESS_LOG_FORMAT, SET_LOG_LEVEL, SET_PROFILE,
    SET_IO_MODEL, SET_COMMIT_THREADS, SET_COUNT
};

const struct minidbx_server_setting minidbx_server_settings[SET_COUNT + 1] = {
    [SET_LISTEN] = { "listen", true },
    [SET_THREADS] = { "threads", true },
    [SET_MAX_OBJECT] = { "max-object-size", true },
    [SET_MAX_CONN] = { "max-connections", true },
    [SET_MAX_CONN_IP] = { "max-connections-per-ip", true },
    [SET_RATE] = { "rate-limit", true },
    [SET_READ_TOKEN] = { "read-token", true },
    [SET_WRITE_TOKEN] = { "write-token", true },
    [SET_TLS_CERT] = { "tls-cert", true },
    [SET_TLS_KEY] = { "tls-key", true },
    [SET_IDLE] = { "idle-timeout", true },
    [SET_HEADER] = { "header-timeout", true },
    [SET_DRAIN] = { "drain-timeout", true },
    [SET_MIN_BODY_RATE] = { "min-body-rate", true },
    [SET_VERIFIED_CACHE] = { "verified-cache", true },
    [SET_BODY_CACHE] = { "body-cache", true },
    [SET_CONFIG] = { "config", true },
    [SET_READ_ONLY] = { "read-only", false },
    [SET_SYNC] = { "sync", true },
    [SET_MD5_ALIASES] = { "md5-aliases", true },
    [SET_ACCESS_LOG] = { "access-log", true },
    [SET_ACCESS_LOG_FORMAT] = { "access-log-format", true },
    [SET_LOG_LEVEL] = { "log-level", true },
    [SET_PROFILE] = { "profile", true },
    [SET_IO_MODEL] = { "io-model", true },
    [SET_COMMIT_THREADS] = { "commit-threads", true },
    [SET_COUNT] = { NULL, false },
};

int serve_error(struct minidbx_server_error *err, int code, int errnum, const char *fmt, ...)
{
    va_list ap;

    err->code = code;
    err->errnum = errnum;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

void minidbx_server_config_init(struct minidbx_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8001";
    cfg->threads = 4;
    cfg->max_object_bytes = (uint64_t)1 << 30;
    cfg->max_connections = 1000;
    cfg->max_connections_per_ip = 64;
    cfg->idle_timeout_s = 30;
    cfg->header_timeout_s = 10;
    cfg->drain_timeout_s = 10;
    cfg->min_body_rate = 1024;
    cfg->verified_cache_entries = 1024;
    cfg->body_cache_bytes = (uint64_t)8 << 20;
    cfg->commit_threads = SERVE_COMMIT_THREADS_DEFAULT;
}

void minidbx_server_config_free(struct minidbx_server_config *cfg)
{
    cJSON_Delete(cfg->file_settings);
    cfg->file_settings = NULL;
}

/* "512M", "1G", "4096": binary suffixes K, M, G, T. */
static bool parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned shift = 0;

    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return false;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (*end || value > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)value << shift;
    return true;
}

static bool parse_uint(const char *text, unsigned *out)
{
    uint64_t value;
    if (!parse_size(text, &value) || value > UINT_MAX)
        return false;
    *out = (unsigned)value;
    return true;
}

static int find_setting(const char *name)
{
    for (int i = 0; i < SET_COUNT; i++)
        if (strcmp(minidbx_server_settings[i].name, name) == 0)
            return i;
    return -1;
}

/* --profile: named presets, as the old system's guide describes them. A
 * profile sets only what was not set one by one (before it or after it:
 * those win), so any of its values can be overridden. */
#define PROFILE_SETTINGS_MAX 8
static const struct profile {
    const char *name;
    const char *settings[PROFILE_SETTINGS_MAX][2];
} profiles[] = {
    { "throughput", { { "threads", "8" }, { "max-connections", "4000" },
                      { "max-connections-per-ip", "512" }, { "verified-cache", "65536" },
                      { "body-cache", "64M" } } },
    { "low-memory", { { "threads", "1" }, { "max-connections", "64" },
                      { "max-connections-per-ip", "16" }, { "verified-cache", "64" },
                      { "body-cache", "0" } } },
    { "large-files", { { "max-object-size", "64G" }, { "idle-timeout", "300" },
                       { "min-body-rate", "16K" }, { "drain-timeout", "300" }, { "body-cache", "0" } } },
};

static int config_set(struct minidbx_server_config *cfg, int which, const char *name, const char *value,
                      struct minidbx_server_error *err);

static int apply_profile(struct minidbx_server_config *cfg, const char *name, struct minidbx_server_error *err)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++) {
        if (strcmp(profiles[i].name, name) != 0)
            continue;
        for (int k = 0; k < PROFILE_SETTINGS_MAX && profiles[i].settings[k][0]; k++) {
            int which = find_setting(profiles[i].settings[k][0]);
            int rc = cfg->explicit_settings & (1ull << which)
                         ? 0 : config_set(cfg, which, profiles[i].settings[k][0], profiles[i].settings[k][1], err);
            if (rc != 0)
                return rc;
        }
        cfg->profile = profiles[i].name;
        return 0;
    }
    return serve_error(err, MINIDBX_EINVAL, 0, "unknown --profile '%s' (throughput, low-memory or large-files)",
                       name);
}

/* The value a numeric setting has now, as text (sizes in bytes). */
static void setting_value(const struct minidbx_server_config *cfg, int which, char *out, size_t size)
{
    unsigned long long v;

    switch (which) {
    case SET_THREADS: v = cfg->threads; break;
    case SET_MAX_CONN: v = cfg->max_connections; break;
    case SET_MAX_CONN_IP: v = cfg->max_connections_per_ip; break;
    case SET_VERIFIED_CACHE: v = cfg->verified_cache_entries; break;
    case SET_BODY_CACHE: v = cfg->body_cache_bytes; break;
    case SET_MAX_OBJECT: v = cfg->max_object_bytes; break;
    case SET_IDLE: v = cfg->idle_timeout_s; break;
    case SET_MIN_BODY_RATE: v = cfg->min_body_rate; break;
    case SET_DRAIN: v = cfg->drain_timeout_s; break;
    default: snprintf(out, size, "?"); return;
    }
    snprintf(out, size, "%llu", v);
}

void minidbx_server_profile_describe(const struct minidbx_server_config *cfg, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; cfg->profile && i < sizeof profiles / sizeof profiles[0]; i++) {
        if (strcmp(profiles[i].name, cfg->profile) != 0)
            continue;
        used += (size_t)snprintf(out, size, "profile %s:", cfg->profile);
        for (int k = 0; k < PROFILE_SETTINGS_MAX && profiles[i].settings[k][0] && used < size; k++) {
            int which = find_setting(profiles[i].settings[k][0]);
            char value[32];
            setting_value(cfg, which, value, sizeof value);
            used += (size_t)snprintf(out + used, size - used, "%s %s %s%s", k ? "," : "",
                                     profiles[i].settings[k][0], value,
                                     cfg->explicit_settings & (1ull << which) ? " (given)" : "");
        }
    }
}

int minidbx_server_config_set(struct minidbx_server_config *cfg, const char *name,
                              const char *value, struct minidbx_server_error *err)
{
    int which = find_setting(name);
    int rc = config_set(cfg, which, name, value, err);

    if (rc == 0 && which >= 0 && which != SET_PROFILE)
        cfg->explicit_settings |= 1ull << which;
    return rc;
}

static int config_set(struct minidbx_server_config *cfg, int which, const char *name, const char *value,
                      struct minidbx_server_error *err)
{
    unsigned *number = NULL;

    switch (which) {
    case SET_PROFILE: return apply_profile(cfg, value, err);
    case SET_LISTEN: cfg->listen = value; return 0;
    case SET_READ_TOKEN: cfg->read_token = value; return 0;
    case SET_WRITE_TOKEN: cfg->write_token = value; return 0;
    case SET_TLS_CERT: cfg->tls_cert_file = value; return 0;
    case SET_TLS_KEY: cfg->tls_key_file = value; return 0;
    case SET_CONFIG: cfg->config_file = value; return 0;
    case SET_READ_ONLY:
        if (value && strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return serve_error(err, MINIDBX_EINVAL, 0,
                               "--read-only takes no value (in a config file: true or false)");
        cfg->read_only = !value || strcmp(value, "true") == 0;
        return 0;
    case SET_SYNC:
        if (strcmp(value, "full") != 0 && strcmp(value, "none") != 0)
            return serve_error(err, MINIDBX_EINVAL, 0, "bad value '%s' for --sync (full or none)", value);
        cfg->sync_none = strcmp(value, "none") == 0;
        return 0;
    case SET_ACCESS_LOG:
        cfg->access_log = value;
        return 0;
    case SET_ACCESS_LOG_FORMAT:
        if (strcmp(value, "common") != 0 && strcmp(value, "json") != 0)
            return serve_error(err, MINIDBX_EINVAL, 0, "bad value '%s' for --access-log-format (common or json)",
                               value);
        cfg->access_log_json = strcmp(value, "json") == 0;
        return 0;
    case SET_LOG_LEVEL:
        if (strcmp(value, "error") == 0)
            cfg->log_level = SERVE_LOG_ERROR;
        else if (strcmp(value, "warn") == 0)
            cfg->log_level = SERVE_LOG_WARN;
        else if (strcmp(value, "info") == 0)
            cfg->log_level = SERVE_LOG_INFO;
        else
            return serve_error(err, MINIDBX_EINVAL, 0, "bad value '%s' for --log-level (error, warn or info)",
                               value);
        return 0;
    case SET_IO_MODEL:
        if (strcmp(value, "pool") == 0)
            cfg->io_model = SERVE_IO_POOL;
        else if (strcmp(value, "per-connection") == 0)
            cfg->io_model = SERVE_IO_PER_CONNECTION;
        else
            return serve_error(err, MINIDBX_EINVAL, 0, "bad value '%s' for --io-model (pool or per-connection)",
                               value);
        return 0;
    case SET_MD5_ALIASES:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            return serve_error(err, MINIDBX_EINVAL, 0, "bad value '%s' for --md5-aliases (on or off)", value);
        cfg->no_md5_aliases = strcmp(value, "off") == 0;
        return 0;
    case SET_MAX_OBJECT:
        if (!parse_size(value, &cfg->max_object_bytes) || cfg->max_object_bytes == 0)
            return serve_error(err, MINIDBX_EINVAL, 0, "bad size '%s' for --max-object-size", value);
        return 0;
    case SET_MIN_BODY_RATE:
        if (!parse_size(value, &cfg->min_body_rate))
            return serve_error(err, MINIDBX_EINVAL, 0, "bad rate '%s' for --min-body-rate", value);
        return 0;
    case SET_BODY_CACHE:
        if (!parse_size(value, &cfg->body_cache_bytes))
            return serve_error(err, MINIDBX_EINVAL, 0, "bad size '%s' for --body-cache", value);
        return 0;
    case SET_VERIFIED_CACHE: number = &cfg->verified_cache_entries; break;
    case SET_THREADS: number = &cfg->threads; break;
    case SET_COMMIT_THREADS: number = &cfg->commit_threads; break;
    case SET_MAX_CONN: number = &cfg->max_connections; break;
    case SET_MAX_CONN_IP: number = &cfg->max_connections_per_ip; break;
    case SET_RATE: number = &cfg->rate_limit_per_s; break;
    case SET_IDLE: number = &cfg->idle_timeout_s; break;
    case SET_HEADER: number = &cfg->header_timeout_s; break;
    case SET_DRAIN: number = &cfg->drain_timeout_s; break;
    default: return serve_error(err, MINIDBX_EINVAL, 0, "unknown setting '%s'", name);
    }
    if (!parse_uint(value, number))
        return serve_error(err, MINIDBX_EINVAL, 0, "bad number '%s'", value);
    return 0;
}

int minidbx_server_config_load(struct minidbx_server_config *cfg, struct minidbx_server_error *err)
{
    int rc = 0;
    char *text = serve_read_file_text(cfg->config_file);

    if (!text)
        return serve_error(err, MINIDBX_EIO, errno, "%s", cfg->config_file);
    cJSON *tree = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(tree)) {
        cJSON_Delete(tree);
        return serve_error(err, MINIDBX_EINVAL, 0, "%s: not a JSON object", cfg->config_file);
    }
    cJSON_Delete(cfg->file_settings);
    cfg->file_settings = tree; /* the strings set point into it */
    const cJSON *item;
    cJSON_ArrayForEach(item, tree)
    {
        int which = find_setting(item->string);
        if (which < 0 || which == SET_CONFIG)
            return serve_error(err, MINIDBX_EINVAL, 0, "%s: unknown setting '%s'",
                               cfg->config_file, item->string);
        char number[32];
        const char *value = cJSON_GetStringValue(item);
        if (cJSON_IsNumber(item) && item->valuedouble >= 0) {
            snprintf(number, sizeof number, "%.0f", item->valuedouble);
            value = number;
        }
        if (cJSON_IsBool(item))
            value = cJSON_IsTrue(item) ? "true" : "false";
        if (!value)
            return serve_error(err, MINIDBX_EINVAL, 0, "%s: '%s' must be a string or a number",
                               cfg->config_file, item->string);
        if ((rc = minidbx_server_config_set(cfg, item->string, value, err)) != 0)
            break;
    }
    return rc;
}

int minidbx_server_config_check(const struct minidbx_server_config *cfg,
                                struct minidbx_server_error *err)
{
    if (cfg->threads == 0 || cfg->threads > 256)
        return serve_error(err, MINIDBX_EINVAL, 0, "--threads must be 1..256");
    if (cfg->commit_threads > 256)
        return serve_error(err, MINIDBX_EINVAL, 0, "--commit-threads must be 0..256");
    if (cfg->max_connections == 0 || cfg->max_connections_per_ip == 0)
        return serve_error(err, MINIDBX_EINVAL, 0, "connection limits must be at least 1");
    if (cfg->idle_timeout_s == 0 || cfg->header_timeout_s == 0)
        return serve_error(err, MINIDBX_EINVAL, 0, "timeouts must be at least 1 second");
    if (cfg->verified_cache_entries > 1000000)
        return serve_error(err, MINIDBX_EINVAL, 0, "--verified-cache must be 0..1000000");
    if (cfg->body_cache_bytes > ((uint64_t)1 << 40))
        return serve_error(err, MINIDBX_EINVAL, 0, "--body-cache must be at most 1T");
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        return serve_error(err, MINIDBX_EINVAL, 0, "--tls-cert and --tls-key go together");
    return 0;
}

char *serve_read_file_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;

    if (!f)
        return NULL;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    if (mem)
        fclose(mem);
    fclose(f);
    return text;
}
