/*
 * copy.c - minidbx_copy: copy what one store has and another lacks, in
 * parallel, in bounded memory, through the public calls only (so it works
 * between any two kinds of store), then the names.
 *
 * The calling thread plans: it lists src a page at a time, asks dst which
 * of the page's ids it lacks (one minidbx_missing per page) and queues
 * those; worker threads take them off the queue and stream each from a
 * reader on src into a writer on dst. The queue is bounded, so planning
 * never runs far ahead of copying and memory stays bounded however big the
 * store: QUEUE_CAPACITY tasks, one page of listing, one chunk per thread.
 * Names come once every object is copied (dst must have a name's object
 * before the name), planned by walking src's and dst's sorted name lists
 * side by side, and set by the same threads.
 */
#include "api.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One buffer per thread: big enough for full-speed I/O. */
#define CHUNK_BYTES ((size_t)1 << 20)
/* Ids per minidbx_missing query (and objects per listing page). */
#define CHECK_BATCH 1000
/* Names per listing page, on each side. */
#define NAME_PAGE 256
/* Tasks planned ahead of the copying threads. */
#define QUEUE_CAPACITY 4096
#define DEFAULT_THREADS 4
#define MAX_THREADS 64
/* EIO from this many dst writes in a row, with no success between them:
 * dst has gone away (a node killed, a network down); stop instead of
 * failing every object that is left one by one. */
#define DST_EIO_IN_A_ROW_MAX 4

/* Objects over LARGE_OBJECT_BYTES are copied at most LARGE_COPIES_MAX at
 * a time, whatever the number of threads: a writer to a remote store may
 * hold several MiB of a large object (s3:// keeps up to 5 parts of 5 MiB in
 * memory, sending 4 at once), and a large copy is a long stream (or
 * several parts at once) already. Measured (20 x 100 MiB to a Ceph RGW,
 * -j 4): 2 at once peaked at 67 MiB RSS, 1 at once at about 41 MiB and
 * still 1.3x rclone copy. Small objects keep the other threads busy. */
#define LARGE_OBJECT_BYTES ((uint64_t)8 << 20)
#define LARGE_COPIES_MAX 1

#define MESSAGE_BYTES 512

/* Objects of at most SMALL_OBJECT_BYTES are copied up to OBJECTS_PER_TASK
 * to a task, all read first into the thread's buffer (CHUNK_BYTES holds
 * them), then written in one batch on dst: on the local store one commit
 * and one fsync for all of them instead of one each. */
#define SMALL_OBJECT_BYTES ((uint64_t)64 << 10)
#define OBJECTS_PER_TASK 64

/* A local store's metadata map (LMDB, where inline objects live) stays
 * mapped wherever a read touched it, and the kernel maps more about each
 * touch (fault-around, and a large folio of the page cache whole: about
 * 1 MiB a touch, measured on Linux 6.18 with ext4). A pass over 10,000
 * inline 4 KiB objects would so map all 80 MiB of them, and they count in
 * the process's RSS. A copy touches each once: when the process's
 * file-backed resident pages (/proc/self/statm) have grown by
 * DROP_MAPPED_BYTES since the copy began, the pages of a local src and
 * dst are let go (dbx_local_drop_pages; the page cache keeps them). It is
 * checked after each object read and each listing call, and a local src
 * is listed LOCAL_LIST_PAGE records a call. */
#define DROP_MAPPED_BYTES ((long)16 << 20)
#define LOCAL_LIST_PAGE 16

/* Names set on dst per task, in one batch: on the local store one
 * metadata commit (one fsync) for all of them instead of one each. */
#define NAMES_PER_TASK 64

enum task_kind { TASK_OBJECT, TASK_SMALL_OBJECTS, TASK_NAMES };

/* One small object to copy. */
struct object_entry {
    minidbx_id id;
    uint64_t size;
};

/* One name to set on dst. */
struct name_entry {
    char *name;          /* owned */
    minidbx_id id;
    int64_t mtime_ns;    /* when it was set on src */
    bool has_previous;   /* dst had the name, pointing at previous */
    minidbx_id previous;
};

struct task {
    enum task_kind kind;
    minidbx_id id;              /* TASK_OBJECT */
    uint64_t size;              /* TASK_OBJECT, as src's listing said (0: unknown) */
    struct object_entry *objects; /* TASK_SMALL_OBJECTS: owned, object_count of them */
    size_t object_count;
    uint64_t object_bytes;        /* their sizes' sum, at most CHUNK_BYTES */
    struct name_entry *names;     /* TASK_NAMES: owned, name_count of them */
    size_t name_count;
};

struct copy_run {
    minidbx *src, *dst;
    bool dry_run;
    minidbx_copy_cb cb;
    void *ctx;

    pthread_mutex_t lock;  /* everything below */
    pthread_cond_t changed; /* the queue, busy or stop changed */
    struct task *queue;    /* ring of QUEUE_CAPACITY */
    size_t head, count;
    size_t busy;           /* tasks being worked on */
    size_t large_copies;   /* of those, copies of objects over LARGE_OBJECT_BYTES */
    bool closed;           /* nothing more will be queued */
    int stop;              /* non-zero: stop, and return this */
    char stop_message[MESSAGE_BYTES];
    int first_error;       /* of a failed object or name */
    char first_message[MESSAGE_BYTES];
    unsigned dst_eio_in_a_row;
    bool dst_lacks_set_at; /* dst said EUNSUPPORTED to minidbx_name_set_at */
    minidbx_id *failed;    /* objects that failed, so names need not retry them */
    size_t failed_count, failed_capacity;
    minidbx_copy_report report;
    int statm_fd;          /* /proc/self/statm when src or dst is local, else -1 */
    long mapped_base;      /* file-backed resident pages when the copy began */
    bool local_src;
    struct task pending;   /* names planned, not yet queued (the calling thread's) */
    struct task pending_objects; /* small objects planned, not yet queued (likewise) */
};

