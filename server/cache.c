/* cache.c - what the node remembers about blob files it has hashed, so
 * that a repeated GET need not read and hash the file again:
 *
 *   identities  --verified-cache entries, a direct-mapped table by id:
 *               (id, st_dev, st_ino, st_size, st_mtim, st_ctim) of a
 *               file that hashed to its id. A hit lets send.c sendfile
 *               the file (objects too large for a body).
 *   bodies      the verified bytes themselves, --body-cache bytes in
 *               all, of files of at most a quarter of that, with the
 *               same identity. A hit is sent from memory, its headers and
 *               bytes in one go: libmicrohttpd 0.9.75 sends an fd
 *               response's header alone and then the file in 128 KiB
 *               sendfile pieces, one poll round each (0.5-0.7x nginx on
 *               1 MiB GETs), while a buffer goes out in as few sends as
 *               the socket takes. Under --io-model per-connection the
 *               bytes are in a memfd instead, sealed (F_SEAL_WRITE,
 *               SHRINK, GROW, SEAL) before the copy is used, and sent
 *               by sendfile: no copy into the socket, and in that mode
 *               libmicrohttpd sends up to 2 MiB per call (io.c).
 *
 * What an identity trusts. A file is remembered with the identity and
 * times that fstat gave before its bytes were read and again after. A
 * later GET uses the entry only if the fd it has just opened has exactly
 * those, and (identities) the entry is younger than VERIFIED_TTL_NS. This
 * trusts that the bytes of a file cannot change through the filesystem
 * without its ctime changing, and that holds only for a file that no one
 * has open for writing:
 *
 *   - every write, truncate, fallocate or copy into a file sets its ctime
 *     to the current time, and nothing in user space can set ctime back
 *     (utimensat sets mtime, and ctime to now); a rename of another file
 *     into place changes st_ino;
 *   - a store through a shared writable mapping sets ctime only on the
 *     write fault of a clean page; the page then stays writable until
 *     writeback cleans it (dirty_expire_centisecs, 30 s by default; on
 *     tmpfs, never), and every store meanwhile changes the bytes with no
 *     new ctime. A store through a mapping made later faults first (its
 *     page table entry starts read-only), so it is only the mappings that
 *     exist when the hashing starts that can do this.
 *
 * A mapping made later faults first, and that fault moves ctime only
 * where the filesystem's page_mkwrite does (ext4, XFS, Btrfs): on tmpfs
 * and ramfs no mapped write ever moves it, and on filesystems not known
 * to, nothing is remembered (serve_file_rememberable): every GET hashes.
 *
 * So before the bytes are read, serve_file_rememberable asks whether anyone
 * has the file open for writing: a writable shared mapping holds its
 * file open for writing (even after its fd is closed), and the kernel
 * grants a read lease (F_SETLEASE, F_RDLCK) only when no one, in any
 * process, has it open so. A file that someone has is hashed on every
 * GET while they do. Waiting out the writeback horizon instead (remember
 * only a ctime older than dirty_expire + dirty_writeback + a margin)
 * would not be sound: writeback can be late (a slow disk,
 * dirty_writeback_centisecs 0) or, on tmpfs, never come. Dropping the
 * identities for the body cache alone would hash every GET of an object
 * too large for it.
 *
 * And the file is only remembered when its ctime is at least
 * CTIME_MARGIN_NS older than the start of the hashing: a write that came
 * after (through a descriptor opened after the lease was let go, or a new
 * mapping's fault) would have to set ctime to an older value, which needs
 * a clock stepped back by more than the margin, or a filesystem with
 * timestamps coarser than the margin. Not covered (nor by any hashing of
 * bytes that the page cache holds): changes below the filesystem (a raw
 * write to the disk, silent media errors), and a write to a blob during
 * the sendfile of a remembered file, which only someone who can write the
 * store's files can make; the next GET after such a write sees the new
 * ctime and hashes again. Where leases cannot be had (a node that does
 * not own its store's files and lacks CAP_LEASE, a filesystem without
 * them, fs.leases-enable 0) nothing is remembered: every GET hashes.
 *
 * A body trusts less: the bytes sent are the bytes that were hashed, in
 * the node's own memory, whatever happens to the file afterwards. A
 * memfd body is read into a writable shared mapping of the memfd and
 * hashed there; the mapping goes (F_SEAL_WRITE cannot be added while one
 * exists) and the seals are added before the body is kept or sent, so
 * from then on nobody, this process included, can change its pages
 * (writes through /proc/PID/fd fail too); the fd never leaves the
 * process but as the dup a reply sends from. Its
 * identity is checked only so that a file changed since it was read (a
 * byte flipped on disk, a repair) is read and hashed again, and the GET
 * refuses a corrupt file as it would without the cache.
 *
 * Memory is bounded: identities are a fixed table (a flood of ids only
 * evicts); bodies, cached or read for one reply, are counted, and a new
 * one that would take the total over twice --body-cache is not made (the
 * GET streams the file instead). An evicted body is freed when the last
 * reply that sends it is done. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define VERIFIED_TTL_NS (60ll * 1000 * 1000 * 1000)
#define CTIME_MARGIN_NS (2ll * 1000 * 1000 * 1000)
/* Bodies cached at most (each is one malloc; the table is searched whole). */
#define BODY_SLOTS 64

