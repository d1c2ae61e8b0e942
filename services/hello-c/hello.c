/* hello-c: the example C program; links libgreet, built by another recipe (see `depends`). */
#include <stdio.h>
#include <sys/utsname.h>
#include "greet.h"

int main(int argc, char **argv) {
    char text[128];
    struct utsname u;
    greet(text, sizeof text, argc > 1 ? argv[1] : "world");
    uname(&u);
    printf("%s from hello-c on %s\n", text, u.machine);
    return 0;
}