/* --- events and the stop flag (lock held) -------------------------------------- */

static void emit(struct copy_run *run, const minidbx_copy_event *event)
{
    if (!run->cb)
        return;
    int rc = run->cb(run->ctx, event, &run->report);
    if (rc != 0 && run->stop == 0) {
        run->stop = rc;
        snprintf(run->stop_message, sizeof run->stop_message, "copy: stopped by its callback");
    }
    if (rc != 0)
        pthread_cond_broadcast(&run->changed);
}

/* Stop with code; the message is "prefix: detail". */
static void stop_with(struct copy_run *run, int code, const char *prefix, const char *detail)
{
    if (run->stop == 0) {
        run->stop = code;
        snprintf(run->stop_message, sizeof run->stop_message, "%.100s: %.400s", prefix, detail);
    }
    pthread_cond_broadcast(&run->changed);
}

/* A failure that stops the whole copy (src's listing, dst's missing
 * query): the message is the calling thread's last one. */
static int stop_on(struct copy_run *run, int code, const char *what)
{
    char detail[MESSAGE_BYTES];
    snprintf(detail, sizeof detail, "%s", minidbx_errmsg(NULL));
    pthread_mutex_lock(&run->lock);
    stop_with(run, code, what, detail);
    pthread_mutex_unlock(&run->lock);
    return code;
}

/* Whether a dst failure means dst is unusable for every copy left. */
static bool dst_unusable(struct copy_run *run, int code)
{
    if (code == MINIDBX_EIO)
        return ++run->dst_eio_in_a_row >= DST_EIO_IN_A_ROW_MAX;
    return code == MINIDBX_EREADONLY || code == MINIDBX_EPERM || code == MINIDBX_ENOSPC ||
           code == MINIDBX_EUNSUPPORTED || code == MINIDBX_ENOMEM;
}

/* A failed object or name: count it, keep the first error, tell cb, and
 * stop when dst is unusable. */
static void record_failure(struct copy_run *run, minidbx_copy_event *event)
{
    if (run->first_error == 0) {
        run->first_error = event->error;
        snprintf(run->first_message, sizeof run->first_message, "%.*s",
                 (int)sizeof run->first_message - 1, event->message);
    }
    emit(run, event);
    if (!event->from_source && dst_unusable(run, event->error))
        stop_with(run, event->error, "the destination is unusable", event->message);
}

static void object_failed(struct copy_run *run, const minidbx_id *id, int code,
                          const char *message, int from_source)
{
    minidbx_copy_event event = { MINIDBX_COPY_OBJECT_FAILED, id, NULL, NULL, 0, code, message,
                                 from_source };
    pthread_mutex_lock(&run->lock);
    if (run->stop != 0) {
        /* a copy in flight when the copy stopped: the stop says why */
        pthread_mutex_unlock(&run->lock);
        return;
    }
    run->report.objects_failed++;
    if (dbx_grow(&run->failed, &run->failed_capacity, run->failed_count + 1, sizeof *run->failed,
                 16) == 0)
        run->failed[run->failed_count++] = *id;
    record_failure(run, &event);
    pthread_mutex_unlock(&run->lock);
}

static void name_failed(struct copy_run *run, const char *name, const minidbx_id *id, int code,
                        const char *message, int from_source)
{
    minidbx_copy_event event = { MINIDBX_COPY_NAME_FAILED, id, name, NULL, 0, code, message,
                                 from_source };
    pthread_mutex_lock(&run->lock);
    if (run->stop != 0) {
        pthread_mutex_unlock(&run->lock);
        return;
    }
    run->report.names_failed++;
    record_failure(run, &event);
    pthread_mutex_unlock(&run->lock);
}

static bool object_failed_before(struct copy_run *run, const minidbx_id *id)
{
    bool found = false;
    pthread_mutex_lock(&run->lock);
    for (size_t i = 0; i < run->failed_count && !found; i++)
        found = minidbx_id_equal(&run->failed[i], id);
    pthread_mutex_unlock(&run->lock);
    return found;
}

/* An object or a name is done (copied or set; in a dry run, planned):
 * count it and tell cb. */
static void report_done(struct copy_run *run, minidbx_copy_event *event)
{
    pthread_mutex_lock(&run->lock);
    if (!run->dry_run)
        run->dst_eio_in_a_row = 0;
    if (event->kind == MINIDBX_COPY_OBJECT) {
        run->report.objects_copied++;
        run->report.bytes_copied += event->size;
    } else {
        run->report.names_set++;
    }
    emit(run, event);
    pthread_mutex_unlock(&run->lock);
}

static void object_done(struct copy_run *run, const minidbx_id *id, uint64_t size)
{
    minidbx_copy_event event = { MINIDBX_COPY_OBJECT, id, NULL, NULL, size, 0, "", 0 };
    report_done(run, &event);
}

static void name_done(struct copy_run *run, const struct name_entry *entry)
{
    minidbx_copy_event event = { MINIDBX_COPY_NAME, &entry->id, entry->name,
                                 entry->has_previous ? &entry->previous : NULL, 0, 0, "", 0 };
    report_done(run, &event);
}

