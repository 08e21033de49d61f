/* PyTorch checkpoints: pytorch_model.bin, its shards
 * (pytorch_model-00001-of-00002.bin + pytorch_model.bin.index.json) and
 * PEFT's adapter_model.bin, read into the same SafeTensors struct the
 * safetensors reader fills, so every loader takes either.
 *
 * Since torch 1.6, torch.save writes a zip archive (formats/zip.h) whose
 * entries sit in one folder <archive>/: data.pkl, a pickle of the state dict
 * (formats/pickle.h, run by a restricted unpickler that never executes
 * code); data/<key>, the raw little-endian bytes of each storage; version,
 * and often byteorder. A tensor is a view of a storage at an element
 * offset, so here it points straight into the mapped file, as with
 * safetensors (two tensors may share one storage: tied weights).
 *
 * Refused, each with a message naming the file and the entry or tensor:
 * the legacy pre-1.6 format (not a zip), compressed or encrypted entries,
 * big-endian archives, globals outside the pickle allow-list,
 * non-contiguous tensors, storages smaller than their tensors, names
 * seen twice.
 *
 * CRC policy: the CRC-32 of data.pkl (and of version and byteorder) is
 * always checked: they are small and a damaged pickle would misplace every
 * tensor. The storages' CRCs are checked only when asked (verify_crc, or
 * VMED_VERIFY_CRC=1 in the environment for torch_bin_open), because
 * hashing a 13 GB checkpoint costs seconds at every load and the data is
 * otherwise used in place, page by page, as it is needed. */
#ifndef VMED_FORMATS_TORCH_BIN_H
#define VMED_FORMATS_TORCH_BIN_H

#include "base/error.h"
#include "formats/safetensors.h"

#define TORCH_BIN_SINGLE_NAME "pytorch_model.bin"
#define TORCH_BIN_INDEX_NAME "pytorch_model.bin.index.json"

typedef struct {
    int verify_crc;  /* also check every storage's CRC-32 (reads the whole file) */
} TorchBinOptions;

/* path: a .bin file, a folder holding pytorch_model.bin or
 * pytorch_model.bin.index.json, or a *.bin.index.json file. Storage CRCs
 * are checked when VMED_VERIFY_CRC is set to 1. On failure st is left
 * empty. */
int torch_bin_open(SafeTensors *st, const char *path, Error *err);
int torch_bin_open_opts(SafeTensors *st, const char *path, const TorchBinOptions *opt, Error *err);
/* One checkpoint held in memory (data must outlive st); label names it. */
int torch_bin_parse(SafeTensors *st, const uint8_t *data, size_t size, const char *label,
                    const TorchBinOptions *opt, Error *err);
/* 1 when dir holds pytorch_model.bin or pytorch_model.bin.index.json. */
int torch_bin_in_folder(const char *dir);

typedef struct {
    int force_zip64; /* write ZIP64 records even when nothing needs them (tests) */
} TorchBinSaveOptions;

/* Writes n tensors (name, dtype, shape, data, nbytes are used; nbytes
 * must match the shape) as torch.save writes a state dict: an
 * OrderedDict pickled with protocol 2, one storage per tensor, entries
 * stored and 64-byte aligned, ZIP64 once past 4 GB. torch.load reads it,
 * with weights_only=True too. Written to a temporary file and renamed. */
int torch_bin_save(const char *path, const StTensor *tensors, int n, Error *err);
int torch_bin_save_opts(const char *path, const StTensor *tensors, int n, const TorchBinSaveOptions *opt,
                        Error *err);

#endif
