/* The instruction page's machine code, run outside Python: the check that
 * the AArch64 bytes of runtime/instruction_page.py do what they say, on a
 * host that is not AArch64 (cross-compiled, run under qemu-aarch64).
 *
 * page.h (written by tests/test_instruction_page.py from the module's own
 * bytes) defines PAGE[] and the offsets OFF_LOAD ... OFF_FENCE.  The page is
 * built as the module builds it: mmap read+write, copy, mprotect
 * read+execute.  Then (1) every operation on one word, with narrow, wide and
 * negative values; (2) THREADS threads at once, each N times: fetch_add on a
 * counter, a load + CAS increment loop on another, fetch_or / fetch_and of
 * its own bit in a shared word (the old value must show its bit clear, then
 * set, and no other thread's bit may be lost), and a spin lock made of
 * exchange + store around a plain increment.  Prints "ok" or what failed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "page.h"

#define THREADS 4
#define N 50000

typedef int64_t (*op_t)(volatile int64_t *word, int64_t a, int64_t b);
static op_t load_, store_, exchange_, cas_, fetch_add_, fetch_or_, fetch_and_;
static void (*fence_)(void);
static int failures;

#define CHECK(what, got, want)                                                              \
    do {                                                                                    \
        int64_t g_ = (got), w_ = (want);                                                    \
        if (g_ != w_) {                                                                     \
            printf("FAIL %s: got %lld, expected %lld\n", what, (long long)g_, (long long)w_); \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static void one_word(void) {
    volatile int64_t w = 0;
    const int64_t big = (int64_t)1 << 40, top = (int64_t)1 << 62;
    store_(&w, -3, 0);                    CHECK("store", w, -3);
    CHECK("load", load_(&w, 0, 0), -3);
    store_(&w, -big, 0);                  CHECK("store wide", w, -big);
    CHECK("exchange", exchange_(&w, 7, 0), -big);              CHECK("after exchange", w, 7);
    CHECK("cas that fails", cas_(&w, 5, 9), 7);                CHECK("after failed cas", w, 7);
    CHECK("cas that succeeds", cas_(&w, 7, big), 7);           CHECK("after cas", w, big);
    CHECK("fetch_add", fetch_add_(&w, -2 * big, 0), big);      CHECK("after fetch_add", w, -big);
    CHECK("fetch_or", fetch_or_(&w, top, 0), -big);            CHECK("after fetch_or", w, -big | top);
    CHECK("fetch_and", fetch_and_(&w, big | top, 0), -big | top);  CHECK("after fetch_and", w, big | top);
    CHECK("fetch_and -2", fetch_and_(&w, -2, 0), big | top);   CHECK("after fetch_and -2", w, big | top);
    CHECK("fetch_add wraps", fetch_add_(&w, INT64_MAX, 0), big | top);
    fence_();
}

static struct {
    volatile int64_t counter __attribute__((aligned(64)));
    volatile int64_t cas_counter __attribute__((aligned(64)));
    volatile int64_t bits __attribute__((aligned(64)));
    volatile int64_t lock __attribute__((aligned(64)));
    volatile int64_t guarded __attribute__((aligned(64)));
    volatile int64_t bad_bits, start, cas_retries, spins;
} s;

static void *worker(void *arg) {
    const int64_t bit = (int64_t)1 << (8 * (intptr_t)arg + 3);
    fetch_add_(&s.start, 1, 0);
    while (load_(&s.start, 0, 0) < THREADS)
        ;
    for (int i = 0; i < N; i++) {
        fetch_add_(&s.counter, 1, 0);
        for (;;) {
            int64_t old = load_(&s.cas_counter, 0, 0);
            if (cas_(&s.cas_counter, old, old + 1) == old)
                break;
            fetch_add_(&s.cas_retries, 1, 0);
        }
        if (fetch_or_(&s.bits, bit, 0) & bit)
            fetch_add_(&s.bad_bits, 1, 0);
        if (!(fetch_and_(&s.bits, ~bit, 0) & bit))
            fetch_add_(&s.bad_bits, 1, 0);
        while (exchange_(&s.lock, 1, 0))
            fetch_add_(&s.spins, 1, 0);
        s.guarded = s.guarded + 1;       /* plain: only the lock's acquire/release order it */
        store_(&s.lock, 0, 0);
        if (i % 1024 == 0)
            fence_();
    }
    return 0;
}

int main(void) {
    long size = sysconf(_SC_PAGESIZE);
    unsigned char *page = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) { perror("mmap"); return 2; }
    memcpy(page, PAGE, sizeof PAGE);
    if (mprotect(page, size, PROT_READ | PROT_EXEC)) { perror("mprotect"); return 2; }
    load_ = (op_t)(page + OFF_LOAD);           store_ = (op_t)(page + OFF_STORE);
    exchange_ = (op_t)(page + OFF_EXCHANGE);   cas_ = (op_t)(page + OFF_CAS);
    fetch_add_ = (op_t)(page + OFF_FETCH_ADD); fetch_or_ = (op_t)(page + OFF_FETCH_OR);
    fetch_and_ = (op_t)(page + OFF_FETCH_AND); fence_ = (void (*)(void))(page + OFF_FENCE);

    one_word();
    pthread_t t[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], 0, worker, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], 0);
    CHECK("fetch_add counter", s.counter, (int64_t)THREADS * N);
    CHECK("cas counter", s.cas_counter, (int64_t)THREADS * N);
    CHECK("own bit seen wrong", s.bad_bits, 0);
    CHECK("bits left", s.bits, 0);
    CHECK("lock-guarded plain counter", s.guarded, (int64_t)THREADS * N);
    /* the race happened: threads met on the CAS and on the lock */
    printf("contention: %lld CAS retries, %lld lock spins\n", (long long)s.cas_retries, (long long)s.spins);
    printf(failures ? "%d failures\n" : "ok\n", failures);
    return failures != 0;
}