static void task_free(struct task *task)
{
    for (size_t i = 0; i < task->name_count; i++)
        free(task->names[i].name);
    free(task->names);
    free(task->objects);
    memset(task, 0, sizeof *task);
}

/* Bytes of an object went to dst. Returns the stop value (0: go on). */
static int bytes_sent(struct copy_run *run, const minidbx_id *id, size_t bytes, bool tell)
{
    minidbx_copy_event event = { MINIDBX_COPY_BYTES, id, NULL, NULL, bytes, 0, "", 0 };
    pthread_mutex_lock(&run->lock);
    run->report.bytes_sent += bytes;
    if (tell)
        emit(run, &event);
    int stop = run->stop;
    pthread_mutex_unlock(&run->lock);
    return stop;
}

/* --- a local store's map -------------------------------------------------------- */

/* The process's file-backed resident pages (statm's "shared"), or -1. */
static long mapped_pages(int statm_fd)
{
    char text[128];
    long size, resident, shared;
    ssize_t n = pread(statm_fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    return sscanf(text, "%ld %ld %ld", &size, &resident, &shared) == 3 ? shared : -1;
}

static void watch_mapped_begin(struct copy_run *run)
{
    run->local_src = dbx_local_drop_pages(run->src->be);
    run->statm_fd = -1;
    if ((dbx_local_drop_pages(run->dst->be) || run->local_src) &&
        (run->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) >= 0)
        run->mapped_base = mapped_pages(run->statm_fd);
}

/* Let a local src's and dst's pages go once DROP_MAPPED_BYTES more are mapped. */
static void watch_mapped(struct copy_run *run)
{
    long now = run->statm_fd >= 0 ? mapped_pages(run->statm_fd) : -1;
    if (now >= 0 && (now - run->mapped_base) * sysconf(_SC_PAGESIZE) >= DROP_MAPPED_BYTES) {
        dbx_local_drop_pages(run->src->be);
        dbx_local_drop_pages(run->dst->be);
    }
}

/* --- the copying threads ------------------------------------------------------- */

/* Copy one object: 0, or a code (already reported, unless it is the stop
 * value: a copy cut short by a stop is no failure of its own). */
static int copy_object(struct copy_run *run, const minidbx_id *id, char *buf)
{
    minidbx_reader *reader = NULL;
    minidbx_writer *writer = NULL;
    char message[MESSAGE_BYTES] = "";
    uint64_t size = 0;
    int from_source = 1, stopped = 0;
    int rc = minidbx_reader_open(run->src, id, &reader, &size);

    if (rc == 0) {
        from_source = 0;
        rc = minidbx_writer_open(run->dst, &writer);
    }
    while (rc == 0) {
        size_t n = 0;
        from_source = 1;
        if ((rc = minidbx_reader_read(reader, buf, CHUNK_BYTES, &n)) < 0 || n == 0)
            break;
        from_source = 0;
        if ((rc = minidbx_writer_write(writer, buf, n)) == 0 &&
            (stopped = bytes_sent(run, id, n, size > CHUNK_BYTES)) != 0)
            rc = stopped;
    }
    if (rc == 0) {
        /* expect the id: whatever src handed out, dst stores only the right bytes */
        rc = minidbx_writer_commit_ex(writer, id, NULL, NULL);
        writer = NULL;
        from_source = rc == MINIDBX_ECORRUPT;
    }
    if (rc < 0 && !stopped)
        snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
    minidbx_writer_abort(writer);
    minidbx_reader_close(reader);
    if (rc == 0) {
        object_done(run, id, size);
    } else if (!stopped) {
        object_failed(run, id, rc, message[0] ? message : minidbx_strerror(rc), from_source);
    }
    return rc;
}

/* Read a whole object into buf (capacity bytes): 0 with *size, 1 when it
 * does not fit, or a code (reported). */
static int read_whole(struct copy_run *run, const minidbx_id *id, char *buf, size_t capacity,
                      uint64_t *size)
{
    minidbx_reader *reader = NULL;
    size_t got = 0, n = 0;
    int rc = minidbx_reader_open(run->src, id, &reader, size);

    if (rc == 0 && *size > capacity)
        rc = 1;
    while (rc == 0 && (rc = minidbx_reader_read(reader, buf + got, capacity - got, &n)) == 0 && n)
        got += n;
    if (rc < 0)
        object_failed(run, id, rc, minidbx_errmsg(NULL), 1);
    minidbx_reader_close(reader);
    return rc;
}

/* Store size bytes at data on dst as id (the writer checks that they are). */
static int write_whole(struct copy_run *run, const minidbx_id *id, const char *data, size_t size)
{
    minidbx_writer *writer = NULL;
    int rc = minidbx_writer_open(run->dst, &writer);

    if (rc == 0 && size && (rc = minidbx_writer_write(writer, data, size)) < 0)
        minidbx_writer_abort(writer);
    else if (rc == 0)
        rc = minidbx_writer_commit_ex(writer, id, NULL, NULL);
    return rc;
}

/* Copy a task's small objects: read them all, then write them in one
 * batch on dst; an object is copied only once its batch is committed. One
 * that did not fit (src said another size) is streamed on its own. */
static void copy_small_objects(struct copy_run *run, struct task *task, char *buf)
{
    bool written[OBJECTS_PER_TASK] = { false };
    int read_rc[OBJECTS_PER_TASK]; /* read_whole's: 0 read, 1 too big, < 0 failed */
    uint64_t size[OBJECTS_PER_TASK];
    size_t offset[OBJECTS_PER_TASK], used = 0;
    char message[MESSAGE_BYTES] = "";
    int rc, batch, stop = 0;

    for (size_t i = 0; i < task->object_count; i++) {
        offset[i] = used;
        read_rc[i] = read_whole(run, &task->objects[i].id, buf + used, CHUNK_BYTES - used, &size[i]);
        used += read_rc[i] == 0 ? size[i] : 0;
        watch_mapped(run);
    }
    batch = minidbx_batch_begin(run->dst);
    for (size_t i = 0; i < task->object_count && stop == 0; i++) {
        if (read_rc[i] != 0)
            continue;
        rc = write_whole(run, &task->objects[i].id, buf + offset[i], size[i]);
        written[i] = rc == 0;
        if (rc < 0)
            object_failed(run, &task->objects[i].id, rc, minidbx_errmsg(NULL),
                          rc == MINIDBX_ECORRUPT);
        else
            stop = bytes_sent(run, &task->objects[i].id, size[i], false);
    }
    rc = batch < 0 || stop != 0 ? 0 : minidbx_batch_commit(run->dst);
    if (rc < 0)
        snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
    if (batch == 0)
        minidbx_batch_abort(run->dst); /* when stopped; ESTATE after a commit */
    for (size_t i = 0; i < task->object_count && stop == 0; i++) {
        if (written[i] && rc == 0)
            object_done(run, &task->objects[i].id, size[i]);
        else if (written[i])
            object_failed(run, &task->objects[i].id, rc, message, 0);
    }
    for (size_t i = 0; i < task->object_count && stop == 0; i++)
        if (read_rc[i] == 1)
            copy_object(run, &task->objects[i].id, buf);
}

/* Set a name on dst with the time it was set on src, where dst can keep
 * it (minidbx_name_set_at), else at dst's own time. */
static int set_name_on_dst(struct copy_run *run, const struct name_entry *entry)
{
    bool lacks_set_at;
    int rc;

    pthread_mutex_lock(&run->lock);
    lacks_set_at = run->dst_lacks_set_at;
    pthread_mutex_unlock(&run->lock);
    if (lacks_set_at)
        return minidbx_name_set(run->dst, entry->name, &entry->id);
    rc = minidbx_name_set_at(run->dst, entry->name, &entry->id, entry->mtime_ns);
    if (rc == 0) {
        /* dst keeps a copy newer than src's (last writer wins): the source
         * wins all the same, at dst's own time */
        minidbx_name_info now;
        if (minidbx_name_get(run->dst, entry->name, &now) == 0 && !minidbx_id_equal(&now.id, &entry->id))
            return minidbx_name_set(run->dst, entry->name, &entry->id);
        return 0;
    }
    if (rc != MINIDBX_EUNSUPPORTED)
        return rc;
    pthread_mutex_lock(&run->lock);
    run->dst_lacks_set_at = true;
    pthread_mutex_unlock(&run->lock);
    return minidbx_name_set(run->dst, entry->name, &entry->id);
}

/* A name whose object dst lacks: its object came to src after src's
 * listing (copy it, then set the name), or its copy failed. */
static void set_name_late(struct copy_run *run, const struct name_entry *entry, char *buf)
{
    int rc = MINIDBX_ENOTFOUND;

    if (!object_failed_before(run, &entry->id) && copy_object(run, &entry->id, buf) == 0)
        rc = set_name_on_dst(run, entry);
    if (rc == 0)
        name_done(run, entry);
    else if (rc == MINIDBX_ENOTFOUND)
        name_failed(run, entry->name, &entry->id, rc, "its object could not be copied", 1);
    else
        name_failed(run, entry->name, &entry->id, rc, minidbx_errmsg(NULL), 0);
}

/* Set names on dst one by one (a store without batches). */
static void set_names_one_by_one(struct copy_run *run, struct task *task, char *buf)
{
    for (size_t i = 0; i < task->name_count; i++) {
        struct name_entry *entry = &task->names[i];
        int rc = set_name_on_dst(run, entry);
        if (rc == 0)
            name_done(run, entry);
        else if (rc == MINIDBX_ENOTFOUND)
            set_name_late(run, entry, buf);
        else
            name_failed(run, entry->name, &entry->id, rc, minidbx_errmsg(NULL), 0);
    }
}

/* Set a task's names on dst in one batch, then report them: a name is set
 * only once its batch is committed. A name whose object dst lacks does not
 * spoil the batch; it is set on its own afterwards. */
static void set_names(struct copy_run *run, struct task *task, char *buf)
{
    char message[MESSAGE_BYTES] = "";
    int late[NAMES_PER_TASK];
    size_t late_count = 0;
    int rc = 0;

    if (minidbx_batch_begin(run->dst) < 0) {
        set_names_one_by_one(run, task, buf);
        return;
    }
    for (size_t i = 0; i < task->name_count && rc == 0; i++) {
        rc = set_name_on_dst(run, &task->names[i]);
        if (rc == MINIDBX_ENOTFOUND) {
            late[late_count++] = (int)i;
            rc = 0;
        }
    }
    if (rc == 0)
        rc = minidbx_batch_commit(run->dst);
    if (rc < 0)
        snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
    minidbx_batch_abort(run->dst); /* after a failed call; ESTATE after a commit */
    for (size_t i = 0, next_late = 0; i < task->name_count; i++) {
        bool is_late = next_late < late_count && late[next_late] == (int)i;
        next_late += is_late;
        if (rc < 0)
            name_failed(run, task->names[i].name, &task->names[i].id, rc, message, 0);
        else if (!is_late)
            name_done(run, &task->names[i]);
    }
    for (size_t i = 0; i < late_count && rc == 0; i++)
        set_name_late(run, &task->names[late[i]], buf);
}

/* With no room for another large copy: put the first queued task that
 * is not one at the head of the queue (the order of copies does not
 * matter). false when every queued task is a large copy. Lock held. */
static bool small_task_first(struct copy_run *run)
{
    for (size_t i = 0; i < run->count; i++) {
        struct task *task = &run->queue[(run->head + i) % QUEUE_CAPACITY];
        if (task->kind != TASK_OBJECT || task->size <= LARGE_OBJECT_BYTES) {
            struct task head = run->queue[run->head];
            run->queue[run->head] = *task;
            *task = head;
            return true;
        }
    }
    return false;
}

struct worker {
    struct copy_run *run;
    pthread_t thread;
    char *buf;
};

static void *worker_main(void *arg)
{
    struct worker *worker = arg;
    struct copy_run *run = worker->run;

    pthread_mutex_lock(&run->lock);
    for (;;) {
        while (run->count == 0 && !run->closed && run->stop == 0)
            pthread_cond_wait(&run->changed, &run->lock);
        if (run->stop != 0 || run->count == 0)
            break;
        if (run->large_copies >= LARGE_COPIES_MAX && !small_task_first(run)) {
            pthread_cond_wait(&run->changed, &run->lock);
            continue;
        }
        struct task task = run->queue[run->head];
        bool large = task.kind == TASK_OBJECT && task.size > LARGE_OBJECT_BYTES;
        run->large_copies += large;
        run->head = (run->head + 1) % QUEUE_CAPACITY;
        run->count--;
        run->busy++;
        pthread_cond_broadcast(&run->changed);
        pthread_mutex_unlock(&run->lock);

        if (task.kind == TASK_OBJECT)
            copy_object(run, &task.id, worker->buf);
        else if (task.kind == TASK_SMALL_OBJECTS)
            copy_small_objects(run, &task, worker->buf);
        else
            set_names(run, &task, worker->buf);
        task_free(&task);
        watch_mapped(run);

        pthread_mutex_lock(&run->lock);
        run->busy--;
        run->large_copies -= large;
        pthread_cond_broadcast(&run->changed);
    }
    pthread_mutex_unlock(&run->lock);
    return NULL;
}

/* --- planning (the calling thread) ------------------------------------------- */

/* Hand a task to the threads (a dry run only reports it). Takes what the
 * task owns. Returns 0, or the stop value. Name tasks queue up to
 * QUEUE_CAPACITY names, not tasks, so that memory stays bounded. */
static int submit(struct copy_run *run, struct task *task)
{
    size_t limit = task->kind == TASK_NAMES          ? QUEUE_CAPACITY / NAMES_PER_TASK
                   : task->kind == TASK_SMALL_OBJECTS ? QUEUE_CAPACITY / OBJECTS_PER_TASK
                                                      : QUEUE_CAPACITY;
    int stop;

    if (run->dry_run) {
        if (task->kind == TASK_OBJECT)
            object_done(run, &task->id, task->size);
        for (size_t i = 0; i < task->object_count; i++)
            object_done(run, &task->objects[i].id, task->objects[i].size);
        for (size_t i = 0; i < task->name_count; i++)
            name_done(run, &task->names[i]);
        task_free(task);
        pthread_mutex_lock(&run->lock);
        stop = run->stop;
        pthread_mutex_unlock(&run->lock);
        return stop;
    }
    pthread_mutex_lock(&run->lock);
    while (run->count >= limit && run->stop == 0)
        pthread_cond_wait(&run->changed, &run->lock);
    stop = run->stop;
    if (stop == 0) {
        run->queue[(run->head + run->count) % QUEUE_CAPACITY] = *task;
        run->count++;
        pthread_cond_broadcast(&run->changed);
    } else {
        task_free(task);
    }
    pthread_mutex_unlock(&run->lock);
    return stop;
}

/* Queue what *pending holds (the names or small objects planned so far). */
static int submit_pending(struct copy_run *run, struct task *pending)
{
    struct task task = *pending;

    memset(pending, 0, sizeof *pending);
    return task.name_count || task.object_count ? submit(run, &task) : 0;
}

static int submit_names(struct copy_run *run)
{
    return submit_pending(run, &run->pending);
}

/* One more small object for the pending task; queue it when full. */
static int plan_small_object(struct copy_run *run, const minidbx_id *id, uint64_t size)
{
    struct task *pending = &run->pending_objects;
    int rc = 0;

    if (pending->object_count == OBJECTS_PER_TASK || pending->object_bytes + size > CHUNK_BYTES)
        rc = submit_pending(run, pending);
    pending->kind = TASK_SMALL_OBJECTS;
    if (rc == 0 && !pending->objects &&
        !(pending->objects = calloc(OBJECTS_PER_TASK, sizeof *pending->objects))) {
        minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        return stop_on(run, MINIDBX_ENOMEM, "copying objects");
    }
    if (rc == 0) {
        pending->objects[pending->object_count].id = *id;
        pending->objects[pending->object_count++].size = size;
        pending->object_bytes += size;
    }
    return rc;
}

/* Until every task queued so far is done (or the copy stops). */
static int wait_idle(struct copy_run *run)
{
    pthread_mutex_lock(&run->lock);
    while ((run->count != 0 || run->busy != 0) && run->stop == 0)
        pthread_cond_wait(&run->changed, &run->lock);
    int stop = run->stop;
    pthread_mutex_unlock(&run->lock);
    return stop;
}


/* Look count objects up on dst and queue those it lacks. sizes_known:
 * the infos' sizes came from src's listing; else each missing object is
 * looked up on src (a given id), which also finds the ones src lacks. */
static int plan_objects(struct copy_run *run, const minidbx_object_info *infos, size_t count,
                        bool sizes_known, minidbx_id *ids)
{
    size_t missing = 0, at = 0;
    uint64_t bytes = 0;
    int rc;

    for (size_t i = 0; i < count; i++)
        ids[i] = infos[i].id;
    if ((rc = minidbx_missing(run->dst, ids, count, ids, &missing)) < 0)
        return stop_on(run, rc, "looking objects up on the destination");
    for (size_t i = 0; i < missing; i++) {
        while (!minidbx_id_equal(&infos[at].id, &ids[i]))
            at++; /* missing is a subsequence of the ids, in their order */
        bytes += infos[at].size;
    }
    pthread_mutex_lock(&run->lock);
    run->report.objects_checked += count;
    run->report.objects_present += count - missing;
    run->report.objects_missing += missing;
    run->report.bytes_missing += bytes;
    pthread_mutex_unlock(&run->lock);

    at = 0;
    for (size_t i = 0; i < missing && rc == 0; i++) {
        struct task task = { .kind = TASK_OBJECT, .id = ids[i] };
        minidbx_object_info info;
        while (!minidbx_id_equal(&infos[at].id, &ids[i]))
            at++;
        task.size = infos[at].size;
        if (!sizes_known) {
            int code = minidbx_stat(run->src, &ids[i], &info);
            if (code < 0) {
                object_failed(run, &ids[i], code, minidbx_errmsg(NULL), 1);
                continue;
            }
            task.size = info.size;
            pthread_mutex_lock(&run->lock);
            run->report.bytes_missing += info.size;
            pthread_mutex_unlock(&run->lock);
        }
        rc = task.size <= SMALL_OBJECT_BYTES ? plan_small_object(run, &task.id, task.size)
                                             : submit(run, &task);
    }
    return rc;
}

/* Every object of src, CHECK_BATCH at a time (a local src listed
 * LOCAL_LIST_PAGE at a time). */
static int plan_all_objects(struct copy_run *run, minidbx_object_info *page, minidbx_id *ids)
{
    size_t list_page = run->local_src ? LOCAL_LIST_PAGE : CHECK_BATCH;
    size_t have = 0, count = list_page;
    minidbx_id after;
    int rc = 0;

    for (bool first = true; rc == 0 && count == list_page; first = false) {
        if ((rc = minidbx_list(run->src, first ? NULL : &after, page + have, list_page, &count)) < 0)
            return stop_on(run, rc, "listing the source");
        watch_mapped(run);
        have += count;
        if (count)
            after = page[have - 1].id;
        if (have && (have + list_page > CHECK_BATCH || count < list_page)) {
            rc = plan_objects(run, page, have, true, ids);
            have = 0;
        }
    }
    return rc;
}

static int id_compare(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(minidbx_id));
}

