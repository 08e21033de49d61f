void suite_prompt(void);
void suite_prompt(void) {}
