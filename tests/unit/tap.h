/* A tiny TAP producer for the C unit tests: ok(), is_str(), done(). The
 * plan is printed at the end, so tests need not be counted by hand. */
#ifndef TRAINCTL_TAP_H
#define TRAINCTL_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed;

static void tap_vresult(int pass, const char *fmt, va_list ap)
{
	tap_run++;
	if (!pass)
		tap_failed++;
	printf("%s %d - ", pass ? "ok" : "not ok", tap_run);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

static inline int ok(int pass, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vresult(pass, fmt, ap);
	va_end(ap);
	return pass;
}

static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A diagnostic line showing a string with its control characters
 * escaped, so a multi-line value stays one TAP comment. */
static inline void diag_str(const char *label, const char *s)
{
	printf("# %s: ", label);
	if (!s)
		fputs("(null)", stdout);
	for (; s && *s; s++) {
		if (*s == '\n')
			fputs("\\n", stdout);
		else if ((unsigned char)*s < ' ')
			printf("\\x%02x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('\n');
}

/* Compares two strings (NULL means "no string"); on failure shows both. */
static inline int is_str(const char *got, const char *want, const char *fmt,
			 ...)
{
	va_list ap;
	int pass = got && want ? strcmp(got, want) == 0 : got == want;

	va_start(ap, fmt);
	tap_vresult(pass, fmt, ap);
	va_end(ap);
	if (!pass) {
		diag_str("     got", got);
		diag_str("expected", want);
	}
	return pass;
}

/* Prints the plan; the exit status says whether everything passed. */
static inline int done_testing(void)
{
	printf("1..%d\n", tap_run);
	return tap_failed ? 1 : 0;
}

#endif