/* The objects given by id and those of the names given, once each. */
static int plan_given_objects(struct copy_run *run, minidbx_id *given, size_t count,
                              minidbx_object_info *page, minidbx_id *ids)
{
    size_t unique = 0;
    int rc = 0;

    qsort(given, count, sizeof *given, id_compare);
    for (size_t i = 0; i < count; i++)
        if (unique == 0 || !minidbx_id_equal(&given[unique - 1], &given[i]))
            given[unique++] = given[i];
    for (size_t done = 0; done < unique && rc == 0; done += CHECK_BATCH) {
        size_t n = unique - done < CHECK_BATCH ? unique - done : CHECK_BATCH;
        for (size_t i = 0; i < n; i++) {
            memset(&page[i], 0, sizeof page[i]);
            page[i].id = given[done + i];
        }
        rc = plan_objects(run, page, n, false, ids);
    }
    return rc;
}

/* One name of src against what dst has under it (dst_id NULL: nothing):
 * unchanged, or one more for the pending name task. */
static int plan_name(struct copy_run *run, const minidbx_name_info *src_name,
                     const minidbx_id *dst_id)
{
    struct task *pending = &run->pending;
    struct name_entry *entry;

    if (dst_id && minidbx_id_equal(dst_id, &src_name->id)) {
        pthread_mutex_lock(&run->lock);
        run->report.names_unchanged++;
        pthread_mutex_unlock(&run->lock);
        return 0;
    }
    pending->kind = TASK_NAMES;
    if (!pending->names && !(pending->names = calloc(NAMES_PER_TASK, sizeof *pending->names))) {
        minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        return stop_on(run, MINIDBX_ENOMEM, "copying names");
    }
    entry = &pending->names[pending->name_count];
    if (!(entry->name = strdup(src_name->name))) {
        minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        return stop_on(run, MINIDBX_ENOMEM, "copying names");
    }
    pending->name_count++;
    entry->id = src_name->id;
    entry->mtime_ns = src_name->mtime_ns;
    entry->has_previous = dst_id != NULL;
    if (dst_id)
        entry->previous = *dst_id;
    return pending->name_count == NAMES_PER_TASK ? submit_names(run) : 0;
}