/* What fstat says about a file that identifies its bytes. */
struct file_identity {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct verified_entry {
    minidbx_id id;
    struct file_identity file;
    int64_t verified_ns; /* serve_now_ns() when it was hashed; 0: empty */
};

struct serve_copy {
    atomic_uint refs;            /* the cache's, and one per reply sending it */
    struct serve_verified *owner;
    size_t size;
    int memfd;                   /* the bytes in a memfd (sealed once hashed), or -1: in bytes[] */
    char *fill;                  /* memfd: its writable mapping until serve_copy_seal */
    char bytes[];
};

struct body_slot {
    minidbx_id id;
    struct file_identity file;
    struct serve_copy *body;     /* NULL: empty */
    uint64_t last_used;          /* the cache's clock when last hit */
};

struct serve_verified {
    pthread_mutex_t lock;        /* the tables, the clock, cached_bytes */
    size_t count;
    struct verified_entry *slots;
    uint64_t body_cache_bytes;   /* --body-cache */
    uint64_t cached_bytes;       /* bodies in the table */
    atomic_ullong live_bytes;    /* bodies in memory: cached or being sent */
    uint64_t clock;
    bool memfd_bodies;           /* bodies in sealed memfds, sent by sendfile */
    struct body_slot bodies[BODY_SLOTS];
};

int serve_verified_start(struct serve_server *srv)
{
    size_t count = srv->cfg->verified_cache_entries;
    struct serve_verified *v = calloc(1, sizeof *v);

    if (!v || (count && !(v->slots = calloc(count, sizeof *v->slots)))) {
        free(v);
        return ENOMEM;
    }
    /* A read lease is the process's for an instant (serve_file_rememberable);
     * someone who opens the file for writing then makes the kernel send
     * it SIGIO, which would end it. */
    if (count)
        signal(SIGIO, SIG_IGN);
    v->count = count;
    v->body_cache_bytes = srv->cfg->body_cache_bytes;
    v->memfd_bodies = srv->cfg->io_model == SERVE_IO_PER_CONNECTION;
    pthread_mutex_init(&v->lock, NULL);
    srv->verified = v;
    return 0;
}

void serve_verified_stop(struct serve_server *srv)
{
    struct serve_verified *v = srv->verified;
    if (!v)
        return;
    /* the daemon is stopped: no reply holds a body any more */
    for (size_t i = 0; i < BODY_SLOTS; i++)
        if (v->bodies[i].body)
            serve_copy_release(v->bodies[i].body);
    pthread_mutex_destroy(&v->lock);
    free(v->slots);
    free(v);
    srv->verified = NULL;
}

static struct file_identity identity_of(const struct stat *st)
{
    return (struct file_identity){ st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim };
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool same_identity(const struct file_identity *a, const struct file_identity *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           same_time(&a->mtime, &b->mtime) && same_time(&a->ctime, &b->ctime);
}

bool serve_same_file(const struct stat *a, const struct stat *b)
{
    struct file_identity x = identity_of(a), y = identity_of(b);
    return same_identity(&x, &y);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t serve_hash_start_ns(void)
{
    return realtime_ns();
}

/* May the file (fd), hashed in full since hashed_since_ns (CLOCK_REALTIME)
 * with before as fstat said then, be remembered? Only if nothing changed
 * meanwhile and its ctime is old enough (see the top of the file). */
static bool may_remember(int fd, const struct stat *before, int64_t hashed_since_ns)
{
    struct stat after;
    int64_t ctime_ns = (int64_t)before->st_ctim.tv_sec * 1000000000 + before->st_ctim.tv_nsec;
    return fstat(fd, &after) == 0 && serve_same_file(before, &after) &&
           hashed_since_ns - ctime_ns >= CTIME_MARGIN_NS;
}

/* ---- identities -------------------------------------------------------------- */

/* Does a store through a shared mapping of a file on fd's filesystem set
 * the file's ctime (at the write fault of a clean page)? On ext2/3/4, XFS
 * and Btrfs it does (their page_mkwrite updates the times). On tmpfs and
 * ramfs it never does (they have no page_mkwrite), so there a mapping
 * made after the hashing changes the bytes with no new ctime; on other
 * filesystems it is not known. Nothing is remembered there. */
static bool mapped_writes_move_ctime(int fd)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0)
        return false;
    switch ((unsigned long)fs.f_type) {
    case 0xEF53UL:     /* EXT2/3/4_SUPER_MAGIC */
    case 0x58465342UL: /* XFS_SUPER_MAGIC */
    case 0x9123683EUL: /* BTRFS_SUPER_MAGIC */
        return true;
    default:
        return false;
    }
}

bool serve_file_rememberable(int fd)
{
    if (!mapped_writes_move_ctime(fd))
        return false;
    /* EAGAIN: open for writing somewhere; EACCES, EINVAL: no leases here */
    if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
        return false;
    fcntl(fd, F_SETLEASE, F_UNLCK);
    return true;
}

/* Ids are SHA-256 digests: their first bytes are as good as any hash. */
static struct verified_entry *verified_slot(struct serve_verified *v, const minidbx_id *id)
{
    uint64_t h;
    memcpy(&h, id->bytes, sizeof h);
    return &v->slots[h % v->count];
}

bool serve_verified_lookup(struct serve_server *srv, const minidbx_id *id, const struct stat *st)
{
    struct serve_verified *v = srv->verified;
    struct file_identity file = identity_of(st);
    bool hit;

    if (!v->count)
        return false;
    pthread_mutex_lock(&v->lock);
    struct verified_entry *e = verified_slot(v, id);
    hit = e->verified_ns && serve_now_ns() - e->verified_ns < VERIFIED_TTL_NS &&
          minidbx_id_equal(&e->id, id) && same_identity(&e->file, &file);
    pthread_mutex_unlock(&v->lock);
    return hit;
}

void serve_verified_remember(struct serve_server *srv, const minidbx_id *id, int fd,
                             const struct stat *before, int64_t hashed_since_ns)
{
    struct serve_verified *v = srv->verified;

    if (!v->count || !may_remember(fd, before, hashed_since_ns))
        return;
    pthread_mutex_lock(&v->lock);
    *verified_slot(v, id) = (struct verified_entry){ *id, identity_of(before), serve_now_ns() };
    pthread_mutex_unlock(&v->lock);
}

/* ---- bodies -------------------------------------------------------------------- */

/* A body whose bytes follow its header, in one anonymous mapping: freed,
 * it goes back to the system at once. */
static struct serve_copy *memory_copy_new(size_t size)
{
    struct serve_copy *body = mmap(NULL, sizeof *body + size, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (body == MAP_FAILED)
        return NULL;
    body->memfd = -1;
    body->fill = NULL;
    return body;
}

/* A body whose bytes are in a memfd of size bytes, mapped for writing
 * until serve_copy_seal. */
static struct serve_copy *memfd_copy_new(size_t size)
{
    struct serve_copy *body = malloc(sizeof *body);
    if (!body)
        return NULL;
    body->fill = MAP_FAILED;
    body->memfd = memfd_create("mdbx-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (body->memfd >= 0 && ftruncate(body->memfd, (off_t)size) == 0)
        body->fill = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, body->memfd, 0);
    if (body->fill == MAP_FAILED) {
        if (body->memfd >= 0)
            close(body->memfd);
        free(body);
        return NULL;
    }
    return body;
}

unsigned serve_copy_fds_max(const struct serve_server *srv)
{
    return srv->cfg->io_model == SERVE_IO_PER_CONNECTION && srv->cfg->body_cache_bytes ? BODY_SLOTS : 0;
}

bool serve_copy_cacheable(struct serve_server *srv, uint64_t size)
{
    uint64_t cache = srv->verified->body_cache_bytes;
    return cache > 0 && size <= cache / 4;
}

struct serve_copy *serve_copy_new(struct serve_server *srv, uint64_t size)
{
    struct serve_verified *v = srv->verified;
    unsigned long long live = atomic_load(&v->live_bytes);

