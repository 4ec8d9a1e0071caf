// The cap headers, for Swift.
#include <sys/capability.h>