/* A page of names of db after after (NULL: from the first), which may be
 * the last name of page itself. */
static int name_page(minidbx *db, const char *after, minidbx_name_info *page, size_t *count,
                     size_t *at)
{
    char last[MINIDBX_NAME_MAX + 1];

    if (after)
        snprintf(last, sizeof last, "%s", after);
    *at = 0;
    return minidbx_name_list(db, NULL, after ? last : NULL, page, NAME_PAGE, count);
}

/* Every name of src: both sorted lists walked side by side, a page of
 * each at a time, so that each name costs no request of its own. */
static int plan_all_names(struct copy_run *run, minidbx_name_info *src_page,
                          minidbx_name_info *dst_page)
{
    size_t src_count, dst_count, src_at, dst_at;
    int rc;

    if ((rc = name_page(run->src, NULL, src_page, &src_count, &src_at)) < 0)
        return stop_on(run, rc, "listing the source's names");
    if ((rc = name_page(run->dst, NULL, dst_page, &dst_count, &dst_at)) < 0)
        return stop_on(run, rc, "listing the destination's names");
    while (src_at < src_count && rc == 0) {
        const minidbx_name_info *src_name = &src_page[src_at];
        int order = dst_at < dst_count ? strcmp(src_name->name, dst_page[dst_at].name) : -1;

        if (order > 0) {
            dst_at++;
        } else {
            rc = plan_name(run, src_name, order == 0 ? &dst_page[dst_at].id : NULL);
            src_at++;
            dst_at += order == 0;
        }
        /* a page used up and full: there may be more */
        if (rc == 0 && dst_at == dst_count && dst_count == NAME_PAGE &&
            (rc = name_page(run->dst, dst_page[dst_count - 1].name, dst_page, &dst_count,
                            &dst_at)) < 0)
            return stop_on(run, rc, "listing the destination's names");
        if (rc == 0 && src_at == src_count && src_count == NAME_PAGE &&
            (rc = name_page(run->src, src_page[src_count - 1].name, src_page, &src_count,
                            &src_at)) < 0)
            return stop_on(run, rc, "listing the source's names");
    }
    return rc;
}

