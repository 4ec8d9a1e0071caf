/* libblkid, loaded when a disk image is read (-i) and not at every start (library_loader.h): the
 * functions DiskImageProbe calls, declared to Swift through CBlkid's header, call into the library
 * that nsp_blkid_load() opened. */
#include "library_loader.h"
#include "nspawn_shim.h"

#include <blkid/blkid.h>

#define BLKID_CALLS(X) \
    X(blkid_new_probe) X(blkid_free_probe) X(blkid_probe_set_device) X(blkid_probe_enable_partitions) \
    X(blkid_probe_enable_superblocks) X(blkid_probe_set_superblocks_flags) X(blkid_do_safeprobe) \
    X(blkid_probe_lookup_value) X(blkid_probe_get_partitions) X(blkid_partlist_numof_partitions) \
    X(blkid_partlist_get_partition) X(blkid_partition_get_start) X(blkid_partition_get_size) \
    X(blkid_partition_get_partno) X(blkid_partition_get_type) X(blkid_partition_get_type_string) \
    X(blkid_partition_get_name) X(blkid_partition_get_flags)

enum { BLKID_CALLS(NSP_LIBRARY_INDEX) BLKID_COUNT };
static const char *const names[] = { BLKID_CALLS(NSP_LIBRARY_NAME) };
static void *functions[BLKID_COUNT];
static char load_error[256];

int nsp_blkid_load(void) { return nsp_library_open("libblkid.so.1", names, functions, BLKID_COUNT, load_error, sizeof load_error); }

const char *nsp_blkid_load_error(void) { return load_error; }

#define CALL(name) NSP_LIBRARY_CALL(functions, "libblkid.so.1", name)

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
