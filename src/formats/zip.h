/* A read-only ZIP reader over bytes already in memory (an mmap'd file), made
 * for the archives torch.save writes: every entry stored (method 0), data
 * aligned, the central directory at the end, ZIP64 records once the file or
 * an entry passes 4 GB.
 *
 * zip_open reads the end-of-central-directory record (searched back over a
 * trailing comment), the ZIP64 locator and record when present, and every
 * central directory entry with its ZIP64 extra field; it then checks each
 * entry's local header (signature, the same name, the data inside the
 * file), so that afterwards an entry's data range is known to be in bounds.
 * Names must be unique: two entries with one name would let two readers see
 * two different files in one archive.
 *
 * Data is handed out only for stored, unencrypted entries; anything else is
 * refused when asked for, with a message naming the entry. CRCs are not
 * checked by zip_open, because hashing a 13 GB checkpoint costs seconds:
 * callers check the entries they choose (zip_entry_check_crc). */
#ifndef VMED_FORMATS_ZIP_H
#define VMED_FORMATS_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Far beyond any checkpoint (a 65B model has ~1,500 entries); stops a
 * central directory of millions of tiny entries from eating memory. */
#define ZIP_MAX_ENTRIES (1 << 20)

typedef struct {
    char *name;           /* NUL-terminated copy */
    uint16_t method;      /* 0 stored, 8 deflate, ... */
    uint16_t flags;       /* general purpose bits; bit 0 = encrypted */
    uint32_t crc32;       /* as the central directory records it */
    uint64_t comp_size;   /* bytes in the file */
    uint64_t size;        /* bytes once extracted */
    uint64_t header;      /* offset of the local header */
    uint64_t data;        /* offset of the data (after the local header), in bounds */
} ZipEntry;

typedef struct {
    const uint8_t *bytes; /* the whole file; not owned */
    size_t size;
    char *label;          /* the file's name, for messages */
    ZipEntry *entries;    /* in central directory order */
    int n_entries;
    const ZipEntry **by_name; /* the same, sorted by name for zip_find */
} ZipArchive;

/* Parses the archive in bytes[0, size); label names it in messages. On
 * failure z is left empty (zip_close is harmless). bytes must outlive z. */
int zip_open(ZipArchive *z, const uint8_t *bytes, size_t size, const char *label, Error *err);
void zip_close(ZipArchive *z);

const ZipEntry *zip_find(const ZipArchive *z, const char *name);
/* The data of a stored, unencrypted entry; refuses others. */
int zip_entry_data(const ZipArchive *z, const ZipEntry *e, const uint8_t **data, Error *err);
/* Hashes the entry's data and compares with the recorded CRC-32. */
int zip_entry_check_crc(const ZipArchive *z, const ZipEntry *e, Error *err);

/* CRC-32 (ISO-HDLC, as ZIP and PNG use): start with crc = 0, feed the
 * previous result back to continue over more bytes. */
uint32_t zip_crc32(uint32_t crc, const void *data, size_t n);

#endif
