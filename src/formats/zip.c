#include "formats/zip.h"

#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u

#define LOCAL_SIZE 30u
#define CENTRAL_SIZE 46u
#define EOCD_SIZE 22u
#define EOCD64_SIZE 56u
#define LOCATOR64_SIZE 20u
#define EXTRA_ZIP64 0x0001u

/* Entry names in a checkpoint are "archive/data/123"; a long name is a
 * broken or hostile file. The format allows 65535. */
#define ZIP_MAX_NAME 4096u

/* ---- CRC-32 ---- */

/* Slicing by 8: eight 256-entry tables let the loop consume 8 bytes per
 * step, about 1-2 GB/s. The tables are built per call (a few microseconds)
 * rather than kept in a global. */
typedef struct {
    uint32_t t[8][256];
} CrcTables;

static void crc_tables(CrcTables *c) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;
        for (int k = 0; k < 8; k++) v = (v >> 1) ^ (0xedb88320u & (0u - (v & 1)));
        c->t[0][i] = v;
    }
    for (int s = 1; s < 8; s++)
        for (int i = 0; i < 256; i++) c->t[s][i] = (c->t[s - 1][i] >> 8) ^ c->t[0][c->t[s - 1][i] & 0xff];
}

static uint32_t crc_bitwise(uint32_t v, const uint8_t *p, size_t n) {
    while (n--) {
        v ^= *p++;
        for (int k = 0; k < 8; k++) v = (v >> 1) ^ (0xedb88320u & (0u - (v & 1)));
    }
    return v;
}

uint32_t zip_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t v = ~crc;
    if (n < 256) return ~crc_bitwise(v, p, n);
    CrcTables *c = malloc(sizeof *c);
    if (!c) return ~crc_bitwise(v, p, n);
    crc_tables(c);
    while (n >= 8) {
        uint32_t lo = v ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        v = c->t[7][lo & 0xff] ^ c->t[6][(lo >> 8) & 0xff] ^ c->t[5][(lo >> 16) & 0xff] ^ c->t[4][lo >> 24] ^
            c->t[3][p[4]] ^ c->t[2][p[5]] ^ c->t[1][p[6]] ^ c->t[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) v = (v >> 8) ^ c->t[0][(v ^ *p++) & 0xff];
    free(c);
    return ~v;
}

/* ---- little-endian fields ---- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* 1 when [off, off + len) lies inside a file of size bytes. */
static int in_file(uint64_t off, uint64_t len, size_t size) { return off <= size && len <= size - off; }

/* ---- end of central directory ---- */

typedef struct {
    uint64_t count;   /* entries */
    uint64_t cd_off;  /* central directory offset */
    uint64_t cd_size;
    uint64_t end;     /* where the central directory must end: the EOCD (or ZIP64 record) */
} Directory;

/* The EOCD is the last 22 bytes unless a comment (up to 65535 bytes)
 * follows it; scan back for the last signature whose comment fits. */
static int find_eocd(const ZipArchive *z, uint64_t *pos, Error *err) {
    if (z->size < EOCD_SIZE)
        return error_set(err, "%s: file is %zu bytes, too short for a zip archive (a torch.save checkpoint is one)",
                         z->label, z->size);
    size_t last = z->size - EOCD_SIZE;
    size_t first = last > 65535 ? last - 65535 : 0;
    for (size_t p = last + 1; p-- > first;) {
        const uint8_t *b = z->bytes + p;
        if (rd32(b) == SIG_EOCD && rd16(b + 20) <= z->size - p - EOCD_SIZE) {
            *pos = p;
            return 0;
        }
    }
    return error_set(err, "%s: no zip end-of-central-directory record; not a zip archive (torch.save writes zip "
                     "archives since torch 1.6; older pickle-only files are not supported)", z->label);
}

