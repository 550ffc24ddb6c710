/*
 * casefold_preload.so - for tests only: LD_PRELOADed into pam_driver, it
 * makes getpwnam_r look up the lower-cased name, as a case-insensitive
 * directory (sssd, LDAP) does: "ROOT" finds the account "root".  Lets
 * the tests check that the module sends the account's canonical name.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pwd.h>
#include <string.h>

typedef int (*getpwnam_r_fn)(const char *, struct passwd *, char *, size_t, struct passwd **);

int getpwnam_r(const char *name, struct passwd *pwd, char *buf, size_t buflen, struct passwd **result)
{
	getpwnam_r_fn real = (getpwnam_r_fn)dlsym(RTLD_NEXT, "getpwnam_r");
	char lower[256];
	size_t n = strlen(name);

	if (real == NULL)
		return ENOSYS;
	if (n >= sizeof(lower))
		return real(name, pwd, buf, buflen, result);
	for (size_t i = 0; i <= n; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	return real(lower, pwd, buf, buflen, result);
}
