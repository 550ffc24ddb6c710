/*
 * pam_driver - runs one pam_authenticate through real libpam with a
 * scriptable conversation, for tests.
 *
 *   pam_driver CONFDIR SERVICE USER
 *
 * Starts PAM with pam_start_confdir(SERVICE, USER, conv, CONFDIR), sets
 * PAM_RHOST=127.0.0.1 and PAM_TTY=ssh, calls pam_authenticate and prints
 * the dialog on stdout, one flushed line per conversation message:
 *
 *   ECHO_OFF <text>   ECHO_ON <text>   INFO <text>   ERROR <text>
 *
 * (in <text>, a backslash is written \\, a newline \n, a carriage return \r)
 * and finally "RESULT <number> <PAM_NAME>".  Each prompt is answered with
 * one line read from stdin; EOF on stdin makes the conversation fail
 * (PAM_CONV_ERR).  Exits 0 once a RESULT line is printed, 2 otherwise.
 *
 * Environment:
 *   TWOFOLD_TEST_AUTHTOK  exported as PAM_AUTHTOK for pam_wrapper's
 *                         pam_set_items.so, which a test stack puts before
 *                         the module (an application may not set
 *                         PAM_AUTHTOK itself: pam_set_item refuses it).
 *   TWOFOLD_TEST_RUSER    set as PAM_RUSER.
 *
 * syslog output (pam_syslog) is copied to stderr (LOG_PERROR) so tests
 * can read what the module logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <security/pam_appl.h>

static const char *pam_code_name(int code)
{
	switch (code) {
	case PAM_SUCCESS: return "PAM_SUCCESS";
	case PAM_OPEN_ERR: return "PAM_OPEN_ERR";
	case PAM_SYMBOL_ERR: return "PAM_SYMBOL_ERR";
	case PAM_SERVICE_ERR: return "PAM_SERVICE_ERR";
	case PAM_SYSTEM_ERR: return "PAM_SYSTEM_ERR";
	case PAM_BUF_ERR: return "PAM_BUF_ERR";
	case PAM_PERM_DENIED: return "PAM_PERM_DENIED";
	case PAM_AUTH_ERR: return "PAM_AUTH_ERR";
	case PAM_CRED_INSUFFICIENT: return "PAM_CRED_INSUFFICIENT";
	case PAM_AUTHINFO_UNAVAIL: return "PAM_AUTHINFO_UNAVAIL";
	case PAM_USER_UNKNOWN: return "PAM_USER_UNKNOWN";
	case PAM_MAXTRIES: return "PAM_MAXTRIES";
	case PAM_NEW_AUTHTOK_REQD: return "PAM_NEW_AUTHTOK_REQD";
	case PAM_ACCT_EXPIRED: return "PAM_ACCT_EXPIRED";
	case PAM_SESSION_ERR: return "PAM_SESSION_ERR";
	case PAM_CRED_UNAVAIL: return "PAM_CRED_UNAVAIL";
	case PAM_CRED_EXPIRED: return "PAM_CRED_EXPIRED";
	case PAM_CRED_ERR: return "PAM_CRED_ERR";
	case PAM_NO_MODULE_DATA: return "PAM_NO_MODULE_DATA";
	case PAM_CONV_ERR: return "PAM_CONV_ERR";
	case PAM_AUTHTOK_ERR: return "PAM_AUTHTOK_ERR";
	case PAM_AUTHTOK_RECOVERY_ERR: return "PAM_AUTHTOK_RECOVERY_ERR";
	case PAM_AUTHTOK_LOCK_BUSY: return "PAM_AUTHTOK_LOCK_BUSY";
	case PAM_AUTHTOK_DISABLE_AGING: return "PAM_AUTHTOK_DISABLE_AGING";
	case PAM_TRY_AGAIN: return "PAM_TRY_AGAIN";
	case PAM_IGNORE: return "PAM_IGNORE";
	case PAM_ABORT: return "PAM_ABORT";
	case PAM_AUTHTOK_EXPIRED: return "PAM_AUTHTOK_EXPIRED";
	case PAM_MODULE_UNKNOWN: return "PAM_MODULE_UNKNOWN";
	case PAM_BAD_ITEM: return "PAM_BAD_ITEM";
	case PAM_CONV_AGAIN: return "PAM_CONV_AGAIN";
	case PAM_INCOMPLETE: return "PAM_INCOMPLETE";
	default: return "PAM_UNKNOWN_CODE";
	}
}

static void print_line(const char *tag, const char *text)
{
	fputs(tag, stdout);
	fputc(' ', stdout);
	for (const char *p = text ? text : ""; *p; p++) {
		switch (*p) {
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		default: fputc(*p, stdout); break;
		}
	}
	fputc('\n', stdout);
	fflush(stdout);
}

/* One line from stdin without its newline, or NULL at EOF. */
static char *read_answer(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);

	if (n < 0) {
		free(line);
		return NULL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

static int conversation(int num_msg, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	struct pam_response *replies;

	(void)appdata;
	*resp = NULL;
	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	replies = calloc((size_t)num_msg, sizeof(*replies));
	if (replies == NULL)
		return PAM_BUF_ERR;

	for (int i = 0; i < num_msg; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
		case PAM_PROMPT_ECHO_ON:
			print_line(msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ? "ECHO_OFF" : "ECHO_ON", msg[i]->msg);
			replies[i].resp = read_answer();
			if (replies[i].resp == NULL)
				goto fail;
			break;
		case PAM_TEXT_INFO:
			print_line("INFO", msg[i]->msg);
			break;
		case PAM_ERROR_MSG:
			print_line("ERROR", msg[i]->msg);
			break;
		default:
			print_line("UNKNOWN_STYLE", msg[i]->msg);
			goto fail;
		}
	}
	*resp = replies;
	return PAM_SUCCESS;

fail:
	for (int i = 0; i < num_msg; i++) {
		if (replies[i].resp != NULL) {
			explicit_bzero(replies[i].resp, strlen(replies[i].resp));
			free(replies[i].resp);
		}
	}
	free(replies);
	return PAM_CONV_ERR;
}

