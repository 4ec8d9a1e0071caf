/* libblkid, loaded when a disk image is read (-i) and not at every start: the functions
 * DiskImageProbe calls, defined here under their own names, call into the library that
 * nsp_blkid_load() opened. Only these are declared to Swift (through CBlkid's header); a call
 * before a successful nsp_blkid_load() is a bug, and aborts. */
#include "nspawn_shim.h"

#include <blkid/blkid.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define BLKID_CALLS(X) \
    X(blkid_new_probe) X(blkid_free_probe) X(blkid_probe_set_device) X(blkid_probe_enable_partitions) \
    X(blkid_probe_enable_superblocks) X(blkid_probe_set_superblocks_flags) X(blkid_do_safeprobe) \
    X(blkid_probe_lookup_value) X(blkid_probe_get_partitions) X(blkid_partlist_numof_partitions) \
    X(blkid_partlist_get_partition) X(blkid_partition_get_start) X(blkid_partition_get_size) \
    X(blkid_partition_get_partno) X(blkid_partition_get_type) X(blkid_partition_get_type_string) \
    X(blkid_partition_get_name) X(blkid_partition_get_flags)

#define BLKID_POINTER(name) __typeof__(name) *name;
static struct { BLKID_CALLS(BLKID_POINTER) } blkid;

static char load_error[256];

int nsp_blkid_load(void) {
    if (blkid.blkid_new_probe) return 0;
    void *library = dlopen("libblkid.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error, sizeof load_error, "%s", dlerror());
        return -1;
    }
#define BLKID_RESOLVE(name) \
    if (!(blkid.name = (__typeof__(name) *)dlsym(library, #name))) { \
        snprintf(load_error, sizeof load_error, "libblkid.so.1 has no %s", #name); \
        dlclose(library); \
        return -1; \
    }
    BLKID_CALLS(BLKID_RESOLVE)
    return 0;
}

const char *nsp_blkid_load_error(void) { return load_error; }

static void *loaded(void *function) {
    if (!function) {
        fputs("libblkid called before nsp_blkid_load()\n", stderr);
        abort();
    }
    return function;
}
#define CALL(name) ((__typeof__(name) *)loaded((void *)blkid.name))

blkid_probe blkid_new_probe(void) { return CALL(blkid_new_probe)(); }
void blkid_free_probe(blkid_probe pr) { CALL(blkid_free_probe)(pr); }
int blkid_probe_set_device(blkid_probe pr, int fd, blkid_loff_t off, blkid_loff_t size) { return CALL(blkid_probe_set_device)(pr, fd, off, size); }
int blkid_probe_enable_partitions(blkid_probe pr, int enable) { return CALL(blkid_probe_enable_partitions)(pr, enable); }
int blkid_probe_enable_superblocks(blkid_probe pr, int enable) { return CALL(blkid_probe_enable_superblocks)(pr, enable); }
int blkid_probe_set_superblocks_flags(blkid_probe pr, int flags) { return CALL(blkid_probe_set_superblocks_flags)(pr, flags); }
int blkid_do_safeprobe(blkid_probe pr) { return CALL(blkid_do_safeprobe)(pr); }
int blkid_probe_lookup_value(blkid_probe pr, const char *name, const char **data, size_t *len) {
    return CALL(blkid_probe_lookup_value)(pr, name, data, len);
}
blkid_partlist blkid_probe_get_partitions(blkid_probe pr) { return CALL(blkid_probe_get_partitions)(pr); }
int blkid_partlist_numof_partitions(blkid_partlist ls) { return CALL(blkid_partlist_numof_partitions)(ls); }
blkid_partition blkid_partlist_get_partition(blkid_partlist ls, int n) { return CALL(blkid_partlist_get_partition)(ls, n); }
blkid_loff_t blkid_partition_get_start(blkid_partition par) { return CALL(blkid_partition_get_start)(par); }
blkid_loff_t blkid_partition_get_size(blkid_partition par) { return CALL(blkid_partition_get_size)(par); }
int blkid_partition_get_partno(blkid_partition par) { return CALL(blkid_partition_get_partno)(par); }
int blkid_partition_get_type(blkid_partition par) { return CALL(blkid_partition_get_type)(par); }
const char *blkid_partition_get_type_string(blkid_partition par) { return CALL(blkid_partition_get_type_string)(par); }
const char *blkid_partition_get_name(blkid_partition par) { return CALL(blkid_partition_get_name)(par); }
unsigned long long blkid_partition_get_flags(blkid_partition par) { return CALL(blkid_partition_get_flags)(par); }
