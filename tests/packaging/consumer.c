/*
 * consumer.c -- a program outside the tree, built against an installed
 * libmailtls by tests/packaging/packaging.py (pkg-config, CMake, libtool).
 * It prints one line the test checks:
 *   mailtls-consumer ok version=<loaded> header=<built> tls=<name> from=<file>
 * where <file> is the object mailtls_version was found in (the installed
 * libmailtls.so, or the program itself when linked statically).
 * ISC license: see LICENSE.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <mailtls.h>

int
main(void)
{
	struct mailtls_config *cfg;
	const char *v, *name, *from = "?";
	Dl_info info;

	v = mailtls_version();
	if (!v || strcmp(v, MAILTLS_VERSION_STRING) != 0) {
		fprintf(stderr, "mailtls-consumer: fatal: library %s, header %s\n",
		    v ? v : "(null)", MAILTLS_VERSION_STRING);
		return 1;
	}
	cfg = mailtls_config_new();
	if (!cfg) {
		perror("mailtls-consumer: fatal: mailtls_config_new");
		return 111;
	}
	mailtls_config_ref(cfg);
	mailtls_config_free(cfg);
	mailtls_config_free(cfg);
	name = mailtls_errcode_name(MAILTLS_E_TLS);
	if (!name || !*name) {
		fprintf(stderr, "mailtls-consumer: fatal: mailtls_errcode_name gave nothing\n");
		return 1;
	}
	if (dladdr((void *)mailtls_version, &info) && info.dli_fname)
		from = info.dli_fname;
	printf("mailtls-consumer ok version=%s header=%s tls=%s from=%s\n",
	    v, MAILTLS_VERSION_STRING, name, from);
	return 0;
}
