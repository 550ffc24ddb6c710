/*
 * stallfs - for tests only, never installed: a FUSE passthrough file system
 * whose syncs can be held, the stand-in for a disk that stalls.
 *
 * The device mapper (dm-delay) is not available in the containers the tests
 * run in; this is the honest replacement the fault suite allows.  It mirrors
 * a backing directory at a mount point.  Every operation goes straight to the
 * backing file, except that, while the file system is "stalled", fsync and
 * fdatasync of any file (but SQLite's -shm index, see below) wait until they
 * are released.  That is what a stalled block device does to a program: its
 * write() lands in the page cache and returns, its fsync() waits for a device
 * that does not complete the I/O.  Reads are served throughout (from the
 * page cache, on a real disk).  Holding write() itself would be less
 * faithful here: the kernel keeps a FUSE write's pages locked until the
 * reply, so readers of the same pages would wait too, which a block device
 * under writeback does not do.
 *
 * The -shm file (SQLite's WAL index, a shared memory map) is never synced by
 * SQLite and is left alone: the kernel writes its pages back by itself.
 *
 *   stallfs BACKING MOUNTPOINT [fuse options]     (runs in the foreground)
 *
 * It prints "ready" on its standard output once the mount serves requests.
 *
 * Control: the file "/.stallfs" at the root of the mount (not in the backing
 * directory), one command per write():
 *   "stall"             from now on, syncs wait
 *   "release"           no more waiting: every held sync goes on
 *   "wait HELD MILLIS [THREAD]"
 *                       the write() returns once at least HELD syncs are
 *                       being held (only those of threads named THREAD, as
 *                       in /proc/TID/comm, when given), or fails with
 *                       ETIMEDOUT after MILLIS
 * Reading it gives "stalled=0|1 held=N syncs=N released=N\n" (whether syncs
 * wait now, how many are waiting, how many syncs reached the backing files,
 * how many held ones were let go), then "holder THREAD PATH\n" per held sync.
 * Writes are synchronous: when the write() of "stall" returns, the next sync
 * waits.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CONTROL "/.stallfs"

static int backing = -1; /* the backing directory, opened */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int stalled;            /* guarded by lock */
static long held;              /* syncs waiting now */
static long syncs;             /* syncs that reached the backing file */
static long released;          /* held syncs let go */

/* Who waits: the calling thread's name (/proc/TID/comm) and the file, per held sync. */
#define MAX_HOLDERS 32
struct holder {
	int used;
	char comm[32];
	char path[96];
};
static struct holder holders[MAX_HOLDERS]; /* guarded by lock */

/* A path of the mount as a path relative to the backing directory. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int is_control(const char *path)
{
	return strcmp(path, CONTROL) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The name of the calling thread (FUSE passes its thread id), or "?". */
static void caller_comm(char *buf, size_t size)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/%d/comm", (int)fuse_get_context()->pid);
	snprintf(buf, size, "?");
	FILE *f = fopen(proc, "re");
	if (f == NULL)
		return;
	if (fgets(buf, (int)size, f) == NULL)
		snprintf(buf, size, "?");
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static long held_by(const char *comm)
{
	long n = 0;
	for (int i = 0; i < MAX_HOLDERS; i++)
		if (holders[i].used && (comm[0] == '\0' || strcmp(holders[i].comm, comm) == 0))
			n++;
	return n;
}

/* Waits while the file system is stalled (never for -shm). */
static void gate(const char *path)
{
	if (path != NULL && ends_with(path, "-shm"))
		return;
	char comm[32];
	caller_comm(comm, sizeof(comm));
	pthread_mutex_lock(&lock);
	if (stalled) {
		struct holder *me = NULL;
		for (int i = 0; i < MAX_HOLDERS && me == NULL; i++)
			if (!holders[i].used)
				me = &holders[i];
		if (me != NULL) {
			me->used = 1;
			snprintf(me->comm, sizeof(me->comm), "%s", comm);
			snprintf(me->path, sizeof(me->path), "%s", path != NULL ? path : "(directory)");
		}
		held++;
		pthread_cond_broadcast(&changed);
		while (stalled)
			pthread_cond_wait(&changed, &lock);
		held--;
		released++;
		if (me != NULL)
			me->used = 0;
	}
	pthread_mutex_unlock(&lock);
}

