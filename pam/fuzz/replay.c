/*
 * replay - runs a libFuzzer target's LLVMFuzzerTestOneInput over files,
 * without libFuzzer: how `make -C pam check` replays the seed corpus and
 * every regression input (fuzz/corpus/<target>, fuzz/regressions/<target>)
 * on each build, sanitizers or not.
 *
 *   fuzz_replay_TARGET DIR|FILE...
 *
 * A directory is replayed file by file (sorted, dot files skipped); a
 * missing one is an error, and so is replaying nothing at all.  A crash or a
 * broken invariant (abort) ends the run and names the input (with a
 * sanitizer, set its abort_on_error=1 so that it ends in abort() too, as
 * the Makefile does).  Exits 0 after the last input.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t replayed;
static char current[4096]; /* the input being replayed, for the crash message */

static void crashed(int sig)
{
	static const char prefix[] = "replay: crashed on input ";
	/* Only async-signal-safe calls; nothing to do if stderr is gone. */
	if (write(2, prefix, sizeof(prefix) - 1) < 0 || write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0)
		_exit(128 + sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	for (;;) {
		size_t n;
		if (cap - len < 4096) {
			unsigned char *b = realloc(buf, cap * 2 + 4096);
			if (b == NULL) {
				fprintf(stderr, "%s: out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = b;
			cap = cap * 2 + 4096;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	/* An exact-size copy, as libFuzzer passes it: an overread past the input is caught by ASan. */
	{
		unsigned char *exact = malloc(len > 0 ? len : 1);
		if (exact == NULL) {
			free(buf);
			return -1;
		}
		memcpy(exact, buf, len);
		free(buf);
		snprintf(current, sizeof(current), "%s", path);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	replayed++;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_path(const char *path)
{
	struct stat st;
	struct dirent **names;
	int n, status = 0;

	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		perror(path);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char child[4096];
		if (names[i]->d_name[0] != '.' && status == 0) {
			snprintf(child, sizeof(child), "%s/%s", path, names[i]->d_name);
			if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
				status = replay_file(child);
		}
		free(names[i]);
	}
	free(names);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int sig = 1; sig < 32; sig++)
		if (sig == SIGABRT || sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
			signal(sig, crashed);
	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i]) != 0)
			return 1;
	if (replayed == 0) {
		fprintf(stderr, "%s: no input to replay\n", argv[0]);
		return 1;
	}
	printf("%s: %zu inputs replayed, no crash\n", argv[0], replayed);
	return 0;
}
