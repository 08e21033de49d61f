void suite_generate(void);
void suite_generate(void) {}