/* The names given, already looked up on src (found[i] says which were). */
static int plan_given_names(struct copy_run *run, const minidbx_name_info *names, size_t count,
                            const bool *found)
{
    int rc = 0;

    for (size_t i = 0; i < count && rc == 0; i++) {
        minidbx_name_info dst_name;
        if (!found[i])
            continue;
        int code = minidbx_name_get(run->dst, names[i].name, &dst_name);
        if (code == 0 || code == MINIDBX_ENOTFOUND)
            rc = plan_name(run, &names[i], code == 0 ? &dst_name.id : NULL);
        else
            name_failed(run, names[i].name, &names[i].id, code, minidbx_errmsg(NULL), 0);
    }
    return rc;
}

/* --- the whole copy ------------------------------------------------------------ */

/* Memory the calling thread plans with. */
struct plan_buffers {
    minidbx_object_info *page;
    minidbx_id *ids;
    minidbx_name_info *src_names, *dst_names;
    minidbx_id *given;          /* the ids given, then those of the names given */
    minidbx_name_info *names;   /* the names given, looked up on src */
    bool *found;                /* names[i] is in src */
};

static void plan_buffers_free(struct plan_buffers *b)
{
    free(b->page);
    free(b->ids);
    free(b->src_names);
    free(b->dst_names);
    free(b->given);
    free(b->names);
    free(b->found);
}

