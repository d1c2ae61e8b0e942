#ifndef GREET_H
#define GREET_H
/* Writes the greeting for `who` into buf (at most size bytes); returns its length. */
int greet(char *buf, unsigned long size, const char *who);
#endif