static int read_zip64_end(const ZipArchive *z, uint64_t eocd, Directory *d, Error *err) {
    const uint8_t *loc = z->bytes + eocd - LOCATOR64_SIZE;
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
        return error_set(err, "%s: multi-disk zip archives are not supported", z->label);
    uint64_t off = rd64(loc + 8);
    if (off > eocd - LOCATOR64_SIZE || eocd - LOCATOR64_SIZE - off < EOCD64_SIZE)
        return error_set(err, "%s: the zip64 end-of-central-directory offset %llu is outside the file", z->label,
                         (unsigned long long)off);
    const uint8_t *r = z->bytes + off;
    if (rd32(r) != SIG_EOCD64)
        return error_set(err, "%s: no zip64 end-of-central-directory record at offset %llu", z->label,
                         (unsigned long long)off);
    if (rd32(r + 16) != 0 || rd32(r + 20) != 0 || rd64(r + 24) != rd64(r + 32))
        return error_set(err, "%s: multi-disk zip archives are not supported", z->label);
    d->count = rd64(r + 32);
    d->cd_size = rd64(r + 40);
    d->cd_off = rd64(r + 48);
    d->end = off;
    return 0;
}

static int read_directory_end(const ZipArchive *z, Directory *d, Error *err) {
    uint64_t eocd = 0;
    if (find_eocd(z, &eocd, err) != 0) return -1;
    const uint8_t *e = z->bytes + eocd;
    /* A ZIP64 locator sits right before the EOCD whenever the writer used
     * ZIP64; its values then win over the 16/32-bit ones. */
    if (eocd >= LOCATOR64_SIZE && rd32(e - LOCATOR64_SIZE) == SIG_LOCATOR64)
        return read_zip64_end(z, eocd, d, err);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
        return error_set(err, "%s: multi-disk zip archives are not supported", z->label);
    if (rd16(e + 10) == 0xffff || rd32(e + 12) == 0xffffffffu || rd32(e + 16) == 0xffffffffu)
        return error_set(err, "%s: the zip end-of-central-directory record defers to a zip64 record that is "
                         "missing", z->label);
    d->count = rd16(e + 10);
    d->cd_size = rd32(e + 12);
    d->cd_off = rd32(e + 16);
    d->end = eocd;
    return 0;
}

/* ---- central directory ---- */

/* Replaces the 0xffffffff placeholders of e with the 64-bit values of the
 * ZIP64 extra field, which hold exactly those, in this order. */
static int apply_zip64(const ZipArchive *z, ZipEntry *e, const uint8_t *extra, uint16_t len, uint32_t usize,
                       uint32_t csize, uint32_t hoff, Error *err) {
    uint16_t pos = 0;
    while (pos < len) {
        if (len - pos < 4)
            return error_set(err, "%s: zip entry '%s' has a truncated extra field", z->label, e->name);
        uint16_t id = rd16(extra + pos), n = rd16(extra + pos + 2);
        pos += 4;
        if (n > len - pos)
            return error_set(err, "%s: zip entry '%s' has an extra field running past its end", z->label, e->name);
        if (id == EXTRA_ZIP64) {
            const uint8_t *f = extra + pos;
            uint16_t need = (uint16_t)(8 * ((usize == 0xffffffffu) + (csize == 0xffffffffu) + (hoff == 0xffffffffu)));
            if (n < need)
                return error_set(err, "%s: zip entry '%s' has a zip64 extra field of %u bytes, %u needed", z->label,
                                 e->name, n, need);
            if (usize == 0xffffffffu) e->size = rd64(f), f += 8;
            if (csize == 0xffffffffu) e->comp_size = rd64(f), f += 8;
            if (hoff == 0xffffffffu) e->header = rd64(f);
            return 0;
        }
        pos += n;
    }
    if (usize == 0xffffffffu || csize == 0xffffffffu || hoff == 0xffffffffu)
        return error_set(err, "%s: zip entry '%s' defers its size or offset to a zip64 extra field that is missing",
                         z->label, e->name);
    return 0;
}

static int check_name(const ZipArchive *z, const uint8_t *name, uint16_t n, uint64_t at, Error *err) {
    if (n == 0) return error_set(err, "%s: zip entry at offset %llu has an empty name", z->label, (unsigned long long)at);
    if (n > ZIP_MAX_NAME)
        return error_set(err, "%s: zip entry at offset %llu has a %u-byte name (at most %u)", z->label,
                         (unsigned long long)at, n, ZIP_MAX_NAME);
    if (memchr(name, 0, n))
        return error_set(err, "%s: zip entry at offset %llu has a NUL byte in its name", z->label,
                         (unsigned long long)at);
    return 0;
}

