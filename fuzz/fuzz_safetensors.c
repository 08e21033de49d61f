/* libFuzzer target for the safetensors reader: any bytes go to st_parse;
 * whatever it accepts must be safe to use, so every tensor's first and last
 * byte is read (ASan catches a range outside the input) and lookups run. */
#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    Error err;
    if (st_parse(&st, data, size, "fuzz.safetensors", &err) != 0) return 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        const uint8_t *p = t->data;
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1];
        if (st_find(&st, t->name) == NULL) __builtin_trap(); /* every name must be findable */
        Tensor v = st_tensor_view(t);
        if ((size_t)tensor_numel(&v) * dtype_size(t->dtype) != t->nbytes) __builtin_trap();
    }
    (void)st_find(&st, "model.embed_tokens.weight");
    (void)st_find(&st, "");
    (void)st_metadata(&st, "format");
    (void)sink;
    st_close(&st);
    return 0;
}
