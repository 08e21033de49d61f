/* A restricted unpickler for the data.pkl of a torch.save'd state dict.
 *
 * A Python pickle is a program for a small stack machine; a normal
 * unpickler imports any module and calls any function the file names,
 * which makes loading an untrusted .bin the same as running it. This one
 * runs no code at all: it knows the few opcodes a state dict uses (protocols
 * 2 to 5) and an allow-list of globals, each of which it models itself:
 *
 *   collections.OrderedDict                  the state dict, and empty hook dicts
 *   torch._utils._rebuild_tensor_v2          a tensor: storage, offset, size, stride, ...
 *   torch._utils._rebuild_parameter          an nn.Parameter around such a tensor
 *   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage
 *                                            storage types, only inside persistent ids
 *
 * Any other global (os.system, builtins.eval, subprocess.Popen, ...) is
 * refused when named, before anything could call it; REDUCE (a call) is
 * accepted only on the callables above with the arguments torch writes;
 * BUILD only sets the state of a dict (the state dict's _metadata, ignored).
 * A persistent id must be ('storage', <storage type>, key, location, numel);
 * the storage's bytes are the zip entry data/<key>, which this layer does not
 * read (formats/torch_bin.h does).
 *
 * Limits (stack, mark depth, memo, objects, string length) bound memory and
 * time on hostile input; real state dicts stay far below them. */
#ifndef VMED_FORMATS_PICKLE_H
#define VMED_FORMATS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tensor/tensor.h"

#define PICKLE_MAX_OBJECTS (1 << 22)
#define PICKLE_MAX_MEMO (1 << 22)
#define PICKLE_MAX_STACK (1 << 20)
#define PICKLE_MAX_MARKS 64
#define PICKLE_MAX_STRING (1 << 20)
#define PICKLE_MAX_KEY 256

typedef struct {
    char *name;               /* the state dict key */
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements, as saved; checked contiguous */
    char *storage;            /* storage key: its bytes are the entry <archive>/data/<key> */
    uint64_t storage_offset;  /* in elements */
    uint64_t storage_numel;   /* elements the storage holds, as the pickle declares */
} PickleTensor;

typedef struct {
    PickleTensor *tensors;    /* in the order of the pickle */
    int n_tensors;
} PickleStateDict;

/* Runs the pickle in data[0, size) and returns its state dict: a dict of
 * name -> tensor, every tensor contiguous and inside its storage as the
 * pickle declares it. label names it in messages ("x.bin: data.pkl"). On
 * failure sd is left empty. */
int pickle_read_state_dict(PickleStateDict *sd, const uint8_t *data, size_t size, const char *label, Error *err);
void pickle_state_dict_free(PickleStateDict *sd);

/* The torch storage class name of dt ("FloatStorage"), or NULL. */
const char *pickle_storage_name(DType dt);

#endif
