void suite_llama(void);
void suite_llama(void) {}
