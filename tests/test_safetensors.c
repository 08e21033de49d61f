void suite_safetensors(void);
void suite_safetensors(void) {}
