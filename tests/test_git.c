void suite_git(void);
void suite_git(void) {}