static int plan_buffers_alloc(struct plan_buffers *b, const minidbx_copy_options *opts)
{
    size_t given = opts->id_count + opts->name_count;

    memset(b, 0, sizeof *b);
    b->page = calloc(CHECK_BATCH, sizeof *b->page);
    b->ids = calloc(CHECK_BATCH, sizeof *b->ids);
    b->src_names = calloc(NAME_PAGE, sizeof *b->src_names);
    b->dst_names = calloc(NAME_PAGE, sizeof *b->dst_names);
    b->given = calloc(given ? given : 1, sizeof *b->given);
    b->names = calloc(opts->name_count ? opts->name_count : 1, sizeof *b->names);
    b->found = calloc(opts->name_count ? opts->name_count : 1, sizeof *b->found);
    if (!b->page || !b->ids || !b->src_names || !b->dst_names || !b->given || !b->names ||
        !b->found) {
        plan_buffers_free(b);
        return minidbx_error_set(MINIDBX_ENOMEM, "copy: out of memory");
    }
    return 0;
}

/* The objects and names given (a name through src) to copy: the names
 * found go to b->names (b->found says which), all their ids to b->given. */
static int plan_given_objects_and_names(struct copy_run *run, const minidbx_copy_options *opts,
                                        struct plan_buffers *b)
{
    size_t given = opts->id_count;

    memcpy(b->given, opts->ids, opts->id_count * sizeof *opts->ids);
    for (size_t i = 0; i < opts->name_count; i++) {
        int code = minidbx_name_get(run->src, opts->names[i], &b->names[i]);
        if (code == 0) {
            b->found[i] = true;
            b->given[given++] = b->names[i].id;
        } else {
            name_failed(run, opts->names[i], NULL, code,
                        code == MINIDBX_ENOTFOUND ? "no such name in the source"
                                                  : minidbx_errmsg(NULL),
                        1);
        }
    }
    return plan_given_objects(run, b->given, given, b->page, b->ids);
}

/* Objects, then names, everything or what opts selects. */
static int plan(struct copy_run *run, const minidbx_copy_options *opts, struct plan_buffers *b)
{
    bool everything = opts->id_count == 0 && opts->name_count == 0;
    int rc = everything ? plan_all_objects(run, b->page, b->ids)
                        : plan_given_objects_and_names(run, opts, b);

    if (rc == 0)
        rc = submit_pending(run, &run->pending_objects);
    pthread_mutex_lock(&run->lock);
    run->report.listing_done = rc == 0;
    pthread_mutex_unlock(&run->lock);
    /* dst must have every object before the names that point at them */
    if (rc == 0)
        rc = wait_idle(run);
    if (rc == 0)
        rc = everything ? plan_all_names(run, b->src_names, b->dst_names)
                        : plan_given_names(run, b->names, opts->name_count, b->found);
    return rc == 0 ? submit_names(run) : rc;
}