int main(int argc, char **argv)
{
	struct pam_conv conv = { conversation, NULL };
	pam_handle_t *pamh = NULL;
	const char *authtok, *ruser;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: %s CONFDIR SERVICE USER\n", argv[0]);
		return 2;
	}

	openlog("pam_driver", LOG_PID | LOG_PERROR, LOG_AUTHPRIV);

	authtok = getenv("TWOFOLD_TEST_AUTHTOK");
	if (authtok != NULL && setenv("PAM_AUTHTOK", authtok, 1) != 0) {
		perror("setenv");
		return 2;
	}

	r = pam_start_confdir(argv[2], argv[3], &conv, argv[1], &pamh);
	if (r != PAM_SUCCESS) {
		fprintf(stderr, "pam_start_confdir: %d %s\n", r, pam_code_name(r));
		return 2;
	}
	r = pam_set_item(pamh, PAM_RHOST, "127.0.0.1");
	if (r == PAM_SUCCESS)
		r = pam_set_item(pamh, PAM_TTY, "ssh");
	ruser = getenv("TWOFOLD_TEST_RUSER");
	if (r == PAM_SUCCESS && ruser != NULL)
		r = pam_set_item(pamh, PAM_RUSER, ruser);
	if (r != PAM_SUCCESS) {
		fprintf(stderr, "pam_set_item: %d %s\n", r, pam_code_name(r));
		pam_end(pamh, r);
		return 2;
	}

	r = pam_authenticate(pamh, 0);
	printf("RESULT %d %s\n", r, pam_code_name(r));
	fflush(stdout);
	pam_end(pamh, r);
	closelog();
	return 0;
}
