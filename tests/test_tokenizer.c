void suite_tokenizer(void);
void suite_tokenizer(void) {}
