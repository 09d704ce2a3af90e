/* examples/blocking_io.c — read files on the blocking pool while the worker
 * keeps serving.
 *
 * The pattern: a task must never make a call that blocks its thread for
 * long — read(2) on a file, a DNS lookup with getaddrinfo, a C library that
 * sleeps or does heavy CPU work — because that thread is a worker, and
 * every other task queued on it would stall. Hand such calls to
 * crt_spawn_blocking: the function runs on a pool thread (created on
 * demand, up to crt_config.max_blocking_threads), as plain blocking C code,
 * and the task that joins it parks like on any other wait.
 *
 *   tokio: tokio::task::spawn_blocking(|| std::fs::read(path)).await
 *   Go:    nothing to do — the runtime hands a blocked goroutine's thread off by itself
 *
 * Here the runtime has a single worker thread. A heartbeat task on it wakes
 * every 10 ms, while four files are read on the blocking pool from a
 * simulated slow disk (a nanosleep per chunk stands in for the disk or an
 * NFS mount), and a fifth file that does not exist shows how errors come
 * back. Creating and removing the files is blocking I/O too, so it also
 * runs on the pool. Had the reads been made on the worker, the heartbeat
 * would have stopped for their whole duration.
 *
 * A blocking job cannot be aborted (it is plain code on a plain thread):
 * a deadline on its join stops the waiting, not the job.
 *
 * Exit status 1 if a file's checksum is wrong, the missing file did not
 * report ENOENT, or the heartbeat did not keep beating during the reads.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): files of 128 KiB at 15 ms
 * per 16 KiB chunk (0.12 s each); otherwise 4 MiB at 15 ms per 64 KiB (1 s).
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { NFILES = 4 };

typedef struct file_job {
    char path[512];
    size_t size, chunk;
    uint64_t written;   /* checksum of what was written */
    uint64_t read;      /* checksum of what was read back */
    size_t bytes;
    int err;            /* 0, or the negative errno of the failed call */
} file_job;

typedef struct workspace {
    char dir[256];
    file_job files[NFILES + 1]; /* the last one does not exist */
    int err;
} workspace;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}
#define FNV_START UINT64_C(0xcbf29ce484222325)

/* >>on the blocking pool: plain C, plain system calls */

static void slow_disk(void) {
    struct timespec ts = {0, 15 * 1000 * 1000}; /* 15 ms a chunk */
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int write_file(file_job *f, unsigned seed) {
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    unsigned char buf[4096];
    uint64_t h = FNV_START;
    for (size_t done = 0; done < f->size; done += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((done + i) * 131 + seed * 7 + (done >> 12));
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            int err = errno;
            close(fd);
            return -err;
        }
        h = fnv1a(h, buf, sizeof buf);
    }
    f->written = h;
    return close(fd) == 0 ? 0 : -errno;
}

static void *make_files(void *arg) {
    workspace *ws = (workspace *)arg;
    if (!mkdtemp(ws->dir)) {
        ws->err = -errno;
        return NULL;
    }
    for (int i = 0; i <= NFILES; i++)
        snprintf(ws->files[i].path, sizeof ws->files[i].path, "%s/%s%d.dat", ws->dir,
                 i < NFILES ? "file" : "missing", i);
    for (int i = 0; i < NFILES && ws->err == 0; i++) ws->err = write_file(&ws->files[i], (unsigned)i);
    return NULL;
}

static void *read_file(void *arg) {
    file_job *f = (file_job *)arg;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        f->err = -errno;
        return NULL;
    }
    unsigned char *buf = malloc(f->chunk);
    if (!buf) {
        f->err = -ENOMEM;
        close(fd);
        return NULL;
    }
    uint64_t h = FNV_START;
    ssize_t n;
    while ((n = read(fd, buf, f->chunk)) > 0) {
        slow_disk();
        h = fnv1a(h, buf, (size_t)n);
        f->bytes += (size_t)n;
    }
    f->err = n < 0 ? -errno : 0;
    f->read = h;
    free(buf);
    close(fd);
    return NULL;
}

static void *remove_files(void *arg) {
    workspace *ws = (workspace *)arg;
    for (int i = 0; i < NFILES; i++) unlink(ws->files[i].path);
    if (rmdir(ws->dir) < 0) ws->err = -errno;
    return NULL;
}

/* >>on the worker: the heartbeat */

typedef struct heartbeat {
    atomic_int beats;
    atomic_llong latest; /* how late the latest-ever beat woke */
} heartbeat;

