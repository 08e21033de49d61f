/* libFuzzer target for the restricted unpickler: any bytes run as data.pkl.
 * Whatever it accepts must be a consistent state dict: every tensor
 * contiguous, inside its declared storage, with a NUL-terminated name
 * and storage key. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PickleStateDict sd;
    Error err;
    if (pickle_read_state_dict(&sd, data, size, "fuzz.bin: data.pkl", &err) != 0) return 0;
    for (int i = 0; i < sd.n_tensors; i++) {
        const PickleTensor *t = &sd.tensors[i];
        if (!t->name || !t->storage || strlen(t->storage) == 0) __builtin_trap();
        if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS || (int)t->dtype < 0 || t->dtype >= DT_COUNT) __builtin_trap();
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
        if (n > 0 && (t->storage_offset > t->storage_numel || n > t->storage_numel - t->storage_offset))
            __builtin_trap();
    }
    pickle_state_dict_free(&sd);
    return 0;
}
