// libblkid's headers, for Swift: partition tables and file system signatures of disk images.
// Not linked: the library is opened only when an image is read, and the functions Swift calls are
// defined in CNspawnShim's blkid_loader.c, which calls into it.
#include <blkid/blkid.h>
