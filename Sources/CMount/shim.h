// The mount headers, for Swift.
#include <libmount/libmount.h>
