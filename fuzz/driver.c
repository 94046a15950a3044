/*
 * driver.c -- a main() for the fuzz targets when they are not built with
 * libFuzzer: runs LLVMFuzzerTestOneInput once over each file named on the
 * command line, and over every regular file (sorted, hidden ones skipped)
 * of each directory named.  Arguments starting with '-' (libFuzzer
 * options) are ignored, so a libFuzzer command line works here too.  Each
 * input is copied into a buffer of exactly its size, so a sanitizer sees a
 * read past its end.
 *
 * Exit codes: 0 all inputs ran; 1 an argument could not be read, or a
 * directory held no input (an empty corpus replays nothing: not a pass);
 * 2 usage.
 * A failing check inside a target aborts, as under libFuzzer.
 * ISC license: see LICENSE.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;
	if (!f) {
		fprintf(stderr, "driver: fatal: unable to open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "driver: fatal: unable to size %s: %s\n", path, strerror(errno));
		fclose(f);
		return -1;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || (n && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
		fprintf(stderr, "driver: fatal: unable to read %s\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	fprintf(stderr, "driver: running %s (%ld bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

static int run_dir(const char *dir, unsigned long *count)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort), rc = 0;
	if (n < 0) {
		fprintf(stderr, "driver: fatal: unable to list %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		if (ents[i]->d_name[0] != '.' &&
		    snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name) < (int)sizeof path &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(path) < 0)
				rc = -1;
			else
				(*count)++;
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned long count = 0;
	int rc = 0, args = 0;
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (argv[i][0] == '-')
			continue;
		args++;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "driver: fatal: unable to stat %s: %s\n", argv[i], strerror(errno));
			rc = 1;
		} else if (S_ISDIR(st.st_mode)) {
			unsigned long before = count;
			if (run_dir(argv[i], &count) < 0)
				rc = 1;
			if (count == before) {
				fprintf(stderr, "driver: fatal: no input in %s\n", argv[i]);
				rc = 1;
			}
		} else if (run_file(argv[i]) < 0) {
			rc = 1;
		} else {
			count++;
		}
	}
	if (!args) {
		fprintf(stderr, "usage: %s file-or-directory...\n", argv[0]);
		return 2;
	}
	fprintf(stderr, "driver: %lu inputs ran\n", count);
	return rc;
}
