void suite_tensor(void);
void suite_tensor(void) {}
