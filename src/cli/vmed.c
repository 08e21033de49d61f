#include <stdio.h>
int main(void) { printf("vmed\n"); return 0; }