static void *beat(void *arg) {
    heartbeat *hb = (heartbeat *)arg;
    for (;;) {
        crt_time due = crt_after(CRT_MS(10));
        if (crt_sleep_until(due) < 0) break; /* -ECANCELED: stop */
        long long late = crt_now() - due;
        if (late > atomic_load(&hb->latest)) atomic_store(&hb->latest, late);
        atomic_fetch_add(&hb->beats, 1);
    }
    return NULL;
}

/* Runs fn(arg) on the blocking pool and waits for it (the task parks, the
 * worker runs on). A job cannot be aborted, and this one writes into our
 * memory, so after a timeout we say so and keep waiting. */
static int run_blocking(crt_fn fn, void *arg, const char *what) {
    crt_task *job = crt_spawn_blocking(fn, arg);
    if (!job) return -errno;
    int rc = crt_join(job, NULL, crt_after(CRT_SEC(30)));
    if (rc < 0) {
        fprintf(stderr, "blocking_io: %s: %s; waiting for it anyway\n", what, crt_strerror(rc));
        crt_join(job, NULL, CRT_FOREVER);
    }
    return rc;
}

static void *main_task(void *arg) {
    workspace *ws = (workspace *)arg;
    heartbeat hb;
    atomic_init(&hb.beats, 0);
    atomic_init(&hb.latest, 0);
    crt_task *heart = crt_spawn(beat, &hb);
    if (!heart) return (void *)1;
    int failed = run_blocking(make_files, ws, "creating the files") < 0 || ws->err < 0;
    if (ws->err < 0) fprintf(stderr, "blocking_io: creating files in %s: %s\n", ws->dir, strerror(-ws->err));

    /* Read all five at once, each on a pool thread. */
    crt_task *jobs[NFILES + 1] = {0};
    int beats_before = atomic_load(&hb.beats);
    crt_time start = crt_now();
    for (int i = 0; i <= NFILES && !failed; i++)
        if (!(jobs[i] = crt_spawn_blocking(read_file, &ws->files[i]))) failed = 1;
    for (int i = 0; i <= NFILES; i++) {
        if (jobs[i] && crt_join(jobs[i], NULL, crt_after(CRT_SEC(30))) < 0) {
            fprintf(stderr, "blocking_io: a read is taking too long; waiting for it anyway\n");
            crt_join(jobs[i], NULL, CRT_FOREVER);
            failed = 1;
        }
    }
    crt_time took = crt_now() - start;
    int beats = atomic_load(&hb.beats) - beats_before;

    if (run_blocking(remove_files, ws, "removing the files") < 0 || ws->err < 0) failed = 1;
    crt_abort(heart);
    crt_join(heart, NULL, CRT_FOREVER);

    size_t bytes = 0;
    for (int i = 0; i < NFILES; i++) {
        const file_job *f = &ws->files[i];
        bytes += f->bytes;
        if (f->err < 0 || f->read != f->written || f->bytes != f->size) failed = 1;
    }
    int expected_beats = (int)(took / CRT_MS(10));
    printf("1 worker thread; %d files (%zu KiB) read on the blocking pool in %.2f s\n", NFILES, bytes / 1024,
           (double)took / 1e9);
    printf("meanwhile the heartbeat on the worker beat %d times (about %d expected), never more than %.1f ms late\n",
           beats, expected_beats, (double)atomic_load(&hb.latest) / 1e6);
    printf("the fifth file: %s (the error came back with the job's result)\n", strerror(-ws->files[NFILES].err));
    /* Generous: a third of the beats (on a loaded machine the thread may
     * run late); a worker blocked by the reads would have managed none. */
    int ok = !failed && ws->files[NFILES].err == -ENOENT && beats >= expected_beats / 3 && beats > 0;
    if (!ok) fprintf(stderr, "blocking_io: FAILED: wrong data, a missing error, or the worker stalled\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    static workspace ws; /* shared with the pool threads; outlives the runtime */
    const char *tmp = getenv("TMPDIR");
    snprintf(ws.dir, sizeof ws.dir, "%s/crt-blocking-io-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    for (int i = 0; i <= NFILES; i++) {
        file_job *f = &ws.files[i];
        f->size = short_mode() ? 128 * 1024 : 4 * 1024 * 1024;
        f->chunk = short_mode() ? 16 * 1024 : 64 * 1024;
    }
    crt_config cfg = {0};
    cfg.workers = 1; /* one worker: any blocking call on it would stall every task */
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, &ws, &status);
    if (rc < 0) {
        fprintf(stderr, "blocking_io: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
