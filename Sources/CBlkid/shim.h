// libblkid's headers, for Swift: partition tables and file system signatures of disk images.
#include <blkid/blkid.h>
