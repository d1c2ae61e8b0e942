#include <stdio.h>
#include "greet.h"

int greet(char *buf, unsigned long size, const char *who) {
    return snprintf(buf, size, "greetings, %s", who);
}
