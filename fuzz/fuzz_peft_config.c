/* libFuzzer target for the PEFT adapter_config.json reader: any bytes go to
 * peft_config_parse; whatever it accepts must answer the questions the
 * LLaMA loader asks of it (targets, layers, per-module rank and scaling)
 * with sane values, and free cleanly. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PeftConfig c;
    Error err;
    if (peft_config_parse(&c, (const char *)data, size, "fuzz/adapter_config.json", &err) != 0) return 0;
    static const char *const keys[] = {
        "model.layers.0.self_attn.q_proj", "model.layers.31.mlp.down_proj", "q_proj", "", ".", "lm_head",
    };
    if (c.r < 1 || c.r > PEFT_MAX_RANK || !(c.lora_alpha > 0)) __builtin_trap();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        (void)peft_config_targets(&c, keys[i]);
        int r;
        double alpha, scaling;
        peft_module_params(&c, keys[i], &r, &alpha, &scaling);
        if (r < 1 || r > PEFT_MAX_RANK || !(alpha > 0) || !isfinite(scaling) || !(scaling > 0)) __builtin_trap();
    }
    char key[64], which;
    for (int i = 0; i < c.n_targets; i++) {
        if (!c.targets[i] || !c.targets[i][0]) __builtin_trap();
        /* a target name put where tensor names go must not overrun key */
        (void)peft_split_tensor_name(c.targets[i], key, sizeof key, &which);
    }
    (void)peft_layer_selected(&c, 0);
    (void)peft_layer_selected(&c, 7);
    peft_config_free(&c);
    return 0;
}
