/*
 * Edits made outside coffer: SQL run on a store's database with the database's own command-line
 * tool (sqlite3 for a store folder, psql for a postgres:// URL), in a process of its own, as
 * anyone with write access to the database could.
 */
#ifndef COFFER_TEST_SQLTOOL_H
#define COFFER_TEST_SQLTOOL_H

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static inline int sqltool_is_pg(const char *location)
{
	return strncmp(location, "postgres", 8) == 0;
}

/* Run `sql` (or, when file is not NULL, the SQL file) on the store at location. Returns the
 * tool's exit status: 0 when every statement succeeded. */
static inline int sqltool_run(const char *location, const char *sql, const char *file)
{
	char db[4400], read[4400];
	snprintf(db, sizeof db, "%s/coffer.db", location);
	snprintf(read, sizeof read, ".read %s", file != NULL ? file : "");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (sqltool_is_pg(location))
			execlp("psql", "psql", "-X", "-q", "-o", "/dev/null", "-v",
			       "ON_ERROR_STOP=1", "-d", location, file != NULL ? "-f" : "-c",
			       file != NULL ? file : sql, (char *)NULL);
		else
			execlp("sqlite3", "sqlite3", "-batch", "-bail", "-cmd", ".timeout 10000",
			       db, file != NULL ? read : sql, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#endif
