void suite_wordpiece(void);
void suite_wordpiece(void) {}
