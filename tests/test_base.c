void suite_base(void);
void suite_base(void) {}