/* The local header must agree with the central entry; the data starts
 * after it and must end inside the file. */
static int check_local(const ZipArchive *z, ZipEntry *e, Error *err) {
    if (!in_file(e->header, LOCAL_SIZE, z->size) || rd32(z->bytes + e->header) != SIG_LOCAL)
        return error_set(err, "%s: zip entry '%s' has no local header at offset %llu", z->label, e->name,
                         (unsigned long long)e->header);
    const uint8_t *h = z->bytes + e->header;
    uint16_t nlen = rd16(h + 26), xlen = rd16(h + 28);
    uint64_t name_at = e->header + LOCAL_SIZE;
    if (!in_file(name_at, (uint64_t)nlen + xlen, z->size))
        return error_set(err, "%s: zip entry '%s' local header runs past the end of the file", z->label, e->name);
    if (nlen != strlen(e->name) || memcmp(z->bytes + name_at, e->name, nlen) != 0)
        return error_set(err, "%s: zip entry '%s' has a different name in its local header", z->label, e->name);
    if (rd16(h + 8) != e->method)
        return error_set(err, "%s: zip entry '%s' has a different compression method in its local header", z->label,
                         e->name);
    e->data = name_at + nlen + xlen;
    if (!in_file(e->data, e->comp_size, z->size))
        return error_set(err, "%s: zip entry '%s' runs past the end of the file", z->label, e->name);
    return 0;
}

static int read_entry(ZipArchive *z, uint64_t *pos, uint64_t cd_end, ZipEntry *e, Error *err) {
    uint64_t at = *pos;
    if (cd_end - at < CENTRAL_SIZE || rd32(z->bytes + at) != SIG_CENTRAL)
        return error_set(err, "%s: zip central directory entry %d at offset %llu is damaged", z->label, z->n_entries,
                         (unsigned long long)at);
    const uint8_t *c = z->bytes + at;
    uint16_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
    if ((uint64_t)nlen + xlen + clen > cd_end - at - CENTRAL_SIZE)
        return error_set(err, "%s: zip central directory entry %d runs past the end of the directory", z->label,
                         z->n_entries);
    const uint8_t *name = c + CENTRAL_SIZE;
    if (check_name(z, name, nlen, at, err) != 0) return -1;
    memset(e, 0, sizeof *e);
    e->name = malloc((size_t)nlen + 1);
    if (!e->name) return error_set(err, "%s: out of memory", z->label);
    memcpy(e->name, name, nlen);
    e->name[nlen] = 0;
    e->flags = rd16(c + 8);
    e->method = rd16(c + 10);
    e->crc32 = rd32(c + 16);
    uint32_t csize = rd32(c + 20), usize = rd32(c + 24), hoff = rd32(c + 42);
    e->comp_size = csize;
    e->size = usize;
    e->header = hoff;
    *pos = at + CENTRAL_SIZE + nlen + xlen + clen;
    return apply_zip64(z, e, name + nlen, xlen, usize, csize, hoff, err);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const ZipEntry *const *)a)->name, (*(const ZipEntry *const *)b)->name);
}

/* Sorts the names for zip_find and refuses any name seen twice. */
static int index_names(ZipArchive *z, Error *err) {
    z->by_name = malloc((size_t)z->n_entries * sizeof *z->by_name);
    if (!z->by_name) return error_set(err, "%s: out of memory", z->label);
    for (int i = 0; i < z->n_entries; i++) z->by_name[i] = &z->entries[i];
    qsort(z->by_name, (size_t)z->n_entries, sizeof *z->by_name, cmp_names);
    for (int i = 1; i < z->n_entries; i++)
        if (strcmp(z->by_name[i - 1]->name, z->by_name[i]->name) == 0)
            return error_set(err, "%s: zip entry '%s' appears twice", z->label, z->by_name[i]->name);
    return 0;
}