static int check_arguments(minidbx *src, minidbx *dst, const minidbx_copy_options *opts)
{
    if (!src || !dst)
        return minidbx_error_set(MINIDBX_EINVAL, "copy: NULL store handle");
    if (src == dst)
        return minidbx_error_set(MINIDBX_EINVAL, "copy: the source and the destination are one handle");
    if (opts->version < 1 || opts->threads > MAX_THREADS)
        return minidbx_error_set(MINIDBX_EINVAL, "copy: bad options (version %u, %u threads; at most %d)",
                                 opts->version, opts->threads, MAX_THREADS);
    if (opts->flags & ~MINIDBX_COPY_DRY_RUN)
        return minidbx_error_set(MINIDBX_EINVAL, "copy: unknown flags 0x%x", opts->flags);
    if ((opts->id_count && !opts->ids) || (opts->name_count && !opts->names))
        return minidbx_error_set(MINIDBX_EINVAL, "copy: NULL ids or names");
    for (size_t i = 0; i < opts->name_count; i++)
        if (!opts->names[i] || !minidbx_name_valid(opts->names[i]))
            return minidbx_error_set(MINIDBX_EINVAL, "copy: '%s' is not a valid name",
                                     opts->names[i] ? opts->names[i] : "(null)");
    if (!(opts->flags & MINIDBX_COPY_DRY_RUN))
        return check_writable(dst, "copy to the destination");
    return 0;
}

/* Start up to count threads; returns how many started. */
static size_t start_workers(struct copy_run *run, struct worker *workers, size_t count)
{
    size_t started = 0;

    for (; started < count; started++) {
        workers[started].run = run;
        workers[started].buf = malloc(CHUNK_BYTES);
        if (!workers[started].buf ||
            dbx_thread_start(&workers[started].thread, worker_main, &workers[started]) != 0) {
            free(workers[started].buf);
            break;
        }
    }
    return started;
}

static void stop_workers(struct copy_run *run, struct worker *workers, size_t count)
{
    pthread_mutex_lock(&run->lock);
    run->closed = true;
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->lock);
    for (size_t i = 0; i < count; i++) {
        pthread_join(workers[i].thread, NULL);
        free(workers[i].buf);
    }
    /* after a stop, what was still queued */
    for (; run->count; run->count--, run->head = (run->head + 1) % QUEUE_CAPACITY)
        task_free(&run->queue[run->head]);
}

/* What minidbx_copy returns, with its message in the calling thread. */
static int outcome(struct copy_run *run)
{
    uint64_t objects = run->report.objects_failed, names = run->report.names_failed;

    if (run->stop < 0)
        return minidbx_error_set(run->stop, "%s", run->stop_message);
    if (run->stop > 0) {
        minidbx_error_set(MINIDBX_OK, "%s", run->stop_message);
        return run->stop;
    }
    if (objects || names)
        return minidbx_error_set(run->first_error,
                                 "copy: %llu object%s and %llu name%s could not be copied; the first: %s",
                                 (unsigned long long)objects, objects == 1 ? "" : "s",
                                 (unsigned long long)names, names == 1 ? "" : "s",
                                 run->first_message);
    return 0;
}

int minidbx_copy(minidbx *src, minidbx *dst, const minidbx_copy_options *opts,
                 minidbx_copy_report *report, minidbx_copy_cb cb, void *ctx)
{
    static const minidbx_copy_options defaults = MINIDBX_COPY_OPTIONS_INIT;
    struct copy_run run;
    struct plan_buffers buffers;
    struct worker workers[MAX_THREADS];
    size_t threads = 0;
    int rc;

    dbx_error_clear();
    if (report)
        memset(report, 0, sizeof *report);
    if (!opts)
        opts = &defaults;
    if ((rc = check_arguments(src, dst, opts)) < 0 || (rc = plan_buffers_alloc(&buffers, opts)) < 0)
        return rc;
    memset(&run, 0, sizeof run);
    run.src = src;
    run.dst = dst;
    run.dry_run = (opts->flags & MINIDBX_COPY_DRY_RUN) != 0;
    run.cb = cb;
    run.ctx = ctx;
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.changed, NULL);
    watch_mapped_begin(&run);
    run.queue = calloc(run.dry_run ? 1 : QUEUE_CAPACITY, sizeof *run.queue);
    if (!run.queue) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "copy: out of memory");
        goto out;
    }
    if (!run.dry_run &&
        (threads = start_workers(&run, workers, opts->threads ? opts->threads : DEFAULT_THREADS)) == 0) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "copy: no thread could be started");
        goto out;
    }
    plan(&run, opts, &buffers);
    stop_workers(&run, workers, threads);
    task_free(&run.pending); /* what was planned when the copy stopped */
    task_free(&run.pending_objects);
    rc = outcome(&run);
    if (report)
        *report = run.report;
out:
    if (run.statm_fd >= 0)
        close(run.statm_fd);
    free(run.queue);
    free(run.failed);
    plan_buffers_free(&buffers);
    pthread_cond_destroy(&run.changed);
    pthread_mutex_destroy(&run.lock);
    return rc;
}
