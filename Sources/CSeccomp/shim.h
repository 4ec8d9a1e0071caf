// The seccomp headers, for Swift.
#include <seccomp.h>