static void counted_sync(void)
{
	pthread_mutex_lock(&lock);
	syncs++;
	pthread_mutex_unlock(&lock);
}

static int control_text(char *buf, size_t size)
{
	pthread_mutex_lock(&lock);
	int n = snprintf(buf, size, "stalled=%d held=%ld syncs=%ld released=%ld\n", stalled, held, syncs, released);
	for (int i = 0; i < MAX_HOLDERS && n > 0 && (size_t)n < size; i++)
		if (holders[i].used)
			n += snprintf(buf + n, size - (size_t)n, "holder %s %s\n", holders[i].comm, holders[i].path);
	pthread_mutex_unlock(&lock);
	return n < 0 ? 0 : (size_t)n < size ? n : (int)size - 1;
}

static int control_command(const char *buf, size_t size)
{
	char cmd[96];
	long want = 0, millis = 0;

	if (size == 0 || size >= sizeof(cmd))
		return -EINVAL;
	memcpy(cmd, buf, size);
	cmd[size] = '\0';
	cmd[strcspn(cmd, "\n")] = '\0';
	if (strcmp(cmd, "stall") == 0) {
		pthread_mutex_lock(&lock);
		stalled = 1;
		pthread_cond_broadcast(&changed);
		pthread_mutex_unlock(&lock);
		return 0;
	}
	if (strcmp(cmd, "release") == 0) {
		pthread_mutex_lock(&lock);
		stalled = 0;
		pthread_cond_broadcast(&changed);
		pthread_mutex_unlock(&lock);
		return 0;
	}
	char comm[32] = "";
	int fields = sscanf(cmd, "wait %ld %ld %31s", &want, &millis, comm);
	if (fields >= 2 && want >= 0 && millis >= 0) {
		struct timespec until;
		int rc = 0;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += millis / 1000;
		until.tv_nsec += (millis % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&lock);
		while (held_by(comm) < want && rc == 0)
			rc = pthread_cond_timedwait(&changed, &lock, &until);
		int reached = held_by(comm) >= want;
		pthread_mutex_unlock(&lock);
		return reached ? 0 : -ETIMEDOUT;
	}
	return -EINVAL;
}

static void *sfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	/* Attributes and names are asked for each time: the backing files are the truth. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	/* The mount is in place once the kernel's INIT arrives: tell whoever waits (no polling). */
	fputs("ready\n", stdout);
	fflush(stdout);
	return NULL;
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_control(path)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = 0;
		return 0;
	}
	int rc = fi != NULL ? fstat((int)fi->fh, st) : fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW);
	return rc == 0 ? 0 : -errno;
}

static int sfs_access(const char *path, int mask)
{
	if (is_control(path))
		return 0;
	return faccessat(backing, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *dir = fdopendir(fd);
	if (dir == NULL) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct dirent *d;
	while ((d = readdir(dir)) != NULL) {
		struct stat st = { .st_ino = d->d_ino, .st_mode = (mode_t)d->d_type << 12 };
		if (fill(buf, d->d_name, &st, 0, 0))
			break;
	}
	closedir(dir);
	return 0;
}

static int sfs_mkdir(const char *path, mode_t mode)
{
	return mkdirat(backing, rel(path), mode) == 0 ? 0 : -errno;
}

static int sfs_rmdir(const char *path)
{
	return unlinkat(backing, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int sfs_unlink(const char *path)
{
	if (is_control(path))
		return -EPERM;
	return unlinkat(backing, rel(path), 0) == 0 ? 0 : -errno;
}

static int sfs_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_control(from) || is_control(to))
		return -EPERM;
	return renameat2(backing, rel(from), backing, rel(to), flags) == 0 ? 0 : -errno;
}

static int sfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	int rc = fi != NULL ? fchmod((int)fi->fh, mode) : fchmodat(backing, rel(path), mode, 0);
	return rc == 0 ? 0 : -errno;
}

