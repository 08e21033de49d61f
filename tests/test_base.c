/* base/: file reads with a size cap, atomic writes, path errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "base/bytes.h"
#include "base/file.h"
#include "test.h"

void suite_base(void);

static void t_read_all_caps_size(void) {
    const char *p = test_write_file("twelve.txt", "hello world\n", 12);
    char *buf;
    size_t n;
    Error err;
    CHECK(file_read_all(p, 12, &buf, &n, &err) == 0 && n == 12 && strcmp(buf, "hello world\n") == 0, "read");
    free(buf);
    CHECK(file_read_all(p, 11, &buf, &n, &err) == -1, "over the cap must fail");
    CHECK(strstr(err.msg, "twelve.txt: file is 12 bytes, more than the 11 allowed"), "message: %s", err.msg);
    CHECK(file_read_all(test_tmpdir(), 100, &buf, &n, &err) == -1 && strstr(err.msg, "not a regular file"),
          "a directory: %s", err.msg);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void t_atomic_write_replaces_or_leaves_alone(void) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/atomic", test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    Error err;
    AtomicFile f;
    CHECK(file_begin(&f, path, &err) == 0, "%s", err.msg);
    CHECK(file_write(&f, "new", 3, &err) == 0, "%s", err.msg);
    CHECK(!file_exists(path), "target visible before commit");
    CHECK(file_commit(&f, &err) == 0, "%s", err.msg);
    CHECK(file_exists(path) && count_entries(dir) == 1, "committed file");
    CHECK(file_begin(&f, path, &err) == 0, "%s", err.msg);
    CHECK(file_write(&f, "partial", 7, &err) == 0, "%s", err.msg);
    file_abort(&f);
    char *buf;
    CHECK(file_read_all(path, 100, &buf, NULL, &err) == 0, "%s", err.msg);
    int same = strcmp(buf, "new") == 0;
    free(buf);
    CHECK(same, "abort changed the old file");
    CHECK(count_entries(dir) == 1, "abort left a temporary file");
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x", dir);
    CHECK(file_begin(&f, bad, &err) == -1 && strstr(err.msg, "cannot create"), "%s", err.msg);
}

static void t_map_errors_name_the_file(void) {
    MappedFile m;
    Error err;
    CHECK(file_map(&m, "/nonexistent/model.safetensors", &err) == -1, "mapped a missing file");
    CHECK(strstr(err.msg, "/nonexistent/model.safetensors: cannot open"), "%s", err.msg);
    const char *p = test_write_file("empty.bin", "", 0);
    CHECK(file_map(&m, p, &err) == 0 && m.size == 0 && m.data == NULL, "empty file maps to nothing");
    file_unmap(&m);
}

/* dir_remove_tree removes a nested folder, and a link inside it goes
 * without its target. */
static void t_dir_remove_tree(void) {
    char root[700], cmd[2400], outside[700];
    snprintf(root, sizeof root, "%s/tree", test_tmpdir());
    snprintf(outside, sizeof outside, "%s/outside.txt", test_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/a/b' && echo x > '%s/a/b/f' && echo y > '%s' && ln -s '%s' '%s/a/link'",
             root, root, outside, outside, root);
    CHECK(system(cmd) == 0, "setup failed");
    Error err;
    CHECK(dir_remove_tree(root, &err) == 0, "%s", err.msg);
    CHECK(!dir_exists(root), "the folder is still there");
    CHECK(file_exists(outside), "the link's target was removed");
    CHECK(dir_remove_tree(root, &err) == 0, "a missing folder: %s", err.msg);
}

/* Bytes grows past its first allocation keeping what it held, and writes
 * little-endian integers of any width. */
static void t_bytes_grow_and_le(void) {
    Bytes b = {0};
    for (int i = 0; i < 1000; i++) {
        uint8_t c = (uint8_t)i;
        bytes_put(&b, &c, 1);
    }
    bytes_put_le(&b, 0x0102030405060708ull, 8);
    bytes_put_le(&b, 0xA1B2, 2);
    int ok = !b.oom && b.len == 1010;
    for (int i = 0; ok && i < 1000; i++) ok = b.p[i] == (uint8_t)i;
    const uint8_t want[10] = {8, 7, 6, 5, 4, 3, 2, 1, 0xB2, 0xA1};
    ok = ok && memcmp(b.p + 1000, want, 10) == 0;
    bytes_free(&b);
    CHECK(ok, "bytes lost or misordered");
    CHECK(b.p == NULL && b.len == 0, "bytes_free leaves an empty buffer");
}

void suite_base(void) {
    RUN(t_bytes_grow_and_le);
    RUN(t_dir_remove_tree);
    RUN(t_read_all_caps_size);
    RUN(t_atomic_write_replaces_or_leaves_alone);
    RUN(t_map_errors_name_the_file);
}
