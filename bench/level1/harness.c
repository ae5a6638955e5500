/*
 * The level-1 compressor alone, the way hoist calls it: FILE in 1 MiB blocks, every
 * block but the last with libdeflate_deflate_compress_sync. Prints the output bytes,
 * the CPU time of each of REPS passes (min, median, max), a hash of the output, and,
 * with a third argument, whether zlib inflates it back to FILE.
 *
 *   harness FILE REPS [verify]
 *
 * Built by bench/level1/run.py against a copy of crates/image/libdeflate's
 * deflate_compress.c (or a variant of it), with -O2 as crates/image/build.rs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include "libdeflate.h"

#define BLOCK (1 << 20)
#define MAX_REPS 64

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	FILE *f;
	size_t n, cap, tot = 0, off, i;
	unsigned char *in, *out;
	struct libdeflate_compressor *c;
	double times[MAX_REPS];
	unsigned long long h = 1469598103934665603ULL;
	int reps, r;

	if (argc < 3 || (reps = atoi(argv[2])) < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: harness FILE REPS(1..%d) [verify]\n", MAX_REPS);
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	in = malloc(n + 1);
	if (!in || fread(in, 1, n, f) != n) {
		fprintf(stderr, "%s: cannot read\n", argv[1]);
		return 2;
	}
	fclose(f);
	c = libdeflate_alloc_compressor(1);
	cap = libdeflate_deflate_compress_bound(c, BLOCK) + 16;
	out = malloc(n + n / 8 + (n / BLOCK + 1) * 64 + 1024);
	for (r = 0; r < reps; r++) {
		double t0 = cpu_seconds();

		tot = 0;
		for (off = 0; off < n; off += BLOCK) {
			size_t len = n - off < BLOCK ? n - off : BLOCK;
			size_t k = off + len == n ?
				libdeflate_deflate_compress(c, in + off, len, out + tot, cap) :
				libdeflate_deflate_compress_sync(c, in + off, len, out + tot, cap);

			if (!k) {
				fprintf(stderr, "compression failed\n");
				return 1;
			}
			tot += k;
		}
		times[r] = cpu_seconds() - t0;
	}
	for (i = 0; i < tot; i++)
		h = (h ^ out[i]) * 1099511628211ULL;
	qsort(times, reps, sizeof(times[0]), cmp_double);
	printf("bytes %zu min %.4f med %.4f max %.4f hash %016llx", tot, times[0],
	       times[reps / 2], times[reps - 1], h);
	if (argc > 3) {
		z_stream z;
		unsigned char *back = malloc(n + 16);
		int ok;

		memset(&z, 0, sizeof(z));
		inflateInit2(&z, -15);
		z.next_in = out;
		z.avail_in = tot;
		z.next_out = back;
		z.avail_out = n + 16;
		ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == n &&
		     memcmp(back, in, n) == 0;
		printf(" roundtrip %s", ok ? "ok" : "FAILED");
		if (!ok) {
			printf("\n");
			return 1;
		}
	}
	printf("\n");
	return 0;
}
