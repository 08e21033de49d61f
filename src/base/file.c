#include "base/file.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_map(MappedFile *f, const char *path, Error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return error_set(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(err, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return error_set(err, "%s: cannot map %zu bytes: %s", path, f->size, strerror(e));
        }
        f->data = p;
    }
    close(fd);
    return 0;
}

void file_unmap(MappedFile *f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, Error *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return error_set(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return error_set(err, "%s: file is %lld bytes, more than the %zu allowed for this kind of file",
                         path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return error_set(err, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return error_set(err, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_join(char *out, size_t cap, const char *dir, const char *name, Error *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "%s: path too long", dir);
    return 0;
}

int file_begin(AtomicFile *f, const char *path, Error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%d", path, (int)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) return error_set(err, "%s: cannot create: %s", f->tmp, strerror(errno));
    return 0;
}

int file_write(AtomicFile *f, const void *data, size_t n, Error *err) {
    if (n && fwrite(data, 1, n, f->fp) != n)
        return error_set(err, "%s: write failed: %s", f->tmp, strerror(errno));
    return 0;
}

int file_commit(AtomicFile *f, Error *err) {
    int bad = fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int e = errno;
    if (fclose(f->fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    f->fp = NULL;
    if (bad) {
        unlink(f->tmp);
        return error_set(err, "%s: write failed: %s", f->tmp, strerror(e));
    }
    if (rename(f->tmp, f->path) != 0) {
        e = errno;
        unlink(f->tmp);
        return error_set(err, "%s: cannot rename into place: %s", f->path, strerror(e));
    }
    return 0;
}

void file_abort(AtomicFile *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp[0]) unlink(f->tmp);
}

int file_write_all(const char *path, const void *data, size_t n, Error *err) {
    AtomicFile f;
    if (file_begin(&f, path, err)) return -1;
    if (file_write(&f, data, n, err)) {
        file_abort(&f);
        return -1;
    }
    return file_commit(&f, err);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int dir_remove_tree(const char *path, Error *err) {
    if (!dir_exists(path)) return 0;
    /* depth first, without following links: a link to elsewhere goes, not its target */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return error_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}
