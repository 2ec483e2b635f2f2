/* id.c - object ids: strict hex parsing, formatting, SHA-256 via OpenSSL. */
#include "internal.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int minidbx_id_parse(minidbx_id *out, const char *hex)
{
    minidbx_id id;

    if (!out || !hex)
        return minidbx_error_set(MINIDBX_EINVAL, "id: NULL argument");
    /* Walk at most 65 characters: exactly 64 hex digits, then the end. An
     * id comes from users and URLs, so nothing else is accepted. */
    for (size_t i = 0; i < MINIDBX_ID_SIZE; i++) {
        int hi = hex_value((unsigned char)hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return minidbx_error_set(MINIDBX_EINVAL,
                                     "invalid id: expected 64 hex digits");
        id.bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    if (hex[2 * MINIDBX_ID_SIZE] != '\0')
        return minidbx_error_set(MINIDBX_EINVAL, "invalid id: longer than 64 hex digits");
    *out = id;
    return 0;
}

void minidbx_id_format(const minidbx_id *id, char out[MINIDBX_ID_HEX_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < MINIDBX_ID_SIZE; i++) {
        out[2 * i] = digits[id->bytes[i] >> 4];
        out[2 * i + 1] = digits[id->bytes[i] & 15];
    }
    out[2 * MINIDBX_ID_SIZE] = '\0';
}

int minidbx_id_equal(const minidbx_id *a, const minidbx_id *b)
{
    return memcmp(a->bytes, b->bytes, MINIDBX_ID_SIZE) == 0;
}

void dbx_id_short(const minidbx_id *id, char out[16])
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    memcpy(out, hex, 12);
    memcpy(out + 12, "\xe2\x80\xa6", 4); /* "…" and the NUL */
}

/* OpenSSL 3 looks an algorithm up on every EVP_sha256() use; fetch it once.
 * A failed fetch (no memory) is not remembered: the next call tries again. */
static _Atomic(EVP_MD *) sha256_md;
static pthread_mutex_t sha256_lock = PTHREAD_MUTEX_INITIALIZER;

static const EVP_MD *sha256(void)
{
    EVP_MD *md = atomic_load(&sha256_md);
    if (md)
        return md;
    pthread_mutex_lock(&sha256_lock);
    if (!(md = atomic_load(&sha256_md)) && (md = EVP_MD_fetch(NULL, "SHA256", NULL)))
        atomic_store(&sha256_md, md);
    pthread_mutex_unlock(&sha256_lock);
    return md;
}

int dbx_hash_init(void)
{
    return sha256() ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "SHA-256 is not available from OpenSSL");
}

struct dbx_hasher {
    EVP_MD_CTX *ctx;
};

int dbx_hasher_new(dbx_hasher **out)
{
    const EVP_MD *md = sha256();
    if (!md)
        return minidbx_error_set(MINIDBX_ENOMEM, "SHA-256 is not available from OpenSSL");
    dbx_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
        dbx_hasher_free(h);
        return minidbx_error_set(MINIDBX_ENOMEM, "cannot set up SHA-256");
    }
    *out = h;
    return 0;
}

int dbx_hasher_update(dbx_hasher *h, const void *data, size_t size)
{
    if (size && EVP_DigestUpdate(h->ctx, data, size) != 1)
        return minidbx_error_set(MINIDBX_EIO, "SHA-256 update failed");
    return 0;
}

int dbx_hasher_final(dbx_hasher *h, minidbx_id *out)
{
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(h->ctx, out->bytes, &len) != 1 || len != MINIDBX_ID_SIZE ||
        EVP_DigestInit_ex(h->ctx, sha256(), NULL) != 1)
        return minidbx_error_set(MINIDBX_EIO, "SHA-256 final failed");
    return 0;
}

void dbx_hasher_free(dbx_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int minidbx_id_of(minidbx_id *out, const void *data, size_t size)
{
    unsigned int len = 0;
    if (!out || (!data && size))
        return minidbx_error_set(MINIDBX_EINVAL, "id_of: NULL argument");
    const EVP_MD *md = sha256();
    if (!md)
        return minidbx_error_set(MINIDBX_ENOMEM, "SHA-256 is not available from OpenSSL");
    if (EVP_Digest(size ? data : "", size, out->bytes, &len, md, NULL) != 1)
        return minidbx_error_set(MINIDBX_ENOMEM, "SHA-256 failed");
    return 0;
}

int dbx_id_verify(const minidbx_id *want, const minidbx_id *got)
{
    char want_hex[16], got_hex[16];
    if (minidbx_id_equal(want, got))
        return 0;
    dbx_id_short(want, want_hex);
    dbx_id_short(got, got_hex);
    return minidbx_error_set(MINIDBX_ECORRUPT, "object %s failed verification: got %s", want_hex,
                             got_hex);
}