    if (!serve_copy_cacheable(srv, size))
        return NULL;
    do
        if (live + size > 2 * v->body_cache_bytes)
            return NULL;
    while (!atomic_compare_exchange_weak(&v->live_bytes, &live, live + size));
    struct serve_copy *body = v->memfd_bodies && size > 0 ? memfd_copy_new((size_t)size) : NULL;
    if (!body)
        body = memory_copy_new((size_t)size);
    if (!body) {
        atomic_fetch_sub(&v->live_bytes, size);
        return NULL;
    }
    atomic_init(&body->refs, 1);
    body->owner = v;
    body->size = (size_t)size;
    return body;
}

char *serve_copy_bytes(struct serve_copy *body)
{
    return body->memfd >= 0 ? body->fill : body->bytes;
}

int serve_copy_seal(struct serve_copy *body)
{
    if (body->memfd < 0)
        return 0;
    munmap(body->fill, body->size);
    body->fill = NULL;
    return fcntl(body->memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

int serve_copy_fd(const struct serve_copy *body)
{
    return body->memfd;
}

uint64_t serve_copy_memory_bytes(struct serve_server *srv)
{
    return atomic_load(&srv->verified->live_bytes);
}

void serve_copy_release(void *cls)
{
    struct serve_copy *body = cls;
    if (!body || atomic_fetch_sub(&body->refs, 1) != 1)
        return;
    atomic_fetch_sub(&body->owner->live_bytes, body->size);
    if (body->memfd < 0) {
        munmap(body, sizeof *body + body->size);
        return;
    }
    if (body->fill)
        munmap(body->fill, body->size);
    close(body->memfd);
    free(body);
}

/* With the lock held: empty slot i. */
static void body_evict(struct serve_verified *v, struct body_slot *slot)
{
    v->cached_bytes -= slot->body->size;
    serve_copy_release(slot->body);
    slot->body = NULL;
}

struct serve_copy *serve_copy_lookup(struct serve_server *srv, const minidbx_id *id,
                                     const struct stat *st)
{
    struct serve_verified *v = srv->verified;
    struct file_identity file = identity_of(st);
    struct serve_copy *found = NULL;

    if (!v->body_cache_bytes)
        return NULL;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < BODY_SLOTS; i++) {
        struct body_slot *slot = &v->bodies[i];
        if (!slot->body || !minidbx_id_equal(&slot->id, id))
            continue;
        if (!same_identity(&slot->file, &file)) {
            body_evict(v, slot); /* the file changed: read and hash it again */
            break;
        }
        found = slot->body;
        atomic_fetch_add(&found->refs, 1);
        slot->last_used = ++v->clock;
        break;
    }
    pthread_mutex_unlock(&v->lock);
    return found;
}

void serve_copy_remember(struct serve_server *srv, const minidbx_id *id, int fd,
                         const struct stat *before, int64_t hashed_since_ns, struct serve_copy *body)
{
    struct serve_verified *v = srv->verified;
    struct body_slot *slot = NULL;

    if (!may_remember(fd, before, hashed_since_ns))
        return;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < BODY_SLOTS; i++)
        if (v->bodies[i].body && minidbx_id_equal(&v->bodies[i].id, id))
            body_evict(v, &v->bodies[i]); /* a GET that raced ours */
    /* the least recently used go until the body fits (it is at most a
     * quarter of the cache: it always does) */
    for (;;) {
        struct body_slot *empty = NULL, *oldest = NULL;
        for (size_t i = 0; i < BODY_SLOTS; i++) {
            struct body_slot *s = &v->bodies[i];
            if (!s->body)
                empty = empty ? empty : s;
            else if (!oldest || s->last_used < oldest->last_used)
                oldest = s;
        }
        if (empty && v->cached_bytes + body->size <= v->body_cache_bytes) {
            slot = empty;
            break;
        }
        if (!oldest)
            break;
        body_evict(v, oldest);
    }
    if (slot) {
        atomic_fetch_add(&body->refs, 1);
        *slot = (struct body_slot){ *id, identity_of(before), body, ++v->clock };
        v->cached_bytes += body->size;
    }
    pthread_mutex_unlock(&v->lock);
}
