/* libFuzzer target for the whole .bin reader (zip, then pickle, then the
 * storages): any bytes go to torch_bin_parse, with storage CRCs checked on
 * every other input. Whatever it accepts must be safe to use: every
 * tensor's first and last byte is read (ASan catches a range outside the
 * input) and every name must be findable. */
#include <stddef.h>
#include <stdint.h>

#include "formats/torch_bin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    Error err;
    TorchBinOptions opt = {.verify_crc = size % 2};
    if (torch_bin_parse(&st, data, size, "fuzz.bin", &opt, &err) != 0) return 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        const uint8_t *p = t->data;
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1];
        if (p < data || p + t->nbytes > data + size) __builtin_trap();
        if (st_find(&st, t->name) == NULL) __builtin_trap();
        Tensor v = st_tensor_view(t);
        if ((size_t)tensor_numel(&v) * dtype_size(t->dtype) != t->nbytes) __builtin_trap();
    }
    (void)sink;
    st_close(&st);
    return 0;
}
