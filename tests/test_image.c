void suite_image(void);
void suite_image(void) {}
