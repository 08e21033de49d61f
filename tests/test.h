/* A small test harness: each test is a function; CHECK fails the current test
 * and returns from it; SKIP reports it skipped with a reason (never passed).
 * The run ends with "N passed, N failed, N skipped". */
#ifndef VMED_TEST_H
#define VMED_TEST_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "formats/safetensors.h"
#include "models/llama.h"

void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int test_failed(void);
void test_run(const char *name, void (*fn)(void));

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);    \
            return;                                        \
        }                                                  \
    } while (0)

#define RUN(fn) test_run(#fn, fn)

/* The fixtures folder (VMED_FIXTURES, default ../shared/fixtures) joined with
 * rel, or NULL when it is absent: callers then SKIP with the reason. */
const char *fixture_path(const char *rel);
#define NEED_FIXTURE(var, rel)                                                      \
    const char *var = fixture_path(rel);                                            \
    if (!var) {                                                                     \
        test_skip("fixture %s not found (set VMED_FIXTURES)", rel);                 \
        return;                                                                     \
    }

/* A thread pool of n workers shared by the tests (NULL for 1), freed at exit. */
struct ThreadPool;
struct ThreadPool *test_pool(int n);

/* VMED_SOURCE_DIR/tests/data/rel: the committed references (ring of 8 buffers). */
const char *test_data(const char *rel);

/* A scratch directory unique to this run, removed at exit. */
const char *test_tmpdir(void);
/* Writes bytes to test_tmpdir()/name and returns the path (static buffer ring). */
const char *test_write_file(const char *name, const void *data, size_t n);

/* Runs `vmed ARGS` (the binary built beside the tests; args already
 * shell-quoted, may redirect stdin), stdout into out and stderr into
 * errout. Returns the exit code. */
int test_vmed(const char *args, char *out, size_t cap, char *errout, size_t ecap);

/* The numbers of a JSON array as ints, at most cap of them stored; returns
 * how many the array holds. */
int test_json_ints(const cJSON *a, int *out, int cap);

/* The fixtures' "generations" cases (input_ids, new_ids) run through
 * greedy generate() on m (up to 32 new tokens, the model's EOS, a context
 * of 256) with n_threads: returns how many cases matched HF's new ids id
 * for id, or -1 with msg saying which case and id differed, or why
 * generation failed. */
int test_llama_greedy_cases(const Llama *m, const cJSON *generations, int n_threads, char *msg, size_t cap);

/* Copies the F32 LLaMA folder src_dir (config and model.safetensors) into
 * dir with its weights stored as dt (F16 or BF16), or, with rounded, rounded
 * through dt but stored as F32. matrices_only keeps the 1-D norms F32, as
 * a GGUF file keeps them. */
int test_write_llama_as(const char *src_dir, const char *dir, DType dt, int rounded, int matrices_only, Error *err);

/* got against an F32 reference tensor: max|got - ref| <= 1e-4 * max(1,
 * max|ref|), the fixture README's bound. Fills the difference and the
 * bound for the message. */
int ref_close_to(const float *got, const StTensor *ref, float *diff, float *bound);

/* max |a-b| and max |b| over n floats. */
float max_abs_diff(const float *a, const float *b, size_t n);
float max_abs(const float *a, size_t n);

#endif