static int read_entries(ZipArchive *z, const Directory *d, Error *err) {
    if (d->cd_off > d->end || d->cd_size > d->end - d->cd_off)
        return error_set(err, "%s: the zip central directory (offset %llu, %llu bytes) lies outside the file",
                         z->label, (unsigned long long)d->cd_off, (unsigned long long)d->cd_size);
    if (d->count > ZIP_MAX_ENTRIES)
        return error_set(err, "%s: zip archive claims %llu entries, more than the %d allowed", z->label,
                         (unsigned long long)d->count, ZIP_MAX_ENTRIES);
    if (d->count > d->cd_size / CENTRAL_SIZE)
        return error_set(err, "%s: zip archive claims %llu entries but its central directory holds only %llu bytes",
                         z->label, (unsigned long long)d->count, (unsigned long long)d->cd_size);
    if (d->count == 0) return error_set(err, "%s: zip archive is empty", z->label);
    z->entries = calloc((size_t)d->count, sizeof *z->entries);
    if (!z->entries) return error_set(err, "%s: out of memory for %llu zip entries", z->label,
                                      (unsigned long long)d->count);
    uint64_t pos = d->cd_off, end = d->cd_off + d->cd_size;
    for (uint64_t i = 0; i < d->count; i++) {
        ZipEntry *e = &z->entries[z->n_entries];
        int rc = read_entry(z, &pos, end, e, err);
        if (e->name) z->n_entries++;
        if (rc != 0 || check_local(z, e, err) != 0) return -1;
    }
    return index_names(z, err);
}

/* ---- public ---- */

int zip_open(ZipArchive *z, const uint8_t *bytes, size_t size, const char *label, Error *err) {
    memset(z, 0, sizeof *z);
    size_t n = strlen(label) + 1;
    z->label = malloc(n);
    if (!z->label) return error_set(err, "%s: out of memory", label);
    memcpy(z->label, label, n);
    z->bytes = bytes;
    z->size = size;
    Directory d = {0};
    if (read_directory_end(z, &d, err) != 0 || read_entries(z, &d, err) != 0) {
        zip_close(z);
        return -1;
    }
    return 0;
}

void zip_close(ZipArchive *z) {
    for (int i = 0; i < z->n_entries; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->by_name);
    free(z->label);
    memset(z, 0, sizeof *z);
}

static int cmp_key(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const ZipEntry *const *)elem)->name);
}

const ZipEntry *zip_find(const ZipArchive *z, const char *name) {
    if (z->n_entries == 0) return NULL;
    const ZipEntry **hit = bsearch(name, z->by_name, (size_t)z->n_entries, sizeof *z->by_name, cmp_key);
    return hit ? *hit : NULL;
}

static const char *method_name(uint16_t m) {
    switch (m) {
    case 8: return "deflate";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    default: return "unknown";
    }
}

int zip_entry_data(const ZipArchive *z, const ZipEntry *e, const uint8_t **data, Error *err) {
    *data = NULL;
    if (e->flags & 1)
        return error_set(err, "%s: zip entry '%s' is encrypted", z->label, e->name);
    if (e->method != 0)
        return error_set(err, "%s: zip entry '%s' is compressed (method %u, %s); vmed reads only stored entries, "
                         "as torch.save writes them", z->label, e->name, e->method, method_name(e->method));
    if (e->comp_size != e->size)
        return error_set(err, "%s: zip entry '%s' is stored but its sizes differ (%llu in the file, %llu "
                         "extracted)", z->label, e->name, (unsigned long long)e->comp_size,
                         (unsigned long long)e->size);
    *data = z->bytes + e->data;
    return 0;
}

int zip_entry_check_crc(const ZipArchive *z, const ZipEntry *e, Error *err) {
    const uint8_t *data;
    if (zip_entry_data(z, e, &data, err) != 0) return -1;
    uint32_t got = zip_crc32(0, data, (size_t)e->size);
    if (got != e->crc32)
        return error_set(err, "%s: zip entry '%s' fails its CRC-32 check (recorded %08x, computed %08x): the file "
                         "is damaged", z->label, e->name, e->crc32, got);
    return 0;
}
