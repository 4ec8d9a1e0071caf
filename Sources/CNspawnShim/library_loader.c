#include "library_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int nsp_library_open(const char *soname, const char *const names[], void *functions[], size_t count, char *error, size_t error_size) {
    if (count > 0 && functions[0]) return 0;
    void *library = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, error_size, "%s", dlerror());
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        if (!(functions[i] = dlsym(library, names[i]))) {
            snprintf(error, error_size, "%s has no %s", soname, names[i]);
            for (size_t j = 0; j < i; j++) functions[j] = NULL;
            dlclose(library);
            return -1;
        }
    }
    return 0;
}

void *nsp_library_function(void *function, const char *soname) {
    if (!function) {
        fprintf(stderr, "%s called before it was opened\n", soname);
        abort();
    }
    return function;
}