static int sfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	int rc = fi != NULL ? fchown((int)fi->fh, uid, gid) : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
	return rc == 0 ? 0 : -errno;
}

static int sfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	int rc;
	if (fi != NULL) {
		rc = ftruncate((int)fi->fh, size);
	} else {
		int fd = openat(backing, rel(path), O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		rc = ftruncate(fd, size);
		if (rc != 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		close(fd);
	}
	return rc == 0 ? 0 : -errno;
}

static int sfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	int rc = fi != NULL ? futimens((int)fi->fh, tv) : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return rc == 0 ? 0 : -errno;
}

static int sfs_open(const char *path, struct fuse_file_info *fi)
{
	if (is_control(path)) {
		fi->fh = (uint64_t)-1;
		fi->direct_io = 1; /* every read and write reaches the handlers */
		return 0;
	}
	int fd = openat(backing, rel(path), (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int sfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_control(path))
		return -EEXIST;
	int fd = openat(backing, rel(path), fi->flags | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int sfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (is_control(path)) {
		char text[4096];
		int n = control_text(text, sizeof(text));
		if (off >= n)
			return 0;
		size_t len = (size_t)(n - off) < size ? (size_t)(n - off) : size;
		memcpy(buf, text + off, len);
		return (int)len;
	}
	ssize_t n = pread((int)fi->fh, buf, size, off);
	return n >= 0 ? (int)n : -errno;
}

static int sfs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (is_control(path)) {
		int rc = control_command(buf, size);
		return rc == 0 ? (int)size : rc;
	}
	ssize_t n = pwrite((int)fi->fh, buf, size, off);
	return n >= 0 ? (int)n : -errno;
}

static int sfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return fstatvfs(backing, st) == 0 ? 0 : -errno;
}

static int sfs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;
}

static int sfs_release(const char *path, struct fuse_file_info *fi)
{
	if (!is_control(path))
		close((int)fi->fh);
	return 0;
}

static int sfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	gate(path);
	int rc = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	if (rc != 0)
		return -errno;
	counted_sync();
	return 0;
}

static int sfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	gate(NULL);
	int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc != 0)
		return -e;
	counted_sync();
	return 0;
}

static int sfs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	if (is_control(path))
		return -EOPNOTSUPP;
	return fallocate((int)fi->fh, mode, off, len) == 0 ? 0 : -errno;
}

static const struct fuse_operations ops = {
	.init = sfs_init,
	.getattr = sfs_getattr,
	.access = sfs_access,
	.readdir = sfs_readdir,
	.mkdir = sfs_mkdir,
	.rmdir = sfs_rmdir,
	.unlink = sfs_unlink,
	.rename = sfs_rename,
	.chmod = sfs_chmod,
	.chown = sfs_chown,
	.truncate = sfs_truncate,
	.utimens = sfs_utimens,
	.open = sfs_open,
	.create = sfs_create,
	.read = sfs_read,
	.write = sfs_write,
	.statfs = sfs_statfs,
	.flush = sfs_flush,
	.release = sfs_release,
	.fsync = sfs_fsync,
	.fsyncdir = sfs_fsyncdir,
	.fallocate = sfs_fallocate,
	/* No .lock: the kernel keeps POSIX locks (SQLite's) itself, for this one machine. */
};

int main(int argc, char *argv[])
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s BACKING MOUNTPOINT [fuse options]\n", argv[0]);
		return 2;
	}
	backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (backing < 0) {
		perror(argv[1]);
		return 1;
	}
	umask(0);
	/* fuse_main gets: the program, -f (foreground), the mount point, the rest. */
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	if (args == NULL)
		return 1;
	int n = 0;
	args[n++] = argv[0];
	args[n++] = "-f";
	for (int i = 2; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	int rc = fuse_main(n, args, &ops, NULL);
	free(args);
	return rc;
}
