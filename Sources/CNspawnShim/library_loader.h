/* Libraries opened when first needed rather than at every start (blkid_loader.c,
 * systemd_loader.c): each defines the functions it uses under their own names, and they call
 * into the library through pointers resolved by nsp_library_open(). A call before a successful
 * open is a bug and aborts: it would otherwise load the library wherever the caller happens to be
 * (a child inside the machine's tree loads no library of ours). */
#pragma once
#include <stddef.h>

/* Opens `soname` once and resolves every name in `names` into `functions`: 0, or -1 with the
 * reason in `error` (the library stays closed then). */
int nsp_library_open(const char *soname, const char *const names[], void *functions[], size_t count, char *error, size_t error_size);

/* `function` if resolved; otherwise a bug: says so naming `soname`, and aborts. */
void *nsp_library_function(void *function, const char *soname);

/* X-macro helpers: an index for each function, its name, and a typed call. */
#define NSP_LIBRARY_INDEX(name) NSP_CALL_##name,
#define NSP_LIBRARY_NAME(name) #name,
#define NSP_LIBRARY_CALL(functions, soname, name) ((__typeof__(name) *)nsp_library_function((functions)[NSP_CALL_##name], soname))
